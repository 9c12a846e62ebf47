"""Security round three (issue 23) in headless Chromium (Debian's, through Playwright): the lab's
browser is logged in to IvoryOS under ``ivoryos_plugin.run`` and visits an attacker's page served
from another port of 127.0.0.1 (the same site: the session cookie goes along, so the CSRF token and
the origin check are what stop it) and from another site name (``attacker.test``, mapped to
127.0.0.1 by ``--host-resolver-rules``: ``SameSite=Lax`` keeps the cookie home too). The page
cannot start, pause or abort a run, upload a file or frame IvoryOS; the same page does all of it
when the hardening is opted out (the control). IvoryOS's own forms and scripts keep working, and
its pages load under the Content-Security-Policy without a violation.

The deck is tests/test_security3_host.py's ``sec3_deck.py``."""
from __future__ import annotations

import http.server
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

from browsing import CHROMIUM, CHROMIUM_ARGS, Watch
from support import free_port, wait_until
from test_security3_host import PNG, Sec3, logo_folder, start_sec3

ATTACKER = "attacker.test"
#: IvoryOS 1.7.2's own broken links (tests/test_offline.py), and a logo removed by a test
KNOWN_404S = [r"/static/gui_annotation/Slide1\.PNG", r"/executions/records/\d+/optimizer_plots",
              r"/static/user_logos/"]
ATTACK_PATHS = ["/ivoryos/executions/config", "/ivoryos/executions/abort/next-task", "/ivoryos/customize-logo",
                "/ivoryos/executions/pause-resume"]
CSP_WATCH = """document.addEventListener("securitypolicyviolation", (e) => {
  (window.__cspViolations = window.__cspViolations || []).push(e.violatedDirective + " " + e.blockedURI);
});"""


def attack_page(target: str, logo: str) -> bytes:
    """The attacker's page: a form post that starts a run (IvoryOS's run form, aimed at a hidden
    frame), fetches that pause, abort and upload a "logo", and IvoryOS's run page in a frame."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cute cats</title></head><body>
<iframe id="victim" name="victim" src="{target}/ivoryos/executions/config" width="900" height="500"></iframe>
<iframe name="sink" width="10" height="10"></iframe>
<form id="start" method="POST" action="{target}/ivoryos/executions/config" target="sink">
  <input name="repeat" value="1"><input name="batch_size" value="1"></form>
<script>
window.attack = async function () {{
  const send = (path, body) => fetch("{target}" + path, {{method: "POST", mode: "no-cors", credentials: "include", body}})
    .then(() => "sent", (e) => "failed: " + e);
  const logo = new FormData();
  logo.append("logo", new Blob(["<script>fetch('/ivoryos/executions/pause-resume', {{method: 'POST'}})</scr" + "ipt>"],
                               {{type: "text/html"}}), "{logo}");
  logo.append("mode", "add");
  const out = {{}};
  document.getElementById("start").submit();  // a plain form post, as the classic CSRF page does
  await new Promise((resolve) => setTimeout(resolve, 1500));
  out.abort = await send("/ivoryos/executions/abort/next-task", new URLSearchParams());
  out.upload = await send("/ivoryos/customize-logo", logo);
  out.pause = await send("/ivoryos/executions/pause-resume", new URLSearchParams());
  await new Promise((resolve) => setTimeout(resolve, 500));
  return out;
}};
</script></body></html>""".encode()


class AttackSite:
    """The attacker's web server on 127.0.0.1 (another port), one page per target."""

    def __init__(self) -> None:
        self.pages: Dict[str, bytes] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = pages.get(self.path.split("?")[0], b"not found")
                self.send_response(200 if self.path.split("?")[0] in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="attack-site", daemon=True)
        self.thread.start()

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=CHROMIUM_ARGS + [f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1"])
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[AttackSite]:
    running = AttackSite()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def sec3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sec3]:
    running = start_sec3(tmp_path_factory.mktemp("sec3-browser"))
    try:
        yield running
    finally:
        running.server.stop()


def logged_in(chromium: Any, base: str) -> Any:
    """A new browser context logged in to IvoryOS (through its login form), with a draft workflow."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.goto(f"{base}/ivoryos/auth/login")
    page.fill("#username", "admin")
    page.fill("#password", "admin")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ivoryos/?$"))
    token = context.request.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
    drafted = context.request.post(f"{base}/ivoryos/draft/submit_python", headers={"X-CSRFToken": token}, data={
        "workflow_name": "victim_run", "script": "def workflow():\n    deck.meter.bump(by=1)\n", "prep": "", "cleanup": ""})
    assert drafted.ok, drafted.text()
    page.close()
    return context


def attack(context: Any, site: AttackSite, host: str, target: str, logo: str) -> Any:
    """Open the attacker's page (on ``host``) in the logged-in context and run its attack."""
    path = f"/{uuid.uuid4().hex[:8]}.html"
    site.pages[path] = attack_page(target, logo)
    page = context.new_page()
    page.goto(site.url(host, path))
    outcome = page.evaluate("window.attack()")
    assert set(outcome) == {"pause", "abort", "upload"}, outcome
    return page


