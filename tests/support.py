"""Helpers for the tests (imported as ``support``): free ports, server subprocesses we start and
stop by PID, and an IvoryOS login."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


#: where :func:`free_port` hands out ports: below the kernel's ephemeral range (32768-60999 on Linux),
#: so that no client connection of this or another test process sits on a port between the moment it
#: is picked and the moment the server binds it; each pytest-xdist worker (and a serial run) has a block
#: of its own, so two workers never hand out the same port
PORT_BASE, PORT_BLOCK, PORT_BLOCKS = 20000, 1500, 8
_next_port: List[int] = []


def _port_block() -> int:
    """This process's block: 0 for a serial run, 1 + n for the xdist worker ``gw<n>``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return (int(worker[2:]) + 1) % PORT_BLOCKS if worker[2:].isdigit() else 0


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that no other worker of this test run hands out.

    Ports are taken in turn from this process's block (see :data:`PORT_BASE`), starting at a random one
    (another test run on the machine most likely walks elsewhere), each checked by binding it."""
    import random

    first = PORT_BASE + _port_block() * PORT_BLOCK
    if not _next_port:
        _next_port.append(random.randrange(PORT_BLOCK))
    for _ in range(PORT_BLOCK):
        port = first + _next_port[0] % PORT_BLOCK
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 127.0.0.1:{first}-{first + PORT_BLOCK - 1}")


def wait_for_port(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:port (fail early if ``proc`` died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


class Server:
    """A server subprocess we started (stopped by its PID only)."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path, cwd: Path) -> None:
        self.proc, self.port, self.log, self.cwd = proc, port, log, cwd
        self.base = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def start_process(argv: List[str], directory: Path, log_name: str, env: Optional[dict] = None,
                  timeout: float = 90.0, port: Optional[int] = None) -> Server:
    """Start ``argv`` in ``directory`` (output to ``log_name``) and wait until it listens on $PORT
    (a free port unless given); fail with its output if it dies or never listens."""
    port = port or free_port()
    log = directory / log_name
    full_env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1", **(env or {})}
    # the checkout beside the tests, after what the test puts first (never instead of it)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (full_env.get("PYTHONPATH", ""), str(ROOT)) if p)
    full_env.pop("IVORYOS_ACTIVE", None)
    with open(log, "wb") as handle:
        proc = subprocess.Popen(argv, cwd=directory, env=full_env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(proc, port, log, directory)
    try:
        wait_for_port(port, proc, timeout)
    except Exception as exc:
        server.stop()
        raise AssertionError(f"{exc}\n--- server output ---\n{server.output()}") from exc
    return server


def launch(code: str, directory: Path, name: str = "server.py", env: Optional[dict] = None,
           timeout: float = 90.0) -> Server:
    """Start a Python script as a server subprocess in ``directory``, listening on $PORT."""
    script = directory / name
    script.write_text(textwrap.dedent(code))
    return start_process([PY, str(script)], directory, f"{name}.log", env, timeout)


def login_form_token(page: str) -> Dict[str, str]:
    """The hidden ``csrf_token`` field of a login page, as ``{"csrf_token": value}`` (``{}`` when the
    page has none: plain ``ivoryos.run`` keeps IvoryOS's form)."""
    import re

    found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"', page)
    return {"csrf_token": found.group(1)} if found else {}


def ivoryos_login(base: str) -> requests.Session:
    """A requests session logged in to IvoryOS as admin/admin, with its CSRF header set."""
    session = requests.Session()
    form = {"username": "admin", "password": "admin"}
    form.update(login_form_token(session.get(f"{base}/ivoryos/auth/login").text))  # as a browser sends it
    reply = session.post(f"{base}/ivoryos/auth/login", data=form)
    assert reply.status_code == 200 and reply.url.rstrip("/").endswith("/ivoryos"), reply.url
    token = session.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
    session.headers["X-CSRFToken"] = token
    return session


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def cookie_header(session: requests.Session) -> str:
    """The ``Cookie`` header of a logged-in requests session, for a Socket.IO handshake."""
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


class Viewer:
    """A python-socketio client in one namespace, recording every event it receives.

    :param base: the server's URL.
    :param namespace: e.g. ``/ivoryos/probe``.
    :param cookie: a ``Cookie`` header (a logged-in session), or None.
    :param token: a token for the auth payload, or None.
    :param origin: an ``Origin`` header, or None.
    :param timeout: the default of :meth:`wait_for`."""

    def __init__(self, base: str, namespace: str, *, cookie: Optional[str] = None, token: Optional[str] = None,
                 origin: Optional[str] = None, timeout: float = 5.0) -> None:
        import socketio

        self.namespace, self.timeout = namespace, timeout
        self.events: Dict[str, List[Any]] = {}
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._record, namespace=namespace)
        headers = {}
        if cookie:
            headers["Cookie"] = cookie
        if origin:
            headers["Origin"] = origin
        self.sio.connect(base, socketio_path="/ivoryos/socket.io", namespaces=[namespace], headers=headers,
                         auth={"token": token} if token else None, wait_timeout=10, transports=["websocket"])

    def _record(self, event: str, data: Any = None) -> None:
        with self.lock:
            self.events.setdefault(event, []).append(data)

    def got(self, event: str) -> List[Any]:
        """Every payload of ``event`` so far."""
        with self.lock:
            return list(self.events.get(event, []))

    def wait_for(self, event: str, count: int = 1, timeout: Optional[float] = None) -> List[Any]:
        """Wait until ``count`` payloads of ``event`` arrived; all of them."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.got(event)) >= count:
                return self.got(event)
            time.sleep(0.01)
        raise AssertionError(f"{self.namespace} {event!r}: got {len(self.got(event))} of {count} within {timeout} s")

    def close(self) -> None:
        """Disconnect."""
        self.sio.disconnect()
