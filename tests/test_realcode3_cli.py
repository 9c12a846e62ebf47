"""What ``ivoryos-plugin run / new / demo`` do with wrong input, as a new user types it (the real
console script, real subprocesses): at most five lines, a non-zero exit, the fix named, never the
framework's traceback. ``run`` takes the folder form ``check`` takes; two demos on two ports keep
separate data."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
import requests

from support import Server, free_port, ivoryos_login, start_process, wait_until

EXE = Path(sys.executable).with_name("ivoryos-plugin")

PLUGIN = '''
from pydantic import BaseModel
from ivoryos_plugin import Plugin


class Settings(BaseModel):
    label: str = "bench"


plugin = Plugin("rc3_log", __name__, title="RC3 log", settings=Settings)


@plugin.route("/")
def main():
    return "rc3 log page"
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "rc3-log"
version = "0.1.0"
dependencies = ["ivoryos-plugin-framework"]

[project.entry-points."ivoryos.plugins"]
rc3_log = "rc3_log.plugin:plugin"
'''

BAD_DECK = '''
import json


def read_calibration():
    return json.loads("{not json")


balance_offset = read_calibration()
'''


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder as a plugin author has it: a project ``rc3_log`` (pyproject, package, plugin), a deck
    script that raises, a plugin module that raises at import, one that raises at registration."""
    package = tmp_path / "rc3_log" / "rc3_log"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    (package / "broken.py").write_text("from .plugin import plugin\nraise KeyError('RC3_PORT not set')\n")
    (package / "late.py").write_text(textwrap.dedent('''
        from ivoryos_plugin import Plugin

        plugin = Plugin("rc3_late", __name__)


        @plugin.route("/")
        def main():
            return "late"


        @plugin.record_once
        def connect(state):
            raise OSError("instrument server 127.0.0.1:1 refused")
    '''))
    (tmp_path / "rc3_log" / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (tmp_path / "bad_deck.py").write_text(textwrap.dedent(BAD_DECK))
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("")
    return tmp_path


def cli(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    """The real console script, as a user types it."""
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**__import__("os").environ, "CI": "true"})


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


PORT = "{busy}"  # replaced by the busy port
DECK_FRAMES = [r'File ".*bad_deck\.py", line 9, in <module>: balance_offset = read_calibration\(\)',
               r'File ".*bad_deck\.py", line 6, in read_calibration: return json\.loads']
