"""History (SQLite, the default store), each figure against its anchor in the same run, interleaved:

- history_record_cpu_ratio (target <= 1.15): server CPU of a 50 Hz stream with ``record=True``
  against the same stream without, both watched by one viewer, in real time, each window in a
  process of its own (the stream's and the writer's threads are printed beside it, see ``record_cpu``);
- history_query_1000_points_vs_all_rows (target <= 0.05): ``max_points=1000`` over 1,000,000 rows
  against fetching all the rows;
- history_insert_throughput_vs_executemany (target >= 0.9): rows per second the writer inserts
  (samples plus their per-second/minute/hour aggregates) against SQLAlchemy ``executemany`` of the
  same rows; the producer's side, ``record()`` queueing a value, is printed beside it.
"""
from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

from common import figure, finish, median

ROUNDS = 6
WINDOW_ROUNDS = 20  # of two windows each (one plain, one recorded), every window in a process of its own
WINDOW_S = 6.0


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def window(record: bool, folder: Path) -> Dict[str, float]:
    """One measuring window, run in a process of its own: a 50 Hz stream watched by one Socket.IO
    client, with or without ``record=True``; the process's CPU per second over :data:`WINDOW_S`
    after a warm-up, and each thread's."""
    import os

    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import LiveClient, login_client

    counter = itertools.count()
    plugin = Plugin("bench", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")

    @plugin.stream("value", hz=50, record=record)
    def value() -> Dict[str, Any]:
        n = next(counter)
        return {"value": n * 0.5, "n": n, "unit": "g"}

    os.environ["IVORYOS_PLUGIN_HISTORY_URL"] = f"sqlite:///{folder / 'history.sqlite'}"
    app = create_app([plugin], data_dir=folder / "data", testing=True)
    live = LiveClient(app, app.extensions["socketio"], "/ivoryos/bench", login_client(app))
    live.subscribe("value")
    time.sleep(1.5)  # past the store's start (engine, schema, first batch) and the first retention pass
    threads = {t.name: t for t in threading.enumerate() if t.ident is not None}

    def thread_cpu() -> Dict[str, float]:
        return {name: time.clock_gettime(time.pthread_getcpuclockid(t.ident))  # type: ignore[arg-type]
                for name, t in threads.items() if t.is_alive()}

    before, c0, t0, n0 = thread_cpu(), cpu(), time.monotonic(), len(live.received("value"))
    time.sleep(WINDOW_S)
    after, c1, elapsed = thread_cpu(), cpu(), time.monotonic() - t0
    got = len(live.received("value")) - n0
    assert got >= 0.9 * 50 * elapsed, f"the stream sent {got} values in {elapsed:.1f} s, not 50 a second"
    live.disconnect(namespace="/ivoryos/bench")
    stop(app)
    if record:
        from ivoryos_plugin.runtime.history import HistoryStore

        store = HistoryStore(f"sqlite:///{folder / 'history.sqlite'}")
        stored = store.query("bench", "value", max_points=10_000_000)["count"]
        store.stop()
        assert stored >= got, f"{stored} values recorded of {got} sent"
    per_thread = {name: (after[name] - before[name]) / elapsed for name in after if name in before}
    return {"process": (c1 - c0) / elapsed,
            "stream": per_thread.get("ivoryos_plugin-stream-value", 0.0),
            "writer": per_thread.get("ivoryos_plugin-history", 0.0)}


def record_cpu(folder: Path) -> float:
    """CPU ratio of a 50 Hz stream with ``record=True`` against the same stream without, in real
    time: process CPU over :data:`WINDOW_ROUNDS` windows of :data:`WINDOW_S` each, interleaved in
    ABBA order.

    Each window runs in a fresh process (this file with ``--window``): in one process an earlier
    window's app, database and garbage were counted in the next, and a window of the same plain
    stream measured 4 to 21 ms/s. Printed beside it: the stream thread's and the writer thread's
    share, per-thread CPU clocks."""
    found: Dict[bool, List[Dict[str, float]]] = {True: [], False: []}
    for round_no in range(WINDOW_ROUNDS):
        for record in ((False, True) if round_no % 2 == 0 else (True, False)):  # ABBA: drift cancels out
            where = folder / f"window_{round_no}_{int(record)}"
            where.mkdir()
            done = subprocess.run([sys.executable, __file__, "--window", str(int(record)), str(where)],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"a measuring window failed:\n{done.stderr[-3000:]}")
            found[record].append(json.loads(done.stdout.strip().splitlines()[-1]))

    def mid(record: bool, key: str) -> float:
        return median([w[key] for w in found[record]]) * 1000

    def listed(record: bool) -> str:
        return ", ".join(f"{w['process'] * 1000:.1f}" for w in found[record])

    print(f"CPU at 50 Hz, medians of {WINDOW_ROUNDS} windows of {WINDOW_S:.0f} s each: process "
          f"{mid(False, 'process'):.2f} ms/s plain, {mid(True, 'process'):.2f} ms/s recorded (windows: "
          f"{listed(False)} plain; {listed(True)} recorded); the stream's thread {mid(False, 'stream'):.2f} "
          f"plain, {mid(True, 'stream'):.2f} recorded; the history writer's thread {mid(True, 'writer'):.2f} ms/s")
    return median([w["process"] for w in found[True]]) / median([w["process"] for w in found[False]])


def rows(n: int, t0: float) -> List[Dict[str, Any]]:
    return [{"plugin": "b", "stream": "s", "t": t0 + i * 0.02, "num": float(i % 997),
             "value": json.dumps({"value": float(i % 997)}), "run_id": None, "step": None, "host": "h"}
            for i in range(n)]


def insert_ratio(folder: Path) -> float:
    from sqlalchemy import insert

    from ivoryos_plugin.runtime.history import HistoryStore, samples

    n = 100_000
    ours: List[float] = []
    anchor: List[float] = []
    enqueue: List[float] = []
    for round_no in range(ROUNDS):
        store = HistoryStore(f"sqlite:///{folder / f'ins_ours_{round_no}.sqlite'}", buffer_max=n)
        store.engine()
        store._thread = threading.current_thread()  # no background writer: this round flushes by itself
        t = time.perf_counter()
        for i in range(n):
            store.record("b", "s", {"value": float(i % 997)}, t=1e9 + i * 0.02)
        queued = time.perf_counter() - t
        t = time.perf_counter()
        assert store.flush()
        ours.append(n / (time.perf_counter() - t))
        enqueue.append(n / queued)
        store._thread = None
        store.stop()
        bare = HistoryStore(f"sqlite:///{folder / f'ins_anchor_{round_no}.sqlite'}").engine()  # same schema, WAL
        prepared = rows(n, 1e9)
        t = time.perf_counter()
        with bare.begin() as conn:
            for i in range(0, n, 2000):
                conn.execute(insert(samples), prepared[i:i + 2000])
        anchor.append(n / (time.perf_counter() - t))
        bare.dispose()
    print(f"insert: the writer {median(ours):.0f} rows/s (samples and their aggregates), executemany "
          f"{median(anchor):.0f} rows/s (samples only); record() queues {median(enqueue):.0f} values/s")
    return median(ours) / median(anchor)


def query_ratio(folder: Path) -> float:
    from sqlalchemy import insert, select

    from ivoryos_plugin.runtime.history import ROLLUP_COLUMNS, ROW, HistoryStore, samples
    from ivoryos_plugin.runtime.history.rollups import upsert as _upsert

    store = HistoryStore(f"sqlite:///{folder / 'query.sqlite'}")
    engine = store.engine()
    t0 = time.time() - 1_000_000 * 0.02
    with engine.begin() as conn:  # as the writer stores them: the samples and their rollups
        for start in range(0, 1_000_000, 50_000):
            batch = rows(50_000, t0 + start * 0.02)
            conn.execute(insert(samples), batch)
            conn.execute(_upsert("sqlite"), [dict(zip(ROLLUP_COLUMNS, a)) for a in
                                              HistoryStore.aggregates([tuple(r[c] for c in ROW) for r in batch])])
    ours: List[float] = []
    everything: List[float] = []
    for _ in range(3):
        t = time.perf_counter()
        found = store.query("b", "s", max_points=1000)
        ours.append(time.perf_counter() - t)
        assert found["downsampled"] and len(found["points"]) <= 1000
        t = time.perf_counter()
        with engine.connect() as conn:
            got = conn.execute(select(samples.c.t, samples.c.value).where(
                (samples.c.plugin == "b") & (samples.c.stream == "s")).order_by(samples.c.t)).all()
        everything.append(time.perf_counter() - t)
        assert len(got) == 1_000_000
    store.stop()
    print(f"query: {median(ours) * 1000:.0f} ms for 1000 points, {median(everything) * 1000:.0f} ms for all 1,000,000 rows")
    return median(ours) / median(everything)


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        figure("history_record_cpu_ratio", record_cpu(folder), "<=1.15")
        figure("history_insert_throughput_vs_executemany", insert_ratio(folder), ">=0.9")
        figure("history_query_1000_points_vs_all_rows", query_ratio(folder), "<=0.05")
    finish()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["--window"]:
        print(json.dumps(window(sys.argv[2] == "1", Path(sys.argv[3]))))
    else:
        main()
