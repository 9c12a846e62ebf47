"""Security round three (issue 23), IvoryOS's own routes under ``ivoryos_plugin.run``, over HTTP:
CSRF (and this origin) on every state-changing IvoryOS route, real images only as logos and uploads
served as downloads, ``SameSite=Lax``, a Content-Security-Policy and X-Frame-Options on every page,
``no-store`` on sensitive JSON; and hardening that proves itself: each item installed, probed, then
printed, shown on the health page, and a server that refuses to start (naming the item and its
opt-out) when the adapter's touch points are patched away as a renamed IvoryOS would break them.

The server is a real deck script (``sec3_deck.py``, written by these tests) calling
``ivoryos_plugin.run`` with the ``sec3`` plugin (a page, an action, a recorded stream).
tests/test_security3_browser.py drives the same deck with Chromium."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
import types
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from support import PY, ROOT, Server, free_port, ivoryos_login, launch, wait_until

DECK = '''"""Security round three's deck: the sec3 plugin under ivoryos_plugin.run. Env SEC3_RUN_KWARGS (a
JSON object) adds keyword arguments; SEC3_PATCH breaks a touch point of the adapter the way a
renamed IvoryOS would. Listens on 127.0.0.1:$PORT."""
import threading


class Meter:
    """Counts its reads; bump() is a workflow step."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def read(self) -> int:
        """One reading."""
        with self.lock:
            self.n += 1
            return self.n

    def bump(self, by: int = 1) -> int:
        """Add to the count."""
        with self.lock:
            self.n += by
            return self.n


meter = Meter()


def main():
    """Serve (a function: the deck's globals are its instruments)."""
    import json
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ivoryos_plugin
    from ivoryos_plugin.hosts import ivoryos as adapter
    from sec3_plugin import late, plugin

    patch = os.environ.get("SEC3_PATCH", "")
    plugins = [plugin]
    if patch == "app-not-recognised":
        adapter.is_ivoryos_app = lambda app: False
    elif patch == "socket-guard-not-installable":
        adapter.guard_default_namespace = lambda socketio, check, gone: False
    elif patch == "socket-guard-claims-success":
        adapter.guard_default_namespace = lambda socketio, check, gone: True
    elif patch == "run-controls-renamed":
        adapter.RUN_CONTROL_ENDPOINTS = ("execute.start_run",) + tuple(adapter.RUN_CONTROL_ENDPOINTS[1:])
    elif patch == "guard-removed-before-serving":
        plugins.append(late)
    elif patch == "no-check-before-serving":
        adapter.before_serving = lambda gate: False
    extra = json.loads(os.environ.get("SEC3_RUN_KWARGS") or "{}")
    ivoryos_plugin.run(__name__, plugins=plugins, port=int(os.environ["PORT"]), **extra)


if __name__ == "__main__":
    main()
'''

PLUGIN = '''"""The sec3 plugin: a page, an action, a recorded stream; with env SEC3_UNDO its on_start puts
IvoryOS's Socket.IO connect handler back unguarded (what the health page must show). ``late`` is a
plain Blueprint whose registration takes the hardening's request guard off IvoryOS's app."""
import os

from flask import Blueprint

from ivoryos_plugin import Plugin

plugin = Plugin("sec3", __name__, title="Sec3", version="1.0.0")


@plugin.route("/")
def main():
    return plugin.render("sec3.html")


@plugin.action(hardware=False)
def ping() -> dict:
    return {"pong": True}


@plugin.stream("level", hz=5, record=True)
def level():
    return plugin.instrument("meter").read()


@plugin.on_start
def start(deck):
    flag = os.environ.get("SEC3_UNDO")
    if flag:  # once the test says the server serves (it creates the file), as a plugin might later on
        import threading
        import time

        def undo():
            while not os.path.exists(flag):
                time.sleep(0.05)
            from ivoryos.socket_handlers import socketio

            socketio.server.handlers["/"]["connect"] = lambda *args: None

        threading.Thread(target=undo, daemon=True).start()


late = Blueprint("late", __name__)
late.add_url_rule("/", "main", lambda: "late")


@late.record_once
def take_the_guard_off(state):
    funcs = state.app.before_request_funcs.get(None, [])
    funcs[:] = [f for f in funcs if getattr(f, "__name__", "") != "harden_request"]