def answers(output: str, paths: List[str]) -> Dict[str, List[int]]:
    """The statuses the server's access log shows for POSTs to each of ``paths``."""
    found: Dict[str, List[int]] = {p: [] for p in paths}
    for line in output.splitlines():
        match = re.search(r'POST (\S+) HTTP/1\.1[^"]*" (\d{3})', line)  # (Werkzeug colours the request)
        if match and match.group(1) in found:
            found[match.group(1)].append(int(match.group(2)))
    return found


def framed(page: Any) -> str:
    """The URL the attacker's frame of IvoryOS ended on (``chrome-error://`` when it was refused)."""
    frame = page.frame(name="victim")
    assert frame is not None
    assert wait_until(lambda: frame.url not in ("", "about:blank"), 10), frame.url
    return str(frame.url)


# ------------------------------------------------------------------ the attacker's page
@pytest.mark.server
@pytest.mark.browser
@pytest.mark.parametrize("where", ["another-port", "another-site"])
def test_a_page_elsewhere_cannot_drive_upload_or_frame_ivoryos(chromium: Any, site: AttackSite, sec3: Sec3,
                                                               where: str) -> None:
    host = "127.0.0.1" if where == "another-port" else ATTACKER
    logo = f"sec3-{uuid.uuid4().hex[:8]}.html"
    context = logged_in(chromium, sec3.base)
    try:
        was_paused, runs, before = sec3.paused(), sec3.runs(), len(sec3.server.output())
        page = attack(context, site, host, sec3.base, logo)
        assert wait_until(lambda: all(answers(sec3.server.output()[before:], ATTACK_PATHS).values()), 10), \
            answers(sec3.server.output()[before:], ATTACK_PATHS)
        # another port is the same site: the cookie goes along, and the origin check refuses (403); from
        # another site SameSite=Lax keeps the cookie home: IvoryOS sees nobody logged in (401)
        expected = 403 if where == "another-port" else 401
        for path, statuses in answers(sec3.server.output()[before:], ATTACK_PATHS).items():
            assert statuses and set(statuses) == {expected}, f"{where}: POST {path}: {statuses}"
        assert sec3.paused() == was_paused, f"{where}: the page paused or resumed the runner"
        assert sec3.runs() == runs and not sec3.busy(), f"{where}: the page started a run"
        assert not (logo_folder() / logo).exists(), f"{where}: the page uploaded a file"
        assert framed(page).startswith("chrome-error://"), f"{where}: IvoryOS's run page was framed: {framed(page)}"
        assert page.frame(name="victim").locator("form[name=run]").count() == 0
    finally:
        (logo_folder() / logo).unlink(missing_ok=True)
        context.close()


@pytest.mark.server
@pytest.mark.browser
def test_the_same_page_succeeds_when_the_hardening_is_opted_out(chromium: Any, site: AttackSite,
                                                                 tmp_path: Path) -> None:
    """The control: the attack page is real (without the hardening it starts a run, pauses, uploads, frames)."""
    kwargs = {"ivoryos_csrf": False, "security_headers": False, "samesite_cookie": False, "check_uploads": False}
    opted = start_sec3(tmp_path, env={"SEC3_RUN_KWARGS": json.dumps(kwargs)})
    logo = f"sec3-{uuid.uuid4().hex[:8]}.html"
    context = logged_in(chromium, opted.base)
    try:
        was_paused, runs, before = opted.paused(), opted.runs(), len(opted.server.output())
        page = attack(context, site, "127.0.0.1", opted.base, logo)
        assert wait_until(lambda: all(answers(opted.server.output()[before:], ATTACK_PATHS).values()), 10)
        for path, statuses in answers(opted.server.output()[before:], ATTACK_PATHS).items():
            assert all(status in (200, 302) for status in statuses), f"POST {path}: {statuses}"
        assert wait_until(lambda: opted.paused() != was_paused, 10), "the control page did not pause the runner"
        assert wait_until(lambda: opted.runs() == runs + 1, 15), "the control page did not start the run"
        assert (logo_folder() / logo).exists(), "the control page did not upload its 'logo'"
        served = requests.get(f"{opted.base}/ivoryos/static/user_logos/{logo}")
        assert served.headers["Content-Type"].startswith("text/html")  # a page on the lab's origin: stored XSS
        assert framed(page).startswith(opted.base), framed(page)
        assert page.frame(name="victim").locator("form[name=run]").count() == 1
    finally:
        (logo_folder() / logo).unlink(missing_ok=True)
        context.close()
        opted.server.stop()


