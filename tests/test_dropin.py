"""The decks and plugins labs already have, unchanged: plain Blueprint plugins written from the official
IvoryOS plugin template (tests/plugins/template_style: the base_exists switch, ``global_state.deck``,
init_socketio handlers on the default namespace, module-form entry points, left panels) on a deck
written as IvoryOS's example decks are, under plain ``ivoryos.run``, under ``ivoryos_plugin.run``
(``blueprint_plugins=`` one Blueprint or a list, with the installed plugins) and in the dev host
with ``--deck``; two left panels both visible in Chromium."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

from browsing import Watch, chromium, offline_context, screenshot
from installing import install_target
from support import PY, ROOT, Server, Viewer, cookie_header, free_port, ivoryos_login, launch, start_process

FIXTURE = ROOT / "tests" / "plugins" / "template_style"
DECK = ROOT / "tests" / "plugins" / "lab_deck.py"  # the deck; env LAB_DECK picks how it starts IvoryOS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture package pip-installed (with its entry points) where only the servers see it."""
    return install_target([FIXTURE], tmp_path_factory.mktemp("lab_pages") / "site")


def serve(site: Path, folder: Path, start: str) -> Server:
    """The deck started as ``start`` says (plain, list, single), seeing the installed fixture package."""
    return launch(DECK.read_text(), folder, name="lab_deck.py", env={
        "PYTHONPATH": str(site), "LAB_DECK": start, "LAB_TEST_PLUGINS": str(ROOT / "tests" / "plugins")})


