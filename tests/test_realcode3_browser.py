"""Every control of every example page, and of the page ``ivoryos-plugin new`` makes, used in headless
Chromium (issue 24): each button clicked and each form submitted, in the dev host and inside a real
IvoryOS (the demo); every HTTP response the tab (and any tab it opens) gets is recorded, and none is a
4xx or 5xx but the answers to bad input typed on purpose, whose message must show under its input.
Each click is checked by what it changes on the page.

The controls a page shows are found in the page, not listed by hand: a control no step uses fails
the test, so a button added later is clicked too.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from browsing import chromium, closed_session, engineio_sid, offline_context, screenshot, start_demo
from installing import install_target
from support import ROOT, Server, start_process

pytestmark = [pytest.mark.browser, pytest.mark.server]

EXE = Path(sys.executable).with_name("ivoryos-plugin")
SHOTS = ROOT / "test-output" / "realcode3"
EXAMPLE_TARGETS = ["hello_plugin.plugin:plugin", "balance_dashboard.plugin:plugin", "plate_map.plugin:plugin",
                   "run_monitor.plugin:plugin", "serial_console.plugin:plugin", "deck_camera.plugin:plugin"]
#: requests that never end by design: Socket.IO's long polls and a camera's MJPEG stream
ENDLESS = re.compile(r"/socket\.io/|\.mjpg(\?|$)")
#: the controls of a page's own content: not IvoryOS's nav, dialogs and status badge, nor the dev shell's nav
CONTROLS_JS = """() => [...document.querySelectorAll('button, input[type=submit], input[type=button], a.btn')]
  .filter(el => el.offsetParent !== null && !el.closest('nav, .modal, #global-status-icon'))
  .map(el => el.id ? '#' + el.id : el.tagName.toLowerCase() + ':' + el.textContent.trim())"""
FORMS_JS = """() => [...document.forms].map((f, i) => [f, i])
  .filter(([f]) => f.offsetParent !== null && !f.closest('nav, .modal'))
  .map(([f, i]) => ({key: f.id ? '#' + f.id : 'form >> nth=' + i,
                   submits: [...f.querySelectorAll('button:not([type=button]):not([type=reset]), input[type=submit]')]
                     .map(b => b.id ? '#' + b.id : b.tagName.toLowerCase() + ':' + b.textContent.trim())}))"""


# ------------------------------------------------------------------ what the tab asked and got
class Traffic:
    """Every request of a browser context (its pages, frames and popups) and every answer."""

    def __init__(self, context: Any) -> None:
        self.answers: List[Tuple[int, str, str]] = []
        self.pending: Set[Any] = set()
        self.closed: Set[str] = set()  # the Engine.IO sessions a page of this context closed itself
        context.on("request", self._sent)  # Playwright takes Python functions only
        context.on("requestfinished", lambda r: self.pending.discard(r))
        context.on("requestfailed", lambda r: self.pending.discard(r))
        context.on("response", lambda r: self.answers.append((r.status, r.request.method, r.url)))

    def settle(self, page: Any, quiet_s: float = 0.3, timeout: float = 20.0) -> None:
        """Wait until no request (but the endless ones) has been pending for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        quiet_since: Optional[float] = None
        while True:
            page.wait_for_timeout(50)  # lets Playwright deliver the events meanwhile
            busy = [r.url for r in list(self.pending) if not ENDLESS.search(r.url)]
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                return
            assert now < deadline, f"still loading after {timeout} s: {busy}"

    def _sent(self, request: Any) -> None:
        self.pending.add(request)
        closed = closed_session(request)
        if closed:
            self.closed.add(closed)

    def _own_close(self, status: int, method: str, url: str) -> bool:
        """A long poll answered 400 after the page closed that session itself
        (:func:`browsing.closed_session`): the page's own ending, nothing it asked for is lost."""
        return status == 400 and method == "GET" and "transport=polling" in url and engineio_sid(url) in self.closed

    def failures(self) -> List[str]:
        """The 4xx and 5xx answers so far (but :meth:`_own_close`'s); clears the record."""
        found = [f"{status} {method} {url}" for status, method, url in self.answers
                 if status >= 400 and not self._own_close(status, method, url)]
        self.answers.clear()
        return found


