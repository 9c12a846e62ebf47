"""Plugin pages that look finished, in headless Chromium with no internet (issue 14): every example
page, the settings and health pages inside a real IvoryOS (the demo) and in the dev host use the
shared styles (no control keeps the browser's default look); a field's error shows under the
field; a busy deck shows on the balance page before any click; IvoryOS's nav names plugins by
title; the run monitor's widget scrolls clear of IvoryOS's status badge; a disconnected page greys
its values; a mistyped template shows the fix in the page.

A screenshot of every page is kept in test-output/first-hour/ (printed at the end of the module).
"""
from __future__ import annotations

import re
import signal
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from browsing import Watch, chromium, offline_context, screenshot, start_demo
from support import ROOT, Server, start_process

pytestmark = [pytest.mark.browser, pytest.mark.server]

SHOTS = ROOT / "test-output" / "first-hour"
EXE = Path(sys.executable).with_name("ivoryos-plugin")
STATUS_BADGE = "#global-status-icon"  # IvoryOS's fixed "Idle" badge, bottom left of every page
LEFT_PAGE = r"stream\.mjpg \(net::ERR_ABORTED\)"  # a camera's endless stream, cut short by opening the next page

#: the look of each control with no stylesheet at all (filled in from a blank page)
CONTROLS = "button, input:not([type=hidden]), select, textarea"
LOOK = """(el) => { const s = getComputedStyle(el);
  return {border: s.borderTopStyle, radius: s.borderTopLeftRadius, background: s.backgroundColor}; }"""
PLAIN_CONTROLS = ('<button>x</button><input><input type="number"><select><option>a</option></select>'
                  '<textarea></textarea>')


@pytest.fixture(scope="module", autouse=True)
def shots_folder(request: pytest.FixtureRequest) -> Iterator[None]:
    for old in SHOTS.glob("*.png"):
        old.unlink()
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntest_first_hour_pages screenshots: {SHOTS}")


def shot(page: Any, name: str) -> None:
    screenshot(page, name, SHOTS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def default_look(browser: Any) -> Dict[str, Dict[str, str]]:
    """How Chromium draws each control when nothing styles it: the look no plugin control may have."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(PLAIN_CONTROLS)
        return {el.evaluate("e => e.tagName + (e.type === 'number' ? ':number' : '')"): el.evaluate(LOOK)
                for el in page.query_selector_all(CONTROLS)}
    finally:
        context.close()


def browser_default_controls(page: Any, default_look: Dict[str, Dict[str, str]]) -> List[str]:
    """The visible controls of the page's own content that still look as the browser draws them
    unstyled: the default border, and the default corners or the default background."""
    found = []
    for el in page.query_selector_all(CONTROLS):
        if not el.is_visible() or el.evaluate("e => !!e.closest('nav, .modal, #global-status-icon')"):
            continue
        kind = el.evaluate("e => e.tagName + (e.type === 'number' ? ':number' : '')")
        reference = default_look.get(kind) or default_look.get(kind.split(":")[0], {})
        look = el.evaluate(LOOK)
        if look["border"] == reference.get("border") and (look["radius"] == reference.get("radius")
                                                            or look["background"] == reference.get("background")):
            found.append(el.evaluate("e => e.outerHTML.slice(0, 120)") + f" {look}")
    return found


def uses_shared_styles(page: Any) -> bool:
    """Whether ivoryos_plugin.css (and Bootstrap) are applied to the page."""
    return bool(page.evaluate("""() => {
        const sheets = [...document.styleSheets].map(s => s.href || "");
        return sheets.some(h => h.endsWith("/ivoryos/plugins/static/ivoryos_plugin.css"))
            && sheets.some(h => /bootstrap(\\.min)?\\.css$/.test(h));
    }"""))


def state_badges_stand_apart(page: Any) -> List[str]:
    """Problems with the live-state and deck-state badges: each must read as a small badge, apart
    from its heading's words (not run into them)."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-ivoryos-live-state], [data-ivoryos-deck-state]')]
      .filter(el => el.offsetParent !== null)
      .flatMap(el => {
        const s = getComputedStyle(el), heading = el.closest('h1, h2, h3, h4, h5') || el.parentElement;
        const h = getComputedStyle(heading), problems = [];
        if (parseFloat(s.fontSize) > 0.7 * parseFloat(h.fontSize)) problems.push('as big as its heading');
        if (parseFloat(s.marginLeft) < 4) problems.push('no space before it');
        if (s.backgroundColor === 'rgba(0, 0, 0, 0)') problems.push('no badge background');
        return problems.map(p => el.outerHTML.slice(0, 80) + ': ' + p);
      })""")


def wait_live(page: Any) -> None:
    page.wait_for_function("[...document.querySelectorAll('[data-ivoryos-live-state]')]"
                           ".every(el => el.textContent === 'connected')", timeout=15000)


# ------------------------------------------------------------------ inside IvoryOS: the demo
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_demo(tmp_path_factory.mktemp("first_hour_demo"), "--no-browser", env={"CI": "true"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ivoryos(browser: Any, demo: Server) -> Iterator[Any]:
    """A browser profile logged in to the demo's IvoryOS."""
    context = offline_context(browser)
    page = context.new_page()
    page.goto(f"{demo.base}/ivoryos/auth/login")
    page.fill("#username", "admin")
    page.fill("#password", "admin")
    with page.expect_navigation():
        page.click("form[name=login] button[type=submit]")
    page.close()
    yield context
    context.close()


