"""Soak: the demo's deck under a lab's day of load for ``--minutes N`` (default 30), the framework
against plain ``ivoryos.run`` with the same deck and the same workflow loop, in the same run.

Two servers, each a subprocess on 127.0.0.1 with a data folder of its own:

- ours: ``ivoryos-plugin demo`` (``ivoryos_plugin.run`` with the example plugins on the simulated
  deck: the balance dashboard records its 5 Hz weight stream, the deck camera, the run monitor);
- plain: ``ivoryos.run`` on the same deck (benchmarks/soak_plain_deck.py), no plugin.

The load, on both unless said:

- a workflow submitted through IvoryOS's HTTP API as a user's program does (``draft/submit_python``,
  then ``executions/config``), started again every :data:`PERIOD_S` seconds once the last run ended.
  Ours: ``balance.weigh``, ``pump.dispense``, ``balance_steps.wait_until_stable`` (the balance
  dashboard's step), ``deck_camera.snapshot`` (a photo kept under the run); plain, with only the
  deck's instruments: ``balance.weigh``, ``pump.dispense``, ``balance.weigh``;
- 20 Socket.IO viewers (WebSocket; four processes of five), one process of five SIGKILLed and
  replaced every 20 s; ours: IvoryOS's namespace and the balance dashboard's, subscribed to its
  weight stream; plain: IvoryOS's namespace;
- ``executions/status`` every second; ours also ``plugins/deck.json`` every second (what a page
  with a deck badge polls);
- ours only: 6 MJPEG viewers of the deck camera (10 fps), one dropped mid-frame and replaced every
  minute; a tare (``balance/actions/tare``) and a history query (``balance/history/weight``, the
  last ten minutes) every 10 s.

Measured: each server's RSS (``VmRSS`` of /proc/<pid>/status) every 5 s; its slope per hour from
the end of the warm-up (``--warmup``, default min(5, N/6) minutes) to the end of the load, by least
squares; threads and open files after a warm round of every load (then idle) and after the soak
(load stopped, idle again); the weight values the stream produced against those stored in history.
A line every minute goes to stdout, so a partial run is informative.

Figures:

- soak_rss_slope_mib_per_h_over_plain (target <= 10): ours minus plain, MiB per hour;
- soak_threads_after_vs_warm (target <= 2): ours, threads idle after the soak minus idle after the
  warm round;
- soak_values_lost (target 0): weight values produced (stream reads without error, from
  ``status.json``) minus the rows the history database (the SQLite file) holds up to that moment.

A run shorter than about half an hour overstates the slopes: caches still filling up to their
bounds count as growth (a 12-minute run measured ours +20 MiB/h and plain +9, a 40-minute run +8
and +6; docs/longrun.md).

Other options: ``--period S`` (workflow period), ``--env KEY=VALUE`` (for both servers, e.g.
``MALLOC_ARENA_MAX=2``) and ``--ours-env KEY=VALUE``, ``--only ours|plain``, ``--loads`` (a subset of
workflows,polls,viewer_churn,actions,mjpeg), ``--ours-workflow plain``, ``--probe`` (each server
writes glibc's and Python's allocator figures to ``probe.jsonl`` every 30 s: benchmarks/soak_probe),
``--keep`` (leave the data folders and logs), ``--memray FILE`` (ours runs under ``memray run
--native``; memray is not a dependency: install it yourself). Stops only the processes it started,
by PID.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import requests

from common import figure, finish, free_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
PERIOD_S = 10.0
SAMPLE_S = 5.0
VIEWER_PROCS, VIEWERS_PER_PROC, CHURN_S = 4, 5, 20.0
MJPEG_VIEWERS, MJPEG_DROP_S = 6, 60.0
ACTION_S = 10.0
SETTLE_S = 20.0
LOADS = ("workflows", "polls", "viewer_churn", "actions", "mjpeg")

OURS_WORKFLOW = (
    "def workflow():\n"
    "    before = deck.balance.weigh()\n"
    "    deck.pump.dispense(volume_ml=0.2)\n"
    "    settled = deck.balance_steps.wait_until_stable(timeout_s=10.0)\n"
    "    photo = deck.deck_camera.snapshot(label=\"after dispense\")\n")
PLAIN_WORKFLOW = (
    "def workflow():\n"
    "    before = deck.balance.weigh()\n"
    "    deck.pump.dispense(volume_ml=0.2)\n"
    "    after = deck.balance.weigh()\n")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ------------------------------------------------------------------ the servers
def _children(pid: int) -> List[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _listens(pid: int, port: int) -> bool:
    """Whether ``pid`` holds the socket listening on ``port`` (its fds against /proc/net/tcp)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port and f"socket:[{fields[9]}]" in inodes:
            return True
    return False


