"""End to end, as a lab user: the demo (real IvoryOS with every example plugin on the simulated
deck) in headless Chromium with no internet, driven by real clicks.

Each step saves a screenshot under test-output/e2e/ (the folder is printed at the end) and checks
that nothing on the page failed to load: no console error, no uncaught exception, no failed request,
no HTTP error but the one the step expects (a 409 when the deck is busy, a 400 for invalid settings).
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
from importlib.metadata import entry_points
from typing import Any, Dict, Iterator

import pytest

from browsing import SCREENSHOTS, Watch, chromium, offline_context, screenshot, start_demo
from support import Server

pytestmark = [pytest.mark.browser, pytest.mark.server]

LOGIN = ("admin", "admin")
EXAMPLES = ("balance", "hello", "plate_map", "run_monitor", "serial_console")  # examples/, each with a page
WIDGET = "iframe[src$='/run_monitor/widget']"  # run_monitor's left panel, on every IvoryOS page


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """One demo for the module; the screenshots folder is emptied first and printed at the end."""
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    server = start_demo(tmp_path_factory.mktemp("e2e"), "--no-browser", env={"CI": "true"})
    try:
        yield server
    finally:
        server.stop()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # shown even when output is captured
                reporter.write_line(f"\ntest_e2e screenshots: {SCREENSHOTS}")


@pytest.fixture(scope="module")
def browser(demo: Server) -> Iterator[Any]:
    """Debian's headless Chromium, for the module."""
    yield from chromium()


def log_in(page: Any, base: str, watch: Watch) -> None:
    """Log in to IvoryOS through its form, from the page a logged-out visitor lands on."""
    page.goto(f"{base}/ivoryos/")
    page.wait_for_selector("form[name=login]")
    # the left panel asks to log in; it does not nest IvoryOS's login page (and its panel) inside
    page.frame_locator(WIDGET).locator("text=Log in to see this panel").wait_for()
    assert len(page.frames) == 2, [frame.url for frame in page.frames]
    screenshot(page, "01-login")
    page.fill("#username", LOGIN[0])
    page.fill("#password", LOGIN[1])
    watch.assert_clean("the login page")
    with page.expect_navigation():
        page.click("form[name=login] button[type=submit]")
    watch.assert_clean("leaving the login page")  # a WebSocket cut off mid-frame shows here


@pytest.fixture(scope="module")
def context(browser: Any, demo: Server) -> Iterator[Any]:
    """A browser profile logged in to the demo (as the first test shows, through the form)."""
    ctx = offline_context(browser)
    page = ctx.new_page()
    log_in(page, demo.base, Watch(page))
    page.close()
    yield ctx
    ctx.close()


class Tab:
    """A browser tab with a :class:`Watch` on it."""

    def __init__(self, page: Any, base: str) -> None:
        self.page, self.base, self.watch = page, base, Watch(page)

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def live(self, timeout: float = 15000) -> None:
        """Wait until the page's live connection says 'connected'."""
        self.page.wait_for_function("document.querySelector('[data-ivoryos-live-state]').textContent === 'connected'",
                                    timeout=timeout)

    def widget(self) -> Any:
        """run_monitor's left-panel frame on this IvoryOS page."""
        return self.page.frame_locator(WIDGET)

    def clean(self, what: str, *allowed: str) -> None:
        self.watch.assert_clean(what, allowed)


@pytest.fixture
def tabs(context: Any, demo: Server) -> Iterator[Any]:
    """``tabs()`` opens a watched tab in the logged-in profile; all are closed after the test."""
    opened = []

    def new() -> Tab:
        tab = Tab(context.new_page(), demo.base)
        opened.append(tab)
        return tab

    yield new
    for tab in opened:
        tab.page.close()


class Deck:
    """IvoryOS's runner over HTTP with the browser's own session (what IvoryOS's pages call)."""

    def __init__(self, context: Any, base: str) -> None:
        self.http, self.base = context.request, base
        self.csrf = self.http.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]

    def draft(self, name: str, *lines: str) -> None:
        """Make ``lines`` the session's current workflow (as IvoryOS's code editor does)."""
        script = "def workflow():\n" + "".join(f"    {line}\n" for line in lines)
        reply = self.http.post(f"{self.base}/ivoryos/draft/submit_python", headers={"X-CSRFToken": self.csrf},
                               data={"workflow_name": name, "script": script, "prep": "", "cleanup": ""})
        assert reply.ok, reply.text()

    def run(self) -> None:
        """Start the current workflow once."""
        reply = self.http.post(f"{self.base}/ivoryos/executions/config", data={"repeat": 1}, timeout=60000,
                               headers={"X-CSRFToken": self.csrf, "Accept": "application/json"})
        assert reply.ok, reply.text()

    def busy(self) -> bool:
        return bool(self.http.get(f"{self.base}/ivoryos/executions/status").json().get("busy"))

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.busy():
            assert time.monotonic() < deadline, "IvoryOS's runner stayed busy"
            time.sleep(0.1)


