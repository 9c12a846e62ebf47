"""Werkzeug's drain after each response without a 10 MB buffer (hosts/drain.py; issue 25): the
server ``ivoryos_plugin.run`` starts reads in pieces of at most 64 KiB, and a read still returns
what it returned before."""
from __future__ import annotations

import socket
import threading
import tracemalloc
from pathlib import Path

import pytest

from ivoryos_plugin.hosts.drain import PIECE, PiecewiseReader
from support import ROOT, ivoryos_login, launch


def reader_over(data: bytes, piecewise: bool = True) -> "tuple[object, socket.socket]":
    """A buffered reader of a connected socket whose peer sends ``data``, then closes."""
    ours, peer = socket.socketpair()

    def send() -> None:
        peer.sendall(data)
        peer.close()

    threading.Thread(target=send, daemon=True).start()
    buffered = ours.makefile("rb")
    return (PiecewiseReader(buffered.detach()) if piecewise else buffered), ours


def test_a_read_gives_the_same_bytes_as_the_buffered_reader() -> None:
    body = bytes(range(256)) * 1500  # 384 000 bytes: several pieces
    for piecewise in (True, False):
        reader, sock = reader_over(b"GET / HTTP/1.1\r\n" + body, piecewise)
        try:
            assert reader.readline() == b"GET / HTTP/1.1\r\n"  # type: ignore[attr-defined]
            assert reader.read(10) == body[:10]  # type: ignore[attr-defined]
            assert reader.read(PIECE + 5) == body[10:PIECE + 15]  # type: ignore[attr-defined]
            assert reader.read(10_000_000) == body[PIECE + 15:]  # type: ignore[attr-defined]
            assert reader.read(10_000_000) == b""  # type: ignore[attr-defined]
        finally:
            reader.close()  # type: ignore[attr-defined]
            sock.close()


def test_the_drain_at_the_end_of_a_request_allocates_no_10_mb_buffer() -> None:
    peaks = {}
    for piecewise in (False, True):
        reader, sock = reader_over(b"", piecewise)
        try:
            tracemalloc.start()
            assert reader.read(10_000_000) == b""  # type: ignore[attr-defined]  # Werkzeug's drain
            peaks[piecewise] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            reader.close()  # type: ignore[attr-defined]
            sock.close()
    assert peaks[False] >= 10_000_000, peaks  # the cause: the buffered reader's buffer of the size asked for
    assert peaks[True] < 2 * PIECE, peaks


DECK = """
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor
import werkzeug.serving

sensor = Sensor()
made = werkzeug.serving.make_server


def make_server(*args, **kwargs):  # (run_simple passes the handler as the sixth argument)
    handler = kwargs.get("request_handler", args[5] if len(args) > 5 else None)
    print("request handler:", getattr(handler, "__name__", None), flush=True)
    return made(*args, **kwargs)


werkzeug.serving.make_server = make_server

if __name__ == "__main__":
    import ivoryos_plugin
    from probe_plugin import plugin

    ivoryos_plugin.run(__name__, plugins=[plugin], port=int(os.environ["PORT"]))
"""


@pytest.mark.server
def test_ivoryos_plugin_run_serves_with_the_piecewise_handler(tmp_path: Path) -> None:
    server = launch(DECK.format(plugins=str(ROOT / "tests" / "plugins")), tmp_path, name="deck.py")
    try:
        session = ivoryos_login(server.base)
        for _ in range(3):
            assert session.get(f"{server.base}/ivoryos/executions/status").status_code == 200
        big = session.post(f"{server.base}/ivoryos/plugins/csrf.json", data=b"x" * (3 * PIECE),
                           headers={"Content-Type": "application/octet-stream"})
        assert big.status_code < 500, big.text[:300]  # a body of several pieces is read and answered
        assert session.get(f"{server.base}/ivoryos/executions/status").status_code == 200
    finally:
        server.stop()
    assert "request handler: PiecewiseRequestHandler" in server.output(), server.output()[-3000:]
