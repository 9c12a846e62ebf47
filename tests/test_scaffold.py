"""``ivoryos-plugin new``: the generated package installs, its own tests pass, ``check`` passes, and a
real IvoryOS started with ``ivoryos_plugin.run`` discovers and serves it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List

import pytest
from click.testing import CliRunner

from support import ROOT, Server, ivoryos_login, start_process
from installing import child_venv, pip, pip_args
from ivoryos_plugin import PluginError
from ivoryos_plugin.tools.checks import check_path
from ivoryos_plugin.tools.cli import main
from ivoryos_plugin.tools.scaffold import render_package

EXPECTED_FILES = ["README.md", "demo_page/__init__.py", "demo_page/plugin.py", "demo_page/templates/demo_page.html",
                  "pyproject.toml", "tests/conftest.py", "tests/test_demo_page.py"]


def files_of(folder: Path) -> List[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_new_creates_a_complete_package(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new", "demo_page", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"pip install -e '{tmp_path / 'demo_page'}[test]'" in result.output
    package = tmp_path / "demo_page"
    assert files_of(package) == EXPECTED_FILES
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."ivoryos.plugins"]\ndemo_page = "demo_page.plugin:plugin"' in pyproject
    assert 'dependencies = ["ivoryos-plugin-framework"]' in pyproject
    plugin_py = (package / "demo_page" / "plugin.py").read_text()
    for part in ('@plugin.route("/")', "@plugin.action", '@plugin.stream("reading"', 'Plugin("demo_page"'):
        assert part in plugin_py
    page = (package / "demo_page" / "templates" / "demo_page.html").read_text()
    assert page.startswith("{% extends plugin_base %}")
    for part in ("IvoryPlugin.connect()", 'live.subscribe("reading"', 'live.action("reset"'):
        assert part in page
    assert not list(tmp_path.glob(".demo_page-*")), "the staging folder was left behind"


def test_a_left_panel_package_has_a_widget(tmp_path: Path) -> None:
    package = render_package("side_panel", tmp_path, placement="left_panel")
    plugin_py = (package / "side_panel" / "plugin.py").read_text()
    assert '@plugin.route("/widget")\ndef widget()' in plugin_py and 'placement="left_panel"' in plugin_py
    assert 'PAGE, RESET, STEP = "/widget",' in (package / "tests" / "test_side_panel.py").read_text()
    assert (package / "side_panel" / "templates" / "side_panel.html").read_text().startswith("<!doctype html>")


@pytest.mark.parametrize("name, fix", [
    ("my-plugin", "use 'my_plugin'"),
    ("control", "choose another name, e.g. 'control_plugin'"),
    ("json", "Choose another name, e.g. 'json_plugin'"),
    ("flask", "Choose another name, e.g. 'flask_plugin'"),
    ("tests", "Choose another name, e.g. 'tests_plugin'"),
], ids=["not-an-identifier", "reserved", "stdlib-module", "installed-module", "layout-folder"])
def test_new_refuses_a_bad_name(tmp_path: Path, name: str, fix: str) -> None:
    with pytest.raises(PluginError) as caught:
        render_package(name, tmp_path)
    assert fix in str(caught.value)
    result = CliRunner().invoke(main, ["new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 1 and fix in result.output
    assert list(tmp_path.iterdir()) == []


def test_new_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "demo_page").mkdir()
    (tmp_path / "demo_page" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        render_package("demo_page", tmp_path)
    result = CliRunner().invoke(main, ["new", "demo_page", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert files_of(tmp_path / "demo_page") == ["mine.txt"]


@pytest.mark.parametrize("placement", ["tab", "left_panel"])
def test_the_generated_package_passes_check(tmp_path: Path, placement: str) -> None:
    report = check_path(render_package(f"checked_{placement}", tmp_path, placement=placement))
    assert report.errors == [] and report.warnings == [], "\n".join(report.lines())


def test_a_wheel_of_the_framework_ships_the_scaffold(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "ivoryos_plugin", source / "ivoryos_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    for name in ("setup.py", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, source / name)
    pip(sys.executable, ["wheel", *pip_args(), "--wheel-dir", str(tmp_path / "dist"), str(source)])
    wheel = next((tmp_path / "dist").glob("ivoryos_plugin_framework-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    scaffold = ROOT / "ivoryos_plugin" / "tools" / "scaffold" / "files"
    wanted = {f"ivoryos_plugin/tools/scaffold/files/{p.relative_to(scaffold).as_posix()}"
              for p in scaffold.rglob("*.tmpl")}
    assert len(wanted) == 7 and wanted <= shipped, sorted(wanted - shipped)
    assert "ivoryos_plugin/tools/checks/project.py" in shipped


# ------------------------------------------------------------------ new -> pip install -e -> pytest -> IvoryOS
DECK = '''
"""IvoryOS with every installed plugin, discovered by ivoryos_plugin.run."""
import os

import ivoryos_plugin

if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]))
'''


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two generated packages (a tab and a left-panel widget) pip-installed (editable) into a child
    virtualenv of the test one, so the test virtualenv never sees them."""
    root = tmp_path_factory.mktemp("generated")
    for name, placement in (("demo_page", "tab"), ("side_panel", "left_panel")):
        result = CliRunner().invoke(main, ["new", name, "--placement", placement, "--dir", str(root)])
        assert result.exit_code == 0, result.output
    python = child_venv(root / "venv")
    pip(str(python), ["install", *pip_args(), "-e", str(root / "demo_page"), "-e", str(root / "side_panel")])
    yield {"root": root, "python": python}


def run_generated_tests(python: Path, package: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}
    return subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package)],
                          cwd=package.parent, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.server
def test_the_generated_tests_pass_out_of_the_box(generated: dict) -> None:
    packages = [generated["root"] / "demo_page", generated["root"] / "side_panel"]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: run_generated_tests(generated["python"], p), packages))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "11 passed" in result.stdout, result.stdout  # 9, the workflow step's test, the browser's


@pytest.fixture(scope="module")
def served(generated: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real IvoryOS, started by ivoryos_plugin.run in the child virtualenv."""
    folder = tmp_path_factory.mktemp("ivoryos_generated")
    (folder / "deck.py").write_text(DECK)
    server = start_process([str(generated["python"]), "deck.py"], folder, "deck.py.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_ivoryos_discovers_and_serves_the_generated_plugins(served: Server) -> None:
    admin = ivoryos_login(served.base)
    page = admin.get(f"{served.base}/ivoryos/demo_page/")
    assert page.status_code == 200 and "Demo Page" in page.text and "IvoryPlugin" in page.text
    assert admin.post(f"{served.base}/ivoryos/demo_page/actions/reset", json={"to": 2}).json() == {"ok": True, "value": 2}
    widget = admin.get(f"{served.base}/ivoryos/side_panel/widget")
    assert widget.status_code == 200 and "Side Panel" in widget.text
    home = admin.get(f"{served.base}/ivoryos/")
    assert home.status_code == 200 and "/ivoryos/demo_page/" in home.text
    loaded = next(line for line in served.output().splitlines() if "ivoryos_plugin:" in line and "plugin(s)" in line)
    assert "demo_page" in loaded and "side_panel" in loaded
    status = admin.get(f"{served.base}/ivoryos/plugins/status.json").json()
    states = {p["name"]: p["state"] for p in status["plugins"]}
    assert states.get("demo_page") == "running" and states.get("side_panel") == "running"