@pytest.fixture
def deck(context: Any, demo: Server) -> Iterator[Deck]:
    runner = Deck(context, demo.base)
    runner.wait_idle()
    yield runner
    runner.wait_idle()


def reading(page: Any) -> float:
    """The balance page's big number."""
    return float(page.text_content("#bd-value"))


def wait_reading(page: Any, condition: str, timeout: float = 15000) -> float:
    """Wait until the balance page's reading ``v`` satisfies a JS condition, e.g. ``"v > 0.4"``."""
    page.wait_for_function(f"(() => {{ const v = parseFloat(document.getElementById('bd-value').textContent); "
                           f"return !isNaN(v) && ({condition}); }})()", timeout=timeout)
    return reading(page)


# ------------------------------------------------------------------ tests
def test_logging_in_through_the_form_opens_ivoryos(browser: Any, demo: Server) -> None:
    ctx = offline_context(browser)
    try:
        page = ctx.new_page()
        watch = Watch(page)
        log_in(page, demo.base, watch)
        assert page.url == f"{demo.base}/ivoryos/"
        page.wait_for_selector("text=Welcome back")
        page.frame_locator(WIDGET).locator("#busy[data-busy=false]").wait_for()
        screenshot(page, "02-home")
        watch.assert_clean("IvoryOS's home page")
    finally:
        ctx.close()


def installed() -> Dict[str, str]:
    """The plugins the demo serves (the installed ones and the examples): name -> placement."""
    from ivoryos_plugin.tools.demo import EXAMPLES_GROUP

    return {ep.name: getattr(ep.load(), "plugin_type", "tab")
            for group in ("ivoryos.plugins", EXAMPLES_GROUP) for ep in entry_points(group=group)}


def test_each_example_page_opens_goes_live_and_loads_completely(tabs: Any) -> None:
    plugins = installed()
    assert set(EXAMPLES) <= set(plugins), f"install the examples: pip install -e examples/... ({plugins})"
    tab = tabs()
    for name in EXAMPLES:
        page = tab.open(f"/ivoryos/{name}/")
        tab.live()
        tab.widget().locator("#busy").wait_for()
        if name == "balance":
            page.wait_for_selector("#bd-chart canvas")  # uPlot drew the chart
            wait_reading(page, "true")
        if name == "plate_map":
            assert page.locator("svg#pm-plate circle.pm-well").count() == 96
        screenshot(page, f"10-{name}")
        tab.clean(f"the {name} page")
    page = tab.open("/ivoryos/plugins/")  # the framework's health page
    for name in plugins:
        assert page.get_attribute(f".ivp-card[data-plugin={name}] .ivp-badge", "data-state") == "running", name
    screenshot(page, "10-plugins-health")
    tab.clean("the plugins health page")


def test_hello_greets_and_another_open_tab_sees_it_live(tabs: Any) -> None:
    first, second = tabs(), tabs()
    watcher = second.open("/ivoryos/hello/")
    second.live()
    page = first.open("/ivoryos/hello/")
    first.live()
    page.fill("#name", "lab 42")
    page.click("#greet")
    page.wait_for_selector("#message:has-text('Hello, lab 42!')")
    watcher.wait_for_selector("#last:has-text('lab 42')")
    screenshot(watcher, "20-hello-other-tab")
    first.clean("hello, greeting")
    second.clean("hello, watching")


def test_plate_map_colours_a_well_live(tabs: Any) -> None:
    from plate_map.plate import colour

    tab = tabs()
    page = tab.open("/ivoryos/plate_map/")
    tab.live()
    page.fill("#pm-well", "D4")
    page.fill("#pm-value", "0.8")
    page.click("#pm-set")
    page.wait_for_function(f"document.getElementById('well-D4').getAttribute('fill') === '{colour(0.8)}'")
    screenshot(page, "21-plate-map-D4")
    tab.clean("plate map")


