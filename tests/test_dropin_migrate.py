"""``ivoryos-plugin migrate`` on a project laid out as the official IvoryOS plugin template (its package
and distribution both named ``ivoryos_plugin``: tests/plugins/template_project) and on one HTML page:
the new packages pass ``check`` and their generated tests, a real IvoryOS serves them, and the
framework stays importable. And what pip does with the template next to the framework, and what
``check`` says about it."""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests
from click.testing import CliRunner

from installing import child_venv, copy_projects, pip, pip_args
from support import ROOT, Server, Viewer, cookie_header, ivoryos_login, start_process
from ivoryos_plugin.tools.checks import check_path
from ivoryos_plugin.tools.cli import main

TEMPLATE = ROOT / "tests" / "plugins" / "template_project"
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>Stirrer panel</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.0-alpha2/dist/css/bootstrap.min.css"
        integrity="sha384-not-the-local-copy" crossorigin="anonymous">
  <script src="https://cdnjs.cloudflare.com/ajax/libs/socket.io/4.4.1/socket.io.js"></script>
  <script src="https://example.org/lab/chart.js"></script>
</head>
<body>
  <h1 id="stirrer">Stirrer</h1>
  <script>
    const socket = io();
    socket.on('connect', () => { document.getElementById('stirrer').dataset.live = 'yes'; });
  </script>
</body>
</html>
"""
DECK = '''
"""The lab's deck: the balance the migrated page reads and observes."""
import os

import ivoryos_plugin
from lab_balance.drivers import Balance

balance = Balance("COM7")

