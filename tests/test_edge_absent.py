"""Without the ``[edge]`` extra nothing changes (issue 26): in a Python where ``ivoryos_edge``, FastAPI,
Starlette and uvicorn cannot be found (a ``sitecustomize`` hides them from every import finder, as if
they were not installed), ``import ivoryos_plugin`` loads none of them, a plugin's page and action work,
``ivoryos-plugin check`` passes and says how to install the extra, ``ivoryos_plugin.edge.for_edge`` says
it too, and the kit runs an example's tests on IvoryOS 1.x with the ``[edge]`` runs skipped, saying why."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

from support import ROOT
from test_edge_check import GOOD_PLUGIN, project

INSTALL = "pip install 'ivoryos-plugin-framework[edge]'"
HIDDEN = ("ivoryos_edge", "fastapi", "starlette", "uvicorn")

SITECUSTOMIZE = '''
"""Hide the [edge] extra from this interpreter, as if it were not installed."""
import sys

HIDDEN = {hidden!r}


class _Hide:
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find is not None else None

    def __getattr__(self, name):
        return getattr(self.inner, name)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
'''

PROBE = '''
import importlib.util
import json
import sys
import tempfile

from click.testing import CliRunner

HIDDEN = {hidden!r}
found = {{}}
try:
    import ivoryos_edge  # noqa: F401
    found["hidden"] = False
except ModuleNotFoundError:
    found["hidden"] = all(importlib.util.find_spec(name) is None for name in HIDDEN)

import ivoryos_plugin
import ivoryos_plugin.edge
from ivoryos_plugin import create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import make_deck, plugin_url
import hello_plugin

found["after_import"] = sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN)
class Counter:
    def bump(self, by: int = 1) -> int:
        return by


app = create_app([hello_plugin.plugin], deck=make_deck(counter=Counter()), data_dir=tempfile.mkdtemp(), testing=True)
client = app.test_client()
client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + app.config["IVORYOS_PLUGIN_TOKEN"]
page = client.get(plugin_url(app, hello_plugin.plugin))
found["page"] = [page.status_code, 'id="instruments">counter<' in page.get_data(as_text=True)]
reply = client.post(plugin_url(app, hello_plugin.plugin, "actions/greet"), json={{"name": "Ada"}})
found["action"] = [reply.status_code, reply.get_json()]
stop(app)
try:
    from ivoryos_plugin.edge import for_edge  # noqa: F401
    found["for_edge"] = "imported"
except ImportError as exc:
    found["for_edge"] = str(exc)

from ivoryos_plugin.tools.cli import main
result = CliRunner().invoke(main, ["check", sys.argv[1]])
found["check"] = [result.exit_code, result.output]
found["after_check"] = sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN)
print("FOUND " + json.dumps(found))
'''


@pytest.fixture(scope="module")
def hidden_env(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    folder = tmp_path_factory.mktemp("no_edge")
    (folder / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE.format(hidden=HIDDEN)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    return env


@pytest.fixture(scope="module")
def probed(hidden_env: Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    folder = tmp_path_factory.mktemp("no_edge_probe")
    (folder / "probe.py").write_text(textwrap.dedent(PROBE.format(hidden=HIDDEN)))
    plugin_project = project(folder, "chk_no_edge", GOOD_PLUGIN)
    result = subprocess.run([sys.executable, str(folder / "probe.py"), str(plugin_project)], cwd=folder,
                            env=hidden_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("FOUND "))
    found: Dict[str, Any] = json.loads(line[len("FOUND "):])
    assert found["hidden"] is True, "the extra is not hidden: this test would prove nothing"
    return found


def test_import_ivoryos_plugin_loads_no_edge_module(probed: Dict[str, Any]) -> None:
    assert probed["after_import"] == []


def test_a_plugin_page_and_action_work(probed: Dict[str, Any]) -> None:
    assert probed["page"] == [200, True]
    assert probed["action"] == [200, {"message": "Hello, Ada!"}]


def test_for_edge_names_the_extra(probed: Dict[str, Any]) -> None:
    assert INSTALL in probed["for_edge"] and "ivoryos_edge" in probed["for_edge"], probed["for_edge"]


def test_check_passes_says_how_to_install_and_loads_no_edge_module(probed: Dict[str, Any]) -> None:
    code, output = probed["check"]
    assert code == 0, output
    edge = [line.strip() for line in output.splitlines() if " edge " in line]
    assert edge == [f"ok       chk_no_edge        edge             not checked: ivoryos_edge is not installed "
                    f"({INSTALL} to check what ivoryos-edge cannot serve)"], output
    assert output.rstrip().endswith("passed: 0 errors, 0 warnings.")
    assert probed["after_check"] == []


#: the 1.x tests run without the extra (the whole suite runs with it, in CI)
ONE_X = ("tests/test_plugin.py", "tests/test_declarations.py", "tests/test_actions.py", "tests/test_steps.py",
         "tests/test_busy.py", "tests/test_hosts.py", "tests/test_live.py")


def test_the_examples_and_the_core_1x_tests_run_without_the_extra(hidden_env: Dict[str, str]) -> None:
    """Every example's own tests, and the 1.x tests of the plugin, its declarations, its actions, steps
    and busy guard, the hosts and the Socket.IO live channel, pass in a Python that cannot import the
    edge; the [edge] runs of the examples are skipped, each saying how to install it."""
    result = subprocess.run([sys.executable, "-m", "pytest", "examples", *ONE_X, "-rfEs", "-q", "-p", "no:cacheprovider"],
                            cwd=ROOT, env=hidden_env, capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL)
    failed = [line for line in result.stdout.splitlines() if re.match(r"(FAILED|ERROR) \S+::", line)]
    # the inner failures' own reports (what failed and where), before the end of the output
    found = [at for at in (result.stdout.find(" ERRORS "), result.stdout.find(" FAILURES ")) if at != -1]
    reports = result.stdout[min(found):].partition(" short test summary info ")[0] if found else ""
    assert result.returncode == 0, ("\n".join(failed) + "\n" + reports[:8000] + "\n" + result.stdout[-2000:]
                                    + result.stderr[-2000:])
    summary = re.search(r"(\d+) passed, (\d+) skipped", result.stdout)
    assert summary, result.stdout[-2000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all(INSTALL in line for line in skipped), skipped  # only the [edge] runs are skipped
    examples = {path.parent.parent.name for path in (ROOT / "examples").glob("*/tests/test_*.py")}
    assert all(any(f"examples/{name}/" in line for line in skipped) for name in examples), (examples, skipped)
    assert int(summary.group(1)) >= 100, result.stdout[-2000:]  # the 1.x runs did run


def _cli() -> List[str]:
    """The installed ``ivoryos-plugin`` command beside this Python (its console script), else ``-m``."""
    script = Path(sys.executable).with_name("ivoryos-plugin")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ivoryos_plugin.tools.cli"]


def _one_line(result: "subprocess.CompletedProcess[str]") -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("args", [["run", "hello_plugin:plugin", "--host", "edge"],
                                  ["demo", "--host", "edge", "--no-browser"]], ids=["run", "demo"])
def test_the_cli_on_the_edge_ends_in_one_line_naming_the_fix(hidden_env: Dict[str, str], tmp_path: Path,
                                                             args: List[str]) -> None:
    env = dict(hidden_env, PYTHONPATH=os.pathsep.join([hidden_env["PYTHONPATH"], str(ROOT / "examples" / "hello")]))
    result = subprocess.run(_cli() + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    line = _one_line(result)
    assert result.returncode == 2, (result.returncode, line)
    command = " ".join(["ivoryos-plugin"] + args[:1] + ["--host", "edge"])
    assert line == (f"Error: {command} cannot start: ivoryos_plugin's ivoryos-edge host needs the [edge] extra, "
                    f"and 'ivoryos_edge' is not installed: {INSTALL}"), line
    assert not (tmp_path / "ivoryos_data").exists()  # nothing started


API = '''
import json
import ivoryos_plugin.edge
from ivoryos_plugin.tools.demo import run_demo

found = {}
for name, call in [("run", lambda: ivoryos_plugin.edge.run("__main__")),
                   ("entry_point", lambda: ivoryos_plugin.edge.hello),
                   ("demo", lambda: run_demo(host="edge", open_browser=False))]:
    try:
        call()
        found[name] = "no error"
    except ivoryos_plugin.edge.EdgeNotInstalled as exc:
        found[name] = [isinstance(exc, ImportError), exc.name, str(exc)]
print("FOUND " + json.dumps(found))
ivoryos_plugin.edge.run("__main__")
'''


def test_the_api_raises_edge_not_installed(hidden_env: Dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "deck.py").write_text(API)
    result = subprocess.run([sys.executable, "deck.py"], cwd=tmp_path, env=hidden_env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    found = json.loads(next(l for l in result.stdout.splitlines() if l.startswith("FOUND "))[len("FOUND "):])
    problem = f"ivoryos_plugin's ivoryos-edge host needs the [edge] extra, and 'ivoryos_edge' is not installed: {INSTALL}"
    assert found == {name: [True, "ivoryos_edge", problem] for name in ("run", "entry_point", "demo")}, found
    # uncaught in a deck script: the traceback is the deck's line and the check, its last line the fix
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()
    assert last[-1] == f"ivoryos_plugin.hosts.extras.EdgeNotInstalled: {problem}", result.stderr
    frames = [line for line in last if line.startswith("  File ")]
    assert len(frames) == 3 and "importlib" not in result.stderr, result.stderr
    assert not (tmp_path / "ivoryos_data").exists()