def test_serial_console_echoes_a_line_from_a_loopback_port(tabs: Any) -> None:
    tab = tabs()
    page = tab.open("/ivoryos/serial_console/")
    tab.live()
    page.fill("#url", "loop://")
    page.click("#open")
    page.wait_for_selector("#status:has-text('open: loop://')")
    try:
        page.fill("#line", "*IDN?")
        page.click("#send")
        page.wait_for_function("document.getElementById('terminal').textContent.includes('<< *IDN?')")
        screenshot(page, "22-serial-console")
    finally:
        page.click("#close")
    page.wait_for_selector("#status:has-text('closed')")
    tab.clean("serial console")


def test_tare_sets_the_live_reading_to_zero(tabs: Any, deck: Deck) -> None:
    tab = tabs()
    page = tab.open("/ivoryos/balance/")
    tab.live()
    before = wait_reading(page, "true")
    deck.draft("e2e_load", "deck.pump.dispense(volume_ml=0.5)")
    deck.run()
    loaded = wait_reading(page, f"v > {before + 0.45}")  # the reading changes live as the vial fills
    assert loaded == pytest.approx(before + 0.5, abs=0.02)
    deck.wait_idle()
    page.click("#bd-tare")
    page.wait_for_selector("#bd-message[data-kind=ok]:has-text('Tared.')")
    assert abs(wait_reading(page, "Math.abs(v) < 0.01")) < 0.01
    screenshot(page, "30-balance-tared")
    tab.clean("balance, tare")


def test_a_workflow_holding_the_deck_turns_tare_into_a_409_message(tabs: Any, deck: Deck) -> None:
    tab = tabs()
    page = tab.open("/ivoryos/balance/")
    tab.live()
    deck.draft("e2e_busy", *["deck.pump.dispense(volume_ml=10)"] * 10)  # about 5 s on the simulator
    deck.run()
    tab.widget().locator("#busy[data-busy=true]").wait_for()  # run_monitor shows the deck is held
    with page.expect_response(re.compile(r"/ivoryos/balance/actions/tare$")) as refused:
        page.click("#bd-tare")
    assert refused.value.status == 409
    page.wait_for_selector("#bd-message[data-kind=busy]")
    assert "workflow" in page.text_content("#bd-message")
    screenshot(page, "31-balance-busy-409")
    tab.clean("balance, busy", r"/balance/actions/tare\b")
    deck.wait_idle()


