"""A WebSocket session that a client ends mid-way ends as the protocol says, on real IvoryOS served
by ``ivoryos_plugin.run`` (Werkzeug, python-engineio, simple-websocket): no HTTP response written
into the WebSocket stream, no frame after the server's close frame, no traceback in the log
(``ivoryos_plugin/hosts/websockets.py``).

The client is a raw socket speaking the protocol through wsproto (the library simple-websocket uses
on the server side), so that every byte the server sends is seen: a browser (a page left while its
Socket.IO connection upgrades) logs these as ``Invalid frame header`` and ``Data frame received
after close``."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Tuple

import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from support import ROOT, Server, launch

DECK = """
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor

sensor = Sensor()

if __name__ == "__main__":
    import ivoryos_plugin
    from probe_plugin import plugin

    ivoryos_plugin.run(__name__, plugins=[plugin], port=int(os.environ["PORT"]))
"""
ATTEMPTS = 25
BUSY_ATTEMPTS = 80


@pytest.fixture(scope="module")
def ivoryos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Real IvoryOS with a plugin, under ``ivoryos_plugin.run``, as a server subprocess."""
    folder = tmp_path_factory.mktemp("websocket_endings")
    server = launch(DECK.format(plugins=str(ROOT / "tests" / "plugins")), folder, name="deck.py")
    try:
        yield server
    finally:
        server.stop()


def engineio_session(server: Server) -> str:
    """A new Engine.IO session over long-polling (as a page's Socket.IO client opens one): its sid."""
    reply = requests.get(f"{server.base}/ivoryos/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=10)
    assert reply.status_code == 200 and reply.text.startswith("0"), reply.text[:200]
    return str(json.loads(reply.text[1:])["sid"])


def upgrade(server: Server, sid: str) -> Tuple[socket.socket, WSConnection]:
    """The session's WebSocket upgrade, done: the raw connection and the client's protocol state."""
    ws = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(ws.send(Request(host=f"127.0.0.1:{server.port}",
                                 target=f"/ivoryos/socket.io/?EIO=4&transport=websocket&sid={sid}")))
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection during the WebSocket handshake"
        ws.receive_data(data)
        events = list(ws.events())
        if any(isinstance(event, AcceptConnection) for event in events):
            return sock, ws
        assert not events, f"the WebSocket upgrade was refused: {events}"


def rest_of_connection(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    got = b""
    sock.settimeout(10)
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data


OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


def frames_after_close(raw: bytes) -> Tuple[List[str], List[str]]:
    """The server's frames in ``raw``, read as a browser reads them (RFC 6455, section 5.2): (those
    before its close frame, those after it). Bytes that are not a frame fail the test, as a browser
    fails the connection with ``Invalid frame header``."""
    before: List[str] = []
    after: List[str] = []
    at = 0
    while at < len(raw):
        assert len(raw) - at >= 2, f"a truncated frame header at byte {at}: {raw[at:]!r}"
        first, second = raw[at], raw[at + 1]
        opcode, length, at = first & 0x0F, second & 0x7F, at + 2
        assert not first & 0x70 and opcode in OPCODES and not second & 0x80, \
            f"an invalid frame header at byte {at - 2}: {raw[at - 2:at + 40]!r}"
        if length >= 126:
            size = 2 if length == 126 else 8
            length, at = int.from_bytes(raw[at:at + size], "big"), at + size
        payload, at = raw[at:at + length], at + length
        assert len(payload) == length, f"a truncated frame: {length} bytes announced, {len(payload)} came"
        (after if any(name.startswith("close") for name in before) else before).append(
            f"{OPCODES[opcode]}({payload[:40]!r})")
    return before, after


def session_ending(server: Server, attempt: int, sends: Callable[[WSConnection], Iterable[bytes]]) -> List[str]:
    """Open an upgraded session, send what ``sends`` frames (one ``sendall`` each, as it yields them), read the rest of
    the connection, and check that it holds no HTTP and no frame after the server's close frame.

    :returns: the server's frames before its close frame."""
    sock, ws = upgrade(server, engineio_session(server))
    try:
        for data in sends(ws):
            sock.sendall(data)
        raw = rest_of_connection(sock)
    finally:
        sock.close()
    assert b"HTTP/1." not in raw, f"attempt {attempt}: an HTTP answer inside the WebSocket: {raw[:300]!r}"
    before, after = frames_after_close(raw)
    assert not after, f"attempt {attempt}: frames after the server's close frame: {after} (before: {before})"
    return before


@pytest.mark.server
def test_a_client_leaving_mid_upgrade_gets_no_http_answer_inside_its_websocket(ivoryos: Server) -> None:
    """The client's close frame comes right behind its upgrade probe (a page left mid-upgrade): the
    probe's answer fails on the server; the connection is dropped, never answered with HTTP."""
    for attempt in range(ATTEMPTS):
        session_ending(ivoryos, attempt, lambda ws: [ws.send(TextMessage(data="2probe")) + ws.send(CloseConnection(code=1001))])
    assert "Traceback" not in ivoryos.output(), ivoryos.output()[-3000:]


def busy_then_closing(ws: WSConnection) -> Iterator[bytes]:
    """The probe, then the upgrade and 200 connects the server refuses one by one, then the close: each
    framed only once the one before is sent (the server has begun the upgrade when the connects come)."""
    yield ws.send(TextMessage(data="2probe"))
    yield ws.send(TextMessage(data="5")) + b"".join(ws.send(TextMessage(data="40")) for _ in range(200))
    yield ws.send(CloseConnection(code=1001))


@pytest.mark.server
def test_no_frame_follows_the_server_s_close_frame_while_it_is_writing(ivoryos: Server) -> None:
    """The server's writer is busy (a refused Socket.IO connect answered per packet) when the client's
    close frame comes: each of the server's frames comes whole, and none after its close frame."""
    refused = 0
    for attempt in range(BUSY_ATTEMPTS):
        before = session_ending(ivoryos, attempt, busy_then_closing)
        refused += sum(1 for name in before if name.startswith("text(b'44"))
    assert refused, "no refused connect was answered: the writer was never busy, so the test proved nothing"
    assert "Traceback" not in ivoryos.output(), ivoryos.output()[-3000:]
