"""Security round three (issue 23) against real servers: the dev host serving the red team's deck
(``tests/plugins/red_deck.py``), and plain ``ivoryos.run`` for Socket.IO.

- after logging in, ``next`` only ever leads to a path on this host (open redirects refused as a
  browser would read them: tabs and newlines dropped, ``\\`` for ``/``, ``//host`` and schemes);
- a NUL in a plugin's path is a 404, never a 500;
- a lone surrogate (JSON ``"\\ud800"``) in a settings body is a 400 naming the field, nothing saved;
- a Socket.IO event nested 5,000 deep (too deep for Python's parser) is answered with an error,
  ack or ``event_error`` event, and the connection stays up: the next event is answered."""
from __future__ import annotations

import sys
import threading
from typing import Any, Dict, Iterator, List
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import socketio
from socketio import packet

from support import ROOT, login_form_token, wait_until

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import DEV_TOKEN, NS, SIO_PATH, RedServer, start_red  # noqa: E402

LOGIN = "/ivoryos/auth/login"
START = "/ivoryos/"  # where the dev host goes when next is refused (its main page)
DEEP_MARK = "__deep_5000__"
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp("devhost"), "standalone")
    try:
        yield running
    finally:
        running.server.stop()


# ------------------------------------------------------------------ open redirects
def lands_on(page: str, location: str) -> Any:
    """Where a browser that got ``Location: location`` on ``page`` goes (WHATWG: tabs and newlines
    dropped, controls and spaces stripped from the ends, ``\\`` read as ``/`` in http URLs)."""
    seen = location.translate(dict.fromkeys(map(ord, "\t\n\r"))).strip("".join(map(chr, range(0x21))))
    return urlsplit(urljoin(page, seen.replace("\\", "/")))


def log_in_with_next(base: str, query: str) -> requests.Response:
    """The dev host's login form, fetched and posted with the raw query ``next=...`` (a browser's)."""
    session = requests.Session()
    form = {"token": DEV_TOKEN, **login_form_token(session.get(f"{base}{LOGIN}?{query}").text)}
    reply = session.post(f"{base}{LOGIN}?{query}", data=form, allow_redirects=False)
    session.close()
    return reply


@pytest.mark.server
@pytest.mark.parametrize("query", [
    "next=/%09/evil.example/", "next=/%09/evil", "next=//evil", "next=/%5Cevil", "next=%5C%5Cevil",
    "next=/%5C/evil", "next=https://evil", "next=%2F%2Fevil", "next=%20//evil", "next=/%0A/evil",
    "next=/%0D%0A/evil", "next=%00//evil", "next=/%00/evil", "next=javascript:alert(1)", "next=http:/evil",
    "next=///evil", "next=evil.example",
], ids=["tab-slash-host", "tab-slash", "double-slash", "backslash", "two-backslashes", "slash-backslash",
        "absolute-https", "encoded-double-slash", "leading-space", "newline", "crlf", "nul-first", "nul-inside",
        "javascript", "scheme-one-slash", "triple-slash", "relative-host"])
def test_login_never_redirects_off_the_host(dev: RedServer, query: str) -> None:
    reply = log_in_with_next(dev.base, query)
    assert reply.status_code == 302, reply.text[:300]
    page, location = f"{dev.base}{LOGIN}?{query}", reply.headers["Location"]
    went = lands_on(page, location)
    assert (went.scheme, went.netloc) == ("http", urlsplit(dev.base).netloc), f"{query}: a browser goes to {location!r}"
    assert went.path == START, f"{query}: refused, the login should go to the start page, not {location!r}"


@pytest.mark.server
@pytest.mark.parametrize("query,path", [
    ("next=/ivoryos/red/%3Fview%3Dfull", "/ivoryos/red/?view=full"), ("next=/ivoryos/plugins/", "/ivoryos/plugins/"),
], ids=["plugin-page-with-query", "health-page"])
def test_login_still_goes_where_it_was_asked_on_this_host(dev: RedServer, query: str, path: str) -> None:
    reply = log_in_with_next(dev.base, query)
    assert reply.status_code == 302
    went = lands_on(f"{dev.base}{LOGIN}", reply.headers["Location"])
    assert went.netloc == urlsplit(dev.base).netloc and went.path + ("?" + went.query if went.query else "") == path


@pytest.mark.server
@pytest.mark.parametrize("path", ["//evil.example/", "/%09/evil.example/", "/%5Cevil.example/"],
                         ids=["double-slash", "tab", "backslash"])
def test_the_token_link_never_redirects_off_the_host(dev: RedServer, path: str) -> None:
    url = f"{dev.base}{path}?token={DEV_TOKEN}&view=1"
    reply = requests.get(url, allow_redirects=False)
    assert reply.status_code == 302, reply.text[:300]
    went = lands_on(url, reply.headers["Location"])
    assert went.netloc == urlsplit(dev.base).netloc, f"{path} sends the browser to {reply.headers['Location']!r}"
    assert went.query == "view=1"