CASES: Dict[str, tuple] = {
    "run-folder-without-project": (["run", "./empty"], r"empty has no pyproject\.toml, setup\.cfg or setup\.py; "
                                                        r"create the package with: ivoryos-plugin new NAME"),
    "run-missing-attribute": (["run", "rc3_log.plugin:NOT_A_PLUGIN"],
                              r"rc3_log\.plugin has no attribute 'NOT_A_PLUGIN'; use rc3_log\.plugin:plugin\."),
    "run-not-a-plugin": (["run", "rc3_log.plugin:Settings"],
                         r"rc3_log\.plugin:Settings is the class Settings, not a Plugin or flask\.Blueprint; "
                         r"use rc3_log\.plugin:plugin\."),
    "run-busy-port": (["run", "./rc3_log", "--port", PORT],
                      r"cannot listen on 127\.0\.0\.1:{busy}: .*use another port: ivoryos-plugin run \./rc3_log "
                      r"--port \d+"),
    "run-deck-raises": (["run", "./rc3_log", "--deck", "bad_deck.py", "--port", "0"],
                        r"the deck script bad_deck\.py failed while loading, so the dev host did not start: it "
                        r"raised JSONDecodeError: Expecting property name", *DECK_FRAMES),
    "run-plugin-raises-at-import": (["run", "rc3_log.broken:plugin"],
                                    r"importing rc3_log\.broken for 'rc3_log\.broken:plugin' raised KeyError: "
                                    r"'RC3_PORT not set'", r'File ".*broken\.py", line 2, in <module>'),
    "run-plugin-raises-at-registration": (["run", "rc3_log.late:plugin", "--port", "0"],
                                          r"registering plugin 'rc3_late' in the dev host raised OSError: instrument "
                                          r"server 127\.0\.0\.1:1 refused", r'File ".*late\.py", line 14, in connect'),
    "new-bad-name": (["new", "rc3-bad"], r"use 'rc3_bad'"),
    "new-reserved-name": (["new", "data"], r"'data' is the name of an IvoryOS built-in page"),
    "new-exists": (["new", "rc3_log"], r"rc3_log already exists; remove it or pass another --dir"),
    "demo-busy-port": (["demo", "--no-browser", "--port", PORT],
                       r"cannot listen on 127\.0\.0\.1:{busy}: .*use another port: ivoryos-plugin demo --port \d+"),
    "demo-deck-raises": (["demo", "--no-browser", "--port", "0", "--deck", "bad_deck.py"],
                         r"the deck script bad_deck\.py failed while loading, so the demo did not start", *DECK_FRAMES),
    "demo-data-is-a-file": (["demo", "--no-browser", "--data", "a_file"], r"'--data': Directory 'a_file' is a file"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_wrong_input_prints_at_most_five_lines_with_the_fix_and_exits_non_zero(
        workspace: Path, busy_port: int, case: str) -> None:
    args, *expected = CASES[case]
    args = [str(free_port()) if a == "0" else a.replace(PORT, str(busy_port)) for a in args]
    cwd = workspace / "rc3_log" if args[1].startswith("rc3_log.") else workspace
    result = cli(*args, cwd=cwd)
    out = result.stdout + result.stderr
    lines = [line for line in out.splitlines() if line.strip()]
    assert result.returncode != 0, out
    assert len(lines) <= 5, f"{len(lines)} lines:\n{out}"
    assert "Traceback" not in out, out
    assert "/ivoryos_plugin/" not in out and "site-packages" not in out, f"framework frames shown:\n{out}"
    for pattern in expected:
        assert re.search(pattern.replace("{busy}", str(busy_port)), out), f"{pattern!r} not in:\n{out}"
    assert "dev host: http" not in out and "IvoryOS demo:" not in out, "it said it was up"


# ------------------------------------------------------------------ run takes the folder form
@pytest.mark.server
@pytest.mark.parametrize("target, cwd", [("./rc3_log", "."), ("rc3_log", "."), (".", "rc3_log")],
                         ids=["dot-slash-project", "bare-project-name", "dot-inside-project"])
def test_run_serves_the_plugin_of_a_project_folder_as_check_finds_it(workspace: Path, target: str,
                                                                    cwd: str) -> None:
    server = start_process([str(EXE), "run", target], workspace / cwd, "run.log")
    try:
        assert wait_until(lambda: re.search(r"dev host: (http://\S+)", server.output()) is not None, 10)
        found = re.search(r"dev host: (http://\S+)", server.output())
        assert found is not None, server.output()
        session = requests.Session()
        assert session.get(found.group(1)).status_code == 200  # the token logs in
        page = session.get(f"{server.base}/ivoryos/rc3_log/")
        assert page.status_code == 200 and "rc3 log page" in page.text, page.text[:500]
    finally:
        server.stop()


# ------------------------------------------------------------------ two demos keep separate data
def start_demo(folder: Path, port: int, *args: str) -> Server:
    return start_process([str(EXE), "demo", "--no-browser", "--port", str(port), *args], folder,
                         f"demo-{port}.log", env={"CI": "true"}, port=port, timeout=120)


def weights(server: Server, session: requests.Session) -> List[Dict[str, float]]:
    reply = session.get(f"{server.base}/ivoryos/balance/history/weight", params={"since": "0"})
    assert reply.status_code == 200, reply.text[:500]
    return list(reply.json()["points"])


@pytest.mark.server
def test_two_demos_on_two_ports_keep_separate_data(tmp_path: Path) -> None:
    first_port, second_port = free_port(), free_port()
    first = start_demo(tmp_path, first_port)
    try:
        first_admin = ivoryos_login(first.base)
        assert wait_until(lambda: len(weights(first, first_admin)) >= 3, 20), "the first demo records nothing"
        changed = first_admin.put(f"{first.base}/ivoryos/balance/settings.json",
                                  json={"instrument": "balance", "rate_hz": 2.0, "unit": "mg"})
        assert changed.status_code == 200, changed.text
        time.sleep(1.0)
        second_started = time.time()
        second = start_demo(tmp_path, second_port)  # the same folder: only the port differs
        try:
            second_admin = ivoryos_login(second.base)
            settings = second_admin.get(f"{second.base}/ivoryos/balance/settings.json").json()
            assert settings["values"]["unit"] == "g", settings  # the first demo's change is not here
            assert wait_until(lambda: len(weights(second, second_admin)) >= 1, 20)
            older = [p for p in weights(second, second_admin) if p["t"] < second_started - 0.5]
            assert not older, f"the second demo shows {len(older)} values recorded before it started"
            assert f"demo-{first_port}" in first.output() and f"demo-{second_port}" in second.output()
            assert (tmp_path / "ivoryos_data" / f"demo-{first_port}" / "ivoryos.db").is_file()
            assert (tmp_path / "ivoryos_data" / f"demo-{second_port}" / "ivoryos.db").is_file()
        finally:
            second.stop()
        mine = first_admin.get(f"{first.base}/ivoryos/balance/settings.json").json()
        assert mine["values"]["unit"] == "mg", mine
    finally:
        first.stop()


@pytest.mark.server
def test_demo_data_option_puts_the_data_where_asked(tmp_path: Path) -> None:
    port = free_port()
    demo = start_demo(tmp_path, port, "--data", "lab_demo")
    try:
        admin = ivoryos_login(demo.base)
        assert admin.put(f"{demo.base}/ivoryos/balance/settings.json",
                         json={"instrument": "balance", "rate_hz": 2.0, "unit": "kg"}).status_code == 200
        stored = tmp_path / "lab_demo" / "plugins" / "balance" / "settings.json"
        assert wait_until(stored.is_file, 5) and "kg" in stored.read_text()
        assert (tmp_path / "lab_demo" / "ivoryos.db").is_file()
        assert str(tmp_path / "lab_demo") in demo.output()
        assert not (tmp_path / "ivoryos_data").exists()
    finally:
        demo.stop()
