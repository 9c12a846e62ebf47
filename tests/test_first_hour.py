"""The first hour of a newcomer, as the README prints it (issue 14): in a fresh copy of this checkout
(the work tree, without .venv, node_modules, the vendored assets or anything built), the README's
first command (install, then the demo), then every command of its tutorial, verbatim, parsed from
README.md, with no activated virtualenv; then what ``ivoryos-plugin new`` prints as "Next:", run as
printed; and a deck script of one's own in the README's venv, which must not get the examples.

Slow (the install downloads from the package registries, or their caches): a few minutes.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import requests

from support import ROOT, free_port, ivoryos_login, wait_for_port

pytestmark = pytest.mark.server

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: what a fresh clone does not have: made by the install, by runs, or ignored by git (``.cache`` holds
#: test_dropin_floor's virtualenv and ``.hypothesis`` Hypothesis's examples: both written while this
#: module copies the tree when another pytest-xdist worker runs those tests)
NOT_IN_A_CLONE = {".venv", "node_modules", "test-output", "vendor", "ivoryos_data", "build", "dist", ".git",
                  "__pycache__", ".pytest_cache", ".mypy_cache", ".import_linter_cache", ".cache", ".hypothesis"}
INSTALL_TIMEOUT = 1500.0
#: pip's complaint about this machine's own pip.conf (package mirrors in /opt that may be absent):
#: the machine's configuration, not the project's output
MACHINE_PIP_CONFIG = re.compile(r"^WARNING: Location 'file://\S+' is ignored: it is neither a file nor a directory\.$")
EXAMPLES = ("balance", "hello", "plate_map", "run_monitor", "serial_console")


def section(title: str) -> str:
    """The README's section whose heading starts with ``title`` (up to the next ``## ``)."""
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 4)
    return README[start:end if end != -1 else None]


