"""Live events against real servers (IvoryOS and the dev host) with python-socketio clients, and a
stream's producer on a clock the test moves (its rate and its backoff as counts, not as sleeps)."""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import socketio

from ivoryos_plugin.core.specs import StreamSpec
from ivoryos_plugin.runtime.live import Stream, start_thread
from ivoryos_plugin.testing import RecordingClock, manual_clock  # noqa: F401  (a fixture)
from support import ROOT, Viewer, cookie_header, ivoryos_login, launch, wait_until

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

    def stream(self) -> Dict[str, Any]:
        """The ``value`` stream's viewers, state and counters, from the health page's status."""
        plugins = self.session.get(f"{self.base}/ivoryos/plugins/status.json").json()["plugins"]
        return dict(next(p for p in plugins if p["name"] == "probe")["streams"]["value"])

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
def test_ten_viewers_share_one_producer(probe: Probe) -> None:
    probe.action("set_rate", hz=20.0)
    viewers = [probe.client() for _ in range(10)]
    try:
        for viewer in viewers:
            assert viewer.sio.call("subscribe", {"stream": "value"}, namespace=NS, timeout=5)["ok"] is True
            viewer.wait_for("value", 1)
        # each value is the sensor's read count (probe_deck.Sensor): between two counts of the reads,
        # every read must reach every viewer, once; ten producers (one per viewer) would give each
        # viewer a tenth of them. Counted by value, not by time: a loaded machine only widens the window.
        # (Compared sorted: python-engineio's client runs each message's handler in a thread of its own,
        # engineio/client.py, so a loaded machine may append two of them in either order.)
        def latest(viewer: Any) -> int:
            got = viewer.got("value")
            return int(got[-1]["n"]) if got else 0

        before = probe.action("reads")["reads"]
        for viewer in viewers:
            assert wait_until(lambda: latest(viewer) >= before + 20, 10), f"{latest(viewer)} after read {before}"
        after = probe.action("reads")["reads"]
        assert probe.stream()["running"] and probe.stream()["viewers"] == 10
        for viewer in viewers:
            assert wait_until(lambda: latest(viewer) >= after, 10), f"{latest(viewer)}: read {after} never came"
            window = sorted(v["n"] for v in viewer.got("value") if before < v["n"] <= after)
            assert window == list(range(before + 1, after + 1)), \
                f"reads {before + 1}..{after}: a viewer got {window} (not every read once)"
            values = sorted(v["n"] for v in viewer.got("value"))
            steps = {b - a for a, b in zip(values, values[1:])}
            assert steps == {1}, f"not one read per tick for all viewers: steps {steps}"
    finally:
        close_all(viewers)
    assert wait_until(lambda: not probe.stream()["running"], 5), "the producer runs with no viewer"
    idle_start = probe.action("reads")["reads"]
    assert probe.stream()["viewers"] == 0 and probe.action("reads")["reads"] == idle_start, \
        "the producer reads with no viewer"


@pytest.mark.server
def test_no_viewer_means_no_read_and_late_subscriber_gets_last_value(probe: Probe) -> None:
    assert wait_until(lambda: not probe.stream()["running"], 5)
    first = probe.action("reads")["reads"]
    idle = probe.client()
    assert idle.sio.call("echo", {}, namespace=NS, timeout=5) == {"echo": {}}  # its connect was handled
    assert not probe.stream()["running"], "a connected but unsubscribed client started the producer"
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
    got = late.wait_for("value", 1, timeout=5.0)
    assert time.monotonic() - t0 < 5.0  # the last value at once, not at the next tick 10 s away
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


# ---------------------------------------------------------------- one stream on the test's clock
class Producer:
    """A :class:`Stream` of a counting sensor, run on the test's clock; what it sends is kept in order."""

    def __init__(self, clock: RecordingClock, hz: float, fail: Callable[[int], bool] = lambda n: False) -> None:
        self.clock = clock
        self.rate = {"hz": hz}
        self.reads = 0
        self.sent: List[Tuple[str, Any, str]] = []

        def read() -> Dict[str, int]:
            self.reads += 1
            if fail(self.reads):
                raise OSError(f"sensor unplugged (read {self.reads})")
            return {"n": self.reads}

        spec = StreamSpec("value", read, hz=lambda: self.rate["hz"])
        self.stream = Stream(spec, "probe", lambda event, data, room: self.sent.append((event, data, room)),
                             start_thread, contextlib.nullcontext, lambda name, field: lambda value, text: None,
                             clock=clock)

    def tick(self, seconds: Optional[float] = None) -> None:
        """Wait until the producer waits on the clock, then move the clock by ``seconds`` (by as much as
        it waits, when None) and wait for the read that wakes."""
        reads = self.reads
        moved = self.clock.step(seconds)
        assert wait_until(lambda: self.reads > reads, 5), f"no read {moved} s after read {reads}"

    def values(self) -> List[Any]:
        return [data["n"] for event, data, room in self.sent if event == "value"]