def test_settings_form_refuses_an_invalid_value_then_saves_a_valid_one(tabs: Any, context: Any,
                                                                       demo: Server) -> None:
    tab = tabs()
    page = tab.open("/ivoryos/balance/")
    tab.live()
    with page.expect_navigation():
        page.click("a.bd-settings")
    assert page.url.endswith("/ivoryos/balance/settings")
    try:
        page.fill("#f-rate_hz", "500")
        with page.expect_navigation():
            page.click("form.ivp-form button[type=submit]")
        page.wait_for_selector(".ivp-error:has-text('Not saved')")
        error = page.text_content("[data-field=rate_hz] .ivp-field-error")
        assert error and "20" in error, error  # the field says what is allowed
        assert page.input_value("#f-rate_hz") == "500"  # what was typed stays, next to the error
        screenshot(page, "40-settings-invalid")
        tab.clean("settings, invalid", r"/ivoryos/balance/settings\]?$")  # the form answers 400
        page.fill("#f-rate_hz", "2")
        with page.expect_navigation():
            page.click("form.ivp-form button[type=submit]")
        page.wait_for_selector(".ivp-saved:has-text('Saved.')")
        assert float(page.input_value("#f-rate_hz")) == 2
        saved = context.request.get(f"{demo.base}/ivoryos/balance/settings.json").json()["values"]
        assert saved["rate_hz"] == 2
        screenshot(page, "41-settings-saved")
        tab.clean("settings, saved")
    finally:
        csrf = context.request.get(f"{demo.base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
        context.request.patch(f"{demo.base}/ivoryos/balance/settings.json", data={"rate_hz": 5.0},
                              headers={"X-CSRFToken": csrf})
    assert context.request.get(f"{demo.base}/ivoryos/balance/settings.json").json()["values"]["rate_hz"] == 5.0


def test_a_workflow_run_from_ivoryos_is_listed_live_by_run_monitor(tabs: Any, deck: Deck) -> None:
    balance, ivoryos = tabs(), tabs()
    scale = balance.open("/ivoryos/balance/")  # its stream reads the balance 5 times a second meanwhile
    balance.live()
    before = wait_reading(scale, "true")
    monitor = ivoryos.open("/ivoryos/run_monitor/")
    ivoryos.live()
    monitor.click("#clear")
    monitor.wait_for_function("document.querySelectorAll('#calls li').length === 0")
    deck.draft("e2e_monitor", "deck.pump.dispense(volume_ml=0.3)", "deck.pump.dispense(volume_ml=0.2)")
    page = ivoryos.open("/ivoryos/executions/config")
    page.wait_for_selector("text=dispense(volume_ml=0.3)")
    with page.expect_navigation():
        page.click("form[name=run] button[type=submit]")  # IvoryOS's own Run button
    calls = ivoryos.widget().locator("li.rm-call")
    for volume in ("0.3", "0.2"):
        calls.filter(has_text=f"pump.dispense(volume_ml={volume}) → {volume}").wait_for()
    assert wait_reading(scale, f"v > {before + 0.45}") == pytest.approx(before + 0.5, abs=0.02)
    deck.wait_idle()
    ivoryos.widget().locator("#busy[data-busy=false]").wait_for()  # and run_monitor says so
    listed = calls.all_text_contents()
    # the workflow's calls only: not the balance page's stream reads (tagged with their source)
    assert [c.split("(")[0] for c in listed] == ["pump.dispense", "pump.dispense"], listed
    screenshot(page, "50-run-monitor-after-run")
    screenshot(scale, "51-balance-after-run")
    ivoryos.clean("IvoryOS execution page")
    balance.clean("balance during the run")


def test_the_balance_page_opens_with_its_recorded_minutes_and_links_the_runs_csv(tabs: Any, deck: Deck,
                                                                                  context: Any, demo: Server) -> None:
    history = f"{demo.base}/ivoryos/balance/history/weight"
    deadline = time.monotonic() + 30  # the demo records from its start, watched or not
    while not [p for p in context.request.get(f"{history}?since=-600").json()["points"] if p["t"] < time.time() - 8]:
        assert time.monotonic() < deadline, "the demo recorded no reading older than 8 s"
        time.sleep(0.5)
    tab = tabs()
    opened = time.time()
    page = tab.open("/ivoryos/balance/")
    page.wait_for_selector("#bd-root[data-history=loaded]")
    oldest = page.evaluate("document.getElementById('bd-chart').uplot.data[0][0]")
    assert opened - 600 <= oldest <= opened - 8, (opened, oldest)  # drawn from the history, not live
    assert int(page.get_attribute("#bd-root", "data-history-points") or 0) >= 30  # 5 Hz for more than 8 s
    recent = context.request.get(demo.base + (page.get_attribute("#bd-recent-csv", "href") or ""))
    assert recent.ok and recent.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(recent.text())))) >= 30

    deck.draft("e2e_csv", *["deck.pump.dispense(volume_ml=5)"] * 8)  # a few seconds on the simulator
    deck.run()
    link = page.locator("#bd-run-csv[data-run]")
    page.wait_for_selector("#bd-run-csv:has-text('in progress')")
    run_id = int(link.get_attribute("data-run") or 0)
    deck.wait_idle()
    page.wait_for_function("!document.getElementById('bd-run-csv').textContent.includes('in progress')")
    records = context.request.get(f"{demo.base}/ivoryos/executions/records",
                                  headers={"Accept": "application/json"}).json()["workflow_data"]
    assert run_id == max(int(i) for i, info in records.items() if info["workflow_name"] == "e2e_csv")
    screenshot(page, "60-balance-history-and-run-csv")
    reply = context.request.get(demo.base + (link.get_attribute("href") or ""))
    assert reply.ok and f"balance-weight.csv" in reply.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.text())))
    assert len(rows) >= 5 and {int(r["run"]) for r in rows} == {run_id}, rows[:3]
    grams = [float(r["value"]) for r in rows]  # record="grams": the value column is the grams
    assert all(json.loads(r["data"])["grams"] == float(r["value"]) for r in rows)
    assert max(grams) - min(grams) > 20, "the run's 40 ml reach the pan while it is recorded"

    later = tabs()  # a page opened after the run links that run's CSV
    after = later.open("/ivoryos/balance/")
    after.wait_for_selector(f"#bd-run-csv[data-run='{run_id}']:not([hidden])")
    assert "in progress" not in (after.text_content("#bd-run-csv") or "")
    tab.clean("balance, history and run CSV")
    later.clean("balance opened after a run")
