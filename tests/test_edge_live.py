"""The live channel on a real ivoryos-edge subprocess (issue 26): streams with one read per tick
for 100 WebSocket viewers and none without a viewer, publish with replay mirrored to the edge's own
/events, @plugin.on acknowledgements, the deck state; and in real Chromium, the examples inside the
edge's UI (the live value moving, an action's field error under its input)."""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
import websocket

from browsing import chromium
from edgehost import receive_until, start_edge, url, ws_url
from support import Server, launch

TICKER = '''
    import itertools
    from ivoryos_plugin import Plugin

    plugin = Plugin("ticker", __name__, title="Ticker", template_folder=None)
    counter = itertools.count(1)

    @plugin.route("/")
    def main():
        return "<!doctype html><html><head><title>t</title></head><body>ticker</body></html>"

    @plugin.stream("tick", hz=20)
    def tick():
        return {"n": next(counter)}
'''

DECK = '''
    import os
    import ivoryos_edge
    from ivoryos_plugin.edge import for_edge
    import ticker

    if __name__ == "__main__":
        ivoryos_edge.run(__name__, plugins=[for_edge(ticker.plugin)], host="127.0.0.1", port=int(os.environ["PORT"]))
'''


@pytest.fixture(scope="module")
def ticker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("ticker")
    (folder / "ticker.py").write_text(textwrap.dedent(TICKER))
    server = launch(DECK, folder, name="ticker_deck.py", env={"IVORYOS_DATA_DIR": str(folder / "data")}, timeout=120)
    try:
        yield server
    finally:
        server.stop()


def tick_state(server: Server) -> Dict[str, Any]:
    """The ``tick`` stream on the health information: ``viewers``, ``running``, ``reads``..."""
    return dict(requests.get(url(server, "ticker", "health.json"), timeout=30).json()["plugin"]["streams"]["tick"])


def ticks(ws: Any, until: int, timeout: float = 30.0) -> List[int]:
    """The ``n`` of each ``tick`` frame a viewer reads until one is ≥ ``until``, in arrival order."""
    frames = receive_until(ws, lambda f: f.get("event") == "tick" and f["data"]["n"] >= until, timeout=timeout)
    return [f["data"]["n"] for f in frames if f.get("event") == "tick"]


def test_100_viewers_one_read_per_tick_and_none_without_a_viewer(ticker: Server) -> None:
    """Counts and order, no rate: each read's value (the plugin counts its reads) reaches every viewer,
    so a viewer's values run without a gap (a producer per viewer would take values from the others);
    the producer does not run before the first viewer nor after the last one left."""
    idle = tick_state(ticker)
    assert (idle["reads"], idle["running"], idle["viewers"]) == (0, False, 0), f"read with no viewer: {idle}"
    viewers: List[Any] = []
    try:
        for _ in range(100):
            ws = websocket.create_connection(ws_url(ticker, "ticker"), timeout=30)
            ws.send(json.dumps({"op": "subscribe", "stream": "tick", "id": 1}))
            viewers.append(ws)
        for ws in viewers:
            receive_until(ws, lambda f: f.get("type") == "ack" and f["data"]["ok"] is True, timeout=30)
        watched = tick_state(ticker)
        assert watched["viewers"] == 100 and watched["running"] is True, watched
        until = watched["reads"] + 20  # the next 20 reads
        for ws in viewers:
            got = ticks(ws, until)
            values = list(dict.fromkeys(got))  # the value read as it subscribed may come twice (it and its replay)
            assert got == sorted(got) and values == list(range(values[0], until + 1)), (
                f"a viewer got {len(values)} values from {values[0]} to {values[-1]} (first wrong at "
                f"{next((i for i, v in enumerate(values) if v != values[0] + i), None)}), not each read from "
                f"{values[0]} to {until} in order")
        assert tick_state(ticker)["reads"] >= until
    finally:
        for ws in viewers:
            ws.close()
    deadline = time.monotonic() + 30
    while (state := tick_state(ticker))["running"] or state["viewers"]:  # the server saw them all leave
        assert time.monotonic() < deadline, f"the producer still runs after the last viewer left: {state}"
        time.sleep(0.05)
    time.sleep(1.0)  # 20 ticks' time, for a producer that would go on
    assert tick_state(ticker)["reads"] == state["reads"], "the producer kept reading after the last viewer left"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_edge(tmp_path_factory.mktemp("edge"), plugins=["hello", "plate_map", "balance"])
    try:
        yield server
    finally:
        server.stop()