def poll(page: Any, script: str, what: str, timeout: float = 15.0) -> None:
    """Wait until the JavaScript expression ``script`` is true in ``page`` (polled from Python: a
    Content-Security-Policy without 'unsafe-eval' refuses Playwright's string predicates)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => !!({script})"):
        assert time.monotonic() < deadline, f"{what}: `{script}` never became true"
        page.wait_for_timeout(50)


def wait_live(page: Any) -> None:
    poll(page, "[...document.querySelectorAll('[data-ivoryos-live-state]')].every(e => e.textContent === 'connected')",
         "the page's live connection")


# ------------------------------------------------------------------ what to do on each page
@dataclass
class Step:
    """Use one control: fill and select first, then click it.

    :param control: the control's key (``#id``, or ``tag:text`` for one without an id).
    :param fill: ``{selector: text}`` typed first.
    :param select: ``{selector: option value}`` chosen first.
    :param until: a JavaScript expression that is true once the click did its work.
    :param refused: bad input on purpose: ``(field, status, words of its message)``; the message
        must show under the field's input."""

    control: str
    fill: Dict[str, str] = field(default_factory=dict)
    select: Dict[str, str] = field(default_factory=dict)
    until: str = ""
    refused: Optional[Tuple[str, int, str]] = None


@dataclass
class Plan:
    path: str
    steps: List[Step]
    shot: str


def text_has(selector: str, words: str) -> str:
    return f"(document.querySelector({json.dumps(selector)})?.textContent || '').includes({json.dumps(words)})"


EXAMPLE_PLANS = [
    Plan("/ivoryos/hello/", [
        Step("#greet", fill={"#name": "Ada"}, until=text_has("#message", "Hello, Ada!") + " && " + text_has("#last", "Ada")),
    ], "hello"),
    Plan("/ivoryos/balance/", [
        Step("#bd-tare", until=text_has("#bd-message", "Tared.")),
        Step("#bd-set-unit", select={"#bd-balance-unit": "mg"}, until=text_has("#bd-message", "now reads in mg")),
        Step("#bd-set-unit", select={"#bd-balance-unit": "g"}, until=text_has("#bd-message", "now reads in g.")),
    ], "balance"),
    Plan("/ivoryos/balance/settings", [
        Step("button:Save", until="!!document.querySelector('.ivp-saved')"),
    ], "balance-settings"),
    Plan("/ivoryos/plate_map/", [
        Step("#pm-set", fill={"#pm-well": "Z9"}, refused=("well", 400, "pattern")),
        Step("#pm-set", fill={"#pm-well": "B3", "#pm-value": "0.25"},
             until="document.getElementById('well-B3').dataset.value === '0.25'"),
        Step("#pm-dispense", fill={"#pm-volume": "0"}, refused=("volume_ml", 400, "greater than 0")),
        Step("#pm-dispense", fill={"#pm-volume": "0.2"},
             until="[...document.querySelectorAll('.pm-well')].some(w => w.id !== 'well-B3' && w.dataset.value !== '')"),
        Step("#pm-clear", until="[...document.querySelectorAll('.pm-well')].every(w => w.dataset.value === '')"),
    ], "plate-map"),
    Plan("/ivoryos/plate_map/settings", [
        Step("button:Save", until="!!document.querySelector('.ivp-saved')"),
    ], "plate-map-settings"),
    Plan("/ivoryos/run_monitor/", [
        Step("#clear", until="document.querySelectorAll('#calls li').length === 0"),
    ], "run-monitor"),
    Plan("/ivoryos/run_monitor/widget", [], "run-monitor-widget"),
    Plan("/ivoryos/serial_console/", [
        Step("#open", fill={"#url": "/etc/passwd"}, refused=("url", 400, "not a serial port")),
        Step("#open", fill={"#url": "loop://"}, until=text_has("#status", "open: loop://")),
        Step("#send", fill={"#line": "ping"}, until=text_has("#terminal", "<< ping")),
        Step("#close", until=text_has("#status", "closed") + " && document.getElementById('send').disabled"),
    ], "serial-console"),
    Plan("/ivoryos/deck_camera/", [
        Step("a:Photo now"),  # opens the JPEG in a new tab (checked in use())
        Step("a:Photos by run", until=text_has("h2", "photos by workflow run")),
    ], "deck-camera"),
]