def demo_pages() -> List[str]:
    """Every page the demo serves for its plugins: each tab plugin's main page (the left-panel
    run monitor's page too), each settings form, and the health page."""
    from ivoryos_plugin.tools.demo import EXAMPLES_GROUP

    pages = []
    for group in ("ivoryos.plugins", EXAMPLES_GROUP):
        for ep in entry_points(group=group):
            plugin = ep.load()
            pages.append(f"/ivoryos/{plugin.name}/")
            if getattr(plugin, "settings_model", None) is not None:
                pages.append(f"/ivoryos/{plugin.name}/settings")
    return sorted(set(pages)) + ["/ivoryos/plugins/"]


def test_every_page_inside_ivoryos_uses_the_shared_styles(ivoryos: Any, demo: Server,
                                                          default_look: Dict[str, Dict[str, str]]) -> None:
    pages = demo_pages()
    assert {"/ivoryos/balance/", "/ivoryos/hello/", "/ivoryos/plate_map/", "/ivoryos/run_monitor/",
            "/ivoryos/serial_console/", "/ivoryos/balance/settings", "/ivoryos/plugins/"} <= set(pages), pages
    page = ivoryos.new_page()
    watch = Watch(page)
    problems: Dict[str, List[str]] = {}
    for path in pages:
        page.goto(demo.base + path)
        assert "ivoryos_logo.png" in page.content(), f"{path} is not inside IvoryOS's base.html"
        if page.query_selector("[data-ivoryos-live-state]"):
            wait_live(page)
        if page.query_selector("[data-ivoryos-deck-state]"):
            page.wait_for_selector("[data-ivoryos-deck-state][data-state=idle]")
        shot(page, "ivoryos" + re.sub(r"\W+", "-", path.rstrip("/")))
        found = ([] if uses_shared_styles(page) else ["ivoryos_plugin.css or Bootstrap is not applied"])
        found += browser_default_controls(page, default_look) + state_badges_stand_apart(page)
        if found:
            problems[path] = found
        watch.assert_clean(path, [LEFT_PAGE])
    page.close()
    assert not problems, problems


def test_a_bad_well_shows_its_error_under_the_well_input(ivoryos: Any, demo: Server) -> None:
    page = ivoryos.new_page()
    watch = Watch(page)
    page.goto(f"{demo.base}/ivoryos/plate_map/")
    wait_live(page)
    page.fill("#pm-well", "Z9")
    with page.expect_response(re.compile(r"/actions/set_well$")) as refused:
        page.click("#pm-set")
    assert refused.value.status == 400
    error = page.wait_for_selector("#pm-well + .ivp-field-error[data-ivoryos-error=well]")
    assert error.is_visible() and "pattern" in error.text_content()
    assert page.eval_on_selector("#pm-well", "e => e.classList.contains('is-invalid')")
    field, under = page.locator("#pm-well").bounding_box(), error.bounding_box()
    assert field and under and 0 <= under["y"] - (field["y"] + field["height"]) < 12, (field, under)
    assert abs(under["x"] - field["x"]) < 4, "the message is not under its field"
    assert page.locator("[data-ivoryos-error=value]").count() == 0, "a valid field got an error"
    shot(page, "plate-map-field-error")
    page.fill("#pm-well", "B2")  # typing in the field clears its message
    assert page.locator(".ivp-field-error").count() == 0
    watch.assert_clean("plate map, bad well", [r"/plate_map/actions/set_well\b"])
    page.close()


