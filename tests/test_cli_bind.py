"""``ivoryos-plugin run`` and ``ivoryos-plugin demo``: ``--host`` names the host that serves
(``ivoryos``, the default, or ``edge``) and ``--bind`` the address to listen on (issue 25, one meaning
per word); an address given to ``--host`` (its meaning before ``--bind``) still works for one release,
with one line on stderr naming ``--bind``. The real CLI in a subprocess: where nothing may start, on a
port taken on every address (the command stops at its port check, naming the address it would have
bound); and the dev host really served on the address given each way."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import requests

from support import ROOT, Server, free_port

EXE = str(Path(sys.executable).with_name("ivoryos-plugin"))
RUN = ["run", "hello_plugin:plugin"]
DEMO = ["demo", "--no-browser"]


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IVORYOS_ACTIVE", "PORT")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _cli(args: List[str], cwd: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([EXE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _deprecations(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("Deprecated:")]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on at every address of this machine (127.0.0.1 and localhost among them)."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


CASES = [  # (the arguments, the address the command binds, whether it says --host is deprecated)
    ("run-default", RUN, "127.0.0.1", False),
    ("run-bind", RUN + ["--bind", "localhost"], "localhost", False),
    ("run-host-ivoryos-bind", RUN + ["--host", "ivoryos", "--bind", "localhost"], "localhost", False),
    ("run-address-in-host", RUN + ["--host", "localhost"], "localhost", True),
    ("demo-default", DEMO, "127.0.0.1", False),
    ("demo-bind", DEMO + ["--bind", "localhost"], "localhost", False),
    ("demo-address-in-host", DEMO + ["--host", "localhost"], "localhost", True),
]


@pytest.mark.parametrize("args,address,deprecated", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bind_gives_the_address_and_an_address_in_host_still_works_with_a_deprecation_line(
        tmp_path: Path, taken_port: int, args: List[str], address: str, deprecated: bool) -> None:
    done = _cli(args + ["--port", str(taken_port)], tmp_path)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"Error: cannot listen on {address}:{taken_port}:" in done.stderr, done.stderr  # the address given
    lines = _deprecations(done.stderr)
    if deprecated:
        assert len(lines) == 1, done.stderr
        assert f"--host {address}" in lines[0] and f"use --bind {address}" in lines[0], lines
        assert "(ivoryos or edge)" in lines[0] and "next release" in lines[0], lines
    else:
        assert lines == [], done.stderr
    assert not (tmp_path / "ivoryos_data").exists()  # nothing started


MISTAKES = [  # (the arguments, what the usage error says)
    ("address-in-both", RUN + ["--host", "localhost", "--bind", "127.0.0.1"],
     "--host 'localhost' is not a host (ivoryos or edge) and --bind '127.0.0.1' gives the address"),
    ("edge-elsewhere", DEMO + ["--host", "edge", "--bind", "0.0.0.0"],
     "--host edge serves on 127.0.0.1 only (ivoryos-edge has no login): drop --bind 0.0.0.0"),
]


@pytest.mark.parametrize("args,said", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_contradicting_host_and_bind_is_a_usage_error(tmp_path: Path, args: List[str], said: str) -> None:
    done = _cli(args, tmp_path)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert _deprecations(done.stderr) == [] and not (tmp_path / "ivoryos_data").exists()


def _listens(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((address, port)) == 0


@pytest.mark.parametrize("spelling", ["--bind", "--host"])
def test_the_dev_host_listens_on_the_address_given(tmp_path: Path, spelling: str) -> None:
    # 127.0.0.2: a loopback address that is not the default, so only the address given can be listening
    port = free_port()
    log = tmp_path / "run.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([EXE, *RUN, spelling, "127.0.0.2", "--port", str(port), "--data-dir",
                                 str(tmp_path / "data")], cwd=tmp_path, env=_env(), stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(proc, port, log, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not _listens("127.0.0.2", port):
            assert proc.poll() is None and time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert not _listens("127.0.0.1", port), server.output()
        reply = requests.get(f"http://127.0.0.2:{port}/ivoryos/plugins/status.json", timeout=30)
        assert reply.status_code == 401, reply.text  # the dev host answers there, and asks for its token
        assert len(_deprecations(server.output())) == (1 if spelling == "--host" else 0), server.output()
    finally:
        server.stop()


BAD_ADDRESSES = [  # (the --bind value, how the error shows it)
    ("no-such-name", "999.1.1.1", "999.1.1.1"),
    ("not-this-machine", "192.0.2.1", "192.0.2.1"),  # TEST-NET-1: never an address of this machine
    ("crlf", "127.0.0.1\r\nX-Injected: 1", repr("127.0.0.1\r\nX-Injected: 1")),
]


@pytest.mark.parametrize("command", [RUN, DEMO], ids=["run", "demo"])
@pytest.mark.parametrize("bind,shown", [c[1:] for c in BAD_ADDRESSES], ids=[c[0] for c in BAD_ADDRESSES])
def test_an_address_this_machine_does_not_have_is_named_with_the_bind_fix(
        tmp_path: Path, command: List[str], bind: str, shown: str) -> None:
    # not a taken port: the fix is another --bind, not another --port; a CR or LF stays on one line
    done = _cli(command + ["--bind", bind, "--port", str(free_port())], tmp_path)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and error[0].startswith(f"Error: cannot listen on {shown}:"), done.stderr
    assert f"{shown} is not an address of this machine" in error[0], error
    assert "--bind 127.0.0.1" in error[0] and "--port" not in error[0], error
    assert "X-Injected" not in done.stderr.replace(shown, ""), done.stderr  # never a line of its own
    assert not (tmp_path / "ivoryos_data").exists()  # nothing started
