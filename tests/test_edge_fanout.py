"""The edge live channel's fan-out (issue 26): the loop sends each value to every page itself, at once;
a page that stops reading never holds up the others, and gets the latest values when it reads again
(its backlog is bounded, the oldest dropped). On the kit's in-process ivoryos-edge (a real uvicorn)."""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import websocket

from ivoryos_plugin import Plugin
from ivoryos_plugin.hosts.extras import edge_missing
from ivoryos_plugin.testing import EDGE_MISSING, make_deck

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAD = 100_000  # bytes per frame: a page that stops reading fills its socket in a few frames
fanout = Plugin("fanout_slow", __name__, template_folder=None)
_seq = itertools.count()


@fanout.route("/")
def main() -> str:
    return "fan-out"


@fanout.stream("big", hz=20)
def big() -> Dict[str, Any]:
    return {"seq": next(_seq), "t": time.time(), "pad": "x" * PAD}


@pytest.fixture
def live_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if edge_missing() is not None:
        pytest.skip(EDGE_MISSING)
    from ivoryos_plugin.hosts.edge import inprocess

    edge = inprocess.shared(tmp_path_factory.getbasetemp() / "ivoryos_edge_in_process")
    served = edge.serve(fanout, make_deck(), tmp_path / "plugins")
    try:
        yield edge.base.replace("http://", "ws://", 1) + "/plugins/fanout_slow/live"
    finally:
        edge.stop(served)


def subscribed(url: str, **options: Any) -> websocket.WebSocket:
    ws = websocket.create_connection(url, timeout=10, **options)
    ws.send(json.dumps({"op": "subscribe", "stream": "big", "id": 1}))
    return ws


def read(ws: websocket.WebSocket, until: float, into: List[Dict[str, Any]]) -> None:
    """Read ``big`` frames until the time ``until``, keeping their seq, t and arrival time."""
    while time.monotonic() < until:
        ws.settimeout(max(0.05, until - time.monotonic()))
        try:
            frame = json.loads(ws.recv())
        except (websocket.WebSocketTimeoutException, socket.timeout):
            continue
        if frame.get("event") == "big":
            into.append({"seq": frame["data"]["seq"], "t": frame["data"]["t"], "at": time.time()})


def test_a_page_that_stops_reading_holds_up_no_other_and_gets_the_latest_later(live_url: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ivoryos_plugin.hosts.edge import live

    monkeypatch.setattr(live, "QUEUE_SIZE", 16)  # a backlog of 16 frames per page (0.8 s at 20 Hz)
    slow = subscribed(live_url, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))  # and it reads nothing
    fast = subscribed(live_url)
    try:
        fast_frames: List[Dict[str, Any]] = []
        reader = threading.Thread(target=read, args=(fast, time.monotonic() + 3.0, fast_frames))
        reader.start()
        reader.join(10)
        seqs = [f["seq"] for f in fast_frames]
        assert len(seqs) >= 30, f"the reading page got {len(seqs)} frames in 3 s at 20 Hz"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the reading page lost or reordered frames"
        late = sorted(f["at"] - f["t"] for f in fast_frames)
        assert late[-1] < 0.5, f"the stalled page held up the reading one: {late[-1]:.3f} s late"
        produced_by_now = seqs[-1]
        slow_frames: List[Dict[str, Any]] = []
        read(slow, time.monotonic() + 3.0, slow_frames)  # the stalled page reads again
        got = [f["seq"] for f in slow_frames]
        assert got == sorted(got), "the stalled page got its frames out of order"
        assert got[-1] > produced_by_now, "the stalled page never caught up with the live values"
        assert len(got) < got[-1] - got[0] + 1, "nothing was dropped: the stalled page's backlog is unbounded"
    finally:
        fast.close()
        slow.close()