def bash_commands(text: str) -> List[str]:
    """Every command line of the ```bash blocks of ``text``, in order."""
    lines: List[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines


def is_server(command: str) -> bool:
    return bool(re.search(r"ivoryos-plugin (run|demo)\b", command))


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment of a newcomer's shell: no activated virtualenv, no test settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "IVORYOS_", "VIRTUAL_ENV", "PYTHON")) and k not in ("PORT", "CI")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not Path(p, "activate").exists())
    return {**env, "CI": "true", **extra}  # CI: the demo opens no browser


def copy_work_tree(into: Path) -> Path:
    """The checkout as a fresh clone has it, but with the uncommitted work."""
    def ignore(folder: str, names: List[str]) -> List[str]:
        return [n for n in names if n in NOT_IN_A_CLONE or n.endswith((".egg-info", ".pyc"))]

    shutil.copytree(ROOT, into, ignore=ignore, symlinks=True)
    return into


class Shell:
    """Runs the README's lines in the copy, as typed there; servers in their own process group,
    stopped (the group we started) when done."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.transcript: List[str] = []

    def run(self, command: str, timeout: float = 600.0) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(["bash", "-c", command], cwd=self.folder, env=clean_env(), capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        self.transcript.append(f"$ {command}  ({time.monotonic() - started:.0f} s, exit {result.returncode})\n"
                               f"{result.stdout}{result.stderr}")
        assert result.returncode == 0, f"`{command}` failed:\n{result.stdout}\n{result.stderr}"
        return result

    def serve(self, command: str, timeout: float = 120.0) -> Tuple["Started", int]:
        port = free_port()
        log = self.folder / f"server-{port}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(["bash", "-c", command], cwd=self.folder, env=clean_env(PORT=str(port)),
                                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        started = Started(proc, log, command)
        try:
            wait_for_port(port, proc, timeout)
        except Exception as exc:
            started.stop()
            raise AssertionError(f"`{command}` never listened on $PORT={port}: {exc}\n{started.output()}") from exc
        return started, port


class Started:
    def __init__(self, proc: subprocess.Popen, log: Path, command: str) -> None:
        self.proc, self.log, self.command = proc, log, command

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session we started for it: bash and its server
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = copy_work_tree(tmp_path_factory.mktemp("fresh") / "ivoryos_plugin")
    assert not (folder / ".venv").exists() and not (folder / "ivoryos_plugin" / "static" / "vendor").exists()
    yield folder


@pytest.fixture(scope="module")
def first_command(clone: Path) -> Iterator[Dict[str, str]]:
    """The README's first command, as printed: it installs, then starts the demo."""
    (command,) = bash_commands(section("The two commands"))[:1]
    assert command == "./scripts/install.sh && .venv/bin/ivoryos-plugin demo"
    shell = Shell(clone)
    demo, port = shell.serve(command, timeout=INSTALL_TIMEOUT)
    try:
        deadline = time.monotonic() + 60
        while "IvoryOS demo:" not in demo.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        session = ivoryos_login(f"http://127.0.0.1:{port}")
        home = session.get(f"http://127.0.0.1:{port}/ivoryos/")
        yield {"output": demo.output(), "home": home.text, "status": str(home.status_code), "port": str(port)}
    finally:
        demo.stop()


def test_the_first_command_installs_quietly_and_starts_the_demo(first_command: Dict[str, str]) -> None:
    out = first_command["output"]
    install, _, demo = out.partition(" * IvoryOS demo:")
    assert demo, f"no demo banner:\n{out[-4000:]}"
    assert "would be ignored" not in install and "Traceback" not in install, install
    lines = [line for line in install.splitlines() if line.strip() and not MACHINE_PIP_CONFIG.match(line)]
    assert len(lines) <= 12, "install.sh should print a few lines, not:\n" + "\n".join(lines)
    assert "install.sh: done" in install
    assert first_command["status"] == "200" and "/ivoryos/plate_map/" in first_command["home"]
    assert "Plate map" in first_command["home"] and "Plate_map" not in first_command["home"]


def test_the_install_leaves_the_checkouts_bytecode(clone: Path, first_command: Dict[str, str]) -> None:
    """Each module of the framework and the examples has its bytecode, up to date, after the install:
    no server or CLI run compiles them again, also where PYTHONDONTWRITEBYTECODE keeps Python from
    writing it (the copy had none: ``copy_work_tree`` leaves ``__pycache__`` out)."""
    sources = [path for folder in ("ivoryos_plugin", "examples") for path in (clone / folder).rglob("*.py")]
    assert len(sources) > 100
    stale = [str(path.relative_to(clone)) for path in sources
             if not (cached := Path(importlib.util.cache_from_source(str(path)))).exists()
             or cached.stat().st_mtime < path.stat().st_mtime]
    assert not stale, f"{len(stale)} module(s) without bytecode after install.sh, e.g. {stale[:5]}"


@pytest.fixture(scope="module")
def tutorial(clone: Path, first_command: Dict[str, str]) -> Iterator[Shell]:
    """Every command of the README's tutorial, in order, after the first command only."""
    shell = Shell(clone)
    commands = bash_commands(section("Tutorial"))
    assert commands[:4] == [
        ".venv/bin/ivoryos-plugin new balance_log          # a page, an action, a live stream, tests",
        ".venv/bin/pip install -e './balance_log[test]'    # the package, and pytest for its tests",
        ".venv/bin/python -m pytest ./balance_log           # the generated tests pass out of the box",
        ".venv/bin/ivoryos-plugin check ./balance_log       # static checks: name, endpoints, templates, entry point",
    ], commands
    for command in commands:
        if not is_server(command):
            shell.run(command)
            continue
        server, port = shell.serve(command)
        try:
            page_served_with_token(server, port)
        finally:
            server.stop()
    yield shell


def page_served_with_token(server: Started, port: int) -> None:
    """The dev host printed its URL with a token; that URL opens a plugin page."""
    deadline = time.monotonic() + 20
    while "?token=" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    found = re.search(r"(http://127\.0\.0\.1:(\d+)/ivoryos/)\?token=(\S+)", server.output())
    assert found and found.group(2) == str(port), server.output()
    page = requests.Session().get(f"{found.group(1)}?token={found.group(3)}", timeout=30)
    assert page.status_code == 200 and "IvoryPlugin" in page.text, page.text[:500]
    assert "production deployment" not in server.output() and "development server" not in server.output()


def test_the_tutorial_runs_as_printed(tutorial: Shell) -> None:
    transcript = "\n".join(tutorial.transcript)
    pytest_run = next(t for t in tutorial.transcript if "-m pytest ./balance_log" in t.splitlines()[0])
    assert re.search(r"\b\d+ passed\b", pytest_run) and "failed" not in pytest_run, pytest_run
    check = next(t for t in tutorial.transcript if "check ./balance_log" in t.splitlines()[0])
    assert "passed: 0 errors" in check, check
    assert "No module named pytest" not in transcript


def test_next_commands_of_new_run_as_printed(tutorial: Shell, clone: Path) -> None:
    created = tutorial.run(".venv/bin/ivoryos-plugin new next_page").stdout
    steps = [line.strip() for line in created.split("Next:\n", 1)[1].splitlines() if line.strip()]
    assert len(steps) == 3 and steps[0].startswith(".venv/bin/pip install -e"), created
    for step in steps:
        if is_server(step):
            server, port = tutorial.serve(step)
            try:
                page_served_with_token(server, port)
            finally:
                server.stop()
        else:
            tutorial.run(step)


DECK = '''"""A lab's own deck script, as the README describes it."""
import ivoryos_plugin


class Stirrer:
    def spin(self, rpm: int = 100) -> int:
        """Spin."""
        return rpm


stirrer = Stirrer()

if __name__ == "__main__":
    ivoryos_plugin.run(__name__)
'''


def test_a_deck_of_ones_own_in_the_readme_venv_gets_no_example(tutorial: Shell, clone: Path) -> None:
    (clone / "my_lab_deck.py").write_text(DECK)
    listed = tutorial.run(".venv/bin/ivoryos-plugin list").stdout
    installed = {line.split()[1] for line in listed.splitlines() if line.startswith(("ok", "FAILED"))}
    assert "balance_log" in installed and not installed & set(EXAMPLES), listed  # next_page too, if made
    server, port = tutorial.serve(".venv/bin/python my_lab_deck.py")
    try:
        base = f"http://127.0.0.1:{port}"
        session = ivoryos_login(base)
        names = {p["name"] for p in session.get(f"{base}/ivoryos/plugins/status.json").json()["plugins"]}
        assert names == installed, names
        for example in EXAMPLES:
            assert session.get(f"{base}/ivoryos/{example}/").status_code == 404, example
        home = session.get(f"{base}/ivoryos/").text
        assert "Balance Log" in home and "/ivoryos/balance/" not in home
        assert f" * ivoryos_plugin: {len(installed)} plugin(s): {', '.join(sorted(installed))}" in server.output(), \
            server.output()
    finally:
        server.stop()
