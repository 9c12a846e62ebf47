"""History: stream values recorded in a real database through SQLAlchemy 2, read back downsampled.

One store per app: SQLite by default (``<plugins data folder>/history.sqlite``, WAL mode), or any
SQLAlchemy URL (``IVORYOS_PLUGIN_HISTORY_URL=postgresql+psycopg://...``: several IvoryOS hosts can
write to one PostgreSQL). Values are queued in memory by the producer (never blocking it) and written
in batches by one writer thread every :data:`FLUSH_S` seconds, so a crash loses at most the last
batch. A database that cannot be reached keeps values in memory up to ``buffer_max`` (then the oldest
are dropped and counted) while live values keep flowing; the outage is reported as a gap.
"""
from __future__ import annotations

import collections
import functools
import json
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from sqlalchemy import (BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, create_engine,
                        delete, event, func, insert, select)
from sqlalchemy.engine import Engine

from . import payloads

log = logging.getLogger("ivoryos_plugin.history")

URL_ENV = "IVORYOS_PLUGIN_HISTORY_URL"
SCHEMA_VERSION = 1
FLUSH_S = 2.0  # a batch's cost is mostly per batch: every 2 s costs a 50 Hz stream a third less than every 1 s
BATCH = 2000
RETENTION_EVERY_S = 10.0
RECOUNT_EVERY_S = 600.0

