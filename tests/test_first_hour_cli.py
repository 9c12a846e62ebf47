"""The first hour on the command line and in the dev host, as a newcomer sees it (issue 14): what
``ivoryos-plugin`` prints for a wrong target, a port in use, a name pip cannot hold; the dev host's
terminal; the page that names the fix for a mistyped template or endpoint; the kit's ``sim_deck``;
the testing page's list of the simulated instruments; IvoryOS's nav showing plugin titles."""
from __future__ import annotations

import html
import inspect
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any, Iterator, List

import pytest
import requests
from click.testing import CliRunner

from support import ROOT, Server, free_port, start_process
from ivoryos_plugin import Plugin
from ivoryos_plugin.tools.cli import main

EXE = Path(sys.executable).with_name("ivoryos-plugin")


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real console script, as a user types it (no activated venv: its full path)."""
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------ 3. run with a wrong target
@pytest.mark.parametrize("target, expected", [
    ("balance_lg.plugin:plugin", r"no module named 'balance_lg'; is the package installed "
                                 r"\(.*pip install -e \./balance_lg\) and is the name spelt right\?"),
    ("hello_plugin.plugn:plugin", r"no module named 'hello_plugin.plugn'"),
    ("hello_plugin/plugin.py", r"'hello_plugin/plugin.py' is a file path, not a module; use the module path "
                               r"instead: hello_plugin.plugin:plugin\."),
    ("nowhere/plugin.py", r"'nowhere/plugin.py' is not a module \(and no such file exists\)"),
    ("hello_plugin.plugin:plugn", r"hello_plugin.plugin has no attribute 'plugn'"),
    ("hello_plugin.needs:plugin", r"importing 'hello_plugin.needs' failed: No module named 'serial_xyz' \(a "
                                  r"dependency of the plugin is not installed: pip install serial_xyz\)"),
], ids=["missing-package", "missing-module", "file-path", "missing-file", "missing-attribute", "missing-dependency"])
def test_run_with_a_wrong_target_prints_one_line_with_the_fix(tmp_path: Path, target: str, expected: str) -> None:
    (tmp_path / "hello_plugin").mkdir()
    (tmp_path / "hello_plugin" / "__init__.py").write_text("")
    (tmp_path / "hello_plugin" / "plugin.py").write_text("plugin = None\n")
    (tmp_path / "hello_plugin" / "needs.py").write_text("import serial_xyz\n")
    result = cli("run", target, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert re.search(expected, result.stderr), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 4, result.stderr  # click's usage line, its hint, and the error


# ------------------------------------------------------------------ smaller: the demo on a port in use
def test_demo_on_a_port_in_use_says_so_and_names_the_option_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("demo", "--port", str(port), "--no-browser", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"cannot listen on 127.0.0.1:{port}" in out and "ivoryos-plugin demo --port " in out, out
    assert "IvoryOS demo:" not in out and "admin / admin" not in out, "the banner said the demo was up"
    assert "Traceback" not in out
    assert not (tmp_path / "ivoryos_data").exists(), "IvoryOS was started anyway"


# ------------------------------------------------------------------ smaller: the dev host's terminal
@pytest.fixture
def dev_host(tmp_path: Path) -> Iterator[Server]:
    server = start_process([str(EXE), "run", "hello_plugin.plugin:plugin", "--deck",
                            str(ROOT / "examples" / "demo_deck_min.py")], tmp_path, "dev.log")  # port: $PORT
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_the_dev_host_terminal_has_no_contradictory_warnings_and_no_polling_lines(dev_host: Server) -> None:
    deadline = time.monotonic() + 10
    while "token=" not in dev_host.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    token = re.search(r"\?token=(\S+)", dev_host.output()).group(1)  # type: ignore[union-attr]
    session = requests.Session()
    assert session.get(f"{dev_host.base}/ivoryos/hello/?token={token}").status_code == 200
    for _ in range(3):  # what a page's Socket.IO client and deck badge do all the time
        assert session.get(f"{dev_host.base}/ivoryos/socket.io/?EIO=4&transport=polling").status_code == 200
        assert session.get(f"{dev_host.base}/ivoryos/plugins/deck.json").json()["busy"] is False
    assert session.get(f"{dev_host.base}/ivoryos/nope").status_code == 404
    time.sleep(0.3)
    out = dev_host.output()
    assert f":{dev_host.port}/ivoryos/?token=" in out, "the dev host listens on $PORT"
    assert "development server" not in out and "production deployment" not in out, out
    assert "socket.io" not in out and "deck.json" not in out and "/static/" not in out, out
    assert '"GET /ivoryos/hello/ HTTP/1.1" 200' in out, "the page's own request is still logged"
    assert "/ivoryos/nope" in out, "errors are still logged"


# ------------------------------------------------------------------ smaller: names pip can hold; Next: commands
@pytest.mark.parametrize("name, fix", [("ä_plugin", "'a_plugin'"), ("pétri", "'petri'")])
def test_new_refuses_a_name_that_would_make_an_invalid_pyproject(tmp_path: Path, name: str, fix: str) -> None:
    result = CliRunner().invoke(main, ["new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"Plugin {name!r}: a package name must be ASCII" in result.output and f"use {fix}" in result.output
    assert list(tmp_path.iterdir()) == [], "a package was written anyway"


def test_new_prints_next_commands_that_name_this_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["new", "log_page"])
    assert result.exit_code == 0, result.output
    bin_dir = Path(sys.executable).parent
    steps = result.output.split("Next:\n", 1)[1].split("\n")
    assert steps[0].strip() == f"{bin_dir / 'pip'} install -e './log_page[test]'"
    assert steps[1].strip() == f"{bin_dir / Path(sys.executable).name} -m pytest ./log_page"
    assert steps[2].strip() == f"{bin_dir / 'ivoryos-plugin'} run log_page.plugin:plugin"
    assert 'test = ["pytest>=8"]' in (tmp_path / "log_page" / "pyproject.toml").read_text()


# ------------------------------------------------------------------ 9. the dev host names the fix
def plugin_in(tmp_path: Path, name: str, template: str, source: str) -> Plugin:
    """A plugin module ``name`` in tmp_path whose main page renders ``template`` (holding ``source``)."""
    package = tmp_path / name
    (package / "templates").mkdir(parents=True)
    (package / "templates" / f"{name}.html").write_text(source)
    module = types.ModuleType(name)
    module.__file__ = str(package / "__init__.py")
    sys.modules[name] = module
    plugin = Plugin(name, name, template_folder=str(package / "templates"))
    plugin.add_url_rule("/", "main", lambda: plugin.render(template))
    return plugin


@pytest.fixture
def dev_client(tmp_path: Path) -> Iterator[Any]:
    from ivoryos_plugin import create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import login_client

    apps: List[Any] = []

    def make(plugin: Plugin) -> Any:
        app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
        apps.append(app)
        return login_client(app)

    yield make
    for app in apps:
        stop(app)
    for name in ("typo_page", "link_page"):
        sys.modules.pop(name, None)


def failure_message(page: str) -> str:
    found = re.search(r'class="ivp-dev-error-message mb-2">(.*?)</p>', page, re.S)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def test_a_mistyped_template_shows_the_check_message_in_the_page(tmp_path: Path, dev_client: Any) -> None:
    from ivoryos_plugin.core.hints import missing_template

    client = dev_client(plugin_in(tmp_path, "typo_page", "typo_pag.html", "{% extends plugin_base %}"))
    reply = client.get("/ivoryos/typo_page/")
    assert reply.status_code == 500
    page = reply.get_data(as_text=True)
    assert "This page failed: Template &#39;typo_pag.html&#39; not found" in page and 'class="ivp-shell"' in page
    folder = tmp_path / "typo_page" / "templates"
    assert failure_message(page) == missing_template("typo_page", "typo_pag.html", folder, ["typo_page.html"])
    assert "did you mean 'typo_page.html'?" in failure_message(page)
    as_json = client.get("/ivoryos/typo_page/", headers={"Accept": "application/json"})
    assert as_json.status_code == 500 and as_json.get_json()["error"] == failure_message(page)


def test_the_dev_host_page_says_what_check_says(tmp_path: Path) -> None:
    from ivoryos_plugin import create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import login_client
    from ivoryos_plugin.tools.checks import check_path
    from ivoryos_plugin.tools.scaffold import render_package

    package = render_package("typo_check", tmp_path)
    source = package / "typo_check" / "plugin.py"
    source.write_text(source.read_text().replace('plugin.render("typo_check.html"', 'plugin.render("typo_chek.html"'))
    (said_by_check,) = [f.message for f in check_path(package).errors if f.check == "templates"]
    sys.path.insert(0, str(package))
    try:
        from typo_check.plugin import plugin

        app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
        try:
            page = login_client(app).get("/ivoryos/typo_check/").get_data(as_text=True)
        finally:
            stop(app)
    finally:
        sys.path.remove(str(package))
        for name in [m for m in sys.modules if m == "typo_check" or m.startswith("typo_check.")]:
            sys.modules.pop(name)
    assert failure_message(page) == said_by_check
    assert "plugin.py:" in said_by_check and "did you mean 'typo_check.html'?" in said_by_check


def test_a_mistyped_endpoint_shows_the_nearest_one(tmp_path: Path, dev_client: Any) -> None:
    source = '{% extends plugin_base %}{% block body %}<a href="{{ url_for(\'link_page.mian\') }}">x</a>{% endblock %}'
    client = dev_client(plugin_in(tmp_path, "link_page", "link_page.html", source))
    reply = client.get("/ivoryos/link_page/")
    assert reply.status_code == 500
    message = failure_message(reply.get_data(as_text=True))
    assert message.startswith("Plugin 'link_page': url_for('link_page.mian') names no endpoint; did you mean "
                              "'link_page.main'? The plugin's endpoints are link_page.actions, link_page.main"), message


# ------------------------------------------------------------------ 5. the kit and the testing page
def test_sim_deck_beside_client_is_the_deck_the_host_runs_on(tmp_path: Path) -> None:
    """A plugin author's project, run by pytest as they run it: the kit opted in, sim_deck and client."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["ivoryos_plugin.testing"]\n')
    (tmp_path / "test_sim.py").write_text(textwrap.dedent('''
        import pytest
        from ivoryos_plugin import Plugin

        plugin_object = Plugin("sim_probe", __name__)

        @plugin_object.route("/")
        def main():
            return {"weight": plugin_object.instrument("balance").weigh()}

        @pytest.fixture
        def plugin():
            return plugin_object

        def test_the_page_reads_the_simulated_balance(sim_deck, client, deck):
            assert deck is sim_deck
            reply = client.get("/ivoryos/sim_probe/")
            assert reply.status_code == 200, reply.get_data(as_text=True)
            assert abs(reply.get_json()["weight"]) < 0.01  # an empty pan
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def public_members(cls: type) -> List[str]:
    return sorted(name for name, _ in inspect.getmembers(cls) if not name.startswith("_"))


def test_the_testing_page_lists_every_method_of_the_simulated_instruments() -> None:
    from ivoryos_plugin.sim import Balance, BalanceSimulator, Hotplate, Pump

    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for cls in (Balance, Pump, Hotplate):
        missing = [name for name in public_members(cls) if not re.search(rf"`{name}(\(|`)", text)]
        assert not missing, f"docs/testing.md does not list {cls.__name__}.{missing}"
    for name in ("load", "mass", "settle_time", "drop", "restore", "port"):
        assert hasattr(BalanceSimulator, name) or name in ("settle_time", "port")
        assert re.search(rf"`{name}(\(|`)", text), f"docs/testing.md does not mention the simulators' {name}"
    assert "received(live" not in text, "a snippet calls a helper the page does not show"
    for call in ("live.subscribe(", "live.wait_for(", "live.received(", "live.call("):
        assert call in text, call


# ------------------------------------------------------------------ 10. plugin titles in IvoryOS's nav
@pytest.fixture
def plugin() -> Plugin:
    from plate_map.plugin import plugin as plate_map

    return plate_map


def test_ivoryos_nav_shows_the_plugin_title(ivoryos_client: Any) -> None:
    home = ivoryos_client.get("/ivoryos/").get_data(as_text=True)
    links = re.findall(r'href="/ivoryos/plate_map/">\s*([^<]+?)\s*</a>', home)
    assert links and set(links) == {"Plate map"}, links
    assert "Plate_map" not in home
