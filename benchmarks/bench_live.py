"""Live events: the framework's shared streams and ``publish`` against their hand-written anchors.

Two server subprocesses on loopback: ours (the ``benchlive`` plugin in the standalone dev host,
clients authenticated with the host token) and the anchor (a plain Flask-SocketIO app in threading
mode, a background task emitting to a room every 50 ms, clients joining the room on ``subscribe``).
100 python-socketio clients stay connected to each for the whole run.

1. Fan-out: all 100 clients on one 20 Hz stream, in 12 pairs of 2 s rounds (24 s per side),
   alternating which side goes first in a pair. Each round: subscribe, settle, measure a window,
   wait until every client got a tick from after the window, unsubscribe. Delivered fraction =
   ticks the server produced inside the window that each client received; latency = receipt
   ``time.time()`` minus the payload's server ``time.time()``; server CPU from
   ``/proc/<pid>/stat`` (utime + stime) at the window's edges, per tick produced. The ratio
   figures are medians over the pairs of each pair's ratio (the machine's load drifts).
2. Instrument cost: reads per second of the sensor with 0, 1, 10, 100 viewers of a 5 Hz stream,
   beside the naive pattern (each viewer polling an HTTP route that reads the sensor at 5 Hz),
   alternating which goes first.
3. Push latency: a simulated workflow changes the sensor's value at random moments; the plugin
   publishes each change (``observe`` + ``publish``); 1 Hz HTTP pollers of the same value run at
   the same time, so both see exactly the same changes.

Run: ``python benchmarks/bench_live.py`` (about 2.5 minutes). Prints context lines, then one
``FIGURE`` line per figure, and exits 1 when a figure misses its target.

The clients run their event handlers inline in their reader thread (python-socketio's default
starts one thread per message: 2000 thread starts a second here, on a 2-core machine shared with
the servers). Set ``BENCH_LIVE_THREADED_HANDLERS=1`` for the stock behaviour.
"""
from __future__ import annotations

import functools
import http.client
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import engineio
import requests
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import figure, finish, free_port, median  # noqa: E402

HERE = Path(__file__).resolve().parent
NS = "/ivoryos/benchlive"
SIO_PATH = "/ivoryos/socket.io"
CLIENTS = 100
FANOUT_HZ = 20.0
ROUNDS = 12  # pairs of fan-out rounds (one round per side each)
WINDOW = 2.0  # seconds measured per fan-out round: 24 s per side in all
SETTLE = 0.4  # after subscribing, before a window
COST_HZ = 5.0
VIEWERS = (0, 1, 10, 100)
COST_WINDOW = 4.0
PUSH_SECONDS = 18.0
POLLERS = 10
THREADED_HANDLERS = os.environ.get("BENCH_LIVE_THREADED_HANDLERS") == "1"