def control(page: Any, key: str) -> Any:
    """The visible control a key names (the hidden ones of IvoryOS's dialogs are not it)."""
    if key.startswith("#"):
        return page.locator(key)
    tag, _, label = key.partition(":")
    return page.locator(f"{tag}:visible", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def use(page: Any, traffic: Traffic, step: Step, where: str) -> None:
    """Do one step and check what it changed (or, for bad input, where its message shows)."""
    for selector, text in step.fill.items():
        page.fill(selector, text)
    for selector, value in step.select.items():
        page.select_option(selector, value)
    target = control(page, step.control)
    assert target.is_enabled(), f"{where}: {step.control} is disabled when the step needs it"
    if step.refused:
        name, status, words = step.refused
        with page.expect_response(lambda r: "/actions/" in r.url and r.request.method == "POST") as answer:
            target.click()
        assert answer.value.status == status, f"{where}: {step.control} answered {answer.value.status}"
        traffic.settle(page)
        failures = traffic.failures()
        assert failures == [f"{status} POST {answer.value.url}"], f"{where}: {failures}"
        error_shown_under_its_input(page, name, words, where)
        return
    if target.get_attribute("target") == "_blank":
        with page.context.expect_page() as opened:
            target.click()
        popup = opened.value
        popup.wait_for_load_state()
        traffic.settle(popup)
        assert popup.evaluate("() => document.contentType") == "image/jpeg", f"{where}: {popup.url}"
        popup.close()
    else:
        target.click()
        traffic.settle(page)
    if step.until:
        poll(page, step.until, f"{where}: after {step.control}")


def error_shown_under_its_input(page: Any, name: str, words: str, where: str) -> None:
    error = page.locator(f"[data-ivoryos-error={json.dumps(name)}]")
    error.wait_for()
    assert words in (error.text_content() or ""), f"{where}: the message under {name!r} is {error.text_content()!r}"
    field_box = page.locator(f"[name={json.dumps(name)}]").bounding_box()
    under = error.bounding_box()
    assert field_box and under, where
    assert 0 <= under["y"] - (field_box["y"] + field_box["height"]) < 12, f"{where}: not under the input {field_box} {under}"
    assert abs(under["x"] - field_box["x"]) < 4, f"{where}: the message is not aligned with its input"
    assert page.locator(f"[name={json.dumps(name)}]").evaluate("e => e.classList.contains('is-invalid')")


def exercise(page: Any, traffic: Traffic, base: str, plan: Plan, where: str) -> None:
    """Open the page; every control the page shows is used by a step, every form is submitted;
    nothing but the deliberate bad input answers 4xx/5xx."""
    page.goto(base + plan.path)
    if page.query_selector("[data-ivoryos-live-state]"):
        wait_live(page)
    traffic.settle(page)
    assert traffic.failures() == [], f"{where}: opening {plan.path}"
    found = page.evaluate(CONTROLS_JS)
    used = [s.control for s in plan.steps]
    assert sorted(set(found)) == sorted(set(used)), f"{where} {plan.path}: the page shows {found}, the steps use {used}"
    forms = page.evaluate(FORMS_JS)
    for step in plan.steps:
        use(page, traffic, step, f"{where} {plan.path} {step.control}")
        assert traffic.failures() == [], f"{where} {plan.path}: {step.control}"
    screenshot(page, f"{where}-{plan.shot}", SHOTS)
    if page.url.split("?")[0].endswith(plan.path):
        submit_forms_without_a_submit_button(page, traffic, forms, f"{where} {plan.path}")


def submit_forms_without_a_submit_button(page: Any, traffic: Traffic, forms: List[Dict[str, Any]], where: str) -> None:
    """A form whose controls are plain buttons (clicked above) is submitted too, as Enter in one of its
    fields may: it must stay on the page and send nothing that fails."""
    for form in forms:
        if form["submits"]:
            continue  # submitted by the step that clicks its submit button
        url = page.url
        page.eval_on_selector(form["key"], "f => f.requestSubmit()")
        traffic.settle(page)
        assert page.url == url, f"{where}: submitting {form['key']} left the page for {page.url}"
        assert traffic.failures() == [], f"{where}: submitting {form['key']}"


# ------------------------------------------------------------------ servers
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def token_url(server: Server, path: str) -> str:
    deadline = time.monotonic() + 15
    while "token=" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    token = re.search(r"\?token=(\S+)", server.output())
    assert token, server.output()
    return f"{server.base}{path}?token={token.group(1)}"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dev host with every example, on the demo's deck."""
    server = start_process([str(EXE), "run", *EXAMPLE_TARGETS, "--deck", str(ROOT / "examples" / "demo_deck.py")],
                           tmp_path_factory.mktemp("rc3_browser_dev"), "dev_host.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_demo(tmp_path_factory.mktemp("rc3_browser_demo"), "--no-browser", env={"CI": "true"})
    try:
        yield server
    finally:
        server.stop()


def log_in_to_ivoryos(page: Any, base: str) -> None:
    page.goto(f"{base}/ivoryos/auth/login")
    page.fill("#username", "admin")
    page.fill("#password", "admin")
    with page.expect_navigation():
        page.click("form[name=login] button[type=submit]")


@pytest.mark.parametrize("host", ["dev-host", "ivoryos"])
def test_every_control_of_every_example_page_works(browser: Any, request: pytest.FixtureRequest, host: str) -> None:
    server: Server = request.getfixturevalue("dev" if host == "dev-host" else "demo")
    context = offline_context(browser)
    try:
        page = context.new_page()
        traffic = Traffic(context)
        if host == "dev-host":
            page.goto(token_url(server, "/ivoryos/hello/"))
        else:
            log_in_to_ivoryos(page, server.base)
        traffic.settle(page)
        assert traffic.failures() == [], "logging in"
        for plan in EXAMPLE_PLANS:
            exercise(page, traffic, server.base, plan, host)
    finally:
        context.close()


# ------------------------------------------------------------------ the page `ivoryos-plugin new` makes
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """A package made by the real console script, pip-installed into a folder put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("rc3_generated")
    made = start_cli(["new", "rc3_counter", "--dir", str(root)], root)
    assert made.returncode == 0, made.stdout + made.stderr
    return {"package": root / "rc3_counter", "site": install_target([root / "rc3_counter"], root / "site")}


def start_cli(args: List[str], cwd: Path) -> Any:
    import subprocess

    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_the_generated_page_resets_the_reading_from_its_form(browser: Any, generated: Dict[str, Path],
                                                            tmp_path: Path) -> None:
    """The README's dev-host command for the package, on the tutorial's deck: Reset sends the number
    typed, the deck's sensor counts on from it; an empty field is refused under its input."""
    server = start_process([str(EXE), "run", "rc3_counter.plugin:plugin", "--deck",
                            str(ROOT / "examples" / "tutorial_deck.py")], tmp_path, "dev_host.log",
                           env={"PYTHONPATH": str(generated["site"])})
    context = offline_context(browser)
    try:
        page = context.new_page()
        traffic = Traffic(context)
        page.goto(token_url(server, "/ivoryos/rc3_counter/"))
        wait_live(page)
        traffic.settle(page)
        assert traffic.failures() == []
        assert "simulated" not in (page.text_content("main") or ""), "the tutorial's deck has a sensor"
        assert page.evaluate(CONTROLS_JS) == ["#reset"]
        assert [f["submits"] for f in page.evaluate(FORMS_JS)] == [["#reset"]]
        poll(page, "Number(document.getElementById('reading').textContent) > 0", "the live reading")

        use(page, traffic, Step("#reset", fill={"#to": ""}, refused=("to", 400, "valid integer")), "empty")
        page.fill("#to", "1000")  # typing clears the message
        assert page.locator("[data-ivoryos-error=to]").count() == 0
        with page.expect_request(re.compile(r"/actions/reset$")) as sent:
            page.click("#reset")
        assert sent.value.post_data_json == {"to": 1000}, sent.value.post_data  # a number, not "1000"
        assert sent.value.response().status == 200  # type: ignore[union-attr]
        poll(page, text_has("#message", "Reset to 1000"), "the reply")
        poll(page, "Number(document.getElementById('reading').textContent) > 1000", "the reading after the reset")
        reading = float(page.text_content("#reading") or 0)
        assert 1000 < reading < 1020, reading  # counting on from 1000, two readings a second
        traffic.settle(page)
        assert traffic.failures() == []
        screenshot(page, "dev-host-generated-page-reset", SHOTS)
    finally:
        context.close()
        server.stop()
    assert " 404 " not in server.output() and '" 404' not in server.output(), server.output()


def test_the_dev_host_has_a_favicon(browser: Any, tmp_path: Path) -> None:
    """Browsers ask every host for an icon: the dev shell links /favicon.ico, which answers an image
    to anyone (no 404 in the host's log on every page). A context without request routing: Chromium
    does not send favicon requests through Playwright's interception."""
    import requests

    server = start_process([str(EXE), "run", "hello_plugin.plugin:plugin"], tmp_path, "dev_host.log")
    context = browser.new_context()
    try:
        icon = requests.get(f"{server.base}/favicon.ico", timeout=10)  # anonymous
        assert icon.status_code == 200 and icon.headers["Content-Type"].startswith("image/svg+xml"), icon.status_code
        page = context.new_page()
        page.goto(token_url(server, "/ivoryos/hello/"))
        wait_live(page)
        assert page.eval_on_selector("link[rel~=icon]", "l => l.href") == f"{server.base}/favicon.ico"
        fetched = '"GET /favicon.ico HTTP/1.1" 200'
        deadline = time.monotonic() + 10
        while server.output().count(fetched) < 2:  # requests' and the browser's own
            assert time.monotonic() < deadline, "the browser never fetched the shell's icon:\n" + server.output()
            page.wait_for_timeout(100)
        size = page.evaluate("""href => new Promise((ok, fail) => { const img = new Image();
            img.onload = () => ok(img.naturalWidth); img.onerror = () => fail(new Error('not an image')); img.src = href; })""",
                             f"{server.base}/favicon.ico")
        assert size > 0
    finally:
        context.close()
        server.stop()
    assert not re.search(r'" 404 ', server.output()), server.output()


# ------------------------------------------------------------------ the run monitor during a run
def test_the_run_monitor_shows_a_runs_calls_readably_not_as_raw_json(browser: Any, demo: Server) -> None:
    """A workflow that reads the balance (a dict), dispenses (a number) and takes a photo (a dict of
    six fields, a long file name): the left panel lists each call with its result in words, the
    whole result in the tooltip; no line is raw JSON."""
    from test_first_hour_pages import Runner

    context = offline_context(browser)
    try:
        page = context.new_page()
        traffic = Traffic(context)
        log_in_to_ivoryos(page, demo.base)
        runner = Runner(context, demo.base)
        runner.wait_idle()
        page.goto(f"{demo.base}/ivoryos/")
        widget = page.frame_locator("iframe[src$='/run_monitor/widget']")
        widget.locator("#busy[data-busy=false]").wait_for()
        runner.run("rc3_monitor", "deck.balance.read()", "deck.pump.dispense(volume_ml=0.1)",
                   "deck.deck_camera.snapshot(label='rc3 monitor photo')")
        runner.wait_idle()
        photo = widget.locator("li.rm-call[data-method='deck_camera.snapshot']").first
        photo.wait_for()
        calls = widget.locator("li.rm-call").all_text_contents()
        screenshot(page, "ivoryos-run-monitor-after-a-run", SHOTS)
        raw = [c for c in calls if re.search(r'[{\[]"|":', c)]
        assert not raw, f"raw JSON in the run monitor: {raw}"
        read = next(c for c in calls if c.startswith("balance.read()"))
        assert re.search(r"→ value -?[\d.]+ · unit g · grams -?[\d.]+ · stable (yes|no) \(\d+ ms\)$", read), read
        assert any(re.search(r"^pump\.dispense\(volume_ml=0\.1\) → 0\.1 \(\d+ ms\)$", c) for c in calls), calls
        shot = photo.text_content() or ""
        assert 'snapshot(label="rc3 monitor photo")' in shot and "+2 more" in shot and "…" in shot, shot
        tooltip = json.loads(photo.locator(".rm-out").get_attribute("title") or "{}")
        assert tooltip["label"] == "rc3 monitor photo" and tooltip["file"].endswith(".jpg"), tooltip  # all of it
        traffic.settle(page)
        assert traffic.failures() == []
    finally:
        context.close()


# ------------------------------------------------------------------ IvoryPlugin.values: a form's values, typed
VALUES_FORM = """<form id="typed">
  <input name="count" type="number" value="5"><input name="ratio" type="range" min="0" max="1" step="0.25" value="0.75">
  <input name="empty_number" type="number" value=""><input name="label" value="5">
  <input name="as_int" data-type="int" value=" 12 "><input name="not_a_number" data-type="float" value="twelve">
  <input name="flag" type="checkbox" checked><input name="off" type="checkbox">
  <input name="wells" type="checkbox" value="A1" checked><input name="wells" type="checkbox" value="B2">
  <input name="wells" type="checkbox" value="C3" checked>
  <input name="speed" type="radio" value="1" data-type="int"><input name="speed" type="radio" value="2" data-type="int" checked>
  <input name="none_picked" type="radio" value="x">
  <select name="unit"><option>g</option><option selected>mg</option></select>
  <select name="baud" data-type="int"><option selected>9600</option></select>
  <select name="many" multiple data-type="number"><option selected>1</option><option>2</option><option selected>3</option></select>
  <input name="json" data-type="json" value='{"a": [1, 2]}'><textarea name="note">two
lines</textarea>
  <input name="skipped" disabled value="1"><input name="csrf_token" type="hidden" value="secret">
  <input type="hidden" name="hidden_number" data-type="number" value="7"><button name="go" value="1">Go</button>
</form>"""


def test_values_reads_a_form_as_an_action_expects_it(browser: Any, dev: Server) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        page.goto(token_url(dev, "/ivoryos/hello/"))
        page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", VALUES_FORM)
        assert page.evaluate("() => IvoryPlugin.values('#typed')") == {
            "count": 5, "ratio": 0.75, "empty_number": None, "label": "5", "as_int": 12, "not_a_number": "twelve",
            "flag": True, "off": False, "wells": ["A1", "C3"], "speed": 2, "none_picked": None, "unit": "mg",
            "baud": 9600, "many": [1, 3], "json": {"a": [1, 2]}, "note": "two\nlines", "hidden_number": 7}
        with pytest.raises(Exception, match="must be a <form>"):
            page.evaluate("() => IvoryPlugin.values('#greet')")
    finally:
        context.close()