class Server:
    """A server subprocess we started: its PID (the one that listens), a logged-in session.

    :param name: ``ours`` or ``plain``.
    :param argv: the command.
    :param folder: its working and data folder.
    :param env: extra environment."""

    def __init__(self, name: str, argv: List[str], folder: Path, env: Dict[str, str]) -> None:
        self.name, self.folder, self.port = name, folder, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "server.log"
        full_env = {**os.environ, "PORT": str(self.port), "PYTHONUNBUFFERED": "1", "CI": "1", **env}
        full_env.pop("IVORYOS_ACTIVE", None)
        full_env.pop("IVORYOS_PLUGIN_HISTORY_URL", None)  # the history in the data folder, where it is counted
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=folder, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name}: the server exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"{name}: nothing listens on {self.port} after 120 s:\n{self.output()[-3000:]}")
        # the process that listens (the demo may run IvoryOS in a child interpreter)
        candidates = [self.pid]
        while candidates:
            pid = candidates.pop(0)
            if _listens(pid, self.port):
                self.pid = pid
                break
            candidates += _children(pid)
        self.session = self.login()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def login(self) -> requests.Session:
        """A session logged in as admin/admin (IvoryOS creates the account), with the CSRF header
        when the framework serves ``plugins/csrf.json``."""
        session = requests.Session()
        page = session.get(f"{self.base}/ivoryos/auth/login", timeout=30).text
        form = {"username": "admin", "password": "admin"}
        found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"', page)
        if found:
            form["csrf_token"] = found.group(1)
        reply = session.post(f"{self.base}/ivoryos/auth/login", data=form, timeout=30)
        if reply.status_code != 200 or not reply.url.rstrip("/").endswith("/ivoryos"):
            raise RuntimeError(f"{self.name}: login failed ({reply.status_code}, {reply.url})")
        token = session.get(f"{self.base}/ivoryos/plugins/csrf.json", timeout=30)
        if token.status_code == 200:
            session.headers["X-CSRFToken"] = token.json()["csrf_token"]
        return session

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.session.cookies.items())

    def rss_mib(self) -> Optional[float]:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def threads(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            return -1

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def get_json(self, path: str) -> Any:
        """GET ``path`` on a connection of its own, closed after (no keep-alive thread left behind)."""
        reply = self.session.get(f"{self.base}{path}", headers={"Accept": "application/json", "Connection": "close"},
                                 timeout=60)
        reply.raise_for_status()
        return reply.json()

    def stop(self) -> None:
        """SIGTERM to the process we started (and to the one that listens, if it is its child), then SIGKILL."""
        for pid in dict.fromkeys([self.pid, self.proc.pid]):
            if self.proc.poll() is None:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            for pid in dict.fromkeys([self.pid, self.proc.pid]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)


# ------------------------------------------------------------------ the load
class Load:
    """Every load on one server, each in a thread of its own, until :meth:`stop`.

    :param server: the server.
    :param ours: the framework's server (plugins, camera) or plain IvoryOS.
    :param period: seconds between workflow starts."""

    def __init__(self, server: Server, ours: bool, period: float, workflow: str,
                 loads: Sequence[str] = LOADS) -> None:
        self.server, self.ours, self.period, self.workflow, self.loads = server, ours, period, workflow, loads
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []
        self.viewers: List[subprocess.Popen] = []
        self.viewer_lock = threading.Lock()
        self.counts: Dict[str, int] = {"runs": 0, "run_ms": 0, "run_errors": 0, "tares": 0, "tares_busy": 0, "history": 0,
                                       "polls": 0, "errors": 0, "viewer_kills": 0, "mjpeg_bytes": 0,
                                       "mjpeg_drops": 0}
        self.errors: List[str] = []

    def error(self, what: str) -> None:
        self.counts["errors"] += 1
        if len(self.errors) < 20:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {what}")

    def start(self) -> None:
        jobs: List[Callable[[], None]] = [self.workflows, self.polls, self.viewer_churn]
        if self.ours:
            jobs += [self.actions, self.mjpeg]
        jobs = [job for job in jobs if job.__name__ in self.loads]
        for job in jobs:
            thread = threading.Thread(target=self._guarded, args=(job,), name=f"{self.server.name}-{job.__name__}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guarded(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:  # a load that dies is reported, the soak goes on
            self.error(f"{job.__name__} stopped: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        with self.viewer_lock:
            for proc in self.viewers:
                kill(proc)
            self.viewers.clear()

    # the workflow loop
    def submit(self, session: requests.Session, name: str) -> None:
        base = f"{self.server.base}/ivoryos"
        reply = session.post(f"{base}/draft/submit_python", timeout=60,
                             json={"workflow_name": name, "script": self.workflow, "prep": "", "cleanup": ""})
        if reply.status_code != 200 or reply.json().get("script", {}).get("script") != "success":
            raise RuntimeError(f"{self.server.name}: the workflow was refused: {reply.status_code} {reply.text[:500]}")

    def run_once(self, session: requests.Session, timeout: float = 120.0) -> bool:
        """Start the submitted workflow and wait until IvoryOS is idle again; False on an error."""
        base = f"{self.server.base}/ivoryos"
        reply = session.post(f"{base}/executions/config", json={"repeat": 1}, timeout=120,
                             headers={"Accept": "application/json"})
        if reply.status_code != 200 or "error" in reply.json():
            self.error(f"executions/config: {reply.status_code} {reply.text[:200]}")
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = session.get(f"{base}/executions/status", headers={"Accept": "application/json"}, timeout=60).json()
            if status.get("paused"):
                self.error(f"the workflow paused: {json.dumps(status.get('current_task'))[:300]}")
                session.post(f"{base}/executions/abort/next-task", headers={"Accept": "application/json"})
                session.post(f"{base}/executions/pause-resume", headers={"Accept": "application/json"})
            elif not status.get("busy"):
                return True
            time.sleep(0.2)
        self.error("a workflow run did not end within 120 s")
        return False

    def workflows(self) -> None:
        session = self.server.login()
        self.submit(session, "soak")
        due = time.monotonic()
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                ran = self.run_once(session)
            except (requests.RequestException, ValueError) as exc:  # a slow or failed reply: the loop goes on
                self.error(f"workflow: {type(exc).__name__}: {exc}")
                ran = False
            if ran:
                self.counts["runs"] += 1
                self.counts["run_ms"] += int((time.monotonic() - began) * 1000)
            else:
                self.counts["run_errors"] += 1
            due += self.period
            self.stopping.wait(max(0.0, due - time.monotonic()))
        session.close()

    def polls(self) -> None:
        session = self.server.login()
        base = f"{self.server.base}/ivoryos"
        paths = ["/executions/status"] + (["/plugins/deck.json"] if self.ours else [])
        while not self.stopping.wait(1.0):
            for path in paths:
                try:
                    reply = session.get(base + path, headers={"Accept": "application/json"}, timeout=30)
                    if reply.status_code == 200:
                        self.counts["polls"] += 1
                    else:
                        self.error(f"{path}: {reply.status_code}")
                except requests.RequestException as exc:
                    self.error(f"{path}: {exc}")
        session.close()

    def actions(self) -> None:
        session = self.server.login()
        base = f"{self.server.base}/ivoryos/balance"
        self.stopping.wait(ACTION_S / 2)  # out of phase with the workflow's starts: most tares run
        while not self.stopping.wait(ACTION_S):
            try:
                tare = session.post(f"{base}/actions/tare", json={}, timeout=30)
                if tare.status_code == 200:
                    self.counts["tares"] += 1
                elif tare.status_code == 409:  # a workflow holds the deck: refused, as it must be
                    self.counts["tares_busy"] += 1
                else:
                    self.error(f"tare: {tare.status_code} {tare.text[:200]}")
                found = session.get(f"{base}/history/weight", params={"since": "-600"}, timeout=30)
                if found.status_code == 200 and found.json()["count"] > 0:
                    self.counts["history"] += 1
                else:
                    self.error(f"history: {found.status_code} {found.text[:200]}")
            except requests.RequestException as exc:
                self.error(f"actions: {exc}")
        session.close()

    # the Socket.IO viewers
    def spawn_viewers(self) -> subprocess.Popen:
        namespaces = ["/", "/ivoryos/balance"] if self.ours else ["/"]
        argv = [PY, str(HERE / "soak_viewers.py"), self.server.base, str(VIEWERS_PER_PROC),
                json.dumps(namespaces)] + (["weight"] if self.ours else [])
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env={**os.environ, "SOAK_COOKIE": self.server.cookie()})

    def viewer_churn(self) -> None:
        with self.viewer_lock:
            self.viewers = [self.spawn_viewers() for _ in range(VIEWER_PROCS)]
        turn = 0
        while not self.stopping.wait(CHURN_S):
            with self.viewer_lock:
                if self.stopping.is_set():
                    break
                old = self.viewers[turn % VIEWER_PROCS]
                if old.poll() is not None and old.returncode not in (-signal.SIGKILL,):
                    self.error(f"a viewer process exited by itself with {old.returncode}")
                kill(old)
                self.viewers[turn % VIEWER_PROCS] = self.spawn_viewers()
                self.counts["viewer_kills"] += 1
            turn += 1

    # the MJPEG viewers
    def mjpeg(self) -> None:
        url = "/ivoryos/deck_camera/cameras/deck/stream.mjpg"
        headers = f"Cookie: {self.server.cookie()}\r\n"
        viewers: List[threading.Thread] = []
        drop: List[threading.Event] = []

        def watch(stop_me: threading.Event) -> None:
            try:
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
                    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n{headers}\r\n".encode())
                    first = sock.recv(65536)
                    if not first.startswith(b"HTTP/1.1 200"):
                        self.error(f"mjpeg: {first[:100]!r}")
                        return
                    while not self.stopping.is_set() and not stop_me.is_set():
                        chunk = sock.recv(262144)
                        if not chunk:
                            self.error("mjpeg: the server ended the stream")
                            return
                        self.counts["mjpeg_bytes"] += len(chunk)
                    if stop_me.is_set():  # dropped mid-frame: a reset, as a closed laptop lid
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError as exc:
                if not self.stopping.is_set():
                    self.error(f"mjpeg: {exc}")

        def add() -> None:
            event = threading.Event()
            thread = threading.Thread(target=watch, args=(event,), daemon=True, name="mjpeg-viewer")
            thread.start()
            viewers.append(thread)
            drop.append(event)

        for _ in range(MJPEG_VIEWERS):
            add()
        turn = 0
        while not self.stopping.wait(MJPEG_DROP_S):
            drop[turn % len(drop)].set()
            self.counts["mjpeg_drops"] += 1
            add()
            turn += 1
        for thread in viewers:
            thread.join(10)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a process we started, by its PID, and reap it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


# ------------------------------------------------------------------ measuring
def smaps_rss(pid: int) -> Dict[str, float]:
    """Where a process's RSS lies, in MiB, from /proc/<pid>/smaps: ``files`` (code, libraries, mapped
    files), ``brk`` (glibc's main arena), ``arenas`` (glibc's other arenas: read-write mappings on a
    64 MiB boundary), ``stacks`` (8 MiB thread stacks), ``anon`` (the rest: pymalloc's arenas, large
    blocks glibc maps one by one, numpy's buffers)."""
    kinds: Dict[str, float] = {}
    kind = "anon"
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    fields = line.split()
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    path = fields[5] if len(fields) > 5 else ""
                    if path == "[heap]":
                        kind = "brk"
                    elif path.startswith("/") or path.startswith("[v"):
                        kind = "files"
                    elif path.startswith("[stack"):
                        kind = "stacks"
                    elif abs((end - start) - 8 * 2 ** 20) <= 8192:
                        kind = "stacks"
                    elif fields[1].startswith("rw") and start % (64 * 2 ** 20) == 0 and end - start <= 64 * 2 ** 20:
                        kind = "arenas"
                    else:
                        kind = "anon"
                elif line.startswith("Rss:"):
                    kinds[kind] = kinds.get(kind, 0.0) + int(line.split()[1]) / 1024
    except OSError:
        pass
    return kinds


def shown_smaps(pid: int) -> str:
    found = smaps_rss(pid)
    return ", ".join(f"{k} {found.get(k, 0.0):.0f}" for k in ("files", "brk", "arenas", "stacks", "anon"))


def slope_per_hour(samples: List[Tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour (0 for fewer than 3)."""
    if len(samples) < 3:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if var == 0 else sum((t - mt) * (v - mv) for t, v in samples) / var * 3600


def idle_counts(server: Server, settle: float) -> Dict[str, int]:
    """Threads and open files once the server is idle: wait ``settle`` seconds, then until the
    thread count holds still for 5 s (viewers' sockets and request threads wound down)."""
    time.sleep(settle)
    last, steady_since, deadline = server.threads(), time.monotonic(), time.monotonic() + 60
    while time.monotonic() - steady_since < 5 and time.monotonic() < deadline:
        time.sleep(1)
        now = server.threads()
        if now != last:
            last, steady_since = now, time.monotonic()
    return {"threads": server.threads(), "fds": server.fds()}


def warm_round(server: Server, ours: bool, workflow: str) -> None:
    """Every load once, briefly, so what starts on first use (the history writer, the camera's
    thread, IvoryOS's runner) has started before the threads and files are counted."""
    load = Load(server, ours, 0.0, workflow)
    session = server.login()
    load.submit(session, "warm")
    if not load.run_once(session):
        raise RuntimeError(f"{server.name}: the warm-up workflow failed: {load.errors}")
    viewers = load.spawn_viewers()
    if ours:
        session.post(f"{server.base}/ivoryos/balance/actions/tare", json={}, timeout=30).raise_for_status()
        session.get(f"{server.base}/ivoryos/balance/history/weight", params={"since": "-600"},
                    timeout=30).raise_for_status()
        with session.get(f"{server.base}/ivoryos/deck_camera/cameras/deck/stream.mjpg", stream=True, timeout=30) as r:
            r.raise_for_status()
            got = 0
            for chunk in r.iter_content(65536):
                got += len(chunk)
                if got > 300_000:
                    break
    time.sleep(3)
    kill(viewers)
    session.close()


def values_lost(server: Server, database: Path) -> Tuple[int, Dict[str, Any]]:
    """Weight values the balance dashboard's stream produced (reads without error, from
    ``status.json``) minus the rows its history database holds up to that moment (counted in the
    SQLite file itself, read-only, after the writer's next batches). The stream keeps recording
    meanwhile: rows later than the status reply are not counted, so they cannot hide a loss.

    :param server: ours.
    :param database: its history database (``plugins/history.sqlite`` in its data folder)."""
    import sqlite3

    def balance() -> Dict[str, Any]:
        status = server.get_json("/ivoryos/plugins/status.json")
        return dict(next(p for p in status["plugins"] if p["name"] == "balance"))

    first = balance()
    until = time.time() + 0.1  # a value counted just before the reply is stored a moment later
    weight = first["streams"]["weight"]
    produced = int(weight["reads"]) - int(weight["errors"])
    deadline = time.monotonic() + 30
    while True:
        time.sleep(3)  # the writer stores a batch every 2 s
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
            stored = int(conn.execute("SELECT count(*) FROM ivoryos_plugin_samples WHERE plugin = 'balance' "
                                      "AND stream = 'weight' AND t <= ?", (until,)).fetchone()[0])
        conn.close()
        if stored >= produced or time.monotonic() > deadline:
            break
    history = balance()["history"] or {}
    return max(0, produced - stored), {"produced": produced, "stored": stored, "stream_errors": weight["errors"],
                                       "dropped": history.get("dropped"), "queued": history.get("queued")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="load duration (default 30)")
    parser.add_argument("--warmup", type=float, default=None, help="minutes left out of the slope (default min(5, N/6))")
    parser.add_argument("--period", type=float, default=PERIOD_S, help="seconds between workflow starts")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for both servers")
    parser.add_argument("--ours-env", action="append", default=[], help="KEY=VALUE for ours only")
    parser.add_argument("--only", choices=["ours", "plain"], default=None)
    parser.add_argument("--ours-workflow", choices=["ours", "plain"], default="ours",
                        help="'plain' runs the deck-only workflow on ours too (to attribute growth)")
    parser.add_argument("--keep", action="store_true", help="keep the data folders and logs")
    parser.add_argument("--loads", default=",".join(LOADS),
                        help=f"the loads to run, of {','.join(LOADS)} (mjpeg and actions: ours only)")
    parser.add_argument("--probe", action="store_true",
                        help="each server writes malloc and Python allocator figures to probe.jsonl in its folder")
    parser.add_argument("--memray", default=None, help="run ours under memray run --native, output to this file")
    args = parser.parse_args()
    warmup = min(5.0, args.minutes / 6) if args.warmup is None else args.warmup
    env = dict(item.split("=", 1) for item in args.env)
    loads_on = [x for x in args.loads.split(",") if x]
    unknown = sorted(set(loads_on) - set(LOADS))
    if unknown:
        parser.error(f"unknown load(s) {unknown}; choose from {','.join(LOADS)}")
    folder = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    log(f"soak: {args.minutes:g} min of load, slope after {warmup:g} min; a workflow every {args.period:g} s; "
        f"data in {folder}" + (f"; server env {env}" if env else ""))

    ours_cmd = [PY, "-m", "ivoryos_plugin.tools.cli", "demo", "--no-browser", "--bind", "127.0.0.1",
                "--port", "{port}", "--data", str(folder / "ours" / "data")]
    if args.memray:
        ours_cmd = [PY, "-m", "memray", "run", "--native", "-f", "-o", str(Path(args.memray).resolve())] + ours_cmd[1:]
    plans = []
    if args.only in (None, "ours"):
        plans.append(("ours", ours_cmd, True, OURS_WORKFLOW if args.ours_workflow == "ours" else PLAIN_WORKFLOW))
    if args.only in (None, "plain"):
        plans.append(("plain", [PY, str(HERE / "soak_plain_deck.py")], False, PLAIN_WORKFLOW))

    servers: Dict[str, Server] = {}
    loads: Dict[str, Load] = {}
    samples: Dict[str, List[Tuple[float, float]]] = {}
    counts: Dict[str, Dict[str, Dict[str, int]]] = {}
    stop_sampling = threading.Event()
    try:
        for name, argv, ours, workflow in plans:
            extra = dict(env, **(dict(item.split("=", 1) for item in args.ours_env) if name == "ours" else {}))
            if args.probe:
                extra.update(SOAK_PROBE_FILE=str(folder / name / "probe.jsonl"),
                             PYTHONPATH=os.pathsep.join([str(HERE / "soak_probe"), os.environ.get("PYTHONPATH", "")]))
            servers[name] = Server(name, argv, folder / name, extra)
            log(f"{name}: pid {servers[name].pid} on {servers[name].base}, RSS {servers[name].rss_mib():.0f} MiB")
        for name, _, ours, workflow in plans:
            warm_round(servers[name], ours, workflow)
        for name, server in servers.items():
            counts[name] = {"warm": idle_counts(server, SETTLE_S if name == plans[0][0] else 0)}
            log(f"{name}: idle after a warm round: {counts[name]['warm']['threads']} threads, "
                f"{counts[name]['warm']['fds']} open files, RSS {server.rss_mib():.0f} MiB")

        start_smaps = {name: shown_smaps(server.pid) for name, server in servers.items()}
        started = time.monotonic()
        for name, _, ours, workflow in plans:
            samples[name] = []
            loads[name] = Load(servers[name], ours, args.period, workflow, loads_on)
            loads[name].start()

        def sample() -> None:
            while not stop_sampling.is_set():
                now = time.monotonic() - started
                for name, server in servers.items():
                    rss = server.rss_mib()
                    if rss is not None:
                        samples[name].append((now, rss))
                stop_sampling.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True, name="sampler")
        sampler.start()
        end = started + args.minutes * 60
        next_line = started + 60
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_line, end) - time.monotonic()))
            if time.monotonic() >= next_line - 0.5:
                next_line += 60
                elapsed = (time.monotonic() - started) / 60
                parts = []
                for name, server in servers.items():
                    after_warm = [s for s in samples[name] if s[0] >= warmup * 60]
                    slope = f"{slope_per_hour(after_warm):+.0f} MiB/h" if len(after_warm) >= 6 else "slope after warm-up"
                    c = loads[name].counts
                    parts.append(f"{name} {server.rss_mib() or 0:.0f} MiB ({slope}), {c['runs']} runs, "
                                 f"{server.threads()} threads, {server.fds()} fds, {c['errors']} errors")
                    for name2 in servers:
                        if servers[name2].proc.poll() is not None:
                            raise RuntimeError(f"{name2}: the server died:\n{servers[name2].output()[-3000:]}")
                log(f"{elapsed:5.1f} min  " + " | ".join(parts))
                if round(elapsed) % 5 == 0:
                    log("  RSS by kind, MiB: " + " | ".join(f"{name} {shown_smaps(server.pid)}"
                                                           for name, server in servers.items()))
        load_end = time.monotonic() - started
        log("load stops")
        for load in loads.values():
            load.stop()
        stop_sampling.set()
        sampler.join(10)
        slopes = {name: slope_per_hour([s for s in samples[name] if warmup * 60 <= s[0] <= load_end])
                  for name in servers}
        peak = {name: max(v for _, v in samples[name]) for name in servers}
        for i, (name, server) in enumerate(servers.items()):
            counts[name]["after"] = idle_counts(server, SETTLE_S if i == 0 else 0)
        lost: Optional[Tuple[int, Dict[str, Any]]] = None
        if "ours" in servers:
            lost = values_lost(servers["ours"], folder / "ours" / "data" / "plugins" / "history.sqlite")
        for name, server in servers.items():
            c = loads[name].counts
            w, a = counts[name]["warm"], counts[name]["after"]
            first = samples[name][0][1] if samples[name] else 0.0
            log(f"{name}: RSS {first:.0f} MiB at the start of the load, {peak[name]:.0f} MiB at most, "
                f"{server.rss_mib() or 0:.0f} MiB idle after; slope {slopes[name]:+.1f} MiB/h after {warmup:g} min; "
                f"threads {w['threads']} -> {a['threads']}, open files {w['fds']} -> {a['fds']} (idle, after a warm "
                f"round -> after the soak)")
            log(f"{name}: load " + ", ".join(f"{k} {v}" for k, v in c.items()))
            log(f"{name}: RSS by kind idle after, MiB: {shown_smaps(server.pid)} (at the start of the load: "
                f"{start_smaps[name]})")
            for line in loads[name].errors:
                log(f"{name}: error {line}")
        if lost is not None:
            log(f"ours: weight values {lost[1]}")
        if "ours" in servers and "plain" in servers:
            figure("soak_rss_slope_mib_per_h_over_plain", slopes["ours"] - slopes["plain"], "<=10")
        if "ours" in servers:
            figure("soak_threads_after_vs_warm",
                   counts["ours"]["after"]["threads"] - counts["ours"]["warm"]["threads"], "<=2")
            figure("soak_values_lost", lost[0] if lost else 0, "<=0")
            load_errors = loads["ours"].counts["errors"] + loads["ours"].counts["run_errors"]
            if load_errors:
                log(f"ours: {load_errors} load errors: the figures were measured under a load that failed in part")
    finally:
        stop_sampling.set()
        for load in loads.values():
            load.stopping.set()
            with load.viewer_lock:
                for proc in load.viewers:
                    kill(proc)
        for server in servers.values():
            server.stop()
        if args.keep:
            log(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
