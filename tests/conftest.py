"""Shared fixtures: server subprocesses, a real redis-server, leak checks. Helpers are in support.py."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from support import Server, free_port, launch, wait_for_port


#: the modules that take longest (whole minutes: installs, nested pytest runs, many servers), slowest
#: first. Under pytest-xdist (``-n 4 --dist loadfile``) each worker takes whole modules in collection
#: order, so these go first: a long module started last would leave the other workers idle at the end.
#: A serial run keeps pytest's own order. Only the order depends on this list, never a result.
SLOW_FIRST = ("tests/test_first_hour.py", "tests/test_history.py", "tests/test_first_hour_pages.py",
              "tests/test_realcode3_browser.py", "tests/test_e2e.py", "tests/test_dropin_migrate.py",
              "tests/test_dropin_floor.py", "tests/test_edge_absent.py", "tests/test_realcode3_hosts.py",
              "tests/test_realcode3_migrate.py", "tests/test_offline.py", "tests/test_security3_browser.py",
              "tests/test_fuzz.py")


def pytest_configure(config: pytest.Config) -> None:
    """Under ``--dist loadfile``, hand out modules in collection order (:data:`SLOW_FIRST` first)
    rather than xdist's default of the modules with the most tests first."""
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """In a pytest-xdist worker, put the modules of :data:`SLOW_FIRST` first (in that order); the
    others, and the tests inside each module, keep their order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
