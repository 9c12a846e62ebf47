"""History: stream values recorded in a real database through SQLAlchemy 2, read back downsampled.

One store per app: SQLite by default (``<plugins data folder>/history.sqlite``, WAL mode), or any
SQLAlchemy URL (``IVORYOS_PLUGIN_HISTORY_URL=postgresql+psycopg://...``: several IvoryOS hosts can
write to one PostgreSQL). Values are queued in memory by the producer (never blocking it) and written
in batches by one writer thread every :data:`FLUSH_S` seconds, so a crash loses at most the last
batch. A database that cannot be reached keeps values in memory up to ``buffer_max`` (then the oldest
are dropped and counted) while live values keep flowing; the outage is reported as a gap.

Every call to the database is bounded (a database that accepts connections but never answers, as a
frozen server does, must not hold a request or the writer): the store has its own engine and pool
(never the host's), a connect timeout, a pool checkout timeout, a server-side statement timeout, and
a watchdog that ends any call still waiting at its deadline from outside the waiting thread (the
socket of a server's connection is shut down, a SQLite connection is interrupted). A read that times
out answers :class:`HistoryUnavailable`, and for :data:`RETRY_S` seconds after that reads fail at once
instead of waiting again. URLs are shown with every password masked (:func:`mask_url`).
"""
from __future__ import annotations

import collections
import functools
import itertools
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, TypeVar

from sqlalchemy import (BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, create_engine,
                        delete, event, func, insert, select, text, update)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from . import payloads

log = logging.getLogger("ivoryos_plugin.history")
T = TypeVar("T")

URL_ENV = "IVORYOS_PLUGIN_HISTORY_URL"
SCHEMA_VERSION = 1
FLUSH_S = 2.0  # a batch's cost is mostly per batch: every 2 s costs a 50 Hz stream a third less than every 1 s
BATCH = 2000
RETENTION_EVERY_S = 10.0
RECOUNT_EVERY_S = 600.0
#: seconds to open a connection to a database server (libpq's ``connect_timeout``: whole seconds, 2 at least)
CONNECT_TIMEOUT_S = 2
#: seconds to wait for a connection of the store's own pool when every one is in use
POOL_TIMEOUT_S = 2.0
#: a request's reads (writing what is queued, the query, the newest run) end by then: a 503 after it
READ_TIMEOUT_S = 3.0
#: the health page's row counts
STATUS_TIMEOUT_S = 2.0
#: one batch of the writer
WRITE_TIMEOUT_S = 10.0
#: a flush with a deadline starts no batch with less time left than this (a batch is never cut short
#: on a database that merely answers slowly)
MIN_BATCH_S = 0.5
#: one retention pass (deletes can be large)
RETENTION_TIMEOUT_S = 60.0
#: creating or checking the schema (the first use)
SETUP_TIMEOUT_S = 10.0
#: the server ends any statement of the store's connections after this long (PostgreSQL ``statement_timeout``)
STATEMENT_TIMEOUT_S = 10.0
#: SQLite waits this long for another program's lock (the driver's busy timeout)
SQLITE_BUSY_S = 5.0
#: after a read timed out or found the database unreachable, reads fail at once for this long
RETRY_S = 5.0
#: query-string parameters of a URL that hold a password (masked like the URL's own password)
SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword"})

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

