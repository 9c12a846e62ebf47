"""The plate map on a simulated deck (a real pump pty), through the ivoryos_plugin pytest kit.

The tests that take ``plugin_host`` run on both IvoryOS generations: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra); the IvoryOS-only test (login)
builds its URLs from the app it talks to (``plugin_url``)."""
from __future__ import annotations

import re
import threading
import types
from typing import Any, Dict, Iterator

import pytest

from ivoryos_plugin.testing import plugin_url
from plate_map.plate import WELLS, Plate, colour
from plate_map.plugin import plugin as plate_plugin


@pytest.fixture
def plugin() -> Any:
    """The plugin under test."""
    return plate_plugin


@pytest.fixture
def deck(sim_deck: types.ModuleType) -> types.ModuleType:
    """The kit's simulated deck (balance, pump, hotplate on real ptys) as the host's deck."""
    return sim_deck


def after(live: Any, event: str, seen: int, count: int = 1) -> list:
    """The ``count`` payloads of ``event`` received after the first ``seen`` (the last value of an
    event published by an earlier app of this process is replayed when the client connects)."""
    return list(live.wait_for(event, count=seen + count)[seen:])


def well_fill(html: str, well: str) -> Dict[str, str]:
    """The ``fill`` and ``data-value`` of a well's circle in the page."""
    match = re.search(rf'<circle id="well-{well}"[^>]*?data-value="([^"]*)" fill="([^"]+)"', html)
    assert match, f"no circle for {well}"
    return {"value": match.group(1), "fill": match.group(2)}


def test_page_draws_a_96_well_plate_in_svg(plugin_host: Any) -> None:
    page = plugin_host.client.get(plugin_host.url())
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<svg" in html
    circles = re.findall(r'<circle id="well-([A-H]\d+)"', html)
    assert circles == list(WELLS) and len(circles) == 96
    assert well_fill(html, "A1") == {"value": "", "fill": "#ffffff"}


def test_set_well_colours_it_live_and_on_the_page(plugin_host: Any) -> None:
    client, live = plugin_host.client, plugin_host.live
    seen = len(live.received("well"))
    reply = client.post(plugin_host.url("actions/set_well"), json={"well": "B7", "value": 0.42})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert after(live, "well", seen) == [{"well": "B7", "value": 0.42, "source": "set_well"}]
    page = client.get(plugin_host.url()).get_data(as_text=True)
    assert well_fill(page, "B7") == {"value": "0.42", "fill": colour(0.42)}
    assert live.call("snapshot")["wells"] == {"B7": 0.42}


@pytest.mark.parametrize("args, field", [
    ({"well": "I1", "value": 0.5}, "well"),
    ({"well": "A13", "value": 0.5}, "well"),
    ({"well": "A0", "value": 0.5}, "well"),
    ({"well": "A1", "value": 1.5}, "value"),
    ({"well": "A1", "value": -0.1}, "value"),
    ({"well": "A1"}, "value"),
], ids=["row-I", "column-13", "column-0", "value-too-high", "value-negative", "value-missing"])
def test_bad_wells_and_values_are_refused(plugin_host: Any, args: Dict[str, Any], field: str) -> None:
    reply = plugin_host.client.post(plugin_host.url("actions/set_well"), json=args)
    assert reply.status_code == 400 and field in reply.get_json()["errors"]
    assert plugin_host.client.post(plugin_host.url("actions/clear"), json={}).get_json()["wells"] == {}


def test_each_pump_dispense_colours_the_next_well(plugin_host: Any, deck: types.ModuleType) -> None:
    live = plugin_host.live
    seen = len(live.received("well"))
    deck.pump.dispense(0.25)  # as an IvoryOS workflow step calls the deck's own pump
    deck.pump.dispense(3.0)
    events = after(live, "well", seen, count=2)
    assert [(e["well"], e["value"], e["source"]) for e in events] == [("A1", 0.25, "pump"), ("A2", 1.0, "pump")]
    html = plugin_host.client.get(plugin_host.url()).get_data(as_text=True)
    assert well_fill(html, "A1")["fill"] == colour(0.25) and well_fill(html, "A2")["fill"] == colour(1.0)
    assert 'id="pm-next">A3<' in html


def test_full_volume_setting_scales_the_colour(plugin_host: Any, deck: types.ModuleType) -> None:
    assert plugin_host.client.patch(plugin_host.url("settings.json"), json={"full_ml": 10}).status_code == 200
    live = plugin_host.live
    seen = len(live.received("well"))
    deck.pump.dispense(2.5)
    assert after(live, "well", seen)[0]["value"] == pytest.approx(0.25)


