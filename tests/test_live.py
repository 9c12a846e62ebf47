"""Live events against real servers (IvoryOS and the dev host) with python-socketio clients."""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import socketio

from support import ROOT, Viewer, cookie_header, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
NS = "/ivoryos/probe"
TOKEN = "probe-dev-token"


class Probe:
    """A running server with the probe plugin, and a logged-in requests session."""

    def __init__(self, server: Any, mode: str) -> None:
        self.server, self.mode, self.base = server, mode, server.base
        if mode == "ivoryos":
            self.session = ivoryos_login(self.base)
        else:
            self.session = requests.Session()
            self.session.get(f"{self.base}/ivoryos/?token={TOKEN}")
            self.session.headers["X-CSRFToken"] = self.session.get(
                f"{self.base}/ivoryos/plugins/csrf.json").json()["csrf_token"]

    def action(self, name: str, **args: Any) -> Dict[str, Any]:
        reply = self.session.post(f"{self.base}{NS}/actions/{name}", json=args)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def cookie(self) -> str:
        return cookie_header(self.session)

    def client(self, *, cookie: bool = True, token: Optional[str] = None, origin: Optional[str] = None) -> Viewer:
        return Viewer(self.base, NS, cookie=self.cookie() if cookie else None, token=token, origin=origin)


def close_all(viewers: List[Viewer]) -> None:
    """Disconnect clients in parallel (a python-socketio disconnect can wait for the server)."""
    threads = [threading.Thread(target=v.close) for v in viewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@pytest.fixture(scope="module", params=["ivoryos", "standalone"])
def probe(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    """One probe server per host kind for the whole module (stopped at the end)."""
    code = (PLUGINS / "probe_deck.py").read_text()
    server = launch(code, tmp_path_factory.mktemp(request.param), name="probe_deck.py",
                    env={"PYTHONPATH": str(PLUGINS), "PROBE_HOST": request.param, "PROBE_TOKEN": TOKEN})
    try:
        yield Probe(server, request.param)
    finally:
        server.stop()


@pytest.mark.server
def test_anonymous_and_bad_token_clients_are_refused(probe: Probe) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        probe.client(cookie=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        probe.client(cookie=False, token="not-a-token")
    with pytest.raises(socketio.exceptions.ConnectionError):
        probe.client(origin="http://evil.example")
    viewer = probe.client()
    assert viewer.sio.connected
    viewer.close()


@pytest.mark.server
def test_ten_viewers_share_one_producer_at_the_configured_rate(probe: Probe) -> None:
    probe.action("set_rate", hz=20.0)
    viewers = [probe.client() for _ in range(10)]
    try:
        for viewer in viewers:
            assert viewer.sio.call("subscribe", {"stream": "value"}, namespace=NS, timeout=5)["ok"] is True
        time.sleep(0.5)
        before = probe.action("reads")["reads"]
        start_counts = [len(v.got("value")) for v in viewers]
        time.sleep(3.0)
        after = probe.action("reads")["reads"]
        reads = after - before
        assert 20 * 3 * 0.7 <= reads <= 20 * 3 * 1.15, f"{reads} reads in 3 s at 20 Hz"
        for viewer, start in zip(viewers, start_counts):
            values = [v["n"] for v in viewer.got("value")]
            received = len(values) - start
            assert abs(received - reads) <= 3, f"a viewer got {received} values for {reads} reads"
            steps = {b - a for a, b in zip(values, values[1:])}
            assert steps == {1}, f"not one read per tick for all viewers: steps {steps}"
    finally:
        close_all(viewers)
    time.sleep(0.5)
    idle_start = probe.action("reads")["reads"]
    time.sleep(1.0)
    assert probe.action("reads")["reads"] == idle_start, "the producer reads with no viewer"


@pytest.mark.server
def test_no_viewer_means_no_read_and_late_subscriber_gets_last_value(probe: Probe) -> None:
    first = probe.action("reads")["reads"]
    idle = probe.client()
    time.sleep(1.0)
    assert probe.action("reads")["reads"] == first, "connected but unsubscribed clients cause reads"
    probe.action("set_rate", hz=20.0)
    early = probe.client()
    early.sio.call("subscribe", {"stream": "value"}, namespace=NS, timeout=5)
    early.wait_for("value", 3)
    probe.action("set_rate", hz=0.1)  # the next tick is 10 s away
    time.sleep(0.2)
    last = early.got("value")[-1]
    late = probe.client()
    t0 = time.monotonic()
    late.sio.call("subscribe", {"stream": "value"}, namespace=NS, timeout=5)
    got = late.wait_for("value", 1, timeout=2.0)
    assert time.monotonic() - t0 < 1.0
    assert got[0]["n"] >= last["n"] - 1
    close_all([idle, early, late])


@pytest.mark.server
def test_publish_from_a_thread_arrives_and_is_replayed(probe: Probe) -> None:
    viewer = probe.client()
    assert viewer.sio.call("echo", {"x": 1}, namespace=NS, timeout=5) == {"echo": {"x": 1}}
    probe.action("publish_later", value=42, delay=0.2)
    assert viewer.wait_for("note")[-1] == {"value": 42}
    newcomer = probe.client()
    assert newcomer.wait_for("note", timeout=2)[-1] == {"value": 42}, "the last value is not replayed"
    assert newcomer.got("started") == [{"starts": 1}], "on_start ran more than once, or was not replayed"
    viewer.close()
    newcomer.close()


@pytest.mark.parametrize("mode, warned", [("threading", False), ("gevent", True), ("eventlet", True)],
                         ids=["threading", "gevent", "eventlet"])
def test_a_non_threading_async_mode_is_warned_about(caplog: pytest.LogCaptureFixture, mode: str,
                                                    warned: bool) -> None:
    """gevent and eventlet are not installed here: a stand-in server object reports the mode."""
    import logging
    from types import SimpleNamespace

    from ivoryos_plugin.hosts.socketio_live import check_async_mode

    with caplog.at_level(logging.WARNING, logger="ivoryos_plugin.live"):
        check_async_mode(SimpleNamespace(async_mode=mode))
    assert (f"runs in {mode!r} mode" in caplog.text) is warned
    if warned:
        assert "Uninstall gevent/eventlet from this environment (pip uninstall eventlet gevent)" in caplog.text
        assert "async_mode='threading'" not in caplog.text  # ivoryos.run has no such argument