#: one row per store (a process writing the history): the number of its last committed batch, so a
#: batch whose commit was cut off (the answer never came) is not written twice
writers = Table(
    "ivoryos_plugin_writers", metadata,
    Column("writer", String(32), primary_key=True),
    Column("batch", BigInteger, nullable=False),
    Column("t", Float, nullable=False),
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



class HistoryUnavailable(RuntimeError):
    """The history database did not answer in time or cannot be reached (a 503 for a request).

    :param message: what happened, naming the database with its passwords masked.
    :param reason: the same without the database's name."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def mask_url(url: str) -> str:
    """``url`` for a log or a page: its password and every query parameter named in
    :data:`SECRET_PARAMETERS` shown as ``***`` (SQLAlchemy's own rendering).

    :param url: a SQLAlchemy URL (one that does not parse is masked by pattern).

    Example::

        mask_url("postgresql+psycopg://lab:pw@db/history?sslpassword=k")
        # 'postgresql+psycopg://lab:***@db/history?sslpassword=***'"""
    try:
        parsed = make_url(url)
    except Exception:
        return _mask_pattern(url)
    query = {key: "***" if key.lower() in SECRET_PARAMETERS else value for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _mask_pattern(text: str) -> str:
    """Passwords masked in text that is not a URL SQLAlchemy parses (an error message, a typo)."""
    text = re.sub(r"(://[^/:@\s]*:)[^@\s]*@", r"\1***@", text)
    names = "|".join(sorted(SECRET_PARAMETERS))
    return re.sub(rf"(?i)\b({names})(\s*=\s*)('[^']*'|[^&\s]*)", r"\1\2***", text)


def _secrets(url: str) -> List[str]:
    """The secret values of a URL (its password, the values of its password parameters)."""
    try:
        parsed = make_url(url)
    except Exception:
        return []
    found = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in SECRET_PARAMETERS:
            found.extend([value] if isinstance(value, str) else list(value))
    return [str(s) for s in found if s]


def scrub(message: str, url: str) -> str:
    """``message`` (a driver's error, say) with the secrets of ``url`` and anything that looks like a
    password in a URL or a connection string masked.

    :param message: the text.
    :param url: the database URL whose secrets must not show."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return _mask_pattern(message)


def _interrupt(connection: Any) -> None:
    """End whatever the DBAPI ``connection`` waits for, from another thread: a server's socket is shut
    down (the waiting call sees the connection closed: a frozen server would never answer, and it can
    neither time out nor cancel a statement itself); a SQLite connection is interrupted."""
    fileno = getattr(connection, "fileno", None)
    if callable(fileno):
        try:
            sock = socket.socket(fileno=os.dup(fileno()))
        except (OSError, ValueError, TypeError, Exception):  # already closed
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()
    elif callable(getattr(connection, "interrupt", None)):
        try:
            connection.interrupt()
        except Exception:  # closed meanwhile
            pass


class _Watchdog:
    """Ends database calls still waiting at their deadline: one thread per store while calls are
    made (it ends :data:`LINGER_S` seconds after the last one ended, so no thread is left between the
    writer's batches), asleep until the nearest deadline."""

    LINGER_S = 0.5

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: Dict[int, Tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def arm(self, deadline: float, connection: Any) -> int:
        """Watch ``connection`` until :meth:`disarm`; interrupt it at ``deadline`` (``time.monotonic()``)."""
        with self._cond:
            token = next(self._ids)
            self._armed[token] = (deadline, connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ivoryos_plugin-history-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def fired(self, tokens: List[int]) -> bool:
        """Whether the watchdog ended the call of any of ``tokens``."""
        with self._cond:
            return any(t in self._fired for t in tokens)

    def disarm(self, token: int) -> None:
        """Stop watching (before the connection goes back to the pool: it is never interrupted after)."""
        with self._cond:
            self._armed.pop(token, None)
            self._fired.discard(token)
            if not self._armed:
                self._cond.notify()  # (it waits for the nearest deadline: now it may end instead)

    def stop(self, timeout: float) -> None:
        """End the thread once nothing is armed (a call still waiting is ended at its deadline first)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        idle_since = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                for token in [t for t, (deadline, _) in self._armed.items() if deadline <= now]:
                    _, connection = self._armed.pop(token)
                    self._fired.add(token)
                    _interrupt(connection)  # under the lock: the connection cannot be disarmed and reused meanwhile
                if self._armed:
                    idle_since = now
                elif self._stopping or now - idle_since >= self.LINGER_S:
                    self._thread = None
                    return
                wake = min(deadline for deadline, _ in self._armed.values()) if self._armed else idle_since + self.LINGER_S
                self._cond.wait(max(0.0, wake - now))


class HistoryStore:
    """Recorded values of every plugin of one app.

    :param url: a SQLAlchemy URL.
    :param buffer_max: values kept in memory while the database cannot be written."""

    def __init__(self, url: str, *, buffer_max: int = 200_000) -> None:
        self.url = url
        self.buffer_max = buffer_max
        self.host = socket.gethostname()
        self.writer_id = uuid.uuid4().hex
        self._engine: Optional[Engine] = None
        self._ready = False  # the schema was created (or checked) once
        self._buffer: Deque[Row] = collections.deque()
        self._sqlite: Any = None  # the writer's own connection to a SQLite file (see _write_sqlite)
        self._lock = threading.Lock()
        self._setup_lock = threading.Lock()  # one engine, one schema check
        self._flush_lock = threading.Lock()  # batches are written in the order they were queued
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._watchdog = _Watchdog()
        self._local = threading.local()  # the deadline of the call this thread makes (see _on)
        self._batches = 0  # the number of the last batch committed (on a server)
        self._committing: Optional[int] = None  # the batch whose COMMIT was sent and not yet answered
        self._doubtful: Optional[Tuple[int, List[Row]]] = None  # a batch whose commit got no answer
        self._in_flight = 0  # values of the batch being written
        self._down_until = 0.0  # reads fail at once until then (time.monotonic())
        self.unavailable = ""  # why the last read could not be answered ("" when it could)
        self._retention: Dict[Tuple[str, str], Retention] = {}
        self._last_retention = 0.0
        #: rows per (plugin, stream), kept by the writer (each batch it commits) and by retention (each
        #: delete it commits) once counted (:meth:`_recount`): the health page and ``keep_rows`` read them
        self._rows: Dict[Tuple[str, str], int] = {}
        self._rows_ready = False
        self._count_lock = threading.Lock()  # a count and a retention pass's deletes never interleave
        self._counted_at = -RECOUNT_EVERY_S
        self.counts = _Counts()
        self.error = ""
        self._check_at = min(BATCH, buffer_max + 1)  # queue length at which a recorder calls _queued

    # ------------------------------------------------------------ setup
    def engine(self, deadline: Optional[float] = None) -> Engine:
        """The store's own engine and pool (never the host's), with the schema created (and
        migrated) on first use.

        :param deadline: ``time.monotonic()`` by which the first use's schema check ends
            (:data:`SETUP_TIMEOUT_S` from now by default).
        :raises HistoryUnavailable: the database did not answer by then."""
        if self._ready:
            assert self._engine is not None
            return self._engine
        deadline = time.monotonic() + SETUP_TIMEOUT_S if deadline is None else deadline
        if not self._setup_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise self._unavailable(f"did not answer within {SETUP_TIMEOUT_S:g} s (its schema is being checked)")
        try:
            if self._engine is None:
                self._engine = self._create_engine()
            if not self._ready:
                self._on(self._engine, deadline, self._create_schema)
                self._ready = True
            return self._engine
        finally:
            self._setup_lock.release()

    def _create_engine(self) -> Engine:
        """The engine: bounded connects, pool checkouts and statements (see the module's docstring)."""
        try:
            url = make_url(self.url)
        except Exception as exc:
            raise ValueError(f"IVORYOS_PLUGIN_HISTORY_URL {mask_url(self.url)!r} is not a SQLAlchemy URL "
                             f"({scrub(str(exc), self.url)}); use e.g. postgresql+psycopg://user@host/db") from None
        backend = url.get_backend_name()
        options: Dict[str, Any] = {"future": True}
        if backend == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                options.update(pool_timeout=POOL_TIMEOUT_S, connect_args={"timeout": SQLITE_BUSY_S})
        else:
            options["pool_timeout"] = POOL_TIMEOUT_S
            if url.get_driver_name() in ("psycopg", "psycopg2"):
                options["connect_args"] = _libpq_args(url)
        engine = create_engine(url, **options)
        server = backend != "sqlite"

        @event.listens_for(engine, "connect", insert=True)
        def _watch_new(dbapi_connection: Any, record: Any) -> None:  # before the dialect's first queries
            self._watch(dbapi_connection)

        @event.listens_for(engine, "checkout")
        def _watch_pooled(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            self._watch(dbapi_connection)
            if server and record.info.get("used"):  # a server may have closed it since: check it, bounded
                try:
                    engine.dialect.do_ping(dbapi_connection)
                except Exception as exc:
                    if self._watchdog.fired(getattr(self._local, "tokens", [])):
                        raise
                    raise sa_exc.DisconnectionError(f"a pooled connection is gone ({exc})") from exc
            record.info["used"] = True

        if not server:
            @event.listens_for(engine, "connect")
            def _wal(dbapi_connection: Any, record: Any) -> None:  # readers never block the writer
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()
        return engine

    def _create_schema(self, conn: Connection) -> None:
        metadata.create_all(conn)
        version = conn.execute(select(func.max(schema.c.version))).scalar()
        if version is None:
            conn.execute(insert(schema).values(version=SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise RuntimeError(f"the history database {mask_url(self.url)} has schema {version}, newer than this "
                               f"ivoryos_plugin's {SCHEMA_VERSION}; upgrade ivoryos_plugin.")
        conn.commit()

    # ------------------------------------------------------------ bounded calls
    def _watch(self, dbapi_connection: Any) -> None:
        """Arm the watchdog for ``dbapi_connection`` with the deadline of this thread's call (none
        outside :meth:`_on`)."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            self._local.tokens.append(self._watchdog.arm(deadline, dbapi_connection))

    def _on(self, engine: Engine, deadline: float, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` on a connection of the store's pool, ended at ``deadline``
        (``time.monotonic()``). Its transaction is rolled back unless ``work`` commits.

        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        local = self._local
        if getattr(local, "deadline", None) is not None:  # (a call inside a call keeps the outer deadline)
            deadline = min(deadline, local.deadline)
        outer = getattr(local, "deadline", None), getattr(local, "tokens", []), getattr(local, "started", 0.0)
        if outer[0] is None:
            local.started = time.monotonic()
        local.deadline, local.tokens = deadline, []
        tokens: List[int] = local.tokens
        conn: Optional[Connection] = None
        try:
            if time.monotonic() >= deadline:
                raise self._unavailable(f"did not answer within {self._budget(deadline)}")
            conn = engine.connect()  # the pool's timeout, the driver's connect timeout, a pinged connection
            result = work(conn)
            conn.rollback()  # (nothing to send after a commit) a read's transaction ends within the deadline
            conn.close()
            conn = None
            return result
        except HistoryUnavailable:
            raise
        except Exception as exc:
            raise self._translate(exc, self._watchdog.fired(tokens), deadline, engine) from None
        finally:
            if conn is not None:  # failed: the connection is dropped without a word to the server
                try:
                    conn.invalidate()
                    conn.close()
                except Exception as exc:
                    log.debug("history: dropping a connection: %s", exc)
            for token in tokens:
                self._watchdog.disarm(token)
            local.deadline, local.tokens, local.started = outer

    def _translate(self, exc: Exception, fired: bool, deadline: float, engine: Engine) -> Exception:
        """The exception a failed call raises: :class:`HistoryUnavailable` when the database did not
        answer in time or cannot be reached (reads then fail at once for :data:`RETRY_S` s), else ``exc``."""
        detail = _describe(exc, self.url)
        if fired or time.monotonic() >= deadline:  # (the driver's error only says the connection was closed)
            return self._unavailable(f"did not answer within {self._budget(deadline)}")
        if isinstance(exc, sa_exc.TimeoutError):
            return self._unavailable(f"has no free connection after {POOL_TIMEOUT_S:g} s: {detail}")
        if engine.dialect.name != "sqlite" and isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return self._unavailable(f"cannot be reached: {detail}")
        return exc

    def _budget(self, deadline: float) -> str:
        """The time the current call was given, in words."""
        return f"{max(0.0, deadline - getattr(self._local, 'started', deadline)):.1f} s"

    def _unavailable(self, what: str) -> HistoryUnavailable:
        """A :class:`HistoryUnavailable` naming the database; reads fail at once for :data:`RETRY_S` s."""
        message = f"the history database {mask_url(self.url)} {what}"
        self._down_until = time.monotonic() + RETRY_S
        self.unavailable = message
        return HistoryUnavailable(message, f"it {what}")

    def _available(self) -> None:
        self._down_until = 0.0
        self.unavailable = ""

    def _read(self, timeout: float, deadline: Optional[float], work: Callable[[Connection], T]) -> T:
        """A read: at once :class:`HistoryUnavailable` within :data:`RETRY_S` s of the last one that
        failed (one caller tries again after that, the others still fail at once), else ``work``
        bounded by ``deadline`` (``timeout`` seconds from now by default)."""
        now = time.monotonic()
        if now < self._down_until:
            raise HistoryUnavailable(f"{self.unavailable}; it is tried again in {self._down_until - now:.0f} s")
        if self._down_until:
            self._down_until = now + RETRY_S  # this caller tries; the others keep failing at once meanwhile
        deadline = now + timeout if deadline is None else deadline
        result = self._on(self.engine(deadline), deadline, work)
        self._available()
        return result

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
        self._watchdog.stop(timeout)

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

    def flush(self, deadline: Optional[float] = None) -> bool:
        """Write everything queued now; False (values kept) when the database cannot be written.

        :param deadline: ``time.monotonic()`` after which no batch is started and a batch still being
            written is ended (each batch gets :data:`WRITE_TIMEOUT_S` s at most)."""
        with self._flush_lock:
            return self._flush(deadline)

    def _flush(self, deadline: Optional[float] = None) -> bool:
        if self._doubtful is not None and not self._settle_doubt(deadline):
            return False
        while True:
            if deadline is not None and deadline - time.monotonic() < MIN_BATCH_S:  # the rest is the writer's
                return not self._buffer
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            if not batch:
                return True
            limit = time.monotonic() + WRITE_TIMEOUT_S
            self._in_flight = len(batch)
            try:
                self._write(batch, limit if deadline is None else min(limit, deadline))
            except Exception as exc:
                self._in_flight = 0
                if self._committing is not None:  # the COMMIT was sent: it may have been applied
                    self._doubtful, self._committing = (self._committing, batch), None
                else:
                    self._requeue(batch)
                self._failed(exc)
                return False
            self._in_flight = 0
            self._written(batch)

    def _requeue(self, batch: List[Row]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(batch))  # kept, in order, for the next try
            while len(self._buffer) > self.buffer_max:
                self._buffer.popleft()
                self.counts.dropped += 1

    def _written(self, batch: List[Row]) -> None:
        """A batch was committed (under the flush lock, which a count holds too: a batch is counted
        by the count or here, never both)."""
        self.counts.written += len(batch)
        if self._rows_ready:
            with self._lock:
                for key, added in collections.Counter((r[0], r[1]) for r in batch).items():
                    self._rows[key] = self._rows.get(key, 0) + added
        self._recovered()

    def _settle_doubt(self, deadline: Optional[float]) -> bool:
        """A batch whose COMMIT got no answer (the connection was cut): it counts as written when the
        database holds its number in the writers table, else it is queued again (first). False when
        the database still cannot tell."""
        assert self._doubtful is not None
        number, batch = self._doubtful
        limit = time.monotonic() + WRITE_TIMEOUT_S
        try:
            done = self._on(self.engine(limit), limit if deadline is None else min(limit, deadline),
                            lambda conn: conn.execute(select(writers.c.batch).where(
                                writers.c.writer == self.writer_id)).scalar())
        except Exception as exc:
            self._failed(exc)
            return False
        self._doubtful = None
        if done is not None and done >= number:
            self._batches = max(self._batches, number)
            self._written(batch)
        else:
            self._requeue(batch)
        return True

    def _write(self, batch: List[Row], deadline: float) -> None:
        """Write a batch of samples and add it to the aggregates, in one transaction, by ``deadline``.
        On SQLite through a connection the writer keeps and the driver's own ``executemany``
        (SQLAlchemy's per-row parameter processing and per-transaction bookkeeping cost as much as the
        writing); elsewhere through SQLAlchemy (on PostgreSQL it batches rows into multi-row VALUES,
        faster than the driver's), with the batch's number in the writers table, so a batch whose
        COMMIT got no answer is known to be written or not."""
        engine = self.engine(deadline)
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._write_sqlite(engine, batch, deadline)
            return
        number = self._batches + 1

        def work(conn: Connection) -> None:
            conn.execute(insert(samples), [dict(zip(ROW, r)) for r in batch])
            statement = _upsert(dialect)
            if statement is not None:  # another database: queries aggregate the samples themselves
                conn.execute(statement, [dict(zip(ROLLUP_COLUMNS, a)) for a in self.aggregates(batch)])
            mark = {"batch": number, "t": time.time()}
            if not conn.execute(update(writers).where(writers.c.writer == self.writer_id).values(**mark)).rowcount:
                conn.execute(insert(writers).values(writer=self.writer_id, **mark))
            self._committing = number
            conn.commit()
            self._committing = None

        self._on(engine, deadline, work)
        self._batches = number

    def _write_sqlite(self, engine: Engine, batch: List[Row], deadline: float) -> None:
        if self._sqlite is None:
            self._local.deadline, self._local.tokens = deadline, []
            try:
                self._sqlite = engine.raw_connection()  # from the pool: the engine's WAL settings apply
            finally:
                for token in self._local.tokens:
                    self._watchdog.disarm(token)
                self._local.deadline = None
        connection = self._sqlite
        token = self._watchdog.arm(deadline, connection.driver_connection)
        try:
            cursor = connection.cursor()
            # another program's lock is waited for until the deadline at most
            cursor.execute(f"PRAGMA busy_timeout = {int(max(0.0, min(SQLITE_BUSY_S, deadline - time.monotonic())) * 1000)}")
            cursor.executemany(_SQLITE_INSERT, batch)
            cursor.executemany(_sqlite_upsert(), self.aggregates(batch))
            cursor.close()
            connection.commit()
        except BaseException as exc:
            fired = self._watchdog.fired([token])
            self._close_sqlite()  # rolled back; the next batch starts on a new connection
            if fired:
                raise self._unavailable("did not answer in time (a batch was being written)") from None
            raise
        finally:
            self._watchdog.disarm(token)

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
        message = _describe(exc, self.url)
        if not self.counts.gaps or self.counts.gaps[-1].ended is not None:
            self.counts.gaps.append(Gap(started=time.time(), error=message))
            log.error("history: cannot write to %s (%s); values are kept in memory (up to %d)",
                      mask_url(self.url), message, self.buffer_max)
        self.counts.gaps[-1].error = message
        self.error = message

    def _recovered(self) -> None:
        if self.counts.gaps and self.counts.gaps[-1].ended is None:
            self.counts.gaps[-1].ended = time.time()
            log.warning("history: writing to %s again", mask_url(self.url))
        self.error = ""
        self._available()

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
        between by what this store writes and deletes. A pass ends after :data:`RETENTION_TIMEOUT_S` s.

        :param now: the time to measure ages from (``time.time()``)."""
        now = time.time() if now is None else now
        recount = time.monotonic() - self._counted_at >= RECOUNT_EVERY_S
        deadline = time.monotonic() + RETENTION_TIMEOUT_S
        try:
            if recount or not self._rows_ready:  # (not now if a reader is writing the queue: the next pass)
                self._recount(deadline, wait=0.0)
            with self._count_lock:
                changes: Dict[Tuple[str, str], int] = {}
                deleted = self._on(self.engine(deadline), deadline,
                                   lambda conn: self._retention_pass(conn, now, recount, changes))
                self._add_rows(changes)  # what the commit deleted: the counts follow
        except Exception as exc:
            self._failed(exc)
            return 0
        self.counts.deleted += deleted
        return deleted

    def _recount(self, deadline: float, wait: Optional[float] = None) -> bool:
        """Count every stream's rows once (one ``GROUP BY`` over the samples' index) and keep the
        counts, which the writer and retention then maintain; False (counts unchanged) when the
        writer holds its lock longer than ``wait`` seconds (until ``deadline`` by default) or a
        batch's commit is in doubt.

        :raises HistoryUnavailable: the database did not answer by ``deadline``."""
        until = deadline if wait is None else min(deadline, time.monotonic() + wait)
        if not self._flush_lock.acquire(timeout=max(0.0, until - time.monotonic())):
            return False  # (no batch may commit between the count and the counters being set)
        try:
            if self._doubtful is not None:  # written or not: the count cannot tell yet
                return False
            if not self._count_lock.acquire(timeout=max(0.0, until - time.monotonic())):
                return False  # (a retention pass is deleting)
            try:
                counts = self._on(self.engine(deadline), deadline, self._count_rows)
                with self._lock:
                    self._rows = counts
                    self._rows_ready = True
                self._counted_at = time.monotonic()
            finally:
                self._count_lock.release()
            return True
        finally:
            self._flush_lock.release()

    def _recount_now(self, deadline: float) -> bool:
        """The first count, for a caller that cannot wait for the writer (bounded like a read)."""
        now = time.monotonic()
        if now < self._down_until:
            raise HistoryUnavailable(f"{self.unavailable}; it is tried again in {self._down_until - now:.0f} s")
        counted = self._recount(deadline, wait=STATUS_TIMEOUT_S / 4)
        self._available()
        return counted

    @staticmethod
    def _count_rows(conn: Connection) -> Dict[Tuple[str, str], int]:
        return {(plugin, stream): int(rows) for plugin, stream, rows in conn.execute(
            select(samples.c.plugin, samples.c.stream, func.count()).group_by(samples.c.plugin, samples.c.stream))}

    def _retention_pass(self, conn: Connection, now: float, recount: bool, changes: Dict[Tuple[str, str], int]) -> int:
        deleted = 0
        if conn.dialect.name == "postgresql":  # longer than other statements: deletes can be large
            conn.execute(text(f"SET LOCAL statement_timeout = {int(RETENTION_TIMEOUT_S * 1000)}"))
        for key, keep in list(self._retention.items()):
            plugin, stream = key
            which = (samples.c.plugin == plugin) & (samples.c.stream == stream)
            if keep.keep_s is not None:
                gone = conn.execute(delete(samples).where(which & (samples.c.t < now - keep.keep_s))).rowcount
                if gone:  # (the aggregates of what earlier passes deleted are gone already)
                    deleted += gone
                    changes[key] = changes.get(key, 0) - gone
                    self._drop_rollups(conn, plugin, stream, now - keep.keep_s)
            if keep.keep_rows is None:
                continue
            with self._lock:
                rows = self._rows.get(key) if self._rows_ready else None
            if rows is None:  # (not counted yet: the writer held its lock) what this pass sees
                rows = int(conn.execute(select(func.count()).where(which)).scalar() or 0)
            else:  # the counts, less what this pass deleted by age
                rows += changes.get(key, 0)
            excess = rows - keep.keep_rows
            if excess <= 0:
                continue
            cut = conn.execute(select(samples.c.t).where(which).order_by(samples.c.t)
                               .offset(excess - 1).limit(1)).scalar()
            if cut is not None:
                gone = conn.execute(delete(samples).where(which & (samples.c.t <= cut))).rowcount
                deleted += gone
                changes[key] = changes.get(key, 0) - gone
                oldest = conn.execute(select(func.min(samples.c.t)).where(which)).scalar()
                if oldest is not None:
                    self._drop_rollups(conn, plugin, stream, oldest)
        if recount:  # the batch numbers of stores long gone
            conn.execute(delete(writers).where(writers.c.t < now - 30 * 86400.0))
        conn.commit()
        return deleted

    @staticmethod
    def _drop_rollups(conn: Any, plugin: str, stream: str, before: float) -> None:
        """Delete the aggregates whose last value is older than ``before`` (each width's range of its
        primary key below ``before``: only what earlier passes left, so a pass stays small)."""
        for width in ROLLUP_WIDTHS:
            conn.execute(delete(rollups).where((rollups.c.plugin == plugin) & (rollups.c.stream == stream)
                                               & (rollups.c.width == width) & (rollups.c.bucket < before)
                                               & (rollups.c.last_t < before)))

    def _add_rows(self, changes: Dict[Tuple[str, str], int]) -> None:
        """Add committed changes to the rows' counts (once they are counted)."""
        with self._lock:
            if self._rows_ready:
                for key, change in changes.items():
                    self._rows[key] = max(0, self._rows.get(key, 0) + change)

    # ------------------------------------------------------------ reading
    def query(self, plugin: str, stream: str, *, since: Optional[float] = None, until: Optional[float] = None,
              run: Optional[int] = None, max_points: int = 1000, deadline: Optional[float] = None) -> Dict[str, Any]:
        """Recorded values, downsampled by the database to at most ``max_points`` buckets (min/max/mean).

        What is queued is written first (so every value taken until now is seen), unless the writer
        reports a failure (it retries on its own backoff) or holds the queue past the deadline. A long
        range is downsampled from the writer's per-second/minute/hour aggregates (a bucket at the edge
        of ``since``/``until`` may reach up to one aggregate's width beyond it); a short one, or one
        run's values, from the samples themselves.

        :param plugin: the plugin.
        :param stream: the stream.
        :param since: the earliest time (epoch seconds), or None.
        :param until: the latest time, or None.
        :param run: only values taken during this IvoryOS run of this host.
        :param max_points: at most this many points come back.
        :param deadline: ``time.monotonic()`` by which it answers (:data:`READ_TIMEOUT_S` from now by default).
        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        deadline = time.monotonic() + READ_TIMEOUT_S if deadline is None else deadline
        if not self.error and time.monotonic() >= self._down_until:  # half the time at most, the query the rest
            half = time.monotonic() + max(0.0, deadline - time.monotonic()) / 2
            if self._flush_lock.acquire(timeout=max(0.0, half - time.monotonic())):
                try:
                    self._flush(half)
                finally:
                    self._flush_lock.release()

        def read(conn: Connection) -> Dict[str, Any]:
            if run is None and conn.dialect.name in ("sqlite", "postgresql"):
                found = self._from_rollups(conn, plugin, stream, since, until, max_points)
                if found is not None:
                    return found
            return self._from_samples(conn, plugin, stream, since, until, run, max_points)

        return self._read(READ_TIMEOUT_S, deadline, read)

    def _from_samples(self, conn: Connection, plugin: str, stream: str, since: Optional[float],
                      until: Optional[float], run: Optional[int], max_points: int) -> Dict[str, Any]:
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

    def last_run(self, plugin: str, stream: str, *, deadline: Optional[float] = None) -> Optional[int]:
        """The newest IvoryOS run (of this host) with recorded values of ``stream``, or None.

        :param plugin: the plugin.
        :param stream: the stream.
        :param deadline: ``time.monotonic()`` by which it answers (:data:`READ_TIMEOUT_S` from now by default).
        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        found = self._read(READ_TIMEOUT_S, deadline, lambda conn: conn.execute(select(func.max(samples.c.run_id)).where(
            (samples.c.plugin == plugin) & (samples.c.stream == stream) & (samples.c.host == self.host))).scalar())
        return None if found is None else int(found)

    def status(self, plugin: str) -> Dict[str, Any]:
        """Rows per stream, disk use, queue and gaps, for the health page: answers within
        :data:`STATUS_TIMEOUT_S` s; when the database does not, ``available`` is false, ``unavailable``
        says why and ``rows`` are the counts of the last time it answered.

        The rows are the store's counts (see :meth:`_recount`), so a call costs the same with ten
        rows as with millions: the database is only asked whether it answers (``SELECT 1``), or, the
        first time, to count every stream once.

        :param plugin: the plugin."""
        problem = ""
        deadline = time.monotonic() + STATUS_TIMEOUT_S
        counted: Optional[Dict[Tuple[str, str], int]] = None
        try:
            if self._rows_ready:
                self._read(STATUS_TIMEOUT_S, deadline, lambda conn: conn.execute(select(1)).scalar())
            elif not self._recount_now(deadline):  # the writer holds its lock: this call's own count
                counted = self._read(STATUS_TIMEOUT_S, deadline, self._count_rows)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, HistoryUnavailable) else _describe(exc, self.url)
        with self._lock:
            rows = self._rows if counted is None else counted
            streams = {stream: count for (owner, stream), count in rows.items() if owner == plugin and count > 0}
        disk = None
        if self.url.startswith("sqlite:///"):
            base = Path(self.url[len("sqlite:///"):])
            disk = sum(p.stat().st_size for p in (base, Path(f"{base}-wal")) if p.exists())
        with self._lock:
            queued = len(self._buffer) + self._in_flight
        doubtful = self._doubtful
        if doubtful is not None:
            queued += len(doubtful[1])
        return {"database": mask_url(self.url), "available": not problem, "unavailable": problem, "rows": streams,
                "disk_bytes": disk, "queued": queued, "written": self.counts.written, "dropped": self.counts.dropped,
                "deleted": self.counts.deleted, "error": self.error,
                "gaps": [{"started": g.started, "ended": g.ended, "error": g.error} for g in self.counts.gaps[-10:]]}


def _libpq_args(url: Any) -> Dict[str, Any]:
    """libpq's connection arguments for the store's own connections: a connect timeout (the URL's,
    when it is shorter) and a statement timeout (``options``; the URL's own options come after ours,
    so a statement_timeout it sets wins), and the application's name for ``pg_stat_activity``."""
    query = dict(url.query)
    timeout = CONNECT_TIMEOUT_S
    try:
        timeout = max(2, min(timeout, int(str(query.get("connect_timeout", timeout)))))
    except ValueError:
        pass
    options = f"-c statement_timeout={int(STATEMENT_TIMEOUT_S * 1000)}"
    if query.get("options"):
        options = f"{options} {query['options']}"
    return {"connect_timeout": timeout, "options": options,
            "application_name": str(query.get("application_name", "ivoryos_plugin history"))}


def _describe(exc: BaseException, url: str) -> str:
    """An exception in one line, for a log, a page or a gap: its type and first line, with the
    secrets of ``url`` masked."""
    if isinstance(exc, HistoryUnavailable):
        return exc.reason
    first = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(f"{type(exc).__name__}: {first}", url)


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