'''

TEMPLATE = ('{% extends plugin_base %}{% block title %}Sec3{% endblock %}'
            '{% block body %}<p id="sec3">sec3 page</p>{% endblock %}')
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}  # IvoryOS answers some pages as JSON to "*/*" (its run page then waits for a run)
NO_TOKEN = {"X-CSRFToken": None}  # requests drops a header set to None: the session's token is not sent
OPT_OUTS = ["allow_signup=True", "allow_anonymous=True", "allow_anonymous_socket=True", "IVORYOS_PLUGIN_ALLOWED_HOSTS",
            "keep_sessions_after_logout=True", "login_csrf=False", "ivoryos_csrf=False", "security_headers=False",
            "samesite_cookie=False", "check_uploads=False"]
ITEMS = ["signup", "login", "socket", "host_header", "sessions", "login_csrf", "csrf", "headers", "cookie", "uploads"]
#: an item's old key, still on status.json for one release (docs/security.md): the old key -> the new
RENAMED = {"hosts": "host_header"}
CSP_PARTS = ["default-src 'self'", "frame-ancestors 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'"]


def one_pixel_png() -> bytes:
    """A valid 1x1 RGBA PNG (each chunk with its CRC)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x10\x80\xf0\xff")) + chunk(b"IEND", b""))


PNG = one_pixel_png()


class Sec3:
    """A running sec3 deck and a logged-in session (its X-CSRFToken header set)."""

    def __init__(self, server: Server) -> None:
        self.server, self.base = server, server.base
        self.session = ivoryos_login(self.base)

    def status(self) -> Dict[str, Any]:
        reply = self.session.get(f"{self.base}/ivoryos/plugins/status.json", timeout=30)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def hardening(self) -> Dict[str, str]:
        return {h["item"]: h["state"] for h in self.status()["hardening"]}

    def paused(self) -> bool:
        return bool(self.session.get(f"{self.base}/ivoryos/executions/status", timeout=30).json()["paused"])

    def runs(self) -> int:
        reply = self.session.get(f"{self.base}/ivoryos/executions/records", headers=JSON, timeout=30)
        return len(reply.json()["workflow_data"])

    def busy(self) -> bool:
        return bool(self.session.get(f"{self.base}/ivoryos/executions/status", timeout=30).json()["busy"])

    def draft(self, name: str) -> None:
        """Make the session's current workflow one step on the deck's meter."""
        reply = self.session.post(f"{self.base}/ivoryos/draft/submit_python", timeout=30, json={
            "workflow_name": name, "script": "def workflow():\n    deck.meter.bump(by=1)\n", "prep": "", "cleanup": ""})
        assert reply.status_code == 200, reply.text[:300]


def write_files(directory: Path) -> None:
    """The deck's plugin module and its template, beside the deck script."""
    (directory / "sec3_plugin.py").write_text(PLUGIN)
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "templates" / "sec3.html").write_text(TEMPLATE)


def start_sec3(directory: Path, env: Optional[Dict[str, str]] = None) -> Sec3:
    """Start the sec3 deck in ``directory`` and log in."""
    write_files(directory)
    server = launch(DECK, directory, name="sec3_deck.py", env=env)
    try:
        return Sec3(server)
    except BaseException:
        server.stop()
        raise


def run_to_exit(directory: Path, env: Dict[str, str], timeout: float = 120.0) -> Tuple[int, str, bool]:
    """Run the sec3 deck until it exits: its exit code, its output, and whether its port ever listened."""
    import socket

    write_files(directory)
    (directory / "sec3_deck.py").write_text(DECK)
    port = free_port()
    full_env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1", **env}
    full_env.pop("IVORYOS_ACTIVE", None)
    proc = subprocess.Popen([PY, str(directory / "sec3_deck.py")], cwd=directory, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listened = False
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket() as sock:
            listened = listened or sock.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    output = proc.communicate(timeout=30)[0]
    return int(proc.returncode), output, listened


def logo_folder() -> Path:
    """IvoryOS's ``static/user_logos`` (in the installed package; IvoryOS not imported here)."""
    spec = importlib.util.find_spec("ivoryos")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "user_logos"


@pytest.fixture(scope="module")
def sec3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sec3]:
    running = start_sec3(tmp_path_factory.mktemp("sec3"))
    try:
        yield running
    finally:
        running.server.stop()


# ------------------------------------------------------------------ proven, printed, shown
@pytest.mark.server
def test_each_hardening_is_proven_then_printed_and_shown_on_the_health_page(sec3: Sec3) -> None:
    output = sec3.server.output()
    printed = [line for line in output.splitlines() if line.startswith(" * ivoryos_plugin: ")]
    for opt_out in OPT_OUTS:
        assert any(opt_out in line for line in printed), f"{opt_out} is not printed:\n{output}"
    assert sec3.hardening() == {item: "on" for item in [*ITEMS, *RENAMED]}
    listed = sec3.status()["hardening"]
    for old, new in RENAMED.items():  # the old key: a copy of the new one's entry, marked as renamed
        copy, entry = (next(h for h in listed if h["item"] == key) for key in (old, new))
        assert copy == {**entry, "item": old, "renamed_to": new}, listed
    page = sec3.session.get(f"{sec3.base}/ivoryos/plugins/", headers=HTML).text
    for item in ITEMS:
        assert f'data-hardening="{item}" data-state="on"' in page, item
    assert all(f'data-hardening="{old}"' not in page for old in RENAMED)  # the page shows each item once
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for opt_out in OPT_OUTS:
        assert opt_out in doc, f"docs/security.md does not document {opt_out}"


# ------------------------------------------------------------------ headers
PAGES = ["/ivoryos/", "/ivoryos/executions/config", "/ivoryos/draft", "/ivoryos/instruments/",
         "/ivoryos/instruments/deck.meter", "/ivoryos/executions/records", "/ivoryos/library/", "/ivoryos/help",
         "/ivoryos/sec3/", "/ivoryos/plugins/"]


@pytest.mark.server
@pytest.mark.parametrize("path", PAGES, ids=PAGES)
def test_every_page_has_a_csp_and_frame_options(sec3: Sec3, path: str) -> None:
    reply = sec3.session.get(sec3.base + path, headers=HTML, allow_redirects=False)
    assert reply.status_code == 200, f"{path}: {reply.status_code}"
    csp = reply.headers.get("Content-Security-Policy", "")
    for part in CSP_PARTS:
        assert part in csp, f"{path}: {part!r} not in {csp!r}"
    assert not re.search(r"https?://", csp), f"{path}: the CSP allows another origin: {csp}"
    assert reply.headers.get("X-Frame-Options") == "SAMEORIGIN" and reply.headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.server
def test_the_login_page_and_the_session_cookie(sec3: Sec3) -> None:
    fresh = requests.get(f"{sec3.base}/ivoryos/auth/login")
    assert all(part in fresh.headers.get("Content-Security-Policy", "") for part in CSP_PARTS)
    assert fresh.headers.get("X-Frame-Options") == "SAMEORIGIN"
    cookie = fresh.headers.get("Set-Cookie", "")
    assert cookie.startswith("session=") and "SameSite=Lax" in cookie, cookie


@pytest.mark.server
def test_sensitive_json_is_never_stored(sec3: Sec3) -> None:
    assert wait_until(lambda: sec3.session.get(f"{sec3.base}/ivoryos/sec3/history/level").json()["count"] > 0, 10)
    for path in ("/ivoryos/plugins/status.json", "/ivoryos/plugins/csrf.json", "/ivoryos/sec3/history/level",
                 "/ivoryos/sec3/history/level.csv", "/ivoryos/executions/status", "/ivoryos/plugins/deck.json"):
        reply = sec3.session.get(sec3.base + path)
        assert reply.status_code == 200, path
        assert "no-store" in reply.headers.get("Cache-Control", ""), f"{path}: {reply.headers.get('Cache-Control')}"
    action = sec3.session.post(f"{sec3.base}/ivoryos/sec3/actions/ping", json={})
    assert action.status_code == 200 and "no-store" in action.headers.get("Cache-Control", "")


def test_plugin_json_is_never_stored_and_pages_are_never_framed_in_any_host(tmp_path: Path) -> None:
    """The same headers on a plugin's routes without ``ivoryos_plugin.run`` (the dev host, in process)."""
    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import login_client

    plugin = Plugin("sec3dev", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "<!doctype html><html><head></head><body>page</body></html>")
    plugin.add_url_rule("/data", "data", lambda: {"reading": 1.5})

    @plugin.action(hardware=False)
    def ping() -> Dict[str, bool]:
        return {"pong": True}

    @plugin.stream("level", hz=20, record=True)
    def level() -> int:
        return 1

    app = create_app([plugin], data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        page = client.get("/ivoryos/sec3dev/")
        csp = page.headers.get("Content-Security-Policy", "")
        assert all(p in csp for p in ("frame-ancestors 'self'", "object-src 'none'", "base-uri 'self'")), csp
        assert page.headers.get("X-Frame-Options") == "SAMEORIGIN"
        history = "/ivoryos/sec3dev/history/level"
        assert wait_until(lambda: client.get(history).get_json()["count"] > 0, 10)
        replies = {path: client.get(path) for path in ("/ivoryos/plugins/status.json", "/ivoryos/plugins/csrf.json",
                                                        "/ivoryos/sec3dev/data", history, f"{history}.csv")}
        replies["action"] = client.post("/ivoryos/sec3dev/actions/ping", json={})
        for what, reply in replies.items():
            assert reply.status_code == 200, what
            assert "no-store" in reply.headers.get("Cache-Control", ""), f"{what}: {reply.headers.get('Cache-Control')}"
    finally:
        stop(app)


# ------------------------------------------------------------------ CSRF on IvoryOS's own routes
RUN_CONTROLS = ["/ivoryos/executions/pause-resume", "/ivoryos/executions/abort/next-task",
                "/ivoryos/executions/abort/next-iteration", "/ivoryos/executions/retry"]


@pytest.mark.server
@pytest.mark.parametrize("path", RUN_CONTROLS, ids=RUN_CONTROLS)
def test_run_controls_need_the_token_and_this_origin(sec3: Sec3, path: str) -> None:
    was = sec3.paused()
    for data in (None, {"csrf_token": "forged"}):
        refused = sec3.session.post(sec3.base + path, headers={**NO_TOKEN, **JSON}, data=data)
        assert refused.status_code == 400 and "CSRF" in refused.json()["error"], refused.text[:300]
        assert "X-CSRFToken" in refused.json()["error"]  # the fix is named
    other = sec3.session.post(sec3.base + path, headers={"Origin": f"http://127.0.0.1:{free_port()}", **JSON})
    assert other.status_code == 403 and "IVORYOS_PLUGIN_ALLOWED_ORIGINS" in other.text, other.text[:300]
    assert sec3.paused() == was, "a refused request paused or resumed the runner"
    if path.endswith("pause-resume"):  # the control: with the token (the page's header) it works
        assert sec3.session.post(sec3.base + path, headers=JSON).status_code == 200
        assert sec3.paused() != was
        assert sec3.session.post(sec3.base + path, headers=JSON).status_code == 200
        assert sec3.paused() == was


@pytest.mark.server
def test_a_run_starts_only_with_the_token(sec3: Sec3) -> None:
    sec3.draft("sec3_csrf_run")
    before = sec3.runs()
    refused = sec3.session.post(f"{sec3.base}/ivoryos/executions/config", headers={**NO_TOKEN, **JSON},
                                data={"repeat": "1"})
    assert refused.status_code == 400, refused.text[:300]
    time.sleep(0.5)
    assert sec3.runs() == before and not sec3.busy(), "a run started without the CSRF token"
    page = sec3.session.get(f"{sec3.base}/ivoryos/executions/config", headers=HTML).text  # the token in its form
    form = re.search(r'<form[^>]*name="run"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)">', page)
    assert form is not None, "the run form has no token"
    started = sec3.session.post(f"{sec3.base}/ivoryos/executions/config", headers={**NO_TOKEN, **HTML},
                                data={"repeat": "1", "batch_size": "1", "csrf_token": form.group(1)}, allow_redirects=False)
    assert started.status_code < 400, started.text[:300]
    assert wait_until(lambda: sec3.runs() == before + 1, 15), "IvoryOS's own form did not start the run"
    assert wait_until(lambda: not sec3.busy(), 30)


@pytest.mark.server
def test_ivoryos_pages_carry_the_token_and_the_script(sec3: Sec3) -> None:
    for path in ("/ivoryos/executions/config", "/ivoryos/", "/ivoryos/sec3/"):
        page = sec3.session.get(sec3.base + path, headers=HTML).text
        forms = re.findall(r"<form\b[^>]*method=[\"']?post[^>]*>", page, flags=re.I)
        assert forms, path
        for form in re.finditer(r"<form\b[^>]*method=[\"']?post[^>]*>(.*?)</form>", page, flags=re.I | re.S):
            assert 'name="csrf_token"' in form.group(1), f"{path}: a POST form without a token: {form.group(0)[:200]}"
        head = page[:page.lower().index("</head>")]
        assert 'name="csrf-token"' in head and "ivoryos_csrf.js" in head, path
        assert head.index("ivoryos_csrf.js") < head.index("jquery"), f"{path}: the script comes after IvoryOS's"
    script = sec3.session.get(f"{sec3.base}/ivoryos/plugins/static/ivoryos_csrf.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]


@pytest.mark.server
def test_an_ivoryos_page_for_two_sessions_loads_the_local_libraries_and_each_sessions_own_token(sec3: Sec3) -> None:
    # the CDN rewriting runs before the tokens go in (one lookup by IvoryOS's page as rendered, the same
    # for everyone): each session still gets its own token, and no library from a CDN
    from ivoryos_plugin.hosts import ivoryos as adapter

    other = ivoryos_login(sec3.base)
    for path in ("/ivoryos/", "/ivoryos/executions/config"):
        tokens = []
        for session in (sec3.session, other, sec3.session):
            page = session.get(sec3.base + path, headers=HTML).text
            loaded = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=[\"']([^\"']+)", page, flags=re.I)
            assert loaded and not [url for url in loaded if url in adapter.CDN_ASSETS], (path, loaded)
            assert any("/ivoryos/plugins/static/vendor/" in url for url in loaded), (path, loaded)
            meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
            fields = set(re.findall(r'name="csrf_token" value="([^"]+)"', page))
            assert meta and fields == {meta.group(1)}, (path, fields)
            tokens.append(meta.group(1))
        assert tokens[0] != tokens[1], f"{path}: two sessions were given one token"
        assert tokens[2] != tokens[1], f"{path}: the first session got the page made for the second"


# ------------------------------------------------------------------ uploads
@pytest.mark.server
@pytest.mark.parametrize("content,name,accepted", [
    (b"<html><body><script>alert(document.cookie)</script></body></html>", "logo.html", False),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "logo.svg", False),
    (PNG + b"<script>alert(1)</script>", "logo.html", False),  # a PNG's first bytes, named to be served as a page
    (b"just text", "logo.png", False),
    (PNG, "logo.png", True),
], ids=["html", "svg", "png-named-html", "text-named-png", "png"])
def test_a_logo_must_be_an_image(sec3: Sec3, content: bytes, name: str, accepted: bool) -> None:
    stored = f"sec3-{uuid.uuid4().hex[:8]}-{name}"
    path = logo_folder() / stored
    try:
        reply = sec3.session.post(f"{sec3.base}/ivoryos/customize-logo", files={"logo": (stored, content)},
                                  data={"mode": "add"}, allow_redirects=False)
        if not accepted:
            assert reply.status_code == 400 and "logo refused" in reply.text, reply.text[:300]
            assert not path.exists(), "the refused file was saved"
            return
        assert reply.status_code == 302, reply.text[:300]
        assert path.read_bytes() == content
        served = requests.get(f"{sec3.base}/ivoryos/static/user_logos/{stored}")
        assert served.status_code == 200 and served.content == content and served.headers["Content-Type"] == "image/png"
        assert served.headers["X-Content-Type-Options"] == "nosniff" and served.headers["Content-Disposition"] == "attachment"
        assert sec3.session.post(f"{sec3.base}/ivoryos/customize-logo", headers=NO_TOKEN, allow_redirects=False,
                                 files={"logo": (stored, content)}).status_code == 400  # without the token
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.server
def test_a_file_already_in_the_logo_folder_is_never_a_page(sec3: Sec3) -> None:
    path = logo_folder() / f"sec3-{uuid.uuid4().hex[:8]}-old.html"  # uploaded before the hardening
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<script>fetch('/ivoryos/executions/pause-resume', {method: 'POST'})</script>")
    try:
        served = requests.get(f"{sec3.base}/ivoryos/static/user_logos/{path.name}")
        assert served.status_code == 200
        assert served.headers["Content-Disposition"] == "attachment"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]
    finally:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ opting out
@pytest.mark.server
def test_opting_out_gives_ivoryos_its_own_behaviour(tmp_path: Path) -> None:
    kwargs = {"ivoryos_csrf": False, "security_headers": False, "samesite_cookie": False, "check_uploads": False}
    opted = start_sec3(tmp_path, env={"SEC3_RUN_KWARGS": json.dumps(kwargs)})
    stored = logo_folder() / f"sec3-{uuid.uuid4().hex[:8]}-page.html"
    try:
        printed = opted.server.output()
        for warning in ("take POSTs without a CSRF token", "no Content-Security-Policy", "keeps the config's SameSite",
                        "takes any file as a logo"):
            assert warning in printed, f"{warning!r} is not printed:\n{printed}"
        states = opted.hardening()
        assert {k: states[k] for k in ("csrf", "headers", "cookie", "uploads")} == dict.fromkeys(
            ("csrf", "headers", "cookie", "uploads"), "off")
        assert {k: v for k, v in states.items() if k not in ("csrf", "headers", "cookie", "uploads")} == dict.fromkeys(
            ("signup", "login", "socket", "host_header", "hosts", "sessions", "login_csrf"), "on")
        pause = f"{opted.base}/ivoryos/executions/pause-resume"
        assert opted.session.post(pause, headers={**NO_TOKEN, **JSON}).status_code == 200
        assert opted.session.post(pause, headers={**NO_TOKEN, **JSON}).status_code == 200
        page = opted.session.get(f"{opted.base}/ivoryos/executions/config", headers=HTML)
        assert "Content-Security-Policy" not in page.headers and "X-Frame-Options" not in page.headers
        assert "SameSite" not in requests.get(f"{opted.base}/ivoryos/auth/login").headers.get("Set-Cookie", "x")
        upload = opted.session.post(f"{opted.base}/ivoryos/customize-logo", files={"logo": (stored.name, b"<p>page</p>")},
                                    data={"mode": "add"}, allow_redirects=False)
        assert upload.status_code == 302 and stored.exists()
        assert requests.get(f"{opted.base}/ivoryos/static/user_logos/{stored.name}").headers["Content-Type"].startswith(
            "text/html")  # what the check prevents: the "logo" is a page on the lab's origin
    finally:
        stored.unlink(missing_ok=True)
        opted.server.stop()


@pytest.mark.server
def test_with_every_response_hardening_opted_out_ivoryos_pages_still_load_the_local_libraries(tmp_path: Path) -> None:
    # no hardening step after the request: the CDN rewriting is then not folded into one, and stays a hook of its own
    from ivoryos_plugin.hosts import ivoryos as adapter

    kwargs = {"ivoryos_csrf": False, "login_csrf": False, "allow_signup": True, "security_headers": False,
              "check_uploads": False}
    opted = start_sec3(tmp_path, env={"SEC3_RUN_KWARGS": json.dumps(kwargs)})
    try:
        states = opted.hardening()
        assert {states[k] for k in ("csrf", "login_csrf", "signup", "headers", "uploads")} == {"off"}, states
        page = opted.session.get(f"{opted.base}/ivoryos/", headers=HTML)
        loaded = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=[\"']([^\"']+)", page.text, flags=re.I)
        assert page.status_code == 200 and "Content-Security-Policy" not in page.headers
        assert loaded and not [url for url in loaded if url in adapter.CDN_ASSETS], loaded
        assert any("/ivoryos/plugins/static/vendor/" in url for url in loaded), loaded
    finally:
        opted.server.stop()


# ------------------------------------------------------------------ failing closed
FAILURES = [  # (SEC3_PATCH, what the message must name)
    ("app-not-recognised", ["not recognised", "ivoryos_csrf=False", "allow_anonymous_socket=True",
                            "security_headers=False", "check_uploads=False", "allow_signup=True"]),
    ("socket-guard-not-installable", ["IvoryOS's Socket.IO namespace", "allow_anonymous_socket=True",
                                      "handler table"]),
    ("socket-guard-claims-success", ["IvoryOS's Socket.IO namespace", "allow_anonymous_socket=True", "is not the guard"]),
    ("run-controls-renamed", ["CSRF token and origin on IvoryOS's own routes", "ivoryos_csrf=False",
                              "execute.start_run"]),
    ("guard-removed-before-serving", ["just before serving", "before_request", "allow_anonymous=True",
                                      "ivoryos_csrf=False", "check_uploads=False"]),
    ("no-check-before-serving", ["before IvoryOS serves", "allow_anonymous_socket=True"]),
]


@pytest.mark.server
@pytest.mark.parametrize("patch,named", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_hardening_that_cannot_be_proven_stops_the_server(tmp_path: Path, patch: str, named: List[str]) -> None:
    code, output, listened = run_to_exit(tmp_path, {"SEC3_PATCH": patch})
    assert code != 0, output
    assert not listened, "the server listened before refusing"
    assert "Traceback" not in output and "Serving Flask app" not in output, output
    for text in named:
        assert text in output, f"{text!r} is not in the refusal:\n{output}"
    assert "does not serve" in output
    if patch == "socket-guard-not-installable":  # the refusal docs/security.md shows is the one printed
        doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
        shown = [b for b in re.findall(r"```text\n(.*?)```", doc, flags=re.S) if "does not serve" in b]
        assert len(shown) == 1 and shown[0] in output + "\n", shown


@pytest.mark.server
def test_an_opted_out_item_does_not_stop_the_server(tmp_path: Path) -> None:
    served = start_sec3(tmp_path, env={"SEC3_PATCH": "socket-guard-not-installable",
                                       "SEC3_RUN_KWARGS": json.dumps({"allow_anonymous_socket": True})})
    try:
        states = served.hardening()
        assert states["socket"] == "off" and all(states[k] == "on" for k in ITEMS if k != "socket"), states
    finally:
        served.server.stop()


@pytest.mark.server
def test_the_health_page_shows_a_hardening_undone_after_start(tmp_path: Path) -> None:
    flag = tmp_path / "undo-now"
    undone = start_sec3(tmp_path, env={"SEC3_UNDO": str(flag)})
    try:
        assert undone.hardening()["socket"] == "on"  # served with every item proven
        flag.touch()  # now the plugin undoes one, after start
        assert wait_until(lambda: undone.hardening()["socket"] == "failed", 10), undone.status()["hardening"]
        item = next(h for h in undone.status()["hardening"] if h["item"] == "socket")
        assert "is not the guard" in item["detail"] and item["opt_out"] == "allow_anonymous_socket=True"
        page = undone.session.get(f"{undone.base}/ivoryos/plugins/", headers=HTML).text
        assert 'data-hardening="socket" data-state="failed"' in page
        assert all(state == "on" for key, state in undone.hardening().items() if key != "socket")
    finally:
        undone.server.stop()


def test_an_app_that_is_not_ivoryos_is_refused_and_a_spent_hook_does_nothing(tmp_path: Path) -> None:
    """install() on an app that is not IvoryOS's raises naming each item (it used to return silently);
    once ``ivoryos.run`` has returned, a hook it never ran leaves other apps of the process alone."""
    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts import hardening
    from ivoryos_plugin.hosts.devhost import stop

    plugin = Plugin("sec3spent", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    try:
        ext = app.extensions["ivoryos_plugin"]
        report = hardening.Report(hardening.Options(allow_signup=True))
        with pytest.raises(hardening.HardeningError, match=r"(?s)not recognised.*ivoryos_csrf=False") as refused:
            hardening.install(app, ext, report)
        assert "allow_signup=True" not in str(refused.value)  # an opted-out item is not named
        assert {h["item"]: h["state"] for h in report.status()}["signup"] == "off"
        assert {h["state"] for h in report.status() if h["item"] != "signup"} == {"failed"}
        before = list(app.before_request_funcs.get(None, []))
        spent = hardening.Report(hardening.Options())
        spent.armed = False
        hardening.install(app, ext, spent)  # nothing raised, nothing installed
        assert app.before_request_funcs.get(None, []) == before and not spent.installed
    finally:
        stop(app)


# ------------------------------------------------------------------ the adapter's answer
def test_guarding_the_default_namespace_says_whether_it_guarded_something() -> None:
    import socketio as python_socketio
    from socketio.exceptions import ConnectionRefusedError as Refused

    from ivoryos_plugin.hosts import ivoryos as adapter

    def refuse_all(sid: str, environ: Any, auth: Any) -> Optional[str]:
        return "no"

    assert adapter.guard_default_namespace(types.SimpleNamespace(server=None), refuse_all, print) is False
    server = python_socketio.Server()
    wrapper = types.SimpleNamespace(server=server)
    assert adapter.guard_default_namespace(wrapper, refuse_all, print) is False, "no connect handler: nothing guarded"
    assert not adapter.default_namespace_guarded(wrapper)
    seen: List[str] = []
    server.on("connect", lambda sid, environ, auth=None: seen.append(sid))
    assert adapter.guard_default_namespace(wrapper, refuse_all, print) is True
    assert adapter.default_namespace_guarded(wrapper)
    with pytest.raises(Refused):
        server.handlers["/"]["connect"]("sid1", {}, None)
    assert seen == [] and adapter.default_namespace_refusal(wrapper, {}) == "no"
