"""Security round two, IvoryOS's own open doors (issue 13, items 11 to 14), closed by
``ivoryos_plugin.run`` and left as IvoryOS has them by plain ``ivoryos.run``. Real servers (the red
deck under ``ivoryos_plugin.run``), python-socketio and raw HTTP clients, and headless Chromium for
the cross-origin page and the DNS-rebinding page (``--host-resolver-rules`` maps a fake name to
127.0.0.1).

11. signup is off unless ``allow_signup=True``;
12. every IvoryOS route but login and static needs a login; the default namespace refuses
    anonymous clients and other origins;
13. a Host header that is not loopback, an IP address or configured is answered 400;
14. logout ends the session on the server; the login form needs its CSRF token."""
from __future__ import annotations

import http.server
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import socketio

from browsing import CHROMIUM, CHROMIUM_ARGS
from support import ROOT, free_port, login_form_token, wait_until

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import NS, SIO_PATH, RawEngineIO, RedServer, start_red  # noqa: E402

JSON = {"Accept": "application/json"}
ANONYMOUS_DOORS = [  # IvoryOS 1.7.2 routes without @login_required (and the run controls among them)
    ("POST", "/ivoryos/executions/pause-resume"), ("POST", "/ivoryos/executions/abort/next-task"),
    ("POST", "/ivoryos/executions/abort/next-iteration"), ("POST", "/ivoryos/executions/retry"),
    ("GET", "/ivoryos/executions/status"), ("GET", "/ivoryos/files/script-json"),
    ("GET", "/ivoryos/files/script-python"), ("GET", "/ivoryos/files/execution-configs"),
    ("POST", "/ivoryos/draft/submit_python"), ("GET", "/ivoryos/help"), ("GET", "/ivoryos/auth/signup"),
]
HARDENINGS = ["allow_signup=True", "allow_anonymous=True", "allow_anonymous_socket=True",
              "IVORYOS_PLUGIN_ALLOWED_HOSTS", "keep_sessions_after_logout=True", "login_csrf=False"]


@pytest.fixture(scope="module")
def red(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp("hardened"), "run", env={"IVORYOS_PLUGIN_ALLOWED_HOSTS": "lab.test"})
    try:
        yield running
    finally:
        running.server.stop()


def fresh_login(red: RedServer, username: str = "admin", password: str = "admin") -> requests.Session:
    session = requests.Session()
    form = {"username": username, "password": password}
    form.update(login_form_token(session.get(f"{red.base}/ivoryos/auth/login").text))
    session.post(f"{red.base}/ivoryos/auth/login", data=form)
    return session


def logged_in(red: RedServer, session: requests.Session) -> bool:
    return session.get(f"{red.base}/ivoryos/", allow_redirects=False).status_code == 200


def paused(red: RedServer) -> bool:
    return bool(red.session.get(f"{red.base}/ivoryos/executions/status").json()["paused"])


