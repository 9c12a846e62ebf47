"""History in real databases: SQLite (the default) and PostgreSQL (Debian's, a temporary cluster on
127.0.0.1 started here). Recording loses and duplicates nothing, downsampling keeps the true min
and max, retention deletes what it should, ``?run=`` returns a real IvoryOS workflow's values, a
SIGKILL leaves a readable database, and a PostgreSQL outage never stops the live values."""
from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.core import clock as clock_module
from ivoryos_plugin.core.clock import ManualClock
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime.history import FLUSH_S, RETRY_MAX_S, HistoryStore, Retention
from ivoryos_plugin.testing import LiveClient, login_client
from support import PY, ROOT, Server, free_port, ivoryos_login, start_process, wait_for_port, wait_until

PLUGINS = ROOT / "tests" / "plugins"


class Postgres:
    """A throwaway PostgreSQL cluster run by the ``postgres`` user, on 127.0.0.1."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            pytest.fail("PostgreSQL is not installed: run ./scripts/install.sh --test (Debian's postgresql)")
        self.bin = found[-1].parent
        self.base = Path(tempfile.mkdtemp(prefix="ivp-pg-"))
        self.as_user: List[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.base, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.running = False
        subprocess.run(self.as_user + [str(self.bin / "initdb"), "-D", str(self.base / "data"), "-A", "trust",
                                       "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        self.start()
        subprocess.run(self.as_user + [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                       "-U", "postgres", "history"], check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/history"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(self.as_user + [str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.pg_ctl("start", "-w", "-l", str(self.base / "postgres.log"),
                    "-o", f"-p {self.port} -h 127.0.0.1 -k {self.base} -F")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.pg_ctl("stop", "-w", "-m", "fast")  # disconnects the clients
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    pg: Postgres = request.getfixturevalue("postgres")
    store = HistoryStore(pg.url)  # a clean table for each test
    from ivoryos_plugin.runtime.history import samples

    with store.engine().begin() as conn:
        conn.execute(samples.delete())
    store.stop()
    return pg.url


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The framework's clock for this test (what an object given no clock uses, and what the tests give
    ``create_app(clock=)``: an app takes its clock at attach): its streams tick, the history writer
    flushes and backs off, and retention ages values only when the test moves it."""
    manual = ManualClock(start=time.time())
    monkeypatch.setattr(clock_module, "SYSTEM_CLOCK", manual)
    return manual