metadata = MetaData()
samples = Table(
    "ivoryos_plugin_samples", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("plugin", String(64), nullable=False),
    Column("stream", String(128), nullable=False),
    Column("t", Float, nullable=False),
    Column("num", Float, nullable=True),
    Column("value", Text, nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("step", Integer, nullable=True),
    Column("host", String(128), nullable=False, default=""),
    Index("ix_ivoryos_plugin_samples_stream_t", "plugin", "stream", "t"),
    Index("ix_ivoryos_plugin_samples_run", "plugin", "stream", "run_id"),
)
#: a queued sample: a tuple of these columns, in this order
ROW = ("plugin", "stream", "t", "num", "value", "run_id", "step", "host")
Row = Tuple[str, str, float, Optional[float], str, Optional[int], Optional[int], str]
_SQLITE_INSERT = f"INSERT INTO ivoryos_plugin_samples ({', '.join(ROW)}) VALUES ({', '.join('?' * len(ROW))})"
schema = Table("ivoryos_plugin_history_schema", metadata, Column("version", Integer, primary_key=True))
#: per-bucket aggregates kept by the writer (widths in seconds), so a long range is downsampled from
#: thousands of rollup rows instead of millions of samples
ROLLUP_WIDTHS = (1, 60, 3600)
rollups = Table(
    "ivoryos_plugin_rollups", metadata,
    Column("plugin", String(64), primary_key=True),
    Column("stream", String(128), primary_key=True),
    Column("width", Integer, primary_key=True),
    Column("bucket", Float, primary_key=True),
    Column("n_all", Integer, nullable=False),
    Column("n", Integer, nullable=False),
    Column("lo", Float, nullable=True),
    Column("hi", Float, nullable=True),
    Column("total", Float, nullable=True),
    Column("first_t", Float, nullable=False),
    Column("last_t", Float, nullable=False),
)


@dataclass
class Retention:
    """How much of one stream is kept.

    :param keep_s: rows older than this many seconds are deleted (None: no age limit).
    :param keep_rows: at most this many rows, the newest (None: no count limit)."""

    keep_s: Optional[float] = 7 * 86400.0
    keep_rows: Optional[int] = 1_000_000


@dataclass
class Gap:
    """A time the database could not be written.

    :param started: ``time.time()`` when writes started failing.
    :param ended: when they succeeded again (None: still failing).
    :param error: the last error."""

    started: float
    ended: Optional[float] = None
    error: str = ""


def number_of(value: Any, field_name: Optional[str]) -> Optional[float]:
    """The numeric projection of a recorded value (what is downsampled): the value itself when it
    is a number, else its ``field_name`` key (``"value"`` by default) when that is a number.

    :param value: the value.
    :param field_name: the key to read from a dict value, or None for ``"value"``."""
    if isinstance(value, dict):
        value = value.get(field_name or "value")
        if isinstance(value, dict):
            return None
    if type(value) is float:  # the usual case first: a stream asks 50 times a second
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float's range
            return None
        return number if math.isfinite(number) else None
    return None


def default_url(data_root: Path) -> str:
    """The store's URL: ``$IVORYOS_PLUGIN_HISTORY_URL``, else SQLite in the plugins' data folder.

    :param data_root: the plugins' data folder."""
    return os.environ.get(URL_ENV) or f"sqlite:///{Path(data_root) / 'history.sqlite'}"


@dataclass
class _Counts:
    written: int = 0
    dropped: int = 0
    deleted: int = 0
    gaps: List[Gap] = field(default_factory=list)


class HistoryStore:
    """Recorded values of every plugin of one app.

    :param url: a SQLAlchemy URL.
    :param buffer_max: values kept in memory while the database cannot be written."""

    def __init__(self, url: str, *, buffer_max: int = 200_000) -> None:
        self.url = url
        self.buffer_max = buffer_max
        self.host = socket.gethostname()
        self._engine: Optional[Engine] = None
        self._buffer: Deque[Row] = collections.deque()
        self._sqlite: Any = None  # the writer's own connection to a SQLite file (see _write_sqlite)
        self._lock = threading.Lock()
        self._setup_lock = threading.Lock()  # one engine, one schema check
        self._flush_lock = threading.Lock()  # batches are written in the order they were queued
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._retention: Dict[Tuple[str, str], Retention] = {}
        self._last_retention = 0.0
        self._rows: Dict[Tuple[str, str], int] = {}  # rows per stream, for keep_rows (see enforce_retention)
        self._counted_at = -RECOUNT_EVERY_S
        self.counts = _Counts()
        self.error = ""
        self._check_at = min(BATCH, buffer_max + 1)  # queue length at which a recorder calls _queued

    # ------------------------------------------------------------ setup
    def engine(self) -> Engine:
        """The engine, with the schema created (and migrated) on first use."""
        if self._engine is not None:
            return self._engine
        with self._setup_lock:
            return self._make_engine()

    def _make_engine(self) -> Engine:
        if self._engine is None:
            if self.url.startswith("sqlite:///"):
                Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            # a server's connections are checked before use (one that a restart closed is replaced);
            # a file's need no check
            engine = create_engine(self.url, pool_pre_ping=not self.url.startswith("sqlite"), future=True)
            if engine.dialect.name == "sqlite":
                @event.listens_for(engine, "connect")
                def _wal(dbapi_connection: Any, record: Any) -> None:  # readers never block the writer
                    cursor = dbapi_connection.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                    cursor.close()
            metadata.create_all(engine)
            with engine.begin() as conn:
                version = conn.execute(select(func.max(schema.c.version))).scalar()
                if version is None:
                    conn.execute(insert(schema).values(version=SCHEMA_VERSION))
                elif version > SCHEMA_VERSION:
                    raise RuntimeError(f"the history database {self.url!r} has schema {version}, newer than this "
                                       f"ivoryos_plugin's {SCHEMA_VERSION}; upgrade ivoryos_plugin.")
            self._engine = engine
        return self._engine

    def retain(self, plugin: str, stream: str, retention: Retention) -> None:
        """Set how much of ``plugin``'s ``stream`` is kept (enforced in the background).

        :param plugin: the plugin.
        :param stream: the stream.
        :param retention: the limits."""
        self._retention[(plugin, stream)] = retention

    def start(self) -> None:
        """Start the writer thread (once)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="ivoryos_plugin-history", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer.

        :param timeout: seconds to wait for the last write."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        # the writer's SQLite connection, unless a write still holds it after the wait
        if self._sqlite is not None and self._flush_lock.acquire(timeout=timeout):
            try:
                self._close_sqlite()
            finally:
                self._flush_lock.release()
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------ writing
    def record(self, plugin: str, stream: str, value: Any, *, t: Optional[float] = None,
               run: Optional[Dict[str, Any]] = None, field_name: Optional[str] = None,
               text: Optional[str] = None) -> None:
        """Queue one value (returns at once; written within :data:`FLUSH_S` s).

        :param plugin: the plugin.
        :param stream: the stream (or any name given to ``plugin.record``).
        :param value: a JSON-serialisable value (a non-finite float is stored as ``null``, anything
            else JSON cannot hold as its ``repr``).
        :param t: its time (``time.time()``; now by default).
        :param run: ``plugin.current_run()`` when it was taken.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param text: ``value``'s JSON, when the caller has it from :func:`payloads.finite_json`."""
        if text is None:
            value, text = payloads.finite_json(value)
        self._buffer.append((plugin, stream, time.time() if t is None else float(t), number_of(value, field_name),
                             text, run.get("run_id") if run else None, run.get("step") if run else None, self.host))
        self._queued()

    def recorder(self, plugin: str, stream: str, field_name: Optional[str],
                 current_run: Callable[[], Optional[Dict[str, Any]]]) -> Callable[[Any, str], None]:
        """What a recorded stream calls for each value: :meth:`record` for one stream, with the
        value's JSON already made (see ``payloads.finite_json``), the time now and the run from
        ``current_run``. The least work per value: a stream calls it at its own rate.

        :param plugin: the plugin.
        :param stream: the stream.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param current_run: ``plugin.current_run``."""
        append, buffer, host, now = self._buffer.append, self._buffer, self.host, time.time
        self.start()

        def record_value(value: Any, text: str) -> None:
            run = current_run()
            append((plugin, stream, now(), number_of(value, field_name), text,
                    run.get("run_id") if run else None, run.get("step") if run else None, host))
            if len(buffer) >= self._check_at:
                self._queued()

        return record_value

    def _queued(self) -> None:
        """After a value was queued (deque.append is atomic: the producer takes no lock): drop the
        oldest beyond ``buffer_max``, wake the writer for a full batch, start it on first use."""
        queued = len(self._buffer)
        if queued > self.buffer_max:
            with self._lock:
                while len(self._buffer) > self.buffer_max:
                    self._buffer.popleft()
                    self.counts.dropped += 1
        if self._thread is None:
            self.start()
        if queued >= BATCH and not self.error:  # (a failing database is retried on the writer's backoff)
            self._wake.set()

    def flush(self) -> bool:
        """Write everything queued now; False (values kept) when the database cannot be written."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        while True:
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            if not batch:
                return True
            try:
                self._write(batch)
            except Exception as exc:
                with self._lock:
                    self._buffer.extendleft(reversed(batch))  # kept, in order, for the next try
                    while len(self._buffer) > self.buffer_max:
                        self._buffer.popleft()
                        self.counts.dropped += 1
                self._failed(exc)
                return False
            self.counts.written += len(batch)
            if self._rows:
                for key, added in collections.Counter((r[0], r[1]) for r in batch).items():
                    self._add_rows(key, added)
            self._recovered()

    def _write(self, batch: List[Row]) -> None:
        """Write a batch of samples and add it to the aggregates, in one transaction. On SQLite
        through a connection the writer keeps and the driver's own ``executemany`` (SQLAlchemy's
        per-row parameter processing and per-transaction bookkeeping cost as much as the writing);
        elsewhere through SQLAlchemy (on PostgreSQL it batches rows into multi-row VALUES, faster
        than the driver's)."""
        engine = self.engine()
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._write_sqlite(engine, batch)
            return
        with engine.begin() as conn:
            conn.execute(insert(samples), [dict(zip(ROW, r)) for r in batch])
            statement = _upsert(dialect)
            if statement is not None:  # another database: queries aggregate the samples themselves
                conn.execute(statement, [dict(zip(ROLLUP_COLUMNS, a)) for a in self.aggregates(batch)])

    def _write_sqlite(self, engine: Engine, batch: List[Row]) -> None:
        if self._sqlite is None:
            self._sqlite = engine.raw_connection()  # from the pool: the engine's WAL settings apply
        connection = self._sqlite
        try:
            cursor = connection.cursor()
            cursor.executemany(_SQLITE_INSERT, batch)
            cursor.executemany(_sqlite_upsert(), self.aggregates(batch))
            cursor.close()
            connection.commit()
        except BaseException:
            self._close_sqlite()  # rolled back; the next batch starts on a new connection
            raise

    def _close_sqlite(self) -> None:
        connection, self._sqlite = self._sqlite, None
        if connection is not None:
            try:
                connection.rollback()
                connection.close()
            except Exception as exc:
                log.debug("history: closing the writer's connection: %s", exc)

    @staticmethod
    def aggregates(batch: List[Row]) -> List[Tuple[Any, ...]]:
        """A batch's per-bucket aggregates, as rows of :data:`ROLLUP_COLUMNS`: one pass over the
        samples into seconds, then the seconds into minutes and hours.

        :param batch: queued samples (tuples of :data:`ROW`)."""
        # an aggregate: [values, numeric values, min, max, sum, first t, last t]
        seconds: Dict[Tuple[str, str, float], List[Any]] = {}
        floor = math.floor
        for row in batch:
            t, num = row[2], row[3]
            key = (row[0], row[1], float(floor(t)))
            a = seconds.get(key)
            if a is None:
                seconds[key] = [1, 0 if num is None else 1, num, num, num or 0.0, t, t]
                continue
            a[0] += 1
            if num is not None:
                a[1] += 1
                if a[2] is None or num < a[2]:
                    a[2] = num
                if a[3] is None or num > a[3]:
                    a[3] = num
                a[4] += num
            if t < a[5]:
                a[5] = t
            elif t > a[6]:
                a[6] = t
        acc: Dict[Tuple[str, str, int, float], List[Any]] = {(p, s, 1, b): a for (p, s, b), a in seconds.items()}
        for width in ROLLUP_WIDTHS[1:]:
            for (plugin, stream, second), a in seconds.items():
                wide = (plugin, stream, width, floor(second / width) * float(width))
                into = acc.get(wide)
                if into is None:
                    acc[wide] = list(a)
                    continue
                into[0] += a[0]
                into[1] += a[1]
                if a[2] is not None and (into[2] is None or a[2] < into[2]):
                    into[2] = a[2]
                if a[3] is not None and (into[3] is None or a[3] > into[3]):
                    into[3] = a[3]
                into[4] += a[4]
                into[5], into[6] = min(into[5], a[5]), max(into[6], a[6])
        return [(*k, *a) for k, a in acc.items()]

    def _failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if not self.counts.gaps or self.counts.gaps[-1].ended is not None:
            self.counts.gaps.append(Gap(started=time.time(), error=message))
            log.error("history: cannot write to %s (%s); values are kept in memory (up to %d)",
                      _safe(self.url), message, self.buffer_max)
        self.counts.gaps[-1].error = message
        self.error = message

    def _recovered(self) -> None:
        if self.counts.gaps and self.counts.gaps[-1].ended is None:
            self.counts.gaps[-1].ended = time.time()
            log.warning("history: writing to %s again", _safe(self.url))
        self.error = ""

    def _run(self) -> None:
        backoff = FLUSH_S
        while True:
            stopping = self._stop.is_set()
            ok = self.flush()
            if ok and time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
                self._last_retention = time.monotonic()
                self.enforce_retention()
            if stopping:
                return
            backoff = FLUSH_S if ok else min(backoff * 2, 5.0)
            self._wake.wait(backoff)
            self._wake.clear()

    def enforce_retention(self, now: Optional[float] = None) -> int:
        """Delete what the streams' retention no longer keeps; the number of rows deleted.

        Every query walks the ``(plugin, stream, t)`` index from its oldest end, so a pass costs what
        it deletes, not the size of the table. Rows per stream are counted exactly on the first pass
        and every :data:`RECOUNT_EVERY_S` seconds (other hosts may write the same stream), and in
        between by what this store writes and deletes.

        :param now: the time to measure ages from (``time.time()``)."""
        now = time.time() if now is None else now
        deleted = 0
        recount = time.monotonic() - self._counted_at >= RECOUNT_EVERY_S
        try:
            with self.engine().begin() as conn:
                for key, keep in list(self._retention.items()):
                    plugin, stream = key
                    which = (samples.c.plugin == plugin) & (samples.c.stream == stream)
                    if keep.keep_s is not None:
                        gone = conn.execute(delete(samples).where(which & (samples.c.t < now - keep.keep_s))).rowcount
                        if gone:  # (the aggregates of what earlier passes deleted are gone already)
                            deleted += gone
                            self._add_rows(key, -gone)
                            self._drop_rollups(conn, plugin, stream, now - keep.keep_s)
                    if keep.keep_rows is None:
                        continue
                    with self._lock:
                        rows = None if recount else self._rows.get(key)
                    if rows is None:
                        rows = int(conn.execute(select(func.count()).where(which)).scalar() or 0)
                        with self._lock:
                            self._rows[key] = rows
                    excess = rows - keep.keep_rows
                    if excess <= 0:
                        continue
                    cut = conn.execute(select(samples.c.t).where(which).order_by(samples.c.t)
                                       .offset(excess - 1).limit(1)).scalar()
                    if cut is not None:
                        gone = conn.execute(delete(samples).where(which & (samples.c.t <= cut))).rowcount
                        deleted += gone
                        self._add_rows(key, -gone)
                        oldest = conn.execute(select(func.min(samples.c.t)).where(which)).scalar()
                        if oldest is not None:
                            self._drop_rollups(conn, plugin, stream, oldest)
        except Exception as exc:
            self._failed(exc)
            return deleted
        if recount:
            self._counted_at = time.monotonic()
        self.counts.deleted += deleted
        return deleted

    @staticmethod
    def _drop_rollups(conn: Any, plugin: str, stream: str, before: float) -> None:
        """Delete the aggregates whose last value is older than ``before`` (each width's range of its
        primary key below ``before``: only what earlier passes left, so a pass stays small)."""
        for width in ROLLUP_WIDTHS:
            conn.execute(delete(rollups).where((rollups.c.plugin == plugin) & (rollups.c.stream == stream)
                                               & (rollups.c.width == width) & (rollups.c.bucket < before)
                                               & (rollups.c.last_t < before)))

    def _add_rows(self, key: Tuple[str, str], change: int) -> None:
        with self._lock:
            if key in self._rows:
                self._rows[key] = max(0, self._rows[key] + change)

    # ------------------------------------------------------------ reading
    def query(self, plugin: str, stream: str, *, since: Optional[float] = None, until: Optional[float] = None,
              run: Optional[int] = None, max_points: int = 1000) -> Dict[str, Any]:
        """Recorded values, downsampled by the database to at most ``max_points`` buckets (min/max/mean).

        A long range is downsampled from the writer's per-second/minute/hour aggregates (a bucket at
        the edge of ``since``/``until`` may reach up to one aggregate's width beyond it); a short one,
        or one run's values, from the samples themselves.

        :param plugin: the plugin.
        :param stream: the stream.
        :param since: the earliest time (epoch seconds), or None.
        :param until: the latest time, or None.
        :param run: only values taken during this IvoryOS run.
        :param max_points: at most this many points come back."""
        self.flush()
        engine = self.engine()
        with engine.connect() as conn:
            if run is None and engine.dialect.name in ("sqlite", "postgresql"):
                found = self._from_rollups(conn, plugin, stream, since, until, max_points)
                if found is not None:
                    return found
            which = (samples.c.plugin == plugin) & (samples.c.stream == stream)
            if since is not None:
                which &= samples.c.t >= since
            if until is not None:
                which &= samples.c.t <= until
            if run is not None:  # IvoryOS numbers runs per host: one host's run, in a shared database
                which &= (samples.c.run_id == run) & (samples.c.host == self.host)
            count, first, last = conn.execute(select(func.count(), func.min(samples.c.t), func.max(samples.c.t))
                                              .where(which)).one()
            if count <= max_points:
                rows = conn.execute(select(samples.c.t, samples.c.value, samples.c.run_id, samples.c.step)
                                    .where(which).order_by(samples.c.t, samples.c.id)).all()
                points = [{"t": t, "value": json.loads(v), "run": r, "step": st} for t, v, r, st in rows]
                return {"count": count, "downsampled": False, "points": points}
            width = max((last - first) / max_points, 1e-9)
            bucket = func.floor((samples.c.t - first) / width)
            buckets = conn.execute(select(bucket.label("b"), func.min(samples.c.t), func.max(samples.c.t),
                                          func.min(samples.c.num), func.max(samples.c.num), func.sum(samples.c.num),
                                          func.count(samples.c.num), func.count())
                                   .where(which).group_by(bucket).order_by(bucket)).all()
        return {"count": count, "downsampled": True, "points": _points(buckets, max_points)}

    def _from_rollups(self, conn: Any, plugin: str, stream: str, since: Optional[float], until: Optional[float],
                      max_points: int) -> Optional[Dict[str, Any]]:
        """Downsample from the aggregates when the range holds more than ``max_points`` samples and
        spans more than ``max_points`` seconds; None to read the samples instead."""
        which = (rollups.c.plugin == plugin) & (rollups.c.stream == stream)
        coarse = which & (rollups.c.width == 60)
        if since is not None:
            coarse &= rollups.c.bucket + 60 > since
        if until is not None:
            coarse &= rollups.c.bucket <= until
        estimate, first, last = conn.execute(select(func.sum(rollups.c.n_all), func.min(rollups.c.first_t),
                                                    func.max(rollups.c.last_t)).where(coarse)).one()
        if not estimate or estimate <= max_points:
            return None
        lo = max(first, since) if since is not None else first
        hi = min(last, until) if until is not None else last
        width = (hi - lo) / max_points
        level = max((w for w in ROLLUP_WIDTHS if w <= width), default=None)
        if level is None:
            return None  # fewer seconds than points: the samples are few enough to aggregate
        rows = which & (rollups.c.width == level) & (rollups.c.bucket + level > lo) & (rollups.c.bucket <= hi)
        bucket = func.floor((rollups.c.bucket - lo) / width)
        buckets = conn.execute(select(bucket.label("b"), func.min(rollups.c.first_t), func.max(rollups.c.last_t),
                                      func.min(rollups.c.lo), func.max(rollups.c.hi), func.sum(rollups.c.total),
                                      func.sum(rollups.c.n), func.sum(rollups.c.n_all))
                               .where(rows).group_by(bucket).order_by(bucket)).all()
        points = _points(buckets, max_points)
        return {"count": int(sum(p["n"] for p in points)), "downsampled": True, "points": points}

    def last_run(self, plugin: str, stream: str) -> Optional[int]:
        """The newest IvoryOS run (of this host) with recorded values of ``stream``, or None.

        :param plugin: the plugin.
        :param stream: the stream."""
        with self.engine().connect() as conn:
            found = conn.execute(select(func.max(samples.c.run_id)).where(
                (samples.c.plugin == plugin) & (samples.c.stream == stream) & (samples.c.host == self.host))).scalar()
        return None if found is None else int(found)

    def status(self, plugin: str) -> Dict[str, Any]:
        """Rows per stream, disk use, queue and gaps, for the health page.

        :param plugin: the plugin."""
        streams: Dict[str, int] = {}
        try:
            with self.engine().connect() as conn:
                for stream, rows in conn.execute(select(samples.c.stream, func.count()).where(
                        samples.c.plugin == plugin).group_by(samples.c.stream)).all():
                    streams[stream] = rows
        except Exception as exc:
            self._failed(exc)
        disk = None
        if self.url.startswith("sqlite:///"):
            base = Path(self.url[len("sqlite:///"):])
            disk = sum(p.stat().st_size for p in (base, Path(f"{base}-wal")) if p.exists())
        with self._lock:
            queued = len(self._buffer)
        return {"database": _safe(self.url), "rows": streams, "disk_bytes": disk, "queued": queued,
                "written": self.counts.written, "dropped": self.counts.dropped, "deleted": self.counts.deleted,
                "error": self.error,
                "gaps": [{"started": g.started, "ended": g.ended, "error": g.error} for g in self.counts.gaps[-10:]]}


#: the columns of an aggregate row (see :meth:`HistoryStore.aggregates`)
ROLLUP_COLUMNS = ("plugin", "stream", "width", "bucket", "n_all", "n", "lo", "hi", "total", "first_t", "last_t")


@functools.lru_cache(maxsize=None)
def _sqlite_upsert() -> str:
    """The SQLite upsert as SQL for the driver, its parameters in :data:`ROLLUP_COLUMNS` order."""
    from sqlalchemy.dialects import sqlite

    compiled = _upsert("sqlite").compile(dialect=sqlite.dialect())
    if tuple(compiled.positiontup or ()) != ROLLUP_COLUMNS:
        raise RuntimeError(f"the rollup upsert's parameters are {compiled.positiontup}, not {ROLLUP_COLUMNS}")
    return str(compiled)


@functools.lru_cache(maxsize=None)
def _upsert(dialect: str) -> Any:
    """The statement that adds aggregates to the rollups (built once per dialect: building it costs
    more than running it), or None for a database without ``ON CONFLICT`` upserts here."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert_pg

        pg = upsert_pg(rollups)
        least, greatest = func.least, func.greatest
        return pg.on_conflict_do_update(index_elements=["plugin", "stream", "width", "bucket"], set_={
            "n_all": rollups.c.n_all + pg.excluded.n_all, "n": rollups.c.n + pg.excluded.n,
            "lo": least(rollups.c.lo, pg.excluded.lo), "hi": greatest(rollups.c.hi, pg.excluded.hi),
            "total": rollups.c.total + pg.excluded.total,
            "first_t": least(rollups.c.first_t, pg.excluded.first_t),
            "last_t": greatest(rollups.c.last_t, pg.excluded.last_t)})
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert_sqlite

        lite = upsert_sqlite(rollups)
        two_min, two_max = func.min, func.max  # SQLite's scalar min/max of two values (NULL-aware below)
        return lite.on_conflict_do_update(index_elements=["plugin", "stream", "width", "bucket"], set_={
            "n_all": rollups.c.n_all + lite.excluded.n_all, "n": rollups.c.n + lite.excluded.n,
            "lo": func.coalesce(two_min(rollups.c.lo, lite.excluded.lo), rollups.c.lo, lite.excluded.lo),
            "hi": func.coalesce(two_max(rollups.c.hi, lite.excluded.hi), rollups.c.hi, lite.excluded.hi),
            "total": rollups.c.total + lite.excluded.total,
            "first_t": two_min(rollups.c.first_t, lite.excluded.first_t),
            "last_t": two_max(rollups.c.last_t, lite.excluded.last_t)})
    return None


def _points(buckets: Any, max_points: int) -> List[Dict[str, Any]]:
    """Buckets ``(b, first t, last t, min, max, sum, numeric count, count)`` as points, at most
    ``max_points`` (float rounding can make one bucket too many: the last two are then merged)."""
    points = [{"t": (t0 + t1) / 2, "t_first": t0, "t_last": t1, "min": _num(lo), "max": _num(hi),
               "mean": float(total) / nums if nums else None, "n": int(n), "_sum": _num(total), "_nums": int(nums or 0)}
              for _, t0, t1, lo, hi, total, nums, n in buckets]
    while len(points) > max_points:
        b = points.pop()
        a = points[-1]
        total = (a["_sum"] or 0.0) + (b["_sum"] or 0.0)
        nums = a["_nums"] + b["_nums"]
        a.update(t_last=b["t_last"], t=(a["t_first"] + b["t_last"]) / 2, n=a["n"] + b["n"],
                 min=_opt(min, a["min"], b["min"]), max=_opt(max, a["max"], b["max"]),
                 mean=total / nums if nums else None, _sum=total, _nums=nums)
    for point in points:
        del point["_sum"], point["_nums"]
    return points


def _num(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _opt(pick: Any, a: Optional[float], b: Optional[float]) -> Optional[float]:
    values = [v for v in (a, b) if v is not None]
    return float(pick(values)) if values else None


def _safe(url: str) -> str:
    """The URL without its password, for logs and the health page."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{tail}"
