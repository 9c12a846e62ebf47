"""Behaviours that a one-line change used to break with the suite still green: unsubscribing stops a
stream, settings writes honour max_body, deck_busy() sees a queued workflow, a failing producer backs
off, and observers go away when their plugin stops."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from flask import Flask
from pydantic import BaseModel

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import LiveClient, login_client, make_deck
from support import wait_until

NS = "/ivoryos/{name}"


def live_client(app: Flask, name: str) -> LiveClient:
    return LiveClient(app, app.extensions["socketio"], NS.format(name=name), login_client(app))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[List[Flask]]:
    """Apps made by a test with ``served.append(create_app(...))``, stopped afterwards."""
    apps: List[Flask] = []
    yield apps
    for app in apps:
        stop(app)


def test_unsubscribe_stops_the_producer(served: List[Flask], tmp_path: Path) -> None:
    counter = {"reads": 0}
    plugin = Plugin("unsub", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")

    @plugin.stream("value", hz=50)
    def value() -> int:
        counter["reads"] += 1
        return counter["reads"]

    app = create_app([plugin], data_dir=tmp_path, testing=True)
    served.append(app)
    live = live_client(app, "unsub")
    try:
        assert live.subscribe("value")["ok"]
        live.wait_for("value", 3)
        assert live.call("unsubscribe", {"stream": "value"}) == {"ok": True}
        stream = app.extensions["ivoryos_plugin"].runtimes["unsub"].hub.streams["value"]
        assert wait_until(lambda: stream._thread is None, 2), "the producer still runs after unsubscribe"
        reads = counter["reads"]
        time.sleep(0.3)
        assert counter["reads"] == reads and stream.subscribers == set()
    finally:
        live.disconnect(namespace=NS.format(name="unsub"))


class Small(BaseModel):
    note: str = ""


def test_settings_writes_honour_max_body(served: List[Flask], tmp_path: Path) -> None:
    plugin = Plugin("tiny", __name__, settings=Small, max_body=64, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    served.append(app)
    client = login_client(app)
    assert client.put("/ivoryos/tiny/settings.json", json={"note": "ok"}).status_code == 200
    file = tmp_path / "plugins" / "tiny" / "settings.json"
    before = file.read_bytes()
    reply = client.put("/ivoryos/tiny/settings.json", json={"note": "x" * 200})
    assert reply.status_code == 413, reply.get_data(as_text=True)
    assert "larger than 64 bytes" in reply.get_json()["error"]
    assert file.read_bytes() == before


queued_plugin = Plugin("queued_probe", __name__, template_folder=None)
queued_plugin.add_url_rule("/", "main", lambda: "page")


@pytest.fixture
def plugin() -> Plugin:
    """The plugin the kit's ``ivoryos_app`` serves in this module."""
    return queued_plugin


def test_deck_busy_sees_a_queued_workflow(ivoryos_app: Flask) -> None:
    from ivoryos.socket_handlers import runner

    with ivoryos_app.app_context():
        assert queued_plugin.deck_busy() is False
        runner.execution_queue.append({"run_name": "waiting", "uid": "queued-test"})
        try:
            assert queued_plugin.deck_busy() is True
        finally:
            runner.execution_queue.clear()
        assert queued_plugin.deck_busy() is False


def test_a_failing_producer_backs_off(served: List[Flask], tmp_path: Path) -> None:
    plugin = Plugin("flaky", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    calls: List[float] = []

    @plugin.stream("value", hz=50)
    def value() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("sensor unplugged")

    app = create_app([plugin], data_dir=tmp_path, testing=True)
    served.append(app)
    live = live_client(app, "flaky")
    try:
        assert live.subscribe("value")["ok"]
        errors: List[Dict[str, Any]] = live.wait_for("stream_error", 4, timeout=8)
        assert [e["retry_in"] for e in errors[:4]] == [0.5, 1.0, 2.0, 4.0]
        assert all(e["stream"] == "value" and "sensor unplugged" in e["error"] for e in errors)
        gaps = [b - a for a, b in zip(calls, calls[1:])][:3]
        assert gaps[0] >= 0.45 and gaps[1] >= 0.95 and gaps[2] >= 1.95, gaps  # not 50 Hz
    finally:
        live.disconnect(namespace=NS.format(name="flaky"))


class Thing:
    def poke(self) -> int:
        return 1


def test_observers_are_removed_when_their_plugin_stops(tmp_path: Path) -> None:
    deck = make_deck("observed_deck", thing=Thing())
    plugin = Plugin("watcher", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    seen: List[str] = []

    @plugin.on_start
    def start(deck_module: Any) -> None:
        plugin.observe("thing", lambda call: seen.append(call["method"]))

    for cycle in range(3):
        app = create_app([plugin], deck=deck, data_dir=tmp_path / str(cycle), testing=True)
        deck.thing.poke()
        assert seen == ["poke"], f"cycle {cycle}: {seen}"
        seen.clear()
        stop(app)
    deck.thing.poke()
    assert seen == [], "observers of stopped plugins still run"