class Runner:
    """IvoryOS's runner over HTTP with the browser's session (what IvoryOS's own pages call)."""

    def __init__(self, context: Any, base: str) -> None:
        self.http, self.base = context.request, base
        self.csrf = self.http.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]

    def run(self, name: str, *lines: str) -> None:
        script = "def workflow():\n" + "".join(f"    {line}\n" for line in lines)
        headers = {"X-CSRFToken": self.csrf}
        drafted = self.http.post(f"{self.base}/ivoryos/draft/submit_python", headers=headers,
                                 data={"workflow_name": name, "script": script, "prep": "", "cleanup": ""})
        assert drafted.ok, drafted.text()
        started = self.http.post(f"{self.base}/ivoryos/executions/config", data={"repeat": 1}, timeout=60000,
                                 headers={**headers, "Accept": "application/json"})
        assert started.ok, started.text()

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"{self.base}/ivoryos/executions/status").json().get("busy"):
            assert time.monotonic() < deadline, "IvoryOS's runner stayed busy"
            time.sleep(0.1)


def test_a_busy_deck_shows_on_the_balance_page_before_any_click(ivoryos: Any, demo: Server) -> None:
    runner = Runner(ivoryos, demo.base)
    runner.wait_idle()
    page = ivoryos.new_page()
    watch = Watch(page)
    page.goto(f"{demo.base}/ivoryos/balance/")
    wait_live(page)
    page.wait_for_selector("[data-ivoryos-deck-state][data-state=idle]")
    assert page.locator("#bd-busy").is_hidden()
    requests_before = len(watch.problems)
    runner.run("first_hour_busy", *["deck.pump.dispense(volume_ml=10)"] * 6)  # about 3 s on the simulator
    page.wait_for_selector("[data-ivoryos-deck-state][data-state=busy]", timeout=10000)
    assert page.text_content("[data-ivoryos-deck-state]") == "deck busy"
    assert page.locator("#bd-busy").is_visible() and "refused" in page.text_content("#bd-busy")
    assert page.get_attribute("#bd-tare", "data-deck") == "busy"  # the Tare button is marked
    shot(page, "balance-deck-busy")
    assert len(watch.problems) == requests_before, "no action was tried"
    runner.wait_idle()
    page.wait_for_selector("[data-ivoryos-deck-state][data-state=idle]", timeout=10000)
    assert page.locator("#bd-busy").is_hidden() and page.get_attribute("#bd-tare", "data-deck") is None
    watch.assert_clean("balance while a workflow runs")
    page.close()


def test_ivoryos_menu_names_the_plugins_by_their_titles(ivoryos: Any, demo: Server) -> None:
    page = ivoryos.new_page()
    page.goto(f"{demo.base}/ivoryos/")
    page.click("#pluginsDropdown")
    page.wait_for_selector(".dropdown-menu a.dropdown-item[href='/ivoryos/plate_map/']", state="visible")
    labels = {a.get_attribute("href"): a.text_content().strip()
              for a in page.query_selector_all(".navbar .dropdown-menu a.dropdown-item[href^='/ivoryos/']")}
    shot(page, "ivoryos-plugins-menu")
    assert labels.get("/ivoryos/plate_map/") == "Plate map", labels
    assert labels.get("/ivoryos/serial_console/") == "Serial console", labels
    assert labels.get("/ivoryos/balance/") == "Balance", labels
    assert not [label for label in labels.values() if "_" in label], labels
    page.close()


