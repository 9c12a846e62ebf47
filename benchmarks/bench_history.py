"""History (SQLite, the default store), each figure against its anchor in the same run, interleaved:

- history_record_cpu_ratio (target <= 1.15): server CPU of a 50 Hz stream with ``record=True``
  against the same stream without, both watched by one viewer, in real time (the CPU per value
  without the ticks is printed beside it, see ``record_cpu``);
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
import threading
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from common import figure, finish, median

ROUNDS = 6


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def record_cpu(folder: Path) -> float:
    """CPU ratio of a 50 Hz stream with ``record=True`` against the same stream without, in real
    time (the figure: process CPU over twelve 3 s windows each, interleaved in ABBA order, watched by
    one Socket.IO client).

    Printed beside it, per value with the ticks' sleeps left out: the stream's function, the emit to
    the client and, with recording, ``record()`` and the writer's flush after every 50 values (the
    batch it writes at 50 Hz). That part is steady from run to run; a woken thread's CPU here is not
    (the same plain stream measures 4 to 21 ms/s in separate windows)."""
    import os

    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import LiveClient, login_client

    def plugin(name: str, record: bool) -> Plugin:
        counter = itertools.count()
        p = Plugin(name, __name__, template_folder=None)
        p.add_url_rule("/", "main", lambda: "page")

        @p.stream("value", hz=50, record=record)
        def value() -> Dict[str, Any]:
            n = next(counter)
            return {"value": n * 0.5, "n": n, "unit": "g"}

        return p

    per_value: Dict[bool, List[float]] = {True: [], False: []}
    real_time: Dict[bool, List[float]] = {True: [], False: []}
    values, batch = 5000, 50
    for round_no in range(2 * ROUNDS):
        for record in ((False, True) if round_no % 2 == 0 else (True, False)):  # ABBA: drift cancels out
            name = f"s{int(record)}"
            # a database of its own each round: the per-value loop below writes 5,000 rows at once, and
            # their WAL checkpoint must not land in the next round's window
            os.environ["IVORYOS_PLUGIN_HISTORY_URL"] = f"sqlite:///{folder / f'bench_history_{round_no}.sqlite'}"
            app = create_app([plugin(name, record)], data_dir=folder / f"d{record}{round_no}", testing=True)
            live = LiveClient(app, app.extensions["socketio"], f"/ivoryos/{name}", login_client(app))
            live.subscribe("value")
            time.sleep(1.5)  # past the store's start (engine, schema, first batch) and the first retention pass
            c0, t0 = cpu(), time.monotonic()
            time.sleep(3.0)
            real_time[record].append((cpu() - c0) / (time.monotonic() - t0))
            runtime = app.extensions["ivoryos_plugin"].runtimes[name]
            stream = runtime.hub.streams["value"]
            stream.stop()  # its thread stops (the client stays in the stream's room): values are taken here
            store = app.extensions["ivoryos_plugin"].history() if record else None
            if store is not None:
                assert store.flush()
            before = len(live.received("value"))
            c0 = time.process_time()
            for i in range(values):
                value = stream.spec.func()
                stream._emit("value", value)
                if store is not None:
                    runtime.record("value", value, None)
                    if i % batch == batch - 1:
                        assert store.flush()
            per_value[record].append((time.process_time() - c0) / values)
            got = len(live.received("value")) - before
            assert got == values, f"the subscriber got {got} of {values} values"
            live.disconnect(namespace=f"/ivoryos/{name}")
            stop(app)
    print(f"stream CPU in real time at 50 Hz: {median(real_time[False]) * 1000:.1f} ms/s plain, "
          f"{median(real_time[True]) * 1000:.1f} ms/s recorded (windows: "
          f"{', '.join(f'{x * 1000:.1f}' for x in real_time[False])} plain; "
          f"{', '.join(f'{x * 1000:.1f}' for x in real_time[True])} recorded); per value without the ticks: "
          f"{median(per_value[False]) * 1e6:.0f} us plain, {median(per_value[True]) * 1e6:.0f} us recorded "
          f"(the writer's share included)")
    return median(real_time[True]) / median(real_time[False])


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

    from ivoryos_plugin.runtime.history import HistoryStore, samples

    store = HistoryStore(f"sqlite:///{folder / 'query.sqlite'}")
    engine = store.engine()
    t0 = time.time() - 1_000_000 * 0.02
    with engine.begin() as conn:  # as the writer stores them: the samples and their rollups
        for start in range(0, 1_000_000, 50_000):
            batch = rows(50_000, t0 + start * 0.02)
            conn.execute(insert(samples), batch)
            HistoryStore._roll_up(conn, engine.dialect.name, batch)
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
    main()