@pytest.fixture(scope="module")
def plain(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = serve(site, tmp_path_factory.mktemp("plain"), "plain")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def listed(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = serve(site, tmp_path_factory.mktemp("listed"), "list")
    yield server
    server.stop()


def test_run_takes_ivoryos_runs_arguments_in_its_order_and_refuses_others(capsys: pytest.CaptureFixture) -> None:
    import inspect

    import ivoryos_plugin
    from ivoryos_plugin.hosts.ivoryos import run_parameters

    ours = list(inspect.signature(ivoryos_plugin.run).parameters)
    assert ours[:15] == run_parameters() and len(run_parameters()) == 15, ours
    with pytest.raises(TypeError, match=r"ivoryos.run \(IvoryOS [\d.]+\) takes no argument 'async_mode'; it takes: "
                                        r"module, host, port"):
        ivoryos_plugin.run(__name__, async_mode="threading")


def test_plugins_keyword_turns_discovery_off_and_says_so(capsys: pytest.CaptureFixture) -> None:
    from flask import Blueprint

    import ivoryos_plugin

    control = Blueprint("control", __name__)  # an IvoryOS page name: refused before anything starts
    control.add_url_rule("/", "main", lambda: "x")
    with pytest.raises(ivoryos_plugin.PluginError, match="'control' is the name of an IvoryOS built-in page"):
        ivoryos_plugin.run(__name__, plugins=[control])
    assert "discovery is off because plugins= is given" in capsys.readouterr().err


def default_namespace(server: Server, session: requests.Session) -> Dict[str, List[Any]]:
    """What a client of IvoryOS's default namespace receives on connecting and for one plugin_ping."""
    viewer = Viewer(server.base, "/", cookie=cookie_header(session))
    try:
        viewer.sio.emit("plugin_ping", {})
        viewer.wait_for("plugin_pong")
        time.sleep(1.0)  # anything else that would come
        return dict(viewer.events)
    finally:
        viewer.close()


@pytest.mark.server
def test_template_style_plugins_work_under_plain_ivoryos_run(plain: Server) -> None:
    page = requests.get(f"{plain.base}/ivoryos/monitor/")  # plain IvoryOS: no login on plugin pages
    assert page.status_code == 200 and "navbar" in page.text, page.text[-2000:]
    assert re.search(r'id="reading">21\.5<', page.text), "global_state.deck did not give the deck's thermometer"
    got = default_namespace(plain, ivoryos_login(plain.base))
    # python-socketio keeps the last handler registered per event: logbook's, for both events
    assert got["plugin_pong"] == [{"plugin": "logbook"}] and got["plugin_hello"] == [{"plugin": "logbook"}]
    assert "server_boot_id" not in got, "under plain IvoryOS a plugin's 'connect' replaces IvoryOS's own"


@pytest.mark.server
def test_plain_ivoryos_run_warns_that_a_second_left_panel_is_unreachable(plain: Server) -> None:
    status = ivoryos_login(plain.base).get(f"{plain.base}/ivoryos/plugins/status.json").json()
    warned = {w["name"]: w["message"] for w in status["warnings"]}
    assert "camera" in warned and "only the first left-panel plugin ('notes')" in warned["camera"]
    assert "ivoryos_plugin.run" in warned["camera"] and "notes" not in warned
    assert "plugin 'camera': IvoryOS shows only the first left-panel plugin" in plain.output()


@pytest.mark.server
def test_blueprint_plugins_as_a_list_alongside_the_installed_ones(listed: Server) -> None:
    session = ivoryos_login(listed.base)
    anonymous = requests.get(f"{listed.base}/ivoryos/monitor/", allow_redirects=False)
    assert anonymous.status_code == 302 and "/ivoryos/auth/login" in anonymous.headers["Location"]
    page = session.get(f"{listed.base}/ivoryos/monitor/")
    assert page.status_code == 200 and "navbar" in page.text and re.search(r'id="reading">21\.5<', page.text)
    for name, title in (("stage", "Stage"), ("logbook", "Logbook")):  # given, then installed
        reply = session.get(f"{listed.base}/ivoryos/{name}/")
        assert reply.status_code == 200 and f'id="page-title">{title}<' in reply.text
    assert "The deck's own camera" in session.get(f"{listed.base}/ivoryos/camera/widget").text
    line = next(l for l in listed.output().splitlines() if "plugin 'camera' is given and also installed" in l)
    assert "lab_pages.camera (ivoryos-lab-pages-fixture 0.1.0)" in line and "the given one is loaded" in line
    loaded = next(l for l in listed.output().splitlines() if "plugin(s):" in l)
    assert loaded.endswith("5 plugin(s): monitor, stage, camera, logbook, notes"), loaded


@pytest.mark.server
def test_three_plugins_sharing_default_namespace_events_answer_as_under_plain_ivoryos(listed: Server) -> None:
    session = ivoryos_login(listed.base)
    got = default_namespace(listed, session)
    assert got["plugin_pong"] == [{"plugin": "logbook"}] and got["plugin_hello"] == [{"plugin": "logbook"}]
    assert got.get("server_boot_id"), "IvoryOS's own connect handler did not run"
    status = session.get(f"{listed.base}/ivoryos/plugins/status.json").json()
    assert status["failures"] == [], "a running plugin is listed as failed"
    states = {p["name"]: p["state"] for p in status["plugins"]}
    assert all(states[n] == "running" for n in ("monitor", "stage", "logbook", "notes", "camera")), states
    warnings = [(w["name"], w["message"]) for w in status["warnings"]]
    assert any(n == "stage" and "'monitor' and 'stage' both handle Socket.IO event 'plugin_ping'" in m
               for n, m in warnings), warnings
    assert any(n == "logbook" and "'plugin_ping'" in m and "'stage' and 'logbook'" in m and "registered last" in m
               for n, m in warnings), warnings
    assert any(n == "monitor" and "'connect'" in m and "IvoryOS's keeps answering" in m for n, m in warnings)
    health = session.get(f"{listed.base}/ivoryos/plugins/")
    assert "Warnings (the plugins run)" in health.text and "Failed to load or start" not in health.text


@pytest.mark.server
def test_a_module_form_entry_point_and_its_module_level_init_socketio(listed: Server) -> None:
    session = ivoryos_login(listed.base)
    viewer = Viewer(listed.base, "/", cookie=cookie_header(session))
    try:
        viewer.sio.emit("notes_ping", {})
        assert viewer.wait_for("notes_pong") == [{"plugin": "notes"}]
    finally:
        viewer.close()
    assert "Bench notes" in session.get(f"{listed.base}/ivoryos/notes/widget").text


@pytest.mark.server
def test_one_blueprint_and_each_difference_from_ivoryos_run_printed(site: Path,
                                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    server = serve(site, tmp_path_factory.mktemp("single"), "single")
    try:
        session = ivoryos_login(server.base)
        assert re.search(r'id="reading">21\.5<', session.get(f"{server.base}/ivoryos/monitor/").text)
        assert session.get(f"{server.base}/ivoryos/logbook/").status_code == 200  # installed, discovered
        said = [l.split("ivoryos_plugin: ", 1)[1] for l in server.output().splitlines() if " * ivoryos_plugin: " in l]
        for start in ("host 127.0.0.1: only this machine can connect (ivoryos.run: 0.0.0.0",
                      "debug off (ivoryos.run: on, with the Werkzeug debugger)",
                      "SECRET_KEY: a random key kept in ",
                      "plain Blueprint plugin(s) monitor, camera, logbook, notes: their routes need an IvoryOS login",
                      "left-panel plugins camera, notes share one panel, a section each (ivoryos.run: shows only 'camera')",
                      "4 plugin(s): monitor, camera, logbook, notes"):
            assert sum(line.startswith(start) for line in said) == 1, f"{start!r} not printed once in:\n" + "\n".join(said)
    finally:
        server.stop()


@pytest.mark.server
def test_the_dev_host_serves_the_template_style_page_with_the_deck(site: Path, tmp_path: Path) -> None:
    shutil.copy(DECK, tmp_path / "lab_deck.py")
    port = free_port()
    code = "import sys; from ivoryos_plugin.tools.cli import main; sys.exit(main())"
    server = start_process([PY, "-c", code, "run", "lab_pages.monitor:monitor", "--deck", "lab_deck.py",
                            "--port", str(port)], tmp_path, "devhost.log", env={"PYTHONPATH": str(site)}, port=port)
    try:
        deadline = time.monotonic() + 10
        while "token=" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        match = re.search(r"\?token=(\S+)", server.output())
        assert match, server.output()
        session = requests.Session()
        assert session.get(f"{server.base}/ivoryos/?token={match.group(1)}").status_code == 200
        page = session.get(f"{server.base}/ivoryos/monitor/")
        assert page.status_code == 200, page.text
        assert "ivp-shell" in page.text, "base.html is not the dev shell"
        assert re.search(r'id="reading">21\.5<', page.text), "global_state.deck is not the --deck module"
        viewer = Viewer(server.base, "/", cookie=cookie_header(session))
        try:
            viewer.sio.emit("plugin_ping", {})
            assert viewer.wait_for("plugin_pong") == [{"plugin": "monitor"}]
        finally:
            viewer.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(listed: Server) -> Iterator[Any]:
    """Debian's headless Chromium, for the module."""
    yield from chromium()


@pytest.mark.browser
@pytest.mark.server
def test_two_left_panels_are_both_visible_in_a_browser(listed: Server, browser: Any) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        page.goto(f"{listed.base}/ivoryos/")
        page.fill("#username", "admin")
        page.fill("#password", "admin")
        with page.expect_navigation():  # (the login page's panel request may be cut short by it)
            page.click("form[name=login] button[type=submit]")
        watch = Watch(page)  # what the home page loads
        page.reload()
        panel = page.frame_locator("iframe[src$='/plugin_panels/widget']")
        for name, text in (("camera", "The deck's own camera"), ("notes", "Bench notes")):
            section = panel.locator(f"details[data-plugin='{name}']")
            assert section.get_attribute("open") is not None
            widget = panel.frame_locator(f"details[data-plugin='{name}'] iframe").locator(".widget-text")
            widget.wait_for()
            assert text in widget.inner_text() and widget.is_visible()
        screenshot(page, "dropin-two-left-panels")
        panel.locator("details[data-plugin='camera'] > summary").click()  # collapsible
        assert panel.locator("details[data-plugin='camera']").get_attribute("open") is None
        assert not panel.frame_locator("details[data-plugin='camera'] iframe").locator(".widget-text").is_visible()
        watch.assert_clean("IvoryOS's home page with the framework's left panel")
    finally:
        context.close()