# ------------------------------------------------------------------ NUL in paths
@pytest.mark.server
@pytest.mark.parametrize("path", [
    f"{NS}/public/read%00me.txt", f"{NS}/public/readme.txt%00", f"{NS}/static/app.js%00.png", f"{NS}/history/tick%00",
    "/ivoryos/redplain/child/sec%00ret", f"{NS}/%00",
], ids=["public", "public-suffix", "static", "history", "plain-plugin", "bare"])
def test_a_nul_in_a_path_is_a_404(dev: RedServer, path: str) -> None:
    for who, client in (("logged in", dev.session), ("anonymous", requests)):
        reply = client.get(dev.base + path, headers={"Accept": "application/json"}, allow_redirects=False)
        assert reply.status_code == 404, f"{who} GET {path}: {reply.status_code} {reply.text[:200]}"
    assert dev.session.get(f"{dev.base}{NS}/public/readme.txt").status_code == 200  # the control: served


# ------------------------------------------------------------------ lone surrogates
def settings_file(red: RedServer) -> bytes:
    path = red.data / "red" / "settings.json"
    return path.read_bytes() if path.exists() else b""


@pytest.mark.server
@pytest.mark.parametrize("method,body,field", [
    ("PATCH", '{"label": "\\ud800"}', "label"),
    ("PATCH", '{"tags": ["ok", "\\ud800"]}', "tags"),
    ("PUT", '{"gain": 2, "label": "x", "tags": [{"a": "\\udfff tail"}]}', "tags"),
    ("PATCH", '{"tags": [{"\\ud83d": 1}]}', "tags"),
    ("PATCH", '{"values": {"label": "\\udc00"}}', "label"),
], ids=["string-setting", "list-item", "put-nested", "key", "get-shape"])
def test_a_lone_surrogate_in_settings_is_a_400_naming_the_field(dev: RedServer, method: str, body: str,
                                                               field: str) -> None:
    before = settings_file(dev)
    reply = dev.session.request(method, f"{dev.base}{NS}/settings.json", data=body.encode(),
                                headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text[:300]
    answer = reply.json()
    assert field in answer["errors"], answer
    assert "surrogate" in answer["error"] and "'red'" in answer["error"], answer
    assert settings_file(dev) == before, "a refused body changed the settings file"
    ok = dev.session.patch(f"{dev.base}{NS}/settings.json", json={"label": "\U0001f52c lab"})  # the control
    assert ok.status_code == 200 and ok.json()["values"]["label"] == "\U0001f52c lab"


# ------------------------------------------------------------------ deep Socket.IO payloads
class DeepPacket(packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, sending ``"__deep_5000__"`` as a list nested 5,000 deep (Python's
    own encoder cannot write one)."""

    def encode(self) -> Any:
        encoded = super().encode()
        if isinstance(encoded, str):
            encoded = encoded.replace(f'"{DEEP_MARK}"', DEEP)
        return encoded


@pytest.fixture(scope="module")
def plain_ivoryos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp("ivoryos"), "ivoryos")
    try:
        yield running
    finally:
        running.server.stop()


@pytest.mark.server
@pytest.mark.parametrize("host", ["dev", "plain_ivoryos"], ids=["dev-host", "plain-ivoryos-run"])
def test_a_5000_deep_socket_payload_is_answered_and_the_connection_stays(request: pytest.FixtureRequest,
                                                                         host: str) -> None:
    red: RedServer = request.getfixturevalue(host)
    errors: List[Dict[str, Any]] = []
    left = threading.Event()
    sio = socketio.Client(reconnection=False, serializer=DeepPacket)
    sio.on("event_error", errors.append, namespace=NS)
    sio.on("disconnect", lambda *a: left.set(), namespace=NS)
    sio.connect(red.base, socketio_path=SIO_PATH, namespaces=[NS], transports=["websocket"],
                headers={"Cookie": red.cookie()}, wait_timeout=10)
    try:
        journal = len(red.journal())
        answer = sio.call("mark", {"items": DEEP_MARK}, namespace=NS, timeout=10)
        assert answer["ok"] is False and answer["status"] == 400, answer
        assert "nested deeper than 64" in answer["error"] and "'red'" in answer["error"], answer
        sio.emit("mark", [DEEP_MARK], namespace=NS)  # no ack asked: an event_error event says it
        assert wait_until(lambda: bool(errors), 10), "no event_error for an event sent without an ack"
        assert errors[0]["event"] == "mark" and errors[0]["status"] == 400 and "nested" in errors[0]["error"]
        assert not left.is_set() and sio.connected and NS in sio.namespaces, "the deep payload cost the connection"
        again = sio.call("mark", {"after": True}, namespace=NS, timeout=10)
        assert again == {"lines": journal + 1}, again  # the connection still works; the deep ones did not run
        assert red.journal()[-1] == {"kind": "mark", "value": {"after": True}}
    finally:
        sio.disconnect()