def cookie_of(session: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


# ------------------------------------------------------------------ printed and documented
@pytest.mark.server
def test_each_hardening_is_printed_at_start_with_its_opt_out(red: RedServer) -> None:
    out = red.server.output()
    printed = [line for line in out.splitlines() if line.startswith(" * ivoryos_plugin: ")]
    for opt_out in HARDENINGS:
        assert any(opt_out in line for line in printed), f"{opt_out} is not printed:\n{out}"
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for opt_out in HARDENINGS:
        assert opt_out in doc, f"docs/security.md does not document {opt_out}"


# ------------------------------------------------------------------ 11. signup
@pytest.mark.server
def test_signup_is_off(red: RedServer) -> None:
    page = requests.get(f"{red.base}/ivoryos/auth/signup", allow_redirects=False)
    assert page.status_code in (403, 404) or (page.status_code == 302 and "signup" not in page.headers["Location"])
    made = requests.post(f"{red.base}/ivoryos/auth/signup", data={"username": "mallory", "password": "pw"},
                         allow_redirects=False)
    assert made.status_code == 403, made.text[:200]
    assert "allow_signup=True" in made.text
    assert not logged_in(red, fresh_login(red, "mallory", "pw")), "the signup made an account"
    assert "auth/signup" not in requests.get(f"{red.base}/ivoryos/auth/login").text, "the login page offers signup"


# ------------------------------------------------------------------ 12. IvoryOS's routes and namespace
@pytest.mark.server
@pytest.mark.parametrize("method,path", ANONYMOUS_DOORS, ids=[p for _, p in ANONYMOUS_DOORS])
def test_ivoryos_routes_need_a_login(red: RedServer, method: str, path: str) -> None:
    was_paused = paused(red)
    program = requests.request(method, red.base + path, headers=JSON, allow_redirects=False, json={})
    assert program.status_code in (401, 403), f"{method} {path}: {program.status_code} {program.text[:200]}"
    page = requests.request(method, red.base + path, allow_redirects=False)
    assert page.status_code in (302, 401, 403) and "auth/login" in page.headers.get("Location", "auth/login")
    assert paused(red) == was_paused, "an anonymous request paused or resumed the runner"
    assert requests.get(f"{red.base}/ivoryos/auth/login").status_code == 200  # login stays open
    assert requests.get(f"{red.base}/ivoryos/static/style.css").status_code in (200, 304, 404)


@pytest.mark.server
def test_ivoryos_static_files_and_login_stay_public(red: RedServer) -> None:
    page = requests.get(f"{red.base}/ivoryos/auth/login")
    assert page.status_code == 200
    assets = re.findall(r'(?:href|src)="(/ivoryos/static/[^"]+)"', page.text)
    assert assets, page.text[:500]
    for asset in assets[:5]:
        assert requests.get(red.base + asset).status_code == 200, asset


@pytest.mark.server
def test_the_default_namespace_refuses_anonymous_clients_and_other_origins(red: RedServer) -> None:
    was_paused = paused(red)
    attempts = [({}, None), ({"Cookie": red.cookie()}, "http://evil.example:8080")]
    for headers, origin in attempts:
        client = socketio.Client(reconnection=False, websocket_extra_options={"origin": origin} if origin else {})
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(red.base, socketio_path=SIO_PATH, headers=headers, transports=["websocket"], wait_timeout=10)
        client.disconnect()
    raw = RawEngineIO(red.base)  # a hand-made client sends events without a namespace connection
    raw.send("40", '42["pause"]', '42["abort_current",{}]')
    time.sleep(0.5)
    raw.close()
    assert paused(red) == was_paused, "an anonymous socket paused or resumed the runner"
    own = socketio.Client(reconnection=False)
    seen: List[Any] = []
    own.on("pause_status", lambda data: seen.append(data))
    own.connect(red.base, socketio_path=SIO_PATH, headers={"Cookie": red.cookie()}, transports=["websocket"],
                wait_timeout=10)  # the control: IvoryOS's own page is let in
    try:
        assert wait_until(lambda: bool(seen), 5), "IvoryOS's connect handler did not run"
    finally:
        own.disconnect()


class OtherSite:
    """A page on another origin (127.0.0.1, another port) that tries IvoryOS's socket."""

    def __init__(self, target: str) -> None:
        page = f"""<!doctype html><html><head>
<script src="{target}/ivoryos/plugins/static/vendor/socket.io.min.js"></script></head><body><p id="out">...</p>
<script>
window.outcome = new Promise(resolve => {{
  const s = io("{target}", {{path: "/ivoryos/socket.io", transports: ["websocket"], reconnection: false}});
  s.on("connect", () => {{ s.emit("pause"); s.emit("abort_current", {{}}); setTimeout(() => resolve("connected"), 800); }});
  s.on("connect_error", e => resolve("refused: " + e.message));
  setTimeout(() => resolve("timeout"), 8000);
}});
</script></body></html>""".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="other-site", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def browser(*rules: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        args = CHROMIUM_ARGS + ([f"--host-resolver-rules={', '.join(rules)}"] if rules else [])
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


def browser_login(page: Any, base: str) -> None:
    page.goto(f"{base}/ivoryos/auth/login")
    page.fill("#username", "admin")
    page.fill("#password", "admin")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ivoryos/?$"))


@pytest.mark.server
@pytest.mark.browser
def test_a_page_on_another_origin_cannot_drive_the_runner(red: RedServer) -> None:
    was_paused = paused(red)
    site = OtherSite(red.base)
    chromium = browser()
    try:
        context = next(chromium).new_context()
        page = context.new_page()
        browser_login(page, red.base)  # the lab's browser is logged in to IvoryOS
        page.goto(site.url)
        outcome = page.evaluate("window.outcome")
        assert outcome.startswith("refused"), f"the other origin's socket: {outcome}"
        assert paused(red) == was_paused, "a page on another origin paused the runner"
        context.close()
    finally:
        chromium.close()
        site.close()


# ------------------------------------------------------------------ 13. Host allow-list (DNS rebinding)
ATTACK = """async () => {
  const out = {};
  const form = (o) => new URLSearchParams(o);
  out.signup = (await fetch("/ivoryos/auth/signup", {method: "POST", body: form({username: "rebind", password: "pw"})})).status;
  const login = await (await fetch("/ivoryos/auth/login")).text();
  const token = (login.match(/name="csrf_token"[^>]*value="([^"]*)"/) || [])[1] || "";
  out.login = (await fetch("/ivoryos/auth/login", {method: "POST", body: form({username: "rebind", password: "pw", csrf_token: token})})).url;
  const csrf = await fetch("/ivoryos/plugins/csrf.json");
  const value = csrf.ok ? (await csrf.json()).csrf_token : "";
  out.tare = (await fetch("/ivoryos/red/actions/tare", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": value}, body: "{}"})).status;
  out.socket = await new Promise(resolve => {
    const s = io("/ivoryos/red", {path: "/ivoryos/socket.io", transports: ["polling"], reconnection: false});
    s.on("connect", () => resolve("connected"));
    s.on("connect_error", e => resolve("refused: " + e.message));
    setTimeout(() => resolve("timeout"), 8000);
  });
  return out;
}"""


@pytest.mark.server
def test_other_host_headers_get_400(red: RedServer) -> None:
    for path in ("/ivoryos/auth/login", "/ivoryos/", f"{NS}/", "/ivoryos/plugins/csrf.json",
                 f"{SIO_PATH}/?EIO=4&transport=polling"):
        for host in (f"rebind.test:{red.server.port}", "evil.example", f"127.0.0.1.nip.io:{red.server.port}"):
            reply = requests.get(red.base + path, headers={"Host": host}, cookies=red.session.cookies,
                                 allow_redirects=False)
            assert reply.status_code == 400, f"Host {host} {path}: {reply.status_code}"
            assert "IVORYOS_PLUGIN_ALLOWED_HOSTS" in reply.text
    for host in (f"127.0.0.1:{red.server.port}", f"localhost:{red.server.port}", f"lab.test:{red.server.port}",
                 f"[::1]:{red.server.port}", f"192.168.7.7:{red.server.port}"):
        assert requests.get(f"{red.base}/ivoryos/auth/login", headers={"Host": host}).status_code == 200, host


@pytest.mark.server
@pytest.mark.browser
def test_a_dns_rebinding_page_gets_nothing(red: RedServer) -> None:
    chromium = browser("MAP rebind.test 127.0.0.1", "MAP lab.test 127.0.0.1")
    try:
        context = next(chromium).new_context()
        page = context.new_page()
        rebound = f"http://rebind.test:{red.server.port}"
        first = page.goto(f"{rebound}/ivoryos/auth/login")
        assert first is not None and first.status == 400
        page.add_script_tag(url=f"{red.base}/ivoryos/plugins/static/vendor/socket.io.min.js")
        outcome: Dict[str, Any] = page.evaluate(ATTACK)
        assert outcome["signup"] == 400 and outcome["tare"] == 400, outcome
        assert outcome["socket"] != "connected", outcome
        assert not logged_in(red, fresh_login(red, "rebind", "pw")), "the rebinding page made an account"
        configured = page.goto(f"http://lab.test:{red.server.port}/ivoryos/auth/login")
        assert configured is not None and configured.status == 200  # IVORYOS_PLUGIN_ALLOWED_HOSTS=lab.test
        context.close()
    finally:
        chromium.close()


# ------------------------------------------------------------------ 14. sessions
@pytest.mark.server
def test_a_cookie_captured_before_logout_is_refused_after_it(red: RedServer) -> None:
    victim = fresh_login(red)
    assert logged_in(red, victim)
    captured = dict(victim.cookies.items())
    assert victim.get(f"{red.base}/ivoryos/auth/logout").status_code == 200
    replay = requests.Session()
    replay.cookies.update(captured)
    assert replay.get(f"{red.base}/ivoryos/", allow_redirects=False).status_code == 302
    assert replay.get(f"{red.base}{NS}/", headers=JSON, allow_redirects=False).status_code == 401
    assert replay.get(f"{red.base}/ivoryos/executions/status", headers=JSON).status_code in (401, 403)
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(red.base, socketio_path=SIO_PATH, namespaces=[NS], transports=["websocket"],
                       headers={"Cookie": "; ".join(f"{k}={v}" for k, v in captured.items())}, wait_timeout=10)
    client.disconnect()
    assert logged_in(red, red.session), "logging out one session ended another"


@pytest.mark.server
def test_a_session_of_a_deleted_user_is_refused_at_once(red: RedServer) -> None:
    # the login check remembers a user it loaded while IvoryOS's database is unchanged (issue 25):
    # a user deleted by another program is nobody on the very next request
    import sqlite3

    import bcrypt

    database = red.server.cwd / "ivoryos_data" / "ivoryos.db"
    hashed = bcrypt.hashpw(b"temporary", bcrypt.gensalt(4)).decode()
    with sqlite3.connect(database) as conn:
        conn.execute('INSERT INTO "user" (username, "hashPassword") VALUES (?, ?)', ("leaving", hashed))
    conn.close()
    leaving = fresh_login(red, "leaving", "temporary")
    status = f"{red.base}/ivoryos/executions/status"  # a route IvoryOS answers without @login_required
    for _ in range(3):  # loaded once, then remembered
        assert leaving.get(status, headers=JSON).status_code == 200
    with sqlite3.connect(database) as conn:
        conn.execute('DELETE FROM "user" WHERE username = ?', ("leaving",))
    conn.close()
    assert leaving.get(status, headers=JSON).status_code == 401
    assert leaving.get(f"{red.base}/ivoryos/", allow_redirects=False).status_code == 302
    assert red.session.get(status, headers=JSON).status_code == 200, "another user's session was ended"


@pytest.mark.server
def test_the_login_form_needs_its_csrf_token(red: RedServer) -> None:
    form = requests.get(f"{red.base}/ivoryos/auth/login").text
    assert login_form_token(form), "the login form has no csrf_token field"
    forged = requests.Session()
    forged.get(f"{red.base}/ivoryos/auth/login")
    refused = forged.post(f"{red.base}/ivoryos/auth/login", data={"username": "admin", "password": "admin"},
                          allow_redirects=False)
    assert refused.status_code == 400 and "CSRF" in refused.text, refused.text[:300]
    assert not logged_in(red, forged)
    other = requests.post(f"{red.base}/ivoryos/auth/login", allow_redirects=False,  # another site's form
                          data={"username": "admin", "password": "admin", **login_form_token(form)})
    assert other.status_code == 400, "a token from another session was accepted"
    assert logged_in(red, fresh_login(red))  # the control: the form as served works


@pytest.mark.server
def test_logout_survives_a_restart(tmp_path: Path) -> None:
    first = start_red(tmp_path, "run")
    try:
        victim = fresh_login(first)
        captured = dict(victim.cookies.items())
        kept = dict(first.session.cookies.items())
        victim.get(f"{first.base}/ivoryos/auth/logout")
    finally:
        first.server.stop()
    again = start_red(tmp_path, "run", login_now=False)
    try:
        base = again.base
        replay = requests.Session()
        replay.cookies.update(captured)
        assert replay.get(f"{base}/ivoryos/", allow_redirects=False).status_code == 302
        still = requests.Session()
        still.cookies.update(kept)
        assert still.get(f"{base}/ivoryos/", allow_redirects=False).status_code == 200, "a live session was lost"
    finally:
        again.stop()


# ------------------------------------------------------------------ the opt-outs, and plain ivoryos.run
@pytest.fixture(scope="module", params=["opted-out", "plain-ivoryos"])
def open_doors(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    kwargs = {"allow_signup": True, "allow_anonymous": True, "allow_anonymous_socket": True, "allowed_hosts": "*",
              "keep_sessions_after_logout": True, "login_csrf": False}
    mode = "run" if request.param == "opted-out" else "ivoryos"
    running = start_red(tmp_path_factory.mktemp(request.param), mode, env={"RED_RUN_KWARGS": json.dumps(kwargs)})
    try:
        yield running
    finally:
        running.server.stop()


@pytest.mark.server
def test_opting_out_gives_ivoryos_its_own_behaviour(open_doors: RedServer) -> None:
    red = open_doors
    if red.mode == "run":
        printed = red.server.output()
        for warning in ("signup is open", "without a login", "anonymous clients", "any Host",
                        "keeps working after logout", "without its CSRF token"):
            assert warning in printed, f"{warning!r} is not printed:\n{printed}"
    assert requests.get(f"{red.base}/ivoryos/executions/status", headers=JSON).status_code == 200
    made = requests.post(f"{red.base}/ivoryos/auth/signup", data={"username": f"u{time.monotonic_ns()}",
                                                                  "password": "pw"}, allow_redirects=False)
    assert made.status_code == 302
    anonymous = socketio.Client(reconnection=False)
    anonymous.connect(red.base, socketio_path=SIO_PATH, transports=["websocket"], wait_timeout=10)
    anonymous.disconnect()
    assert requests.get(f"{red.base}/ivoryos/auth/login", headers={"Host": "rebind.test"}).status_code == 200
    plain = requests.Session()
    plain.post(f"{red.base}/ivoryos/auth/login", data={"username": "admin", "password": "admin"})
    assert logged_in(red, plain), "a login without a CSRF token was refused"
    captured = dict(plain.cookies.items())
    plain.get(f"{red.base}/ivoryos/auth/logout")
    replay = requests.Session()
    replay.cookies.update(captured)
    assert replay.get(f"{red.base}/ivoryos/", allow_redirects=False).status_code == 200
