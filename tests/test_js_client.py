"""The browser client (ivoryos_plugin/static/ivoryos_plugin.js) in headless Chromium against a real
Flask-SocketIO server (threading mode) that speaks the plugin protocol on the namespace /ivoryos/demo."""
import contextlib
import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from flask import Flask, abort, jsonify, request, send_from_directory
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room, leave_room
from werkzeug.serving import WSGIRequestHandler

from ivoryos_plugin.testing import serve_app

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[1] / "ivoryos_plugin" / "static"
NS = "/ivoryos/demo"
LOCKED_NS = "/ivoryos/locked"
SIO_PATH = "/ivoryos/socket.io"
CSRF = "csrf-test-token-7f3a"
STREAMS = ("weight", "flaky")
CHROMIUM = os.environ.get("IVORYOS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

HEAD = """<meta charset="utf-8"><title>demo</title><link rel="icon" href="data:,">
<meta name="csrf-token" content="%s">
<meta name="ivoryos-plugin" content='%s'>
<script src="/ivoryos/plugins/static/vendor/socket.io.min.js"></script>
<script src="/ivoryos/plugins/static/ivoryos_plugin.js"></script>""" % (CSRF, json.dumps(
    {"name": "demo", "namespace": NS, "path": SIO_PATH, "actions": "/ivoryos/demo/actions/"}))

# Tests drive this page with page.evaluate; start() connects and records what happens.
PLUGIN_PAGE = """<!doctype html><html><head>%s</head><body>
<span id="state" data-ivoryos-live-state></span>
<span id="state-locked" data-ivoryos-live-state="%s"></span>
<script>
window.rec = {states: [], weight: [], weight2: [], calls: [], errors: []};
window.start = function (opts) {
  window.live = IvoryPlugin.connect(opts);
  rec.states.push(live.state);
  live.onState(function (s) { rec.states.push(s); });
  return live.state;
};
</script></body></html>""" % (HEAD, LOCKED_NS)

# IvoryOS's base.html order: the plugin content, then socket.io 4.4.1 from a CDN (fails offline), then
# socket_handler.js setting window.socket on DOMContentLoaded. The plugin connects only after all that.
BASE_LIKE_PAGE = """<!doctype html><html><head>%s</head><body>
<span id="state" data-ivoryos-live-state></span>
<script>window.rec = {weight: []};</script>
<script src="/cdn-offline/socket.io/4.4.1/socket.io.js"></script>
<script>window.io = undefined; window.socket = {};</script>
<script>
document.addEventListener("DOMContentLoaded", function () {
  window.live = IvoryPlugin.connect();
  live.subscribe("weight", function (v) { rec.weight.push(v); });
});
</script></body></html>""" % HEAD

# connect() from <head>, before the state element exists
HEAD_CONNECT_PAGE = """<!doctype html><html><head>%s<script>window.live = IvoryPlugin.connect();</script></head><body>
<span id="state" data-ivoryos-live-state></span>
<script>
window.rec = {};
document.addEventListener("DOMContentLoaded", function () { rec.atReady = document.querySelector("#state").textContent; });
</script></body></html>""" % HEAD

# Nothing but the two scripts and a CSRF token: no plugin meta, no IvoryOS.
BARE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta name="csrf-token" content="%s">
<script src="/ivoryos/plugins/static/vendor/socket.io.min.js"></script>
<script src="/ivoryos/plugins/static/ivoryos_plugin.js"></script></head>
<body><span id="state" data-ivoryos-live-state></span></body></html>""" % CSRF


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class DemoServer:
    """A plugin server implementing the live protocol; tests read its state directly."""

    def __init__(self):
        self.lock = threading.Lock()
        self.subs = {s: set() for s in STREAMS}
        self.subscribe_calls = []   # (sid, stream)
        self.auth = {}              # sid -> auth dict
        self.connects = 0
        self.last_published = {}
        self.action_requests = []
        self.stop_event = threading.Event()

        app = Flask(__name__, static_folder=None)
        self.app = app
        # a short ping interval so each connection's ping thread ends soon after the browser goes away
        sio = SocketIO(app, async_mode="threading", path=SIO_PATH, ping_interval=1, ping_timeout=5)
        self.sio = sio

        @app.get("/plugin")
        def plugin_page():
            return PLUGIN_PAGE

        @app.get("/base-like")
        def base_like_page():
            return BASE_LIKE_PAGE

        @app.get("/head-connect")
        def head_connect_page():
            return HEAD_CONNECT_PAGE

        @app.get("/bare")
        def bare_page():
            return BARE_PAGE

        @app.get("/ivoryos/plugins/static/<path:filename>")
        def plugin_static(filename):
            return send_from_directory(STATIC, filename)

        @app.get("/cdn-offline/<path:anything>")
        def offline_cdn(anything):
            abort(404)

        @app.post("/ivoryos/demo/actions/<name>")
        def action(name):
            with self.lock:
                self.action_requests.append({"name": name, "headers": dict(request.headers),
                                             "json": request.get_json(silent=True)})
            if request.headers.get("X-CSRFToken") != CSRF:
                return jsonify(error="The CSRF token is missing."), 400
            if name == "busy":
                return jsonify(error="deck is busy"), 409
            if name == "bad":
                return jsonify(error="invalid arguments", errors={"grams": "must be positive"}), 400
            return jsonify(ok=True, action=name, args=request.get_json())

        @sio.on("connect", namespace=NS)
        def on_connect(auth):
            if not isinstance(auth, dict) or auth.get("csrf") != CSRF:
                raise ConnectionRefusedError("unauthorized")
            with self.lock:
                self.auth[request.sid] = auth
                self.connects += 1
                replay = list(self.last_published.items())
            for event, data in replay:
                emit(event, data)

        @sio.on("disconnect", namespace=NS)
        def on_disconnect(*reason):
            with self.lock:
                for sids in self.subs.values():
                    sids.discard(request.sid)

        @sio.on("subscribe", namespace=NS)
        def on_subscribe(data):
            stream = (data or {}).get("stream")
            with self.lock:
                self.subscribe_calls.append((request.sid, stream))
                if stream not in self.subs:
                    return {"ok": False, "error": "unknown stream %s" % stream}
                self.subs[stream].add(request.sid)
            join_room("stream:" + stream)
            if stream == "flaky":
                emit("stream_error", {"stream": "flaky", "error": "sensor offline"})
            return {"ok": True}

        @sio.on("unsubscribe", namespace=NS)
        def on_unsubscribe(data):
            stream = (data or {}).get("stream")
            with self.lock:
                if stream in self.subs:
                    self.subs[stream].discard(request.sid)
            leave_room("stream:%s" % stream)

        @sio.on("echo", namespace=NS)
        def on_echo(data):
            return {"echo": data}

        @sio.on("connect", namespace=LOCKED_NS)
        def on_locked_connect(auth):
            raise ConnectionRefusedError("unauthorized")

    def _weight_loop(self):
        seq = 0
        while not self.stop_event.wait(0.05):
            seq += 1
            self.sio.emit("weight", round(12.5 + seq * 0.001, 3), to="stream:weight", namespace=NS)

    def publish(self, event, data):
        with self.lock:
            self.last_published[event] = data
        self.sio.emit(event, data, namespace=NS)

    def subscribers(self, stream):
        with self.lock:
            return set(self.subs[stream])

    def kick(self, sid):
        """Namespace-level disconnect (the client sees "io server disconnect")."""
        self.sio.server.disconnect(sid, namespace=NS)

    def drop_transport(self, sid):
        """Close the whole Engine.IO connection (the client sees "transport close").

        Not eio.disconnect(): in threading mode it waits for the websocket writer to drain its queue and
        can hang forever when the writer has already stopped; close(wait=False) sends the same CLOSE packet."""
        eio_sid = self.sio.server.manager.eio_sid_from_sid(sid, NS)
        self.sio.server.eio._get_socket(eio_sid).close(wait=False)
        return eio_sid

    def start(self):
        self.serving = contextlib.ExitStack()
        self.url = self.serving.enter_context(serve_app(self.app, request_handler=_QuietHandler))
        self.threads = [threading.Thread(target=self._weight_loop, name="demo-weight", daemon=True)]
        for t in self.threads:
            t.start()
        # The first Engine.IO handshake starts the server's client-monitor thread; do it here, in the module
        # fixture, so conftest's per-test leak check does not blame whichever test connects first.
        with urllib.request.urlopen(self.url + SIO_PATH + "/?EIO=4&transport=polling", timeout=10) as reply:
            assert reply.status == 200

    def stop(self):
        self.stop_event.set()
        self.sio.server.shutdown()
        self.serving.close()
        for t in self.threads:
            t.join(5)


def wait_until(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def server():
    if not (STATIC / "vendor" / "socket.io.min.js").exists():
        pytest.fail("ivoryos_plugin/static/vendor/socket.io.min.js is missing: run `npm ci`")
    threads_before = set(threading.enumerate())
    srv = DemoServer()
    srv.start()
    yield srv
    srv.stop()  # the browser is closed first (fixture order), so no websocket handler threads remain
    leftover = lambda: [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]  # noqa: E731
    try:
        wait_until(lambda: not leftover(), timeout=5, what="server threads to end")
    except AssertionError:
        raise AssertionError("leaked threads: %r" % leftover())


@pytest.fixture(scope="module")
def browser(server):
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at %s (set IVORYOS_CHROMIUM)" % CHROMIUM)
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


class Page:
    def __init__(self, page, base_url):
        self.page, self.base_url = page, base_url
        self.errors, self.warnings = [], []
        self.failed = []  # (status, url) of every response of 400 or more
        page.on("console", self._console)
        page.on("response", lambda r: self.failed.append((r.status, r.url)) if r.status >= 400 else None)
        page.on("pageerror", lambda exc: self.errors.append("pageerror: %s" % exc))

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(msg.text)
        elif msg.type == "warning":
            self.warnings.append(msg.text)

    def open(self, path="/plugin"):
        self.page.goto(self.base_url + path)
        return self

    def js(self, expr, arg=None):
        return self.page.evaluate(expr, arg)

    def wait(self, expr, arg=None, timeout=5000):
        return self.page.wait_for_function(expr, arg=arg, timeout=timeout).json_value()

    def text(self, selector):
        return self.page.text_content(selector)


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    p = Page(context.new_page(), server.url)
    p.page.set_default_timeout(10000)
    yield p
    context.close()


def connect_and_wait(page, opts=None):
    page.js("opts => start(opts)", opts)
    page.wait("() => live.state === 'connected'")
    return page.js("() => live.socket.id")


def test_connect_shows_state_and_sends_auth(page, server):
    page.open()
    assert page.js("() => start({token: 'page-token'})") == "connecting"
    page.wait("() => document.querySelector('#state').dataset.state === 'connected'")
    assert page.text("#state") == "connected"
    assert page.js("() => rec.states") == ["connecting", "connected"]
    assert page.js("() => IvoryPlugin.connect() === live"), "connect() twice must return the same object"
    assert page.js("() => IvoryPlugin.meta().namespace") == NS
    assert page.js("() => IvoryPlugin.csrfToken()") == CSRF
    sid = page.js("() => live.socket.id")
    with server.lock:
        assert server.auth[sid] == {"csrf": CSRF, "token": "page-token"}
    assert page.text("#state-locked") == "", "a namespace-specific element shows only its own connection"
    assert not page.errors


def test_state_element_rendered_when_connect_runs_in_head(page, server):
    page.open("/head-connect")
    # rendered by the time the page is parsed (empty would mean connect() in <head> missed the element);
    # on a loaded machine the socket may already be up by then
    assert page.js("() => rec.atReady") in ("connecting", "connected")
    page.wait("() => document.querySelector('#state').textContent === 'connected'")
    assert not page.errors


def test_subscribe_values_change_and_unsubscribe_stops_them(page, server):
    page.open()
    # subscribed before the connection is up, then again once connected: the server must see one subscribe
    page.js("""() => {
        start();
        window.off1 = live.subscribe("weight", v => rec.weight.push(v));
    }""")
    page.wait("() => rec.weight.length >= 1")
    sid = page.js("() => { window.off2 = live.subscribe('weight', v => rec.weight2.push(v)); return live.socket.id; }")
    page.wait("() => rec.weight.length >= 5 && rec.weight2.length >= 5")
    assert server.subscribers("weight") >= {sid}
    with server.lock:
        assert [c for c in server.subscribe_calls if c[0] == sid] == [(sid, "weight")]
    values = page.js("() => rec.weight")
    assert all(isinstance(v, (int, float)) for v in values) and len(set(values)) > 1

    page.js("() => off1()")
    n1, n2 = page.js("() => [rec.weight.length, rec.weight2.length]")
    page.wait("n => rec.weight2.length >= n + 3", n2)
    assert sid in server.subscribers("weight"), "one fn left: still subscribed"
    assert page.js("() => rec.weight.length") <= n1 + 1

    page.js("() => off2()")
    wait_until(lambda: sid not in server.subscribers("weight"), what="the unsubscribe")
    time.sleep(0.1)
    n2 = page.js("() => rec.weight2.length")
    time.sleep(0.4)
    assert page.js("() => rec.weight2.length") == n2, "values still arrive after unsubscribing"
    assert not page.errors


def test_stream_errors_reach_handlers(page, server):
    page.open()
    page.js("""() => {
        start();
        live.onStreamError(p => rec.errors.push(["global", p.stream, p.error]));
        const fn = v => {};
        fn.onError = p => rec.errors.push(["fn", p.stream, p.error]);
        live.subscribe("flaky", fn);
        live.subscribe("nope", v => {}, {onError: p => rec.errors.push(["opts", p.stream, p.error])});
    }""")
    page.wait("() => rec.errors.length >= 4")
    errors = sorted(map(tuple, page.js("() => rec.errors")))
    assert errors == [("fn", "flaky", "sensor offline"), ("global", "flaky", "sensor offline"),
                      ("global", "nope", "unknown stream nope"), ("opts", "nope", "unknown stream nope")]
    assert not page.errors


def test_replayed_value_on_connect_and_server_push(page, server):
    server.publish("calls", {"n": 1})
    page.open()
    page.js("""() => {
        start();
        window.onCalls = d => rec.calls.push(d);
        live.on("calls", onCalls);
    }""")
    page.wait("() => rec.calls.length === 1")
    assert page.js("() => rec.calls") == [{"n": 1}], "the last published value is replayed on connect"
    server.publish("calls", {"n": 2})
    page.wait("() => rec.calls.length === 2")
    assert page.js("() => rec.calls[1]") == {"n": 2}
    assert page.js("() => live.last('calls')") == {"n": 2}
    page.js("() => live.off('calls', onCalls)")
    server.publish("calls", {"n": 3})
    page.wait("() => live.last('calls') && live.last('calls').n === 3")
    assert page.js("() => rec.calls.length") == 2, "off() removes the listener"
    assert not page.errors


def test_emit_resolves_with_ack_and_times_out(page, server):
    page.open()
    connect_and_wait(page)
    assert page.js("() => live.emit('echo', {x: [1, 2], s: 'hi'})") == {"echo": {"x": [1, 2], "s": "hi"}}
    result = page.js("""() => live.emit('no_such_handler', 1, {timeout: 300}).then(
        () => 'resolved', e => [e instanceof Error, e.message])""")
    assert result[0] is True and "within 300 ms" in result[1]
    assert not page.errors


def test_action_sends_csrf_and_resolves(page, server):
    page.open()
    connect_and_wait(page)
    assert page.js("() => live.action('tare', {grams: 5})") == {"ok": True, "action": "tare", "args": {"grams": 5}}
    with server.lock:
        req = server.action_requests[-1]
    assert req["name"] == "tare" and req["json"] == {"grams": 5}
    assert req["headers"]["X-Csrftoken"] == CSRF
    assert req["headers"]["Content-Type"].startswith("application/json")
    assert req["headers"]["Accept"] == "application/json"
    assert not page.errors


def test_action_shortcut_needs_no_socket(page, server):
    page.open()
    with server.lock:
        connects = server.connects
    assert page.js("() => IvoryPlugin.action('zero')") == {"ok": True, "action": "zero", "args": {}}
    with server.lock:
        assert server.connects == connects
    assert not page.errors


def test_action_errors_reject_with_details(page, server):
    page.open()
    connect_and_wait(page)
    describe = """name => live.action(name, {grams: -1}).then(
        () => null,
        e => ({isError: e instanceof Error, message: e.message, status: e.status, busy: e.busy, body: e.body}))"""
    busy = page.js(describe, "busy")
    assert busy == {"isError": True, "message": "deck is busy", "status": 409, "busy": True,
                    "body": {"error": "deck is busy"}}
    bad = page.js(describe, "bad")
    assert bad["isError"] and bad["status"] == 400 and bad["busy"] is False
    assert bad["message"] == "invalid arguments"
    assert bad["body"]["errors"] == {"grams": "must be positive"}


def test_later_scripts_overwriting_io_do_not_break_it(page, server):
    page.open("/base-like")
    page.wait("() => document.querySelector('#state').textContent === 'connected'")
    page.wait("() => rec.weight.length >= 3")
    assert page.js("() => window.io") is None
    assert page.js("() => typeof window.socket === 'object' && Object.keys(window.socket).length === 0")
    assert [e for e in page.errors if "404" not in e] == [], "only the offline CDN script may fail"


@pytest.mark.parametrize("how", ["kick", "drop_transport"])
def test_reconnects_and_resumes_subscription(page, server, how):
    page.open()
    page.js("() => { start(); live.subscribe('weight', v => rec.weight.push(v)); }")
    page.wait("() => live.state === 'connected' && rec.weight.length >= 2")
    sid = page.js("() => live.socket.id")
    wait_until(lambda: sid in server.subscribers("weight"), what="the subscription")
    dropped = getattr(server, how)(sid)  # (drop_transport: the Engine.IO session it closed)
    page.wait("() => rec.states.includes('disconnected')")
    page.wait("() => rec.states[rec.states.length - 1] === 'connected' && rec.states.length >= 4", timeout=8000)
    states = page.js("() => rec.states")
    assert states[:2] == ["connecting", "connected"]
    assert states.index("disconnected") < len(states) - 1 and states[-1] == "connected"
    assert page.text("#state") == "connected"
    new_sid = page.js("() => live.socket.id")
    assert new_sid != sid
    wait_until(lambda: new_sid in server.subscribers("weight"), what="the subscription to resume")
    n = page.js("() => rec.weight.length")
    page.wait("n => rec.weight.length >= n + 3", n)
    # a long-poll of the closed Engine.IO session that was still open when the server closed it is
    # answered 400 ("Session is disconnected"), which the browser logs: that one, and nothing else
    stale = [url for status, url in page.failed
             if dropped and status == 400 and "transport=polling" in url and f"sid={dropped}" in url]
    assert [failed for failed in page.failed if failed[1] not in stale] == []
    assert [e for e in page.errors if "status of 400" not in e] == []
    assert len([e for e in page.errors if "status of 400" in e]) <= len(stale)


def test_refused_connection(page, server):
    page.open()
    assert page.js("() => start({namespace: '%s'})" % LOCKED_NS) == "connecting"
    page.wait("() => live.state === 'refused'")
    assert page.js("() => rec.states") == ["connecting", "refused"]
    assert page.text("#state-locked") == "refused"
    assert page.js("() => live.emit('echo', 1).then(() => 'ok', e => e.message)").startswith("IvoryPlugin: the server refused")


def test_bare_page_without_meta(page, server):
    page.open("/bare")
    assert page.js("() => IvoryPlugin.meta()") == {}
    assert any('meta name="ivoryos-plugin"' in w for w in page.warnings), page.warnings
    page.js("() => { window.live = IvoryPlugin.connect({namespace: '%s', path: '%s', actions: '/ivoryos/demo/actions/'}) }"
            % (NS, SIO_PATH))
    page.wait("() => document.querySelector('#state').textContent === 'connected'")
    assert page.js("() => live.emit('echo', 'x')") == {"echo": "x"}
    page.js("() => live.close()")
    assert page.text("#state") == "disconnected"
    assert page.js("() => IvoryPlugin.connect({namespace: '%s', path: '%s'}) !== live" % (NS, SIO_PATH))
    assert not page.errors
