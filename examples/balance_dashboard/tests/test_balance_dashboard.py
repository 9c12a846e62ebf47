"""The balance dashboard on a simulated balance (a real pty), through the ivoryos_plugin pytest kit.

The tests that take ``plugin_host`` run on both IvoryOS generations: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra). URLs are built from the
host (``plugin_host.url(...)``); the IvoryOS-only tests (login, IvoryOS's own page) from the app they
talk to (``plugin_url``)."""
from __future__ import annotations

import re
import threading
import time
import types
from typing import Any, Dict, Iterator, List

import pytest

from balance_dashboard.plugin import plugin as balance_plugin
from ivoryos_plugin.testing import plugin_url


@pytest.fixture
def plugin() -> Any:
    """The plugin under test (the kit's fixtures build the host around it)."""
    return balance_plugin


@pytest.fixture
def deck(sim_deck: types.ModuleType) -> types.ModuleType:
    """The kit's simulated deck (balance, pump, hotplate on real ptys) as the host's deck."""
    return sim_deck


@pytest.fixture
def fast(plugin_host: Any) -> Any:
    """The host, its stream at 20 Hz so tests wait less."""
    assert plugin_host.client.patch(plugin_host.url("settings.json"), json={"rate_hz": 20}).status_code == 200
    return plugin_host


def load(deck: types.ModuleType, grams: float) -> None:
    """Put ``grams`` on the simulated pan and wait until the reading has settled."""
    simulator = deck.simulators["balance"]
    simulator.load(grams)
    time.sleep(simulator.settle_time + 0.05)