def percentile(values: List[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``.

    :param values: numbers.
    :param q: 0 to 100."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered), math.ceil(q / 100.0 * len(ordered))) - 1)]


# ----------------------------------------------------------------------------- servers
class ServerProcess:
    """A server subprocess we started, stopped by its PID only.

    :param script: the Python script to run.
    :param token: the token clients authenticate with (env ``TOKEN``)."""

    def __init__(self, script: Path, token: str) -> None:
        self.port = free_port()
        self.token = token
        self.base = f"http://127.0.0.1:{self.port}"
        handle, self.log = tempfile.mkstemp(prefix=f"bench_live_{script.stem}_", suffix=".log")
        env = {**os.environ, "PORT": str(self.port), "TOKEN": token, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env.pop("IVORYOS_ACTIVE", None)
        with os.fdopen(handle, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(script)], cwd=tempfile.gettempdir(), env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the server listens.

        :param timeout: seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on port {self.port}:\n{self.output()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        """The server's output so far."""
        return Path(self.log).read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.unlink(self.log)


# ----------------------------------------------------------------------------- clients
class _InlineEngineIO(engineio.Client):  # type: ignore[misc]
    """An Engine.IO client that handles messages in its reader thread (no thread per message)."""

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class InlineClient(socketio.Client):  # type: ignore[misc]
    """A python-socketio client whose event handlers run inline, in arrival order."""

    def _engineio_client_class(self) -> type:
        return engineio.Client if THREADED_HANDLERS else _InlineEngineIO


class Viewer:
    """A python-socketio client in the plugin's namespace recording ``value`` and ``changed``.

    :param base: the server's URL.
    :param token: the token for ``auth``."""

    def __init__(self, base: str, token: str) -> None:
        self.sio = InlineClient(reconnection=False)
        self.values: List[Tuple[int, float, float]] = []  # (seq, server t, receipt t)
        self.changes: List[Tuple[int, float, float]] = []  # (value, change t, receipt t)
        self.sio.on("value", self._on_value, namespace=NS)
        self.sio.on("changed", self._on_changed, namespace=NS)
        self.sio.connect(base, socketio_path=SIO_PATH, namespaces=[NS], auth={"token": token},
                         transports=["websocket"], wait_timeout=20)

    def _on_value(self, data: Dict[str, Any]) -> None:
        self.values.append((data["seq"], data["t"], time.time()))

    def _on_changed(self, data: Optional[Dict[str, Any]]) -> None:
        if data:
            self.changes.append((data["value"], data["t"], time.time()))

    def call(self, event: str) -> None:
        """``subscribe`` or ``unsubscribe`` the ``value`` stream, waiting for the reply.

        :param event: the event."""
        reply = self.sio.call(event, {"stream": "value"}, namespace=NS, timeout=20)
        if not (isinstance(reply, dict) and reply.get("ok")):
            raise RuntimeError(f"{event} refused: {reply!r}")

    def close(self) -> None:
        """Disconnect."""
        try:
            self.sio.disconnect()
        except (socketio.exceptions.SocketIOError, OSError) as exc:  # cleanup goes on regardless
            print(f"disconnect failed: {exc!r}", file=sys.stderr)


def parallel(funcs: List[Callable[[], Any]], workers: int = 10) -> List[Any]:
    """Run ``funcs`` in a small thread pool; return their results in order.

    :param funcs: callables without arguments.
    :param workers: threads."""
    with ThreadPoolExecutor(workers) as pool:
        return [future.result() for future in [pool.submit(f) for f in funcs]]


@dataclass
class Side:
    """One server and its connected viewers.

    :param name: ``ours`` or ``anchor``.
    :param server: the subprocess.
    :param viewers: its clients."""

    name: str
    server: ServerProcess
    viewers: List[Viewer] = field(default_factory=list)

    def connect(self, count: int) -> None:
        """Connect ``count`` clients.

        :param count: how many."""
        def connect() -> Viewer:
            return Viewer(self.server.base, self.server.token)

        self.viewers = parallel([connect] * count)

    def set_subscribed(self, viewers: List[Viewer], on: bool) -> None:
        """Subscribe or unsubscribe ``viewers`` (in parallel).

        :param viewers: the clients.
        :param on: subscribe when True."""
        event = "subscribe" if on else "unsubscribe"
        parallel([functools.partial(v.call, event) for v in viewers])

    def ticks(self, since: float, until: float) -> Set[int]:
        """Sequence numbers the server produced in ``[since, until]``.

        :param since: window start.
        :param until: window end."""
        if self.name == "ours":
            return set(action(self.server, "ticks", since=since, until=until)["seqs"])
        reply = requests.get(f"{self.server.base}/ticks", params={"since": since, "until": until}, timeout=20)
        reply.raise_for_status()
        return set(reply.json()["seqs"])


def action(server: ServerProcess, name: str, **args: Any) -> Dict[str, Any]:
    """Call a plugin action with the host token as a bearer token.

    :param server: our server.
    :param name: the action.
    :param args: its JSON arguments."""
    reply = requests.post(f"{server.base}{NS}/actions/{name}", json=args, timeout=20,
                          headers={"Authorization": f"Bearer {server.token}"})
    if reply.status_code != 200:
        raise RuntimeError(f"action {name}: {reply.status_code} {reply.text[:300]}")
    return dict(reply.json())


# ----------------------------------------------------------------------------- pollers
class Pollers:
    """``count`` threads each GETting ``path`` at ``hz`` over a keep-alive connection, with random
    phases; ``on_reply(index, payload, receipt_time)`` sees each reply.

    :param port: the server's port.
    :param path: the route.
    :param count: pollers.
    :param hz: each poller's rate.
    :param headers: request headers.
    :param on_reply: called with each reply."""

    def __init__(self, port: int, path: str, count: int, hz: float, headers: Optional[Dict[str, str]] = None,
                 on_reply: Optional[Callable[[int, Dict[str, Any], float], None]] = None) -> None:
        self.port, self.path, self.hz = port, path, hz
        self.headers = headers or {}
        self.on_reply = on_reply
        self.stop_event = threading.Event()
        self.errors = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True, name=f"poller-{i}")
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        period = 1.0 / self.hz
        due = time.monotonic() + random.uniform(0, period)
        try:
            while not self.stop_event.wait(max(0.0, due - time.monotonic())):
                try:
                    conn.request("GET", self.path, headers=self.headers)
                    response = conn.getresponse()
                    body = response.read()
                    received = time.time()
                    if response.status != 200:
                        raise RuntimeError(f"{self.path}: HTTP {response.status}")
                    if self.on_reply is not None:
                        self.on_reply(index, json.loads(body), received)
                except (OSError, http.client.HTTPException):
                    self.errors += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                due += period
                due = max(due, time.monotonic())  # fell behind: do not burst
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop every poller and wait for it."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(25)


# ----------------------------------------------------------------------------- 1. fan-out
@dataclass
class FanoutRound:
    """One measured window of one side."""

    side: str
    emitted: int
    expected: int
    delivered: int
    latencies: List[float]
    cpu: float
    window: float

    @property
    def p99(self) -> float:
        """The window's p99 latency."""
        return percentile(self.latencies, 99)

    @property
    def cpu_per_tick(self) -> float:
        """Server CPU seconds per tick produced (a tick is one message to each of the clients)."""
        return self.cpu / max(1, self.emitted)


def wait_past(viewers: List[Viewer], until: float, timeout: float = 5.0) -> None:
    """Wait until every client received a tick produced after ``until`` (so, delivery being in
    order, every tick of the window that will arrive has arrived), or ``timeout``.

    :param viewers: the subscribed clients.
    :param until: the window's end.
    :param timeout: seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(v.values and v.values[-1][1] > until for v in viewers):
            return
        time.sleep(0.02)


def fanout_round(side: Side) -> FanoutRound:
    """Subscribe all of ``side``'s clients, measure one window, unsubscribe.

    :param side: the server and its clients."""
    for viewer in side.viewers:
        viewer.values.clear()
    side.set_subscribed(side.viewers, True)
    time.sleep(SETTLE)
    t0, cpu0 = time.time(), side.server.cpu_seconds()
    time.sleep(WINDOW)
    t1, cpu1 = time.time(), side.server.cpu_seconds()
    wait_past(side.viewers, t1)
    side.set_subscribed(side.viewers, False)
    emitted = side.ticks(t0, t1)
    delivered, latencies = 0, []
    for viewer in side.viewers:
        seen: Set[int] = set()
        for seq, sent, received in list(viewer.values):
            if seq in emitted and seq not in seen:
                seen.add(seq)
                latencies.append(received - sent)
        delivered += len(seen)
        viewer.values.clear()
    return FanoutRound(side.name, len(emitted), len(emitted) * len(side.viewers), delivered, latencies,
                       cpu1 - cpu0, t1 - t0)


def bench_fanout(ours: Side, anchor: Side) -> None:
    """Fan-out in pairs of rounds (ours then anchor, then anchor then ours, ...); the ratio figures
    are medians over the pairs of the pair's ratio (robust to load drifting between pairs).

    :param ours: the dev host.
    :param anchor: the hand-written app."""
    action(ours.server, "set_rate", hz=FANOUT_HZ)
    rounds: Dict[str, List[FanoutRound]] = {"ours": [], "anchor": []}
    for index in range(ROUNDS):
        for side in ((ours, anchor) if index % 2 == 0 else (anchor, ours)):
            result = fanout_round(side)
            rounds[side.name].append(result)
            print(f"fan-out pair {index + 1} {side.name:6s}: {result.emitted} ticks in "
                  f"{result.window:.2f} s, delivered {result.delivered}/{result.expected}, "
                  f"p50 {median(result.latencies) * 1e3:.1f} ms, "
                  f"p99 {result.p99 * 1e3:.1f} ms, CPU {result.cpu / result.window * 100:.1f} % "
                  f"({result.cpu_per_tick * 1e3:.2f} ms per tick)", flush=True)
    fraction: Dict[str, float] = {}
    for name, results in rounds.items():
        lat = [x for r in results for x in r.latencies]
        fraction[name] = sum(r.delivered for r in results) / max(1, sum(r.expected for r in results))
        seconds = sum(r.window for r in results)
        ticks = sum(r.emitted for r in results)
        print(f"fan-out {name:6s}: {CLIENTS} clients, {ticks / seconds:.1f} ticks/s (asked {FANOUT_HZ:g}), "
              f"delivered {fraction[name] * 100:.2f} %, p50 {median(lat) * 1e3:.1f} ms, "
              f"p99 {percentile(lat, 99) * 1e3:.1f} ms (all rounds pooled), median round p99 "
              f"{median([r.p99 for r in results]) * 1e3:.1f} ms, server CPU "
              f"{sum(r.cpu for r in results) / seconds * 100:.1f} % of a core, "
              f"{sum(r.cpu for r in results) / max(1, ticks) * 1e3:.2f} ms per tick")
    pairs = list(zip(rounds["ours"], rounds["anchor"]))
    p99_ratios = [a.p99 / b.p99 for a, b in pairs]
    cpu_ratios = [a.cpu_per_tick / b.cpu_per_tick for a, b in pairs]
    print("fan-out per-pair p99 ratios: " + " ".join(f"{r:.2f}" for r in p99_ratios))
    print("fan-out per-pair CPU-per-tick ratios: " + " ".join(f"{r:.2f}" for r in cpu_ratios))
    figure("fanout_delivered_fraction", fraction["ours"], ">=1.0")
    figure("fanout_p99_ratio", median(p99_ratios), "<=1.2")
    figure("fanout_cpu_ratio", median(cpu_ratios), "<=1.1")


# ----------------------------------------------------------------------------- 2. instrument cost
def reads_per_s(stats: Dict[str, float], window: float) -> Tuple[float, float]:
    """Reads per second in a window: (count / window, rate from the spacing of the reads).

    The second is free of the +-1 read quantisation of a short window (it is what the figure uses
    when there are at least 2 reads).

    :param stats: ``{count, first, last}``.
    :param window: the window's length."""
    plain = stats["count"] / window
    if stats["count"] >= 2 and stats["last"] > stats["first"]:
        return plain, (stats["count"] - 1) / (stats["last"] - stats["first"])
    return plain, plain


def stream_cost(ours: Side, count: int) -> Tuple[float, float]:
    """Sensor reads per second while ``count`` clients view the 5 Hz stream.

    :param ours: the dev host.
    :param count: viewers."""
    viewers = ours.viewers[:count]
    ours.set_subscribed(viewers, True)
    time.sleep(SETTLE)
    t0 = time.time()
    time.sleep(COST_WINDOW)
    t1 = time.time()
    ours.set_subscribed(viewers, False)
    for viewer in viewers:
        viewer.values.clear()
    return reads_per_s(action(ours.server, "reads", since=t0, until=t1), t1 - t0)


def naive_cost(anchor: Side, count: int) -> Tuple[float, float, int]:
    """Sensor reads per second while ``count`` pollers GET the naive route at 5 Hz.

    :param anchor: the hand-written app (serves ``/naive``).
    :param count: pollers."""
    pollers = Pollers(anchor.server.port, "/naive", count, COST_HZ)
    time.sleep(SETTLE)
    t0 = time.time()
    time.sleep(COST_WINDOW)
    t1 = time.time()
    pollers.stop()
    reply = requests.get(f"{anchor.server.base}/reads", params={"since": t0, "until": t1}, timeout=20)
    reply.raise_for_status()
    plain, _ = reads_per_s(reply.json(), t1 - t0)
    return plain, plain, pollers.errors


def bench_cost(ours: Side, anchor: Side) -> None:
    """Instrument reads per second with 0, 1, 10, 100 viewers: stream versus naive polling.

    :param ours: the dev host.
    :param anchor: the hand-written app."""
    action(ours.server, "set_rate", hz=COST_HZ)
    stream: Dict[int, float] = {}
    naive: Dict[int, float] = {}
    for index, count in enumerate(VIEWERS):
        for kind in (("stream", "naive") if index % 2 == 0 else ("naive", "stream")):
            if kind == "stream":
                stream[count] = _report_stream(ours, count)
            else:
                naive[count] = _report_naive(anchor, count)
    print(f"naive polling at {COST_HZ:g} Hz, sensor reads/s by viewers: "
          + ", ".join(f"{n}: {naive[n]:.1f}" for n in VIEWERS))
    print(f"shared stream at {COST_HZ:g} Hz, sensor reads/s by viewers: "
          + ", ".join(f"{n}: {stream[n]:.2f}" for n in VIEWERS))
    figure("idle_reads_per_s", stream[0], "<=0")
    figure("stream_reads_per_s_per_hz_at_100_viewers", stream[100] / COST_HZ, "<=1.05")
    figure("naive_vs_stream_reads_ratio_100_viewers", naive[100] / max(stream[100], 1e-9), ">=50")


def _report_stream(ours: Side, count: int) -> float:
    plain, spaced = stream_cost(ours, count)
    print(f"instrument cost, stream, {count:3d} viewers: {plain:.2f} reads/s in the window "
          f"({spaced:.3f} reads/s from the reads' spacing)", flush=True)
    return spaced


def _report_naive(anchor: Side, count: int) -> float:
    plain, _, errors = naive_cost(anchor, count)
    print(f"instrument cost, naive, {count:3d} pollers: {plain:.1f} reads/s "
          f"({plain / count if count else 0:.2f} per poller, target {COST_HZ:g}; {errors} errors)",
          flush=True)
    return plain


# ----------------------------------------------------------------------------- 3. push latency
def bench_push(ours: Side) -> None:
    """Value change to receipt: ``publish`` to every connected client versus 1 Hz HTTP polling,
    on the same changes at the same time.

    :param ours: the dev host (its simulated workflow changes the sensor's value)."""
    first_seen: Dict[Tuple[int, int], float] = {}
    last_value: Dict[int, int] = {}
    lock = threading.Lock()

    def on_reply(index: int, payload: Dict[str, Any], received: float) -> None:
        with lock:
            previous = last_value.get(index)
            last_value[index] = payload["value"]
            if previous is not None and payload["value"] != previous and payload["t"] >= started:
                first_seen[(index, payload["value"])] = received - payload["t"]

    for viewer in ours.viewers:
        viewer.changes.clear()
    started = time.time()
    pollers = Pollers(ours.server.port, f"{NS}/current", POLLERS, 1.0,
                      headers={"Authorization": f"Bearer {ours.server.token}"}, on_reply=on_reply)
    time.sleep(1.5)  # every poller has its first value before the first change
    action(ours.server, "changes", on=True)
    time.sleep(PUSH_SECONDS)
    action(ours.server, "changes", on=False)
    time.sleep(1.5)  # the last change reaches the pollers
    pollers.stop()
    push = [received - sent for viewer in ours.viewers for _, sent, received in viewer.changes
            if sent >= started]
    changes = len({value for viewer in ours.viewers for value, sent, _ in viewer.changes if sent >= started})
    polled = list(first_seen.values())
    push_p99, poll_p99 = percentile(push, 99), percentile(polled, 99)
    print(f"push latency: {changes} changes, {len(push)} deliveries to {len(ours.viewers)} clients, "
          f"p50 {median(push) * 1e3:.1f} ms, p99 {push_p99 * 1e3:.1f} ms")
    print(f"1 Hz polling latency: {len(polled)} first sightings by {POLLERS} pollers "
          f"({pollers.errors} errors), p50 {median(polled) * 1e3:.0f} ms, p99 {poll_p99 * 1e3:.0f} ms")
    if changes == 0 or not polled:
        raise RuntimeError("push phase saw no changes")
    figure("push_p99_ratio_vs_1hz_polling", push_p99 / poll_p99, "<=0.1")


# ----------------------------------------------------------------------------- main
def main() -> None:
    """Start both servers, connect the clients, run the three parts, stop everything."""
    begun = time.monotonic()
    ours = Side("ours", ServerProcess(HERE / "live_plugin" / "serve_ours.py", secrets.token_urlsafe(16)))
    anchor = Side("anchor", ServerProcess(HERE / "live_plugin" / "anchor.py", secrets.token_urlsafe(16)))
    try:
        ours.server.wait_ready()
        anchor.server.wait_ready()
        ours.connect(CLIENTS)
        anchor.connect(CLIENTS)
        print(f"{CLIENTS} clients connected to each server in {time.monotonic() - begun:.1f} s "
              f"({'threaded' if THREADED_HANDLERS else 'inline'} client handlers)", flush=True)
        bench_fanout(ours, anchor)
        bench_cost(ours, anchor)
        bench_push(ours)
    except BaseException:
        for side in (ours, anchor):
            print(f"--- {side.name} server output (exit code {side.server.proc.poll()}) ---\n"
                  f"{side.server.output()[-3000:]}", file=sys.stderr)
        raise
    finally:
        parallel([v.close for v in ours.viewers + anchor.viewers], workers=20)
        for side in (ours, anchor):
            side.server.stop()
    print(f"bench_live ran in {time.monotonic() - begun:.0f} s")
    finish()


if __name__ == "__main__":
    main()