def test_a_failed_dispense_colours_nothing(plugin_host: Any, deck: types.ModuleType) -> None:
    with pytest.raises(Exception, match="volume out of range"):
        deck.pump.dispense(5000)
    assert plugin_host.live.call("snapshot") == {"wells": {}, "next": "A1"}


def test_following_another_pump_from_the_settings(plugin_host: Any, deck: types.ModuleType) -> None:
    from ivoryos_plugin.sim import Pump, PumpSimulator

    simulator = PumpSimulator("pump2").start()
    pump2 = Pump(simulator.port)
    plugin_host.add_instrument("pump2", pump2)  # an instrument added to the running deck
    live = plugin_host.live
    try:
        seen = len(live.received("well"))
        assert plugin_host.client.patch(plugin_host.url("settings.json"), json={"instrument": "pump2"}).status_code == 200
        deck.pump.dispense(0.5)  # no longer followed
        pump2.dispense(0.75)
        assert [e["well"] for e in after(live, "well", seen)] == ["A1"]
        assert live.call("snapshot")["wells"] == {"A1": 0.75}
    finally:
        pump2.close()
        simulator.stop()


def test_dispense_action_drives_the_pump_and_colours_a_well(plugin_host: Any, deck: types.ModuleType) -> None:
    live = plugin_host.live
    seen = len(live.received("well"))
    reply = plugin_host.client.post(plugin_host.url("actions/dispense"), json={"volume_ml": 0.5})
    assert reply.status_code == 200 and reply.get_json() == {"ok": True, "volume_ml": 0.5}
    assert deck.pump.dispensed() == pytest.approx(0.5)
    assert after(live, "well", seen) == [{"well": "A1", "value": 0.5, "volume_ml": 0.5, "source": "pump"}]


@pytest.fixture
def deck_busy(plugin_host: Any) -> Iterator[None]:
    """The deck held as a run holds it (IvoryOS's runner lock; on the edge, a manual call in flight)."""
    with plugin_host.deck_busy():
        yield


def test_while_the_deck_is_busy_dispense_is_409_but_wells_can_be_set(plugin_host: Any, deck: types.ModuleType,
                                                                      deck_busy: None) -> None:
    client = plugin_host.client
    busy = client.post(plugin_host.url("actions/dispense"), json={"volume_ml": 0.5})
    assert busy.status_code == 409 and busy.get_json()["busy"] is True
    assert deck.pump.dispensed() == 0.0, "a refused dispense reached the pump"
    assert client.post(plugin_host.url("actions/set_well"), json={"well": "H12", "value": 1.0}).status_code == 200
    assert client.post(plugin_host.url("actions/clear"), json={}).status_code == 200


def test_clear_empties_the_plate_everywhere(plugin_host: Any) -> None:
    client, live = plugin_host.client, plugin_host.live
    client.post(plugin_host.url("actions/set_well"), json={"well": "C3", "value": 0.9})
    seen = len(live.received("plate"))
    reply = client.post(plugin_host.url("actions/clear"), json={})
    assert reply.get_json() == {"wells": {}, "next": "A1"}
    assert after(live, "plate", seen) == [{"wells": {}, "next": "A1"}]
    assert well_fill(client.get(plugin_host.url()).get_data(as_text=True), "C3")["fill"] == "#ffffff"


def test_fill_order_wraps_after_h12_and_is_thread_safe() -> None:
    plate = Plate()
    threads = [threading.Thread(target=lambda: [plate.fill_next(0.1) for _ in range(24)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    state = plate.snapshot()
    assert len(state["wells"]) == 96 and state["next"] == "A1"
    assert plate.fill_next(0.2) == "A1"


@pytest.mark.parametrize("value, fill", [(None, "#ffffff"), (0.0, "#eff6ff"), (0.5, "#4292c6"), (1.0, "#08306b"),
                                         (7.0, "#08306b"), (-1.0, "#eff6ff")],
                         ids=["empty", "zero", "half", "full", "clamped-high", "clamped-low"])
def test_colour_scale(value: Any, fill: str) -> None:
    assert colour(value) == fill


def test_anonymous_visitors_are_refused(anon_client: Any, plugin: Any) -> None:  # 1.x only: the edge has no login
    page = anon_client.get(plugin_url(anon_client, plugin), headers={"Accept": "application/json"})
    assert page.status_code == 401
    set_well = anon_client.post(plugin_url(anon_client, plugin, "actions/set_well"), json={"well": "A1", "value": 0.5})
    assert set_well.status_code == 401
