"""Shared fixtures: server subprocesses, a real redis-server, leak checks. Helpers are in support.py."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from support import Server, free_port, launch, wait_for_port


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a Python script as a server subprocess in tmp_path: ``start_server(code, name=...)``.

    The script listens on 127.0.0.1:$PORT; every server is stopped (by its PID) after the test."""
    started: List[Server] = []

    def start(code: str, name: str = "server.py", env: Optional[dict] = None, timeout: float = 90.0) -> Server:
        server = launch(code, tmp_path, name, env, timeout)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


#: the threads of the pytest kit's in-process ivoryos-edge (``plugin_host``'s ``[edge]``), which serves
#: every test of the process as the in-process IvoryOS does: its uvicorn thread and Starlette's worker
#: threads (its database's aiosqlite thread is told by its target, ``_connection_worker_thread``)
IN_PROCESS_EDGE = ("ivoryos_plugin-test-edge", "AnyIO worker thread")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread of its own running (after a short grace period)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
                  and not t.name.startswith(("ivoryos_plugin-starter", "Dummy", "asyncio_") + IN_PROCESS_EDGE)
                  and not t.name.endswith("(_connection_worker_thread)")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Debian redis-server on 127.0.0.1 (a free port), stopped after the module."""
    import shutil

    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).exists():
        pytest.fail("redis-server is not installed: run ./scripts/install.sh --test")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, 20)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