if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]))
'''


def migrate(*args: str) -> str:
    result = CliRunner().invoke(main, ["migrate", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The template-style project and the page migrated into a temporary folder."""
    root = tmp_path_factory.mktemp("migrated")
    source = copy_projects([TEMPLATE], root / "sources")[0]
    (root / "stirrer.html").write_text(PAGE)
    outputs = {"project": migrate(str(source), "--name", "lab_balance", "--dir", str(root)),
               "page": migrate("--from-html", str(root / "stirrer.html"), "--name", "stirrer_panel", "--dir", str(root))}
    (root / "outputs").mkdir()
    for key, text in outputs.items():
        (root / "outputs" / key).write_text(text)
    return {"root": root, "source": source, "project": root / "lab_balance", "page": root / "stirrer_panel"}


def test_the_template_project_is_converted_and_left_as_it_was(migrated: Dict[str, Path]) -> None:
    assert not filecmp.dircmp(TEMPLATE, migrated["source"]).diff_files, "migrate changed the original project"
    project = migrated["project"]
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "ivoryos-lab-balance-plugin"' in pyproject
    assert re.search(r'dependencies = \[\s*"ivoryos-plugin-framework",\s*"ivoryos",?\s*\]', pyproject), pyproject
    assert '[project.entry-points."ivoryos.plugins"]\nlab_balance = "lab_balance.plugin:plugin"' in pyproject
    plugin_py = (project / "lab_balance" / "plugin.py").read_text()
    for part in ("from ivoryos_plugin import Plugin", "plugin = Plugin('lab_balance', __name__",
                 "from lab_balance.drivers import Balance", "@plugin.on('plugin_ping')",
                 "plugin.instrument('balance').weigh_sample()", "if not plugin.instruments:",
                 "plugin.observe(name, _weigh_and_push, methods=['weigh_sample'])", 'plugin.publish("weighed"'):
        assert part in plugin_py, part
    for gone in ("def init_socketio", "init_socketio =", "base_exists =", "base_exists=", "Balance.weigh_sample = ",
                 "socketio.emit", "global_state.deck", "= Blueprint("):
        assert gone not in plugin_py.split('"""', 2)[2], gone  # the code, after the module's docstring
    page = (project / "lab_balance" / "templates" / "balance.html").read_text()
    assert page.startswith("{% extends plugin_base %}") and "IvoryPlugin.connect().socket" in page
    assert "cdnjs" not in page and "base_exists" not in page and "io()" not in page
    output = (migrated["root"] / "outputs" / "project").read_text()
    notes = output.split("To do or check by hand:")[1]
    assert "global_state.runner_status" in notes and "plugin.deck_busy()" in notes  # not converted, said so
    assert "__main__" in notes and "ivoryos-plugin run lab_balance.plugin:plugin" in notes


def test_the_page_becomes_a_plugin_with_local_libraries(migrated: Dict[str, Path]) -> None:
    page = (migrated["page"] / "stirrer_panel" / "templates" / "stirrer_panel.html").read_text()
    assert "{{ url_for('plugins.static', filename='vendor/bootstrap/bootstrap.min.css') }}" in page
    assert "integrity" not in page and "socket.io.js" not in page and "cdn.jsdelivr" not in page
    assert "const socket = IvoryPlugin.connect().socket;" in page
    output = (migrated["root"] / "outputs" / "page").read_text()
    assert "https://example.org/lab/chart.js is not one of the framework's local libraries" in output
    plugin_py = (migrated["page"] / "stirrer_panel" / "plugin.py").read_text()
    assert "plugin = Plugin('stirrer_panel', __name__, title='Stirrer panel')" in plugin_py


@pytest.mark.parametrize("key", ["project", "page"])
def test_the_migrated_packages_pass_check(migrated: Dict[str, Path], key: str) -> None:
    report = check_path(migrated[key])
    assert report.errors == [] and report.warnings == [], "\n".join(report.lines())


def test_migrate_refuses_a_taken_name_and_an_existing_folder(migrated: Dict[str, Path]) -> None:
    taken = CliRunner().invoke(main, ["migrate", str(migrated["source"]), "--name", "flask", "--dir",
                                      str(migrated["root"])])
    assert taken.exit_code == 1 and "a Python module named 'flask' already exists" in taken.output
    again = CliRunner().invoke(main, ["migrate", str(migrated["source"]), "--name", "lab_balance", "--dir",
                                      str(migrated["root"])])
    assert again.exit_code == 1 and "already exists" in again.output
    both = CliRunner().invoke(main, ["migrate", str(migrated["source"]), "--from-html", __file__, "--name", "x_y"])
    assert both.exit_code == 2 and "give a PATH or --from-html PAGE" in both.output


def test_check_names_the_collision_with_the_fix_and_imports_nothing() -> None:
    before = sys.modules.get("ivoryos_plugin")
    report = check_path(TEMPLATE)
    assert sys.modules.get("ivoryos_plugin") is before and hasattr(before, "_EXPORTS")
    name_errors = [f.message for f in report.errors if f.check == "name"]
    assert any("is named 'ivoryos_plugin', the framework's import name" in m and
               f"ivoryos-plugin migrate {TEMPLATE} --name my_plugin" in m for m in name_errors), name_errors
    assert any("the distribution name 'ivoryos_plugin' is the official plugin template's" in m for m in name_errors)


# ------------------------------------------------------------------ installed: generated tests, a real IvoryOS
@pytest.fixture(scope="module")
def venv(migrated: Dict[str, Path]) -> Path:
    """Both migrated packages pip-installed (editable) in a child virtualenv of the test one."""
    python = child_venv(migrated["root"] / "venv")
    pip(str(python), ["install", *pip_args(), "-e", str(migrated["project"]), "-e", str(migrated["page"])])
    return python


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.server
@pytest.mark.parametrize("key", ["project", "page"])
def test_the_generated_tests_pass(migrated: Dict[str, Path], venv: Path, key: str) -> None:
    result = run(venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(migrated[key]), cwd=migrated[key].parent)
    assert result.returncode == 0 and "5 passed" in result.stdout, result.stdout + result.stderr


def test_the_framework_stays_importable_next_to_them(venv: Path, migrated: Dict[str, Path]) -> None:
    code = ("import ivoryos_plugin, lab_balance.plugin, stirrer_panel.plugin; "
            "print(ivoryos_plugin.__file__, ivoryos_plugin.Plugin.__module__, lab_balance.plugin.plugin.name)")
    result = run(venv, "-c", code, cwd=migrated["root"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(ROOT / "ivoryos_plugin" / "__init__.py"), "ivoryos_plugin.core.plugin",
                                     "lab_balance"]


@pytest.fixture(scope="module")
def served(venv: Path, migrated: Dict[str, Path]) -> Iterator[Server]:
    folder = migrated["root"] / "ivoryos"
    folder.mkdir()
    (folder / "lab_deck.py").write_text(DECK)
    server = start_process([str(venv), "lab_deck.py"], folder, "lab_deck.py.log")
    yield server
    server.stop()


@pytest.mark.server
def test_a_real_ivoryos_serves_the_migrated_plugin(served: Server) -> None:
    session = ivoryos_login(served.base)
    page = session.get(f"{served.base}/ivoryos/lab_balance/")
    assert page.status_code == 200 and "navbar" in page.text
    assert re.search(r'id="grams">0\.0<', page.text), page.text[-1500:]
    viewer = Viewer(served.base, "/ivoryos/lab_balance", cookie=cookie_header(session), timeout=10)
    try:
        viewer.sio.emit("plugin_ping", {}, namespace="/ivoryos/lab_balance")
        assert viewer.wait_for("plugin_pong")[-1] == {"port": "COM7", "busy": False}
        # a single step from IvoryOS's instruments page: the class patch, now an observer, reports it
        seen = len(viewer.got("weighed"))  # the page's own weighing (replayed on connecting)
        step = session.post(f"{served.base}/ivoryos/instruments/deck.balance", json={"hidden_name": "dose_solid",
                                                                                      "amount_in_mg": 250})
        assert step.status_code == 200, step.text
        step = session.post(f"{served.base}/ivoryos/instruments/deck.balance", json={"hidden_name": "weigh_sample"})
        assert step.status_code == 200, step.text
        assert viewer.wait_for("weighed", count=seen + 1)[-1] == {"grams": 0.25, "port": "COM7"}
    finally:
        viewer.close()
    assert requests.get(f"{served.base}/ivoryos/lab_balance/", allow_redirects=False).status_code == 302


@pytest.mark.server
def test_a_real_ivoryos_serves_the_migrated_page_offline(served: Server) -> None:
    session = ivoryos_login(served.base)
    page = session.get(f"{served.base}/ivoryos/stirrer_panel/")
    assert page.status_code == 200 and 'id="stirrer"' in page.text
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    assert styles == ["/ivoryos/plugins/static/vendor/bootstrap/bootstrap.min.css"], styles
    assert session.get(served.base + styles[0]).status_code == 200
    assert "/ivoryos/plugins/static/ivoryos_plugin.js" in page.text


# ------------------------------------------------------------------ the template installed beside the framework
@pytest.mark.server
def test_installing_the_template_keeps_the_framework_and_check_says_what_happened(tmp_path: Path) -> None:
    source = tmp_path / "framework"
    shutil.copytree(ROOT / "ivoryos_plugin", source / "ivoryos_plugin", ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    for name in ("setup.py", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, source / name)
    template = copy_projects([TEMPLATE], tmp_path / "template")[0]
    pip(sys.executable, ["wheel", *pip_args(), "--wheel-dir", str(tmp_path / "dist"), str(source), str(template)])
    framework_wheel = next((tmp_path / "dist").glob("ivoryos_plugin_framework-*.whl"))
    template_wheel = next((tmp_path / "dist").glob("ivoryos_plugin-0.1.0-*.whl"))
    python = child_venv(tmp_path / "venv")
    pip(str(python), ["install", *pip_args(), str(framework_wheel)])
    installed = subprocess.run([str(python), "-m", "pip", "install", *pip_args(), str(template_wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0 and "Uninstalling" not in installed.stdout, installed.stdout + installed.stderr
    listed = run(python, "-m", "pip", "list", "--path", str(next((tmp_path / "venv" / "lib").glob("python*")) /
                                                               "site-packages"), cwd=tmp_path).stdout
    assert re.search(r"ivoryos-plugin-framework\s+0\.1\.0", listed) and re.search(r"ivoryos-plugin\s+0\.1\.0", listed)
    check = run(python, "-m", "ivoryos_plugin.tools.cli", "check", "--installed", cwd=tmp_path)
    errors = [l for l in check.stdout.splitlines() if l.strip().startswith("ERROR") and " install " in l]
    assert check.returncode == 1 and len(errors) == 2, check.stdout + check.stderr
    assert "the distribution ivoryos-plugin 0.1.0 installs a package 'ivoryos_plugin'" in errors[0]
    # the repair reinstalls the framework from where it came from (here a wheel no package index has)
    assert (f"-m pip uninstall -y ivoryos-plugin && {python} -m pip install --force-reinstall --no-deps "
            f"{framework_wheel}") in errors[0], errors[0]
    assert "which is not the framework's: a plugin package named 'ivoryos_plugin' replaced its __init__.py" in errors[1]
    # the fix the message gives, followed: the framework is whole again
    pip(str(python), ["uninstall", "-y", "ivoryos_plugin"])  # takes the framework's __init__.py with it
    broken = run(python, "-m", "ivoryos_plugin.tools.cli", "check", "--installed", cwd=tmp_path)
    assert broken.returncode == 1 and "ivoryos_plugin/__init__.py is missing" in broken.stdout, broken.stdout
    pip(str(python), ["install", *pip_args(), "--force-reinstall", str(framework_wheel)])
    fixed = run(python, "-m", "ivoryos_plugin.tools.cli", "check", "--installed", cwd=tmp_path)
    assert fixed.returncode == 0 and "ERROR" not in fixed.stdout, fixed.stdout + fixed.stderr