def counting_plugin(name: str, hz: float, **record: Any) -> Any:
    counter = itertools.count(1)
    produced: Dict[str, Any] = {"n": 0, "ticked": threading.Condition()}
    plugin = Plugin(name, __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")

    @plugin.stream("count", hz=hz, record=True, **record)
    def count() -> Dict[str, int]:
        with produced["ticked"]:
            produced["n"] = next(counter)
            produced["ticked"].notify_all()
        return {"value": produced["n"]}

    return plugin, produced


def run_for(clock: ManualClock, produced: Dict[str, Any], seconds: float, hz: float) -> None:
    """Move ``clock`` by ``seconds``, one tick of an ``hz`` stream at a time, each once the stream
    took the value of the tick before (its first value taken at the start)."""
    ticked = produced["ticked"]
    with ticked:
        assert ticked.wait_for(lambda: produced["n"] >= 1, 10), "the recorded stream starts by itself"
    for _ in range(round(seconds * hz)):
        with ticked:
            before = produced["n"]
            clock.advance(1.000001 / hz)  # (a hair more: float sums never leave a tick just short)
            assert ticked.wait_for(lambda: produced["n"] > before, 10), "one value at each tick"


def advancing(clock: ManualClock, step: float, condition: Any, tries: int = 4, each: float = 10.0) -> bool:
    """Whether ``condition()`` came true, waiting up to ``each`` real seconds at a time and moving
    ``clock`` by ``step`` before each wait: the writer's next try (its flush period, or its backoff)
    comes even when its thread, slowed on a loaded machine, began its wait after the clock had moved on.

    :param step: the clock seconds that bring the writer's next try (FLUSH_S, RETRY_MAX_S)."""
    for _ in range(tries):
        clock.advance(step)
        if wait_until(condition, each):
            return True
    return False


def values(store: HistoryStore, plugin: str, stream: str = "count") -> List[int]:
    found = store.query(plugin, stream, max_points=10_000_000)
    assert found["downsampled"] is False
    return [p["value"]["value"] for p in found["points"]]


# ------------------------------------------------------------------ recording
def test_a_20_hz_recorded_stream_stores_every_value_once(url: str, tmp_path: Path, clock: ManualClock,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", url)
    plugin, produced = counting_plugin("rec20", 20)
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=clock)
    try:
        run_for(clock, produced, 30.0, 20)  # nobody watches: a recorded stream samples anyway
    finally:
        stop(app)  # writes the last batch
    store = HistoryStore(url)
    try:
        got = values(store, "rec20")
    finally:
        store.stop()
    assert 540 <= produced["n"] <= 620, f"{produced['n']} values in 30 s at 20 Hz"
    assert got == list(range(1, produced["n"] + 1)), "every value once, in order"


def test_values_are_read_back_as_json_and_csv_with_bad_queries_refused(tmp_path: Path, clock: ManualClock) -> None:
    plugin, produced = counting_plugin("rec_http", 50)
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=clock)
    try:
        run_for(clock, produced, 1.0, 50)
        client = login_client(app)
        body = client.get("/ivoryos/rec_http/history/count?since=-60").get_json()
        assert body["count"] >= 30 and body["points"][0]["value"] == {"value": 1}
        csv_text = client.get("/ivoryos/rec_http/history/count.csv").get_data(as_text=True)
        assert csv_text.splitlines()[0] == "t,time,value,run,step,data" and len(csv_text.splitlines()) >= 31
        bad = client.get("/ivoryos/rec_http/history/count?since=yesterday&max_points=0&colour=red")
        assert bad.status_code == 400
        assert sorted(bad.get_json()["errors"]) == ["_", "max_points", "since"]
        assert client.get("/ivoryos/rec_http/history/count?since=20&until=10").get_json()["errors"] == {
            "until": ["must not be before since"]}
        assert app.test_client().get("/ivoryos/rec_http/history/count",
                                     headers={"Accept": "application/json"}).status_code == 401
        status = client.get("/ivoryos/plugins/status.json").get_json()
        mine = next(p for p in status["plugins"] if p["name"] == "rec_http")
        assert mine["recorded"] == ["count"] and mine["streams"]["count"]["recording"] is True
        assert mine["history"]["rows"]["count"] >= 30 and mine["history"]["disk_bytes"] > 0
    finally:
        stop(app)