def readings_after(live: Any, since: float, count: int = 3, timeout: float = 5.0) -> List[Dict[str, Any]]:
    """The first ``count`` stream readings taken after ``since`` (a ``time.time()``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [r for r in live.received("weight") if r["t"] > since]
        if len(fresh) >= count:
            return fresh
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} readings after {since} within {timeout} s")


def test_page_is_served_with_the_local_chart_library(plugin_host: Any) -> None:
    client = plugin_host.client
    page = client.get(plugin_host.url())
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="bd-chart"' in html and 'id="bd-stable"' in html and 'id="bd-tare"' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert plugin_host.asset("vendor/uPlot.iife.min.js") in scripts
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))], "a script comes from a CDN"
    for asset in (plugin_host.asset("vendor/uPlot.iife.min.js"), plugin_host.url("static/balance.js"),
                  plugin_host.url("static/balance.css")):
        with client.get(asset) as reply:  # a file response: close it
            assert reply.status_code == 200, asset


def test_anonymous_visitors_get_no_page_and_no_actions(anon_client: Any, plugin: Any) -> None:  # 1.x only
    page = anon_client.get(plugin_url(anon_client, plugin), headers={"Accept": "application/json"})
    assert page.status_code == 401
    assert anon_client.post(plugin_url(anon_client, plugin, "actions/tare"), json={}).status_code == 401


def test_stream_delivers_the_weight_on_the_pan(fast: Any, deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 12.5)
    since = time.time()
    ack = live.subscribe("weight")
    assert ack["ok"] is True and ack["hz"] == 20
    readings = readings_after(live, since, count=3)
    for reading in readings:
        assert reading["unit"] == "g" and reading["balance_unit"] == "g"
        assert reading["value"] == pytest.approx(12.5, abs=0.01)
        assert reading["stable"] is True


def test_tare_drives_the_reading_to_zero(fast: Any, deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 20.0)
    live.subscribe("weight")
    assert readings_after(live, time.time(), count=1)[-1]["value"] == pytest.approx(20.0, abs=0.01)
    reply = fast.client.post(fast.url("actions/tare"), json={})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_json()["reading"]["grams"] == pytest.approx(0.0, abs=0.01)
    since = time.time()
    for reading in readings_after(live, since, count=3):
        assert reading["value"] == pytest.approx(0.0, abs=0.01)


def test_balance_unit_changes_on_the_instrument(fast: Any, deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 2.0)
    reply = fast.client.post(fast.url("actions/set_unit"), json={"unit": "mg"})
    assert reply.status_code == 200 and reply.get_json() == {"ok": True, "unit": "mg"}
    assert deck.balance.unit == "mg"
    assert deck.balance.weigh() == pytest.approx(2000.0, abs=10)
    live.subscribe("weight")
    latest = readings_after(live, time.time(), count=1)[-1]
    assert latest["balance_unit"] == "mg"
    assert latest["unit"] == "g" and latest["value"] == pytest.approx(2.0, abs=0.01), "the chart unit is a setting"
    bad = fast.client.post(fast.url("actions/set_unit"), json={"unit": "lb"})
    assert bad.status_code == 400 and "unit" in bad.get_json()["errors"]
    assert deck.balance.unit == "mg", "a refused unit reached the balance"


def test_chart_unit_setting_converts_the_stream(fast: Any, deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 3.0)
    assert fast.client.patch(fast.url("settings.json"), json={"unit": "kg"}).status_code == 200
    live.subscribe("weight")
    latest = readings_after(live, time.time(), count=1)[-1]
    assert latest["unit"] == "kg" and latest["value"] == pytest.approx(0.003, abs=1e-5)
    assert latest["balance_unit"] == "g"


@pytest.mark.parametrize("values, field", [
    ({"rate_hz": 0}, "rate_hz"),
    ({"rate_hz": 21}, "rate_hz"),
    ({"rate_hz": "fast"}, "rate_hz"),
    ({"unit": "lb"}, "unit"),
    ({"instrument": ""}, "instrument"),
    ({"instrument": "not a name"}, "instrument"),
], ids=["rate-zero", "rate-too-high", "rate-not-a-number", "unknown-unit", "empty-instrument", "bad-instrument"])
def test_invalid_settings_are_refused_and_nothing_changes(plugin_host: Any, values: Dict[str, Any],
                                                         field: str) -> None:
    client, settings = plugin_host.client, plugin_host.url("settings.json")
    before = client.get(settings).get_json()["values"]
    reply = client.patch(settings, json=values)
    assert reply.status_code == 400
    assert field in reply.get_json()["errors"]
    assert client.get(settings).get_json()["values"] == before


def test_valid_settings_are_saved_and_used(plugin_host: Any) -> None:
    client = plugin_host.client
    reply = client.patch(plugin_host.url("settings.json"), json={"rate_hz": 12.5, "unit": "mg"})
    assert reply.status_code == 200
    assert reply.get_json()["values"] == {"instrument": "balance", "rate_hz": 12.5, "unit": "mg"}
    assert plugin_host.live.subscribe("weight")["hz"] == 12.5
    assert 'value="mg" selected' in client.get(plugin_host.url("settings")).get_data(as_text=True)


def test_missing_instrument_is_a_clear_503(plugin_host: Any) -> None:
    client = plugin_host.client
    assert client.patch(plugin_host.url("settings.json"), json={"instrument": "scale"}).status_code == 200
    reply = client.post(plugin_host.url("actions/tare"), json={})
    assert reply.status_code == 503
    assert reply.get_json()["instrument"] == "scale" and "balance" in reply.get_json()["loaded"]


@pytest.fixture
def deck_held(plugin_host: Any) -> Iterator[None]:
    """The deck held as a run holds it (IvoryOS's runner lock; on the edge, a manual call in flight)."""
    with plugin_host.deck_busy():
        yield


def test_actions_are_refused_with_409_while_the_deck_is_busy(plugin_host: Any, deck: types.ModuleType) -> None:
    client = plugin_host.client
    load(deck, 5.0)
    deck.balance.tare()
    load(deck, 7.0)
    with plugin_host.deck_busy():
        for action, args in (("tare", {}), ("set_unit", {"unit": "kg"})):
            reply = client.post(plugin_host.url(f"actions/{action}"), json=args)
            assert reply.status_code == 409, action
            assert reply.get_json()["busy"] is True and "balance" in reply.get_json()["error"]
    assert deck.balance.read()["grams"] == pytest.approx(2.0, abs=0.01), "a refused tare reached the balance"
    assert deck.balance.unit == "g", "a refused unit change reached the balance"
    assert client.post(plugin_host.url("actions/tare"), json={}).status_code == 200


def test_the_page_shows_a_message_for_409(plugin_host: Any) -> None:
    with plugin_host.client.get(plugin_host.url("static/balance.js")) as reply:
        script = reply.get_data(as_text=True)
    assert "err.busy" in script and "busy: an IvoryOS workflow is using the deck" in script


def test_the_stream_keeps_reading_while_a_workflow_holds_the_deck(fast: Any, deck_held: None,
                                                                  deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 1.5)
    live.subscribe("weight")
    assert readings_after(live, time.time(), count=2)[-1]["value"] == pytest.approx(1.5, abs=0.01)


def test_workflow_calls_and_dashboard_reads_do_not_interleave(fast: Any, deck: types.ModuleType) -> None:
    live = fast.live
    load(deck, 4.0)
    live.subscribe("weight")
    readings_after(live, time.time(), count=1)
    simulator = deck.simulators["balance"]
    errors: List[BaseException] = []

    def workflow() -> None:  # what a workflow does from IvoryOS's thread while the page watches
        try:
            for _ in range(40):
                deck.balance.weigh()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=workflow) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert simulator.garbled == 0 and simulator.overlapped == 0