def test_the_run_monitor_widget_scrolls_clear_of_ivoryos_status_badge(ivoryos: Any, demo: Server) -> None:
    runner = Runner(ivoryos, demo.base)
    runner.wait_idle()
    runner.run("first_hour_many_calls", *["deck.hotplate.setpoint()"] * 45)
    runner.wait_idle()
    page = ivoryos.new_page()
    page.set_viewport_size({"width": 1280, "height": 700})
    page.goto(f"{demo.base}/ivoryos/")
    frame = page.frame_locator("iframe[src$='/run_monitor/widget']")
    frame.locator("li.rm-call").nth(40).wait_for()
    widget = page.frame(url=re.compile(r"/run_monitor/widget$"))
    assert widget is not None
    widget.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    time.sleep(0.2)
    last = widget.locator("li.rm-call").last.bounding_box()  # in the top page's coordinates
    badge = page.locator(STATUS_BADGE).bounding_box()
    shot(page, "ivoryos-run-monitor-widget-scrolled")
    assert last and badge
    overlaps = last["y"] + last["height"] > badge["y"] and last["x"] < badge["x"] + badge["width"]
    assert not overlaps, f"the last call {last} is under IvoryOS's status badge {badge}"
    page.close()


# ------------------------------------------------------------------ the dev host
def dev_host(folder: Path, *targets: str) -> Server:
    """``ivoryos-plugin run TARGETS --deck examples/demo_deck.py`` on $PORT, in ``folder``."""
    return start_process([str(EXE), "run", *targets, "--deck", str(ROOT / "examples" / "demo_deck.py")],
                         folder, "dev_host.log")


def token_url(server: Server, path: str) -> str:
    deadline = time.monotonic() + 10
    while "token=" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    token = re.search(r"\?token=(\S+)", server.output())
    assert token, server.output()
    return f"{server.base}{path}?token={token.group(1)}"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = dev_host(tmp_path_factory.mktemp("first_hour_dev"), "hello_plugin.plugin:plugin",
                      "plate_map.plugin:plugin", "balance_dashboard.plugin:plugin")
    try:
        yield server
    finally:
        server.stop()


def test_the_dev_shell_has_bootstrap_and_the_same_shared_styles(browser: Any, dev: Server,
                                                               default_look: Dict[str, Dict[str, str]]) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        watch = Watch(page)
        page.goto(token_url(dev, "/ivoryos/hello/"))
        problems: Dict[str, List[str]] = {}
        for path in ("/ivoryos/hello/", "/ivoryos/plate_map/", "/ivoryos/balance/", "/ivoryos/balance/settings",
                     "/ivoryos/plugins/"):
            page.goto(dev.base + path)
            assert page.locator("body.ivp-shell").count() == 1, f"{path} is not in the dev shell"
            if page.query_selector("[data-ivoryos-live-state]"):
                wait_live(page)
            shot(page, "devhost" + re.sub(r"\W+", "-", path.rstrip("/")))
            found = [] if uses_shared_styles(page) else ["ivoryos_plugin.css or Bootstrap is not applied"]
            found += browser_default_controls(page, default_look) + state_badges_stand_apart(page)
            if found:
                problems[path] = found
            watch.assert_clean(path)
        assert not problems, problems
        bootstrap = page.evaluate("[...document.styleSheets].map(s => s.href).filter(h => /bootstrap/.test(h || ''))")
        assert bootstrap and all(h.startswith(dev.base + "/ivoryos/plugins/static/vendor/") for h in bootstrap)
    finally:
        context.close()


def test_show_errors_puts_each_message_by_its_field_and_returns_the_rest(browser: Any, dev: Server) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        page.goto(token_url(dev, "/ivoryos/hello/"))
        page.evaluate("""() => document.getElementById('greet-form').insertAdjacentHTML('beforeend',
            '<div data-field="size"><input id="size"></div>')""")
        rest = page.evaluate("""() => IvoryPlugin.showErrors('#greet-form', {errors: {
            name: ['too long', 'no digits'], size: 'must be positive', colour: ['unknown'], _: ['the body']}})""")
        assert rest == ["colour: unknown", "the body"]
        assert page.text_content("#name + [data-ivoryos-error=name]") == "too long no digits"
        assert page.text_content("[data-field=size] > [data-ivoryos-error=size]") == "must be positive"
        assert page.eval_on_selector("#size", "e => e.classList.contains('is-invalid')")
        assert page.get_attribute("#name", "aria-describedby") == page.get_attribute("[data-ivoryos-error=name]", "id")
        shot(page, "devhost-hello-field-errors")
        page.fill("#name", "Ada")  # typing clears that field's message only
        assert page.locator("[data-ivoryos-error=name]").count() == 0
        assert page.locator("[data-ivoryos-error=size]").count() == 1
        page.evaluate("() => IvoryPlugin.clearErrors('#greet-form')")
        assert page.locator(".ivp-field-error, .is-invalid").count() == 0
    finally:
        context.close()