def test_a_stream_recorded_by_key_gives_that_key_in_the_csv_value_column(tmp_path: Path) -> None:
    import csv
    import io
    import json

    plugin = Plugin("grams_csv", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    readings = itertools.count(1)

    @plugin.stream("weight", hz=50, record="grams")
    def weight() -> Dict[str, Any]:
        n = next(readings)
        return {"grams": n / 10, "stable": n % 2 == 0}

    app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
    try:
        client = login_client(app)
        assert wait_until(lambda: client.get("/ivoryos/grams_csv/history/weight").get_json()["count"] >= 5, 5)
        rows = list(csv.DictReader(io.StringIO(client.get("/ivoryos/grams_csv/history/weight.csv").get_data(as_text=True))))
    finally:
        stop(app)
    assert len(rows) >= 5
    for row in rows[:5]:
        data = json.loads(row["data"])
        assert float(row["value"]) == data["grams"] and set(data) == {"grams", "stable"}, row


def test_plugin_record_keeps_values_not_from_a_stream(tmp_path: Path) -> None:
    plugin = Plugin("noter", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
    try:
        with app.app_context():
            plugin.record_value("yield_mg", 12.5)
            plugin.record_value("yield_mg", {"value": 13.0, "note": "second"})
        body = login_client(app).get("/ivoryos/noter/history/yield_mg").get_json()
        assert [p["value"] for p in body["points"]] == [12.5, {"value": 13.0, "note": "second"}]
    finally:
        stop(app)


def test_a_recorded_stream_keeps_flowing_through_nan_readings(tmp_path: Path, clock: ManualClock) -> None:
    """A reading of NaN or Infinity (a sensor glitch) is sent and stored as null, as the page's
    JSON.stringify would: the stream neither fails nor backs off, and the numbers around it are kept."""
    import math

    counter = itertools.count(1)
    produced: Dict[str, Any] = {"n": 0, "ticked": threading.Condition()}
    plugin = Plugin("glitchy", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")

    @plugin.stream("reading", hz=50, record=True)
    def reading() -> Dict[str, Any]:
        with produced["ticked"]:
            n = produced["n"] = next(counter)
            produced["ticked"].notify_all()
        return {"value": [float(n), math.nan, math.inf][n % 3], "n": n}

    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=clock)
    try:
        live = LiveClient(app, app.extensions["socketio"], "/ivoryos/glitchy", login_client(app))
        live.subscribe("reading")
        run_for(clock, produced, 1.5, 50)
        stream = app.extensions["ivoryos_plugin"].runtimes["glitchy"].hub.streams["reading"]
        assert stream.errors == 0 and stream.reads >= 50, (stream.errors, stream.reads)
        sent = live.received("reading")
        assert [v["value"] for v in sent[:6]] == [float(v["n"]) if v["n"] % 3 == 0 else None for v in sent[:6]]
        assert not live.received("stream_error")
        with app.app_context():
            plugin.record_value("manual", {"value": -math.inf, "note": "overload"})
        client = login_client(app)
        body = client.get("/ivoryos/glitchy/history/reading").get_json()
        stored = {p["value"]["n"]: p["value"]["value"] for p in body["points"]}
        assert len(stored) >= 50 and all(n in stored for n in range(1, 51)), "every reading kept"
        assert all(v == (float(n) if n % 3 == 0 else None) for n, v in stored.items())
        assert client.get("/ivoryos/glitchy/history/manual").get_json()["points"][0]["value"] == {
            "value": None, "note": "overload"}
        live.disconnect(namespace="/ivoryos/glitchy")
    finally:
        stop(app)


# ------------------------------------------------------------------ downsampling and retention
def test_downsampling_keeps_the_true_min_and_max(url: str) -> None:
    import math

    store = HistoryStore(url)
    try:
        t0 = time.time() - 50_000
        expected = []
        for i in range(50_000):
            value = math.sin(i / 500) * 10 + (100.0 if i == 31_337 else 0.0) - (55.5 if i == 7 else 0.0)
            expected.append(value)
            store.record("ds", "wave", {"value": value}, t=t0 + i)
        assert store.flush()
        found = store.query("ds", "wave", max_points=1000)
        assert found["downsampled"] is True and found["count"] == 50_000
        points = found["points"]
        assert 900 <= len(points) <= 1000
        assert min(p["min"] for p in points) == pytest.approx(min(expected))
        assert max(p["max"] for p in points) == pytest.approx(max(expected))
        assert sum(p["n"] for p in points) == 50_000
        window = store.query("ds", "wave", since=t0 + 100, until=t0 + 199, max_points=1000)
        assert window["downsampled"] is False and len(window["points"]) == 100
    finally:
        store.stop()


def test_the_aggregates_equal_the_samples_grouped_by_the_database(url: str) -> None:
    import random

    from sqlalchemy import func, select

    from ivoryos_plugin.runtime.history import ROLLUP_WIDTHS, rollups, samples

    store = HistoryStore(url)
    rng = random.Random(17)
    try:
        t0 = 1_700_000_000.0
        for i in range(12_000):  # two streams, out of order, some values not numbers, over about 3 hours
            t = t0 + rng.uniform(0, 11_000)
            stream = "a" if i % 3 else "b"
            value = None if i % 11 == 0 else {"value": rng.uniform(-50, 50)}
            store.record("agg", stream, value if value is not None else "text", t=t)
            if i % 2500 == 0:
                assert store.flush()  # several batches, so buckets are merged into rows already written
        assert store.flush()
        with store.engine().connect() as conn:
            for width in ROLLUP_WIDTHS:
                bucket = func.floor(samples.c.t / width) * width
                truth = conn.execute(select(samples.c.stream, bucket, func.count(), func.count(samples.c.num),
                                            func.min(samples.c.num), func.max(samples.c.num), func.min(samples.c.t),
                                            func.max(samples.c.t)).where(samples.c.plugin == "agg")
                                     .group_by(samples.c.stream, bucket).order_by(samples.c.stream, bucket)).all()
                kept = conn.execute(select(rollups.c.stream, rollups.c.bucket, rollups.c.n_all, rollups.c.n,
                                           rollups.c.lo, rollups.c.hi, rollups.c.first_t, rollups.c.last_t)
                                    .where((rollups.c.plugin == "agg") & (rollups.c.width == width))
                                    .order_by(rollups.c.stream, rollups.c.bucket)).all()
                assert len(kept) == len(truth) > 1, (width, len(kept), len(truth))
                for got, want in zip(kept, truth):
                    assert got[0] == want[0] and float(got[1]) == float(want[1]) and tuple(got[2:4]) == tuple(want[2:4])
                    assert [None if v is None else pytest.approx(float(v)) for v in want[4:]] == \
                        [None if v is None else float(v) for v in got[4:]], (width, got, want)
    finally:
        store.stop()


def test_retention_deletes_what_it_should(url: str) -> None:
    # a clock that stands still: the writer's own retention pass (every 10 s) measures ages from the
    # same now as the test, however long a loaded machine takes between two lines
    clock = ManualClock(start=time.time())
    store = HistoryStore(url, clock=clock)
    try:
        now = clock.time()
        for i in range(300):  # one value a second over the last 5 minutes (half a second off the edges)
            store.record("ret", "old_and_new", i, t=now - 299.5 + i)
            store.record("ret", "many", i, t=now - 299.5 + i)
            store.record("ret", "kept", i, t=now - 299.5 + i)
        assert store.flush()
        store.retain("ret", "old_and_new", Retention(keep_s=60, keep_rows=None))
        store.retain("ret", "many", Retention(keep_s=None, keep_rows=50))
        store.enforce_retention(now=now)  # (the writer thread enforces it too, every 10 s)
        assert store.counts.deleted == (300 - 60) + (300 - 50)
        assert values_of(store, "old_and_new") == list(range(240, 300))
        assert values_of(store, "many") == list(range(250, 300))
        assert values_of(store, "kept") == list(range(300))
        for i in range(300, 330):  # more values: the next pass keeps the 50 newest again (counted as written)
            store.record("ret", "many", i, t=now - 299.5 + i)
        assert store.flush()
        store.enforce_retention(now=now)
        assert values_of(store, "many") == list(range(280, 330))
        from sqlalchemy import func, select

        from ivoryos_plugin.runtime.history import rollups

        with store.engine().connect() as conn:  # the aggregates of what was deleted went with it
            stale = conn.execute(select(func.count()).where((rollups.c.plugin == "ret")
                                                            & (rollups.c.stream == "old_and_new")
                                                            & (rollups.c.last_t < now - 60))).scalar()
        assert stale == 0
    finally:
        store.stop()


def values_of(store: HistoryStore, stream: str) -> List[Any]:
    return [p["value"] for p in store.query("ret", stream, max_points=1000)["points"]]


# ------------------------------------------------------------------ faults
@pytest.mark.server
def test_sigkill_while_recording_leaves_a_readable_database(tmp_path: Path) -> None:
    server = start_process([PY, str(PLUGINS / "history_deck.py")], tmp_path, "history_deck.log",
                           env={"PYTHONPATH": str(PLUGINS), "REC_HOST": "dev", "REC_TOKEN": "t", "REC_HZ": "50"})
    time.sleep(3.0)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    db = tmp_path / "ivoryos_data" / "plugins" / "history.sqlite"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = [int(v.split(":")[1].strip(" }")) for (v,) in conn.execute(
            "SELECT value FROM ivoryos_plugin_samples ORDER BY id")]
    assert len(rows) >= 50, "at most the last batch (2 s) is lost"
    assert rows == list(range(1, len(rows) + 1)), "what was written is whole, in order"


def test_postgres_stopped_mid_recording_keeps_live_values_and_reports_the_gap(
        postgres: Postgres, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", postgres.url)
    plugin, produced = counting_plugin("rec_pg", 20)
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=clock)
    client = login_client(app)
    live = LiveClient(app, app.extensions["socketio"], "/ivoryos/rec_pg", client)
    try:
        assert live.subscribe("count")["ok"]
        run_for(clock, produced, 1.0, 20)
        live.wait_for("count", 5)
        postgres.stop()
        before = len(live.received("count"))
        run_for(clock, produced, 3.0, 20)  # the writer's flush at 2 s fails meanwhile
        during = len(live.received("count")) - before
        assert during >= 40, f"only {during} live values while the database was down"
        history = app.extensions["ivoryos_plugin"].history()
        assert wait_until(lambda: history.error != "", 10) or advancing(clock, FLUSH_S, lambda: history.error != ""), \
            "the failed flush is reported"
        status = history.status("rec_pg")
        assert status["error"] and status["gaps"] and status["gaps"][-1]["ended"] is None
        assert status["queued"] >= 40
        postgres.start()
        # the writer's backoff runs out: it tries again, and writes
        advancing(clock, RETRY_MAX_S, lambda: history.status("rec_pg")["gaps"][-1]["ended"] is not None, each=5)
        status = history.status("rec_pg")
        assert status["gaps"][-1]["ended"] is not None and status["error"] == "" and status["dropped"] == 0
    finally:
        live.disconnect(namespace="/ivoryos/rec_pg")
        stop(app)
    store = HistoryStore(postgres.url)
    try:
        assert values(store, "rec_pg") == list(range(1, produced["n"] + 1)), "the outage lost nothing"
    finally:
        store.stop()


def test_an_unreachable_database_is_retried_on_the_writers_backoff_not_for_every_value() -> None:
    """More than a batch queued while the database is down: the writer keeps its backoff (a value
    queued does not wake it for another try), and nothing queued is dropped below the bound."""
    clock = ManualClock()
    store = HistoryStore(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/history", buffer_max=10_000,
                         clock=clock)
    attempts: List[float] = []
    write = store.writer.write

    def counted(batch: List[Any], deadline: float) -> None:
        attempts.append(clock.monotonic())
        write(batch, deadline)

    store.writer.write = counted  # type: ignore[method-assign]
    try:
        store.record("p", "s", 0)  # the writer starts and tries at once
        assert wait_until(lambda: store.error != "", 10), "the first try fails"
        for i in range(1, 3000):  # 3,000 values in 3 s, 1,000 more than a batch
            store.record("p", "s", i)
            clock.advance(0.001)
        waited = clock.monotonic()
        clock.advance(RETRY_MAX_S)  # the backoff runs out: one more try
        assert wait_until(lambda: len(attempts) >= 2, 10), attempts
        status = store.status("p")
        assert status["queued"] == 3000 and status["dropped"] == 0 and status["error"]
        assert attempts == [0.0, waited + RETRY_MAX_S], f"tries at {attempts}: a queued value woke the writer"
    finally:
        store._stop.set()
        store.stop(timeout=2.0)


def test_a_locked_sqlite_file_keeps_the_values_queued_and_writes_them_all_after(
        tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program holding the SQLite file's write lock (a backup, a script with a transaction
    open) past the driver's 5 s wait: the batch is kept, the gap reported, nothing lost."""
    db = tmp_path / "locked.sqlite"
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", f"sqlite:///{db}")
    plugin, produced = counting_plugin("rec_lock", 20)
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=clock)
    try:
        run_for(clock, produced, 1.0, 20)
        history = app.extensions["ivoryos_plugin"].history()
        assert history.flush() and history.status("rec_lock")["rows"]["count"] >= 10
        # the other program waits for a write the store may have under way (its retention pass after
        # the flush, say), then takes the lock and keeps it
        locker = sqlite3.connect(db, timeout=10)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            run_for(clock, produced, 2.0, 20)  # the writer's next flush waits for the lock, then gives up
            assert (wait_until(lambda: bool(history.status("rec_lock")["gaps"]), 15)
                    or advancing(clock, FLUSH_S, lambda: bool(history.status("rec_lock")["gaps"]), tries=2))
            status = history.status("rec_lock")
            assert status["gaps"] and status["gaps"][-1]["ended"] is None, status
            assert "locked" in status["error"] and status["queued"] >= 20
        finally:
            locker.rollback()
            locker.close()
        def written() -> bool:  # the gap closed and the error cleared (the writer does both at once)
            status = history.status("rec_lock")
            return status["gaps"][-1]["ended"] is not None and status["error"] == ""

        # the writer's backoff runs out: it tries again, and writes
        assert advancing(clock, RETRY_MAX_S, written, each=5), history.status("rec_lock")
    finally:
        stop(app)
    store = HistoryStore(f"sqlite:///{db}")
    try:
        assert values(store, "rec_lock") == list(range(1, produced["n"] + 1)), "the lock lost nothing"
    finally:
        store.stop()


# ------------------------------------------------------------------ a real IvoryOS run, and a page
@pytest.fixture(scope="module")
def recorder_ivoryos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_process([PY, str(PLUGINS / "history_deck.py")], tmp_path_factory.mktemp("rec_ivoryos"),
                           "history_deck.log", env={"PYTHONPATH": str(PLUGINS), "REC_HZ": "20"})
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_run_returns_exactly_the_values_taken_during_a_workflow(recorder_ivoryos: Server) -> None:
    s, base = ivoryos_login(recorder_ivoryos.base), f"{recorder_ivoryos.base}/ivoryos"
    script = "def workflow():\n    deck.sensor.slow(seconds=1.5)\n"
    assert s.post(f"{base}/draft/submit_python", json={"workflow_name": "recorded_run", "script": script,
                                                       "prep": "", "cleanup": ""}).status_code == 200
    assert s.post(f"{base}/executions/config", json={"repeat": 1}, headers={"Accept": "application/json"}).status_code == 200
    time.sleep(0.5)
    deadline = time.monotonic() + 20
    while s.get(f"{base}/executions/status", headers={"Accept": "application/json"}).json()["busy"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    records = s.get(f"{base}/executions/records", headers={"Accept": "application/json"}).json()["workflow_data"]
    run_id = max(int(i) for i, info in records.items() if info["workflow_name"] == "recorded_run")
    during = s.get(f"{base}/recorder/history/count?run={run_id}").json()["points"]
    # at least the step's 1.5 s at 20 Hz (a loaded machine stretches the step: no upper bound in
    # seconds), each value once and none skipped: the counter's values follow one another
    counted = [p["value"]["value"] for p in during]
    assert len(during) >= 20, f"{len(during)} values during a 1.5 s step at 20 Hz"
    assert counted == list(range(counted[0], counted[0] + len(counted))), counted
    assert all(p["run"] == run_id for p in during)
    everything = s.get(f"{base}/recorder/history/count?max_points=100000").json()["points"]
    inside = [p for p in everything if during[0]["t"] <= p["t"] <= during[-1]["t"]]
    assert inside == during, "every value taken during the run, and no other"
    assert any(p["run"] is None for p in everything), "values outside the run have no run"


@pytest.mark.browser
@pytest.mark.server
def test_a_page_opened_later_starts_from_the_history(recorder_ivoryos: Server) -> None:
    from browsing import chromium

    for browser in chromium():
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{recorder_ivoryos.base}/ivoryos/auth/login")
            page.fill("#username", "admin")
            page.fill("#password", "admin")
            with page.expect_navigation():
                page.click("form[name=login] button[type=submit]")
            produced = ivoryos_login(recorder_ivoryos.base).post(
                f"{recorder_ivoryos.base}/ivoryos/recorder/actions/produced", json={}).json()["n"]
            page.goto(f"{recorder_ivoryos.base}/ivoryos/recorder/")
            page.wait_for_selector("body[data-history=loaded]")
            loaded = int(page.inner_text("#loaded"))
            assert loaded >= produced - 20 and loaded >= 20, (loaded, produced)
        finally:
            context.close()