@pytest.fixture
def producer(manual_clock: RecordingClock) -> Iterator[Callable[..., Producer]]:
    made: List[Producer] = []

    def make(hz: float, fail: Callable[[int], bool] = lambda n: False) -> Producer:
        made.append(Producer(manual_clock, hz, fail))
        return made[-1]

    yield make
    for one in made:
        one.stream.stop()


def test_one_read_per_tick_at_the_configured_rate_sent_once_to_all_viewers(producer: Any,
                                                                         manual_clock: RecordingClock) -> None:
    sensor: Producer = producer(16.0)  # (a tick of 1/16 s: the clock's sums stay exact)
    for sid in range(10):
        sensor.stream.add(f"viewer-{sid}")
    assert wait_until(lambda: sensor.reads == 1, 5), "the first viewer did not start the producer"
    for _ in range(48):  # three seconds of the clock
        sensor.tick(1 / 16)
    assert manual_clock.wait_for_waiters(1)
    assert sensor.reads == 49, f"{sensor.reads - 1} reads in 3 s at 16 Hz after the first"
    assert manual_clock.waited == [1 / 16] * 49, "not one wait of a period after each read"
    assert sensor.values() == list(range(1, 50)), "not each read sent once, in order"
    assert {room for _, _, room in sensor.sent} == {"stream:value"}, "not sent once to the viewers' room"

    sensor.rate["hz"] = 0.1  # the next tick is 10 s away
    sensor.tick(1 / 16)
    assert manual_clock.wait_for_waiters(1) and manual_clock.waited[-1] == pytest.approx(10.0)
    sensor.tick(10.0)
    assert sensor.reads == 51


def test_no_viewer_means_no_read_on_the_clock(producer: Any, manual_clock: RecordingClock) -> None:
    sensor: Producer = producer(16.0)
    manual_clock.advance(5.0)
    assert sensor.reads == 0 and not sensor.stream.running, "a stream with no viewer reads"
    sensor.stream.add("viewer")
    assert wait_until(lambda: sensor.reads == 1, 5)
    sensor.tick(1 / 16)
    sensor.stream.remove("viewer")  # the producer ends at its next tick, without a read
    assert wait_until(lambda: not sensor.stream.running, 5), "the producer runs with no viewer"
    manual_clock.advance(10.0)
    assert sensor.reads == 2 and not sensor.stream.running, "the producer reads with no viewer"


def test_a_failing_producer_backs_off_and_recovers_on_the_clock(producer: Any, manual_clock: RecordingClock) -> None:
    sensor: Producer = producer(16.0, fail=lambda n: 2 <= n <= 7)  # reads 2 to 7 fail
    sensor.stream.add("viewer")
    assert wait_until(lambda: sensor.reads == 1, 5)
    for _ in range(7):
        sensor.tick()  # as long as it waits
    assert wait_until(lambda: len(manual_clock.waited) == 9, 5) and manual_clock.wait_for_waiters(1)
    # the tick, then the backoff after each failure (the ticks it missed meanwhile dropped); the value
    # after the recovery at once (its tick has passed), then the rate again
    waits = [1 / 16, 1 / 16 + 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 0.0, 1 / 16]
    assert manual_clock.waited == pytest.approx(waits), "the backoff is not 0.5 s doubled up to 10 s, then none"
    errors = [data for event, data, _ in sensor.sent if event == "stream_error"]
    assert [e["retry_in"] for e in errors] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert errors[0]["error"] == "OSError: sensor unplugged (read 2)"
    assert sensor.values() == [1, 8, 9], "the values around the failures"
    assert (sensor.stream.reads, sensor.stream.errors) == (9, 6)