def test_a_disconnected_page_greys_its_values(browser: Any, tmp_path: Path) -> None:
    server = dev_host(tmp_path, "balance_dashboard.plugin:plugin")
    context = offline_context(browser)
    try:
        page = context.new_page()
        page.goto(token_url(server, "/ivoryos/balance/"))
        wait_live(page)
        page.wait_for_selector("#bd-stable[data-stable=true]")
        live_look = page.eval_on_selector(".bd-reading", "e => [getComputedStyle(e).opacity, getComputedStyle(e).filter]")
        assert live_look == ["1", "none"]
        page.wait_for_function("document.getElementById('bd-chart').uplot.data[0].length >= 3")
        end, now = page.evaluate("() => [document.getElementById('bd-chart').uplot.scales.x.max, Date.now() / 1000]")
        assert abs(end - now) < 30, f"the chart's time axis ends at {end}, not now ({now})"
        shot(page, "devhost-balance-connected")
        assert server.stop(signal.SIGTERM) in (0, 143, -signal.SIGTERM)  # the server is gone
        page.wait_for_selector("[data-ivoryos-live-state][data-state=disconnected]", timeout=15000)
        page.wait_for_timeout(400)  # the greying fades in
        for selector in (".bd-reading", "#bd-chart"):
            stale = page.eval_on_selector(selector, """e => ({attr: e.getAttribute('data-stale'), title: e.title,
                opacity: parseFloat(getComputedStyle(e).opacity), filter: getComputedStyle(e).filter})""")
            assert stale["attr"] == "true" and stale["opacity"] < 0.6 and "grayscale(1)" in stale["filter"], stale
            assert "Not live" in stale["title"]
        assert page.text_content("[data-ivoryos-deck-state]") == "deck ?"  # nobody knows now
        shot(page, "devhost-balance-disconnected-greyed")
    finally:
        context.close()
        server.stop()


def test_an_empty_chart_shows_the_last_ten_minutes_not_1970(browser: Any, dev: Server) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        page.goto(token_url(dev, "/ivoryos/balance/"))
        page.route(re.compile(r"/socket\.io/"), lambda route: route.abort())  # no reading will ever arrive
        page.route(re.compile(r"/history/weight"), lambda route: route.abort())  # nor any recorded one
        page.goto(f"{dev.base}/ivoryos/balance/")
        page.wait_for_selector("#bd-chart canvas")
        start, end, now, points = page.evaluate("""() => { const u = document.getElementById('bd-chart').uplot;
            return [u.scales.x.min, u.scales.x.max, Date.now() / 1000, u.data[0].length]; }""")
        assert points == 0
        assert abs(end - now) < 30 and abs(end - start - 600) < 1, f"the empty chart's time axis is {start}..{end}"
        page.wait_for_selector("#bd-root[data-history=failed]")
        assert "live readings only" in (page.text_content("#bd-message") or "")
        shot(page, "devhost-balance-empty-chart")
    finally:
        context.close()


def test_a_mistyped_template_shows_the_fix_in_the_dev_host_page(browser: Any, tmp_path: Path) -> None:
    from ivoryos_plugin.tools.scaffold import render_package

    package = render_package("typo_shown", tmp_path)
    source = package / "typo_shown" / "plugin.py"
    source.write_text(source.read_text().replace('plugin.render("typo_shown.html"', 'plugin.render("typo_shwn.html"'))
    server = start_process([str(EXE), "run", "typo_shown.plugin:plugin"], package, "dev_host.log")
    context = offline_context(browser)
    try:
        page = context.new_page()
        with page.expect_response(re.compile(r"/ivoryos/typo_shown/$")) as answered:
            page.goto(token_url(server, "/ivoryos/typo_shown/"))
        assert answered.value.status == 500
        message = page.text_content(".ivp-dev-error-message")
        assert message and "renders 'typo_shwn.html', which is not in" in message
        assert "did you mean 'typo_shown.html'?" in message
        assert page.locator("body.ivp-shell").count() == 1, "not inside the dev shell"
        shot(page, "devhost-mistyped-template")
    finally:
        context.close()
        server.stop()
    assert "renders 'typo_shwn.html'" in server.output() and "Traceback" not in server.output()
