"""The edge live channel's fan-out (issue 26), on the kit's in-process ivoryos-edge (a real uvicorn,
real WebSockets), its streams on a clock the test moves (``manual_clock``): counts and order, never a
rate or a lateness measured on a loaded machine.

- 100 viewers of one stream: one instrument read per tick, every viewer gets every value in order;
  no read at all with no viewer, before the first one and after the last one left.
- A page that stops reading holds up no other (the loop sends each value to every page itself, at
  once), and gets the latest values when it reads again (its backlog is bounded, the oldest dropped).
"""
from __future__ import annotations

import json
import socket
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple

import pytest
import websocket

from ivoryos_plugin import Plugin
from ivoryos_plugin.hosts.extras import edge_missing
from ivoryos_plugin.testing import EDGE_MISSING, RecordingClock, make_deck

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VIEWERS = 100
TICKS = 10
PAD = 100_000  # bytes per frame: a page that stops reading fills its socket in a few frames
SLOW_TICKS = 80  # 8 MB: more than the stalled page's socket buffers hold (tcp_wmem's maximum is 4 MB)
WAIT = 20.0  # real seconds a step may take before the test says what did not happen (never reached when it works)


class Meter:
    """The deck's instrument a stream reads: it counts its reads (the framework wraps its methods with
    the instrument's lock, so the test waits on it from outside: :func:`reads_reach`)."""

    def __init__(self) -> None:
        self.reads = 0
        self.changed = threading.Condition()

    def read(self) -> int:
        """One reading of the instrument (its number, from 1)."""
        with self.changed:
            self.reads += 1
            self.changed.notify_all()
            return self.reads


def reads_reach(meter: Meter, count: int, timeout: float = WAIT) -> None:
    """Block until ``meter`` was read ``count`` times (fails, saying how many it was, after ``timeout`` s)."""
    with meter.changed:
        if not meter.changed.wait_for(lambda: meter.reads >= count, timeout):
            raise AssertionError(f"{meter.reads} instrument reads, expected {count} within {timeout} s")


counted = Plugin("fanout_count", __name__, template_folder=None)
fanout = Plugin("fanout_slow", __name__, template_folder=None)


@counted.route("/", endpoint="main")
def counted_page() -> str:
    return "fan-out"


@counted.stream("level", hz=20)
def level() -> Dict[str, Any]:
    return {"n": counted.instrument("meter").read()}


@fanout.route("/")
def main() -> str:
    return "fan-out"


@fanout.stream("big", hz=20)
def big() -> Dict[str, Any]:
    return {"seq": fanout.instrument("meter").read(), "pad": "x" * PAD}


class Served(NamedTuple):
    """A plugin on the in-process edge: its live channel's URL, its runtime's streams (the hub's)."""

    url: str
    streams: Dict[str, Any]


Serve = Callable[[Plugin, types.ModuleType], Served]


@pytest.fixture
def on_edge(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, manual_clock: RecordingClock) -> Iterator[Serve]:
    """Serve a plugin on the in-process edge, its streams ticking on ``manual_clock``."""
    if edge_missing() is not None:
        pytest.skip(EDGE_MISSING)
    from ivoryos_plugin.hosts.edge import inprocess

    edge = inprocess.shared(tmp_path_factory.getbasetemp() / "ivoryos_edge_in_process")
    served: List[Any] = []

    def serve(plugin: Plugin, deck: types.ModuleType) -> Served:
        served.append(edge.serve(plugin, deck, tmp_path / "plugins"))
        streams = dict(served[-1].runtime_app.runtime.hub.streams)
        for stream in streams.values():
            assert not stream.running, "a producer runs before any viewer"
            stream.clock = manual_clock  # what its ticks wait on (Stream(clock=); the app's clock otherwise)
        return Served(edge.base.replace("http://", "ws://", 1) + f"/plugins/{plugin.name}/live", streams)

    try:
        yield serve
    finally:
        for each in served:
            edge.stop(each)


def subscribed(url: str, stream: str, **options: Any) -> websocket.WebSocket:
    """A page's live connection, subscribed to ``stream`` (the ack not read yet)."""
    ws = websocket.create_connection(url, timeout=WAIT, **options)
    ws.send(json.dumps({"op": "subscribe", "stream": stream, "id": 1}))
    return ws