# ------------------------------------------------------------------ IvoryOS's own pages still work
@pytest.mark.server
@pytest.mark.browser
def test_ivoryos_own_forms_and_scripts_work(chromium: Any, sec3: Sec3) -> None:
    context = logged_in(chromium, sec3.base)
    logo = f"sec3-{uuid.uuid4().hex[:8]}.png"
    try:
        page = context.new_page()
        watch = Watch(page)
        runs = sec3.runs()
        page.goto(f"{sec3.base}/ivoryos/executions/config")
        page.click("form[name=run] button[type=submit]")  # IvoryOS's run form, its token inserted as served
        assert wait_until(lambda: sec3.runs() == runs + 1, 15), "IvoryOS's own run form did not start the run"
        assert wait_until(lambda: not sec3.busy(), 30)
        page.goto(f"{sec3.base}/ivoryos/executions/config")
        was = sec3.paused()
        calls = {  # how IvoryOS's scripts call its routes: each must carry the token the script adds
            "fetch": "fetch('/ivoryos/executions/pause-resume', {method: 'POST'}).then((r) => r.text().then(() => r.status))",
            "jquery": "new Promise((ok) => $.ajax({url: '/ivoryos/executions/pause-resume', method: 'POST'})"
                      ".always((a, b, xhr) => ok((xhr && xhr.status) || a.status)))",
            "xhr": "new Promise((ok) => { const x = new XMLHttpRequest(); x.open('POST', "
                   "'/ivoryos/executions/pause-resume'); x.onload = () => ok(x.status); x.send(); })",
        }
        for how, call in calls.items():
            status = page.evaluate(call)
            assert status == 200, f"{how}: {status}"
            assert wait_until(lambda: sec3.paused() != was, 5), f"{how} did not pause or resume"
            was = sec3.paused()
        other = context.new_page()
        other.goto(f"{sec3.base}/ivoryos/executions/config")
        with other.expect_navigation() as navigation:  # a form a script makes and submits (no submit event)
            other.evaluate("""() => { const form = document.createElement('form'); form.method = 'POST';
                form.action = '/ivoryos/executions/pause-resume'; document.body.append(form); form.submit(); }""")
        assert navigation.value is not None and navigation.value.status == 200, "form.submit()"
        assert wait_until(lambda: sec3.paused() != was, 5), "form.submit() did not pause or resume"
        if sec3.paused():
            assert page.evaluate(calls["fetch"]) == 200
        page.goto(f"{sec3.base}/ivoryos/")
        page.set_input_files("#logoModal input[name=logo]",
                             files=[{"name": logo, "mimeType": "image/png", "buffer": PNG}])
        with page.expect_navigation():
            page.locator("#logoModal form").evaluate("(form) => form.requestSubmit()")
        page.wait_for_function(f"""() => {{ const img = document.querySelector("img[src$='{logo}']");
            return img && img.complete && img.naturalWidth === 1; }}""")  # the uploaded logo is shown
        assert (logo_folder() / logo).read_bytes() == PNG
        watch.assert_clean("IvoryOS's own forms and scripts", KNOWN_404S)
        assert page.evaluate("window.__cspViolations || []") == []
    finally:
        (logo_folder() / logo).unlink(missing_ok=True)
        context.close()


PAGES = ["/ivoryos/", "/ivoryos/executions/config", "/ivoryos/draft", "/ivoryos/instruments/",
         "/ivoryos/instruments/deck.meter", "/ivoryos/executions/records", "/ivoryos/library/", "/ivoryos/help",
         "/ivoryos/sec3/", "/ivoryos/plugins/"]


@pytest.mark.server
@pytest.mark.browser
def test_ivoryos_pages_work_under_the_content_security_policy(chromium: Any, sec3: Sec3) -> None:
    context = logged_in(chromium, sec3.base)
    try:
        page = context.new_page()
        watch = Watch(page)
        records = sec3.session.get(f"{sec3.base}/ivoryos/executions/records", headers={"Accept": "application/json"})
        runs = [f"/ivoryos/executions/records/{run}" for run in records.json()["workflow_data"]][:1]
        for path in PAGES + runs:
            reply = page.goto(sec3.base + path)
            assert reply is not None and reply.status == 200, path
            assert "frame-ancestors 'self'" in reply.headers["content-security-policy"], path
            page.wait_for_timeout(300)  # late loads (fonts, Socket.IO) would report a violation too
            assert page.evaluate("window.__cspViolations || []") == [], f"{path} broke the Content-Security-Policy"
            assert page.evaluate("typeof window.jQuery") == "function", f"{path}: jQuery did not load"
            assert page.evaluate("typeof window.bootstrap") == "object", f"{path}: Bootstrap did not load"
            watch.assert_clean(path, KNOWN_404S)
        assert runs, "no run record to open (the run page draws its plot with Plotly)"
        assert page.evaluate("typeof window.Plotly") == "object"
        frame_ok = page.evaluate(f"""new Promise((ok) => {{ const f = document.createElement('iframe');
            f.src = '{sec3.base}/ivoryos/help'; f.onload = () => ok(!!f.contentDocument.querySelector('nav'));
            document.body.append(f); }})""")
        assert frame_ok, "IvoryOS's own origin can no longer frame its pages (the left panels need it)"
    finally:
        context.close()