def test_inside_ivoryos_the_page_extends_its_base_and_busy_is_409(ivoryos_client: Any, plugin: Any,
                                                                  deck: types.ModuleType) -> None:
    from ivoryos.runtime.state import global_state

    tare = plugin_url(ivoryos_client, plugin, "actions/tare")
    page = ivoryos_client.get(plugin_url(ivoryos_client, plugin))
    assert page.status_code == 200
    assert "navbar" in page.get_data(as_text=True), "the page does not extend IvoryOS's base.html"
    assert global_state.runner_lock.acquire(timeout=5)  # what IvoryOS's runner holds during a workflow
    try:
        busy = ivoryos_client.post(tare, json={})
    finally:
        global_state.runner_lock.release()
    assert busy.status_code == 409 and busy.get_json()["busy"] is True
    assert ivoryos_client.post(tare, json={}).status_code == 200


# ---------------------------------------------------------------- the workflow step
def test_wait_until_stable_returns_the_settled_weight(plugin_host: Any, deck: types.ModuleType) -> None:
    assert deck.balance_steps.wait_until_stable.__doc__.startswith("Wait until the balance settles")
    deck.simulators["balance"].load(12.5)  # unstable for the simulator's settle time (0.3 s)
    started = time.monotonic()
    reply = plugin_host.client.post(plugin_host.url("steps/wait_until_stable"), json={"timeout_s": 5.0, "settle_s": 0.2})
    elapsed = time.monotonic() - started
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert abs(reply.get_json()["result"] - 12.5) < 0.01
    assert elapsed >= 0.4, f"returned after {elapsed:.2f} s: before the pan settled and stayed steady"


def test_wait_until_stable_fails_after_its_timeout(plugin_host: Any, deck: types.ModuleType) -> None:
    client, step = plugin_host.client, plugin_host.url("steps/wait_until_stable")
    simulator = deck.simulators["balance"]
    simulator.settle_time = 30.0
    try:
        simulator.load(3.0)
        started = time.monotonic()
        reply = client.post(step, json={"timeout_s": 0.5})
        assert time.monotonic() - started < 3
    finally:
        simulator.settle_time = 0.3
    assert reply.status_code == 500
    assert "TimeoutError: the balance did not settle within 0.5 s" in reply.get_json()["error"]
    bad = client.post(step, json={"timeout_s": "soon"})
    assert bad.status_code == 400 and list(bad.get_json()["errors"]) == ["timeout_s"]


@pytest.mark.parametrize("timeout_s", [float("nan"), float("inf"), "nan"], ids=["nan", "infinity", "nan-as-text"])
def test_wait_until_stable_refuses_a_timeout_that_is_not_a_finite_number(plugin_host: Any, deck: types.ModuleType,
                                                                        timeout_s: Any) -> None:
    """As IvoryOS's runner calls it (the deck's instrument): refused at once, the deck free; a NaN
    timeout used to wait for ever, holding the runner until IvoryOS was restarted."""
    simulator = deck.simulators["balance"]
    simulator.settle_time = 30.0  # the pan never settles: only the refusal can end the call
    try:
        simulator.load(3.0)
        started = time.monotonic()
        with pytest.raises(ValueError, match=r"Plugin 'balance': step 'wait_until_stable' refused its arguments and "
                                             r"did not run: timeout_s \(expects float\): .*not a finite number"):
            deck.balance_steps.wait_until_stable(timeout_s=timeout_s)
        assert time.monotonic() - started < 1
    finally:
        simulator.settle_time = 0.3
    assert plugin_host.client.post(plugin_host.url("actions/tare"), json={}).status_code == 200, "the deck is free"


def test_wait_until_stable_refuses_a_timeout_over_600_s(plugin_host: Any) -> None:
    reply = plugin_host.client.post(plugin_host.url("steps/wait_until_stable"), json={"timeout_s": 601})
    assert reply.status_code == 500 and "use a timeout above 0 and at most 600 s" in reply.get_json()["error"]


def test_readings_are_recorded_with_no_one_watching(fast: Any, deck: types.ModuleType) -> None:
    load(deck, 3.0)
    since = time.time()
    deadline = time.monotonic() + 10
    while True:  # no live client is connected: the recorded stream reads the balance anyway
        reply = fast.client.get(fast.url(f"history/weight?since={since}"))
        assert reply.status_code == 200
        body = reply.get_json()
        if len(body["points"]) >= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(body["points"]) >= 10, body
    assert [p["value"]["grams"] for p in body["points"]] == pytest.approx([3.0] * len(body["points"]), abs=0.01)
    assert body["last_run"] is None and all(p["run"] is None for p in body["points"])
    table = fast.client.get(fast.url(f"history/weight.csv?since={since}"))
    assert table.status_code == 200 and table.mimetype == "text/csv"
    assert table.get_data(as_text=True).splitlines()[0] == "t,time,value,run,step,data"