def frames(ws: websocket.WebSocket, event: str, key: str, until: int, timeout: float = WAIT,
           who: str = "a viewer") -> List[int]:
    """The ``key`` of each ``event`` frame read until one has ``key`` ≥ ``until``, in arrival order (an
    ack read on the way must say ok: the subscription was accepted); ``who`` is named when none comes."""
    got: List[int] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1] < until:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{who}: {event!r} frames with {key} {got[-5:]} (of {len(got)}), "
                                 f"none ≥ {until} within {timeout} s")
        ws.settimeout(min(left, 1.0))  # short reads: the server's pings (every 20 s) must not renew the wait
        try:
            frame = json.loads(ws.recv())
        except (websocket.WebSocketTimeoutException, socket.timeout):
            continue
        if frame.get("type") == "ack":
            assert frame["data"]["ok"] is True, frame
        elif frame.get("event") == event:
            got.append(frame["data"][key])
    return got


def gone(stream: Any, timeout: float = WAIT) -> None:
    """Wait until the server has seen every viewer of ``stream`` leave and its producer ended."""
    deadline = time.monotonic() + timeout
    while stream.running or stream.subscribers:
        assert time.monotonic() < deadline, f"{len(stream.subscribers)} viewers left, the producer still runs"
        time.sleep(0.02)


def test_100_viewers_one_read_per_tick_and_none_without_a_viewer(on_edge: Serve,
                                                                 manual_clock: RecordingClock) -> None:
    meter = Meter()
    url, served_streams = on_edge(counted, make_deck(meter=meter))
    manual_clock.advance(3600)  # an hour with no viewer
    assert meter.reads == 0 and manual_clock.waited == [], "the stream was read with no viewer"

    viewers = [subscribed(url, "level") for _ in range(VIEWERS)]
    try:
        firsts = [frames(ws, "level", "n", until=1) for ws in viewers]  # every ack, and the first value
        assert manual_clock.wait_for_waiters(1, WAIT), "the producer never waited for its next tick"
        assert meter.reads == 1, f"{meter.reads} reads for {VIEWERS} viewers subscribing: not one producer"
        assert all(first == [1] for first in firsts), firsts  # the read, or its replay to a later viewer: once
        for tick in range(2, TICKS + 2):
            manual_clock.step()  # the producer waits for its next tick: move the clock by exactly that wait
            reads_reach(meter, tick)  # ... and it reads once
        assert manual_clock.wait_for_waiters(1, WAIT)  # it sent the last value and waits for the next tick
        assert meter.reads == TICKS + 1, f"{meter.reads} reads in {TICKS + 1} ticks for {VIEWERS} viewers"
        assert manual_clock.waited == pytest.approx([1 / 20] * (TICKS + 1))  # 20 Hz: one wait per read
        for ws in viewers:  # each viewer: every later value, once each, in order
            assert frames(ws, "level", "n", until=TICKS + 1) == list(range(2, TICKS + 2))
    finally:
        for ws in viewers:
            ws.close()
    gone(served_streams["level"])
    manual_clock.advance(3600)  # another hour, every viewer gone
    assert meter.reads == TICKS + 1, "the producer kept reading after the last viewer left"


def test_a_page_that_stops_reading_holds_up_no_other_and_gets_the_latest_later(
        on_edge: Serve, manual_clock: RecordingClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivoryos_plugin.hosts.edge import live

    monkeypatch.setattr(live, "QUEUE_SIZE", 16)  # a backlog of 16 frames per page
    meter = Meter()
    url, _ = on_edge(fanout, make_deck(meter=meter))
    slow = subscribed(url, "big", sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))  # it reads nothing
    fast = subscribed(url, "big")
    try:
        assert frames(fast, "big", "seq", until=1) == [1]  # the first read (or its replay)
        seen = [1]
        for seq in range(2, SLOW_TICKS + 1):
            manual_clock.step()  # one more frame of 100 kB to both pages
            seen += frames(fast, "big", "seq", until=seq, who="the reading page, held up by the stalled one")
        assert seen == list(range(1, SLOW_TICKS + 1)), "the reading page lost or reordered frames"
        got = frames(slow, "big", "seq", until=SLOW_TICKS)  # the stalled page reads again
        assert got == sorted(got) and len(set(got)) == len(got), "the stalled page got its frames out of order"
        assert got[-1] == SLOW_TICKS, "the stalled page never got the latest value"
        assert len(got) < SLOW_TICKS, "nothing was dropped: the stalled page's backlog is unbounded"
        assert meter.reads == SLOW_TICKS, "one read per tick, whatever the pages do"
    finally:
        fast.close()
        slow.close()