def test_publish_is_replayed_and_mirrored_to_the_edge_events(edge: Server) -> None:
    events = websocket.create_connection(ws_url(edge, "hello", "events"), timeout=10)
    try:
        assert requests.post(url(edge, "hello", "actions/greet"), json={"name": "first"}).status_code == 200
        assert json.loads(events.recv()) == {"event": "greeted", "data": {"name": "first"}}
    finally:
        events.close()
    late = websocket.create_connection(ws_url(edge, "hello"), timeout=10)  # opened after the publish
    try:
        frames = receive_until(late, lambda f: f.get("event") == "greeted")
        assert frames[-1]["data"] == {"name": "first"}
    finally:
        late.close()


def test_a_handler_answers_its_acknowledgement(edge: Server) -> None:
    ws = websocket.create_connection(ws_url(edge, "plate_map"), timeout=10)
    try:
        requests.post(url(edge, "plate_map", "actions/set_well"), json={"well": "B3", "value": 0.25})
        ws.send(json.dumps({"op": "emit", "event": "snapshot", "id": 7}))
        ack = receive_until(ws, lambda f: f.get("type") == "ack" and f["id"] == 7)[-1]
        assert ack["data"]["wells"]["B3"] == 0.25
        ws.send(json.dumps({"op": "emit", "event": "nothing", "id": 8}))
        ack = receive_until(ws, lambda f: f.get("type") == "ack" and f["id"] == 8)[-1]
        assert ack["data"]["ok"] is False and ack["data"]["status"] == 404
        ws.send(json.dumps({"op": "emit", "event": "snapshot", "data": {"a": float("nan")}, "id": 9}).replace(
            "NaN", "1e999"))
        ack = receive_until(ws, lambda f: f.get("type") == "ack" and f["id"] == 9)[-1]
        assert ack["data"]["status"] == 400
    finally:
        ws.close()


def test_the_channel_carries_the_deck_state_and_refuses_a_foreign_page(edge: Server) -> None:
    ws = websocket.create_connection(ws_url(edge, "balance"), timeout=10)
    try:
        deck = receive_until(ws, lambda f: f.get("type") == "deck")[-1]
        assert deck["verified"] is True and deck["busy"] is False
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(ws_url(edge, "balance"), timeout=10, header=["Origin: http://evil.example"])
    refused = websocket.create_connection(ws_url(edge, "balance") + "?token=ivp_nope", timeout=10)
    try:
        assert receive_until(refused, lambda f: f.get("type") == "refused")[-1]["error"].find("unknown") != -1
    finally:
        refused.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_examples_inside_the_edge_ui_in_chromium(edge: Server, browser: Any) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{edge.base}/plugin?id=balance")
        frame = page.frame_locator("iframe")
        value = frame.locator("#bd-value")
        value.wait_for()
        frame.locator("[data-ivoryos-live-state][data-state=connected]").first.wait_for(timeout=15000)
        page.wait_for_function("() => true")
        first = value.text_content()
        requests.post(url(edge, "plate_map", "actions/dispense"), json={"volume_ml": 2.5})  # the pump fills the vial
        deadline = time.monotonic() + 10
        while value.text_content() in (first, "–") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert value.text_content() not in (first, "–"), "the live weight did not move"

        page.goto(f"{edge.base}/plugin?id=plate_map")
        frame = page.frame_locator("iframe")
        frame.locator("#pm-well").fill("Z99")
        frame.locator("#pm-set").click()
        error = frame.locator("#pm-well + .ivp-field-error[data-ivoryos-error=well]")
        error.wait_for(timeout=10000)
        field, under = frame.locator("#pm-well").bounding_box(), error.bounding_box()
        assert under["y"] >= field["y"] + field["height"] - 1
    finally:
        page.close()
