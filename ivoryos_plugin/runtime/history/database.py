"""The history's own connection to its database, every call bounded: its own engine and pool (never
the host's), a connect timeout, a pool checkout timeout, a server-side statement timeout, and a
:class:`~.watchdog.Watchdog` that ends a call still waiting at its deadline. A call that times out,
or finds the database unreachable, raises :class:`~.errors.HistoryUnavailable`; reads then fail at
once for :data:`RETRY_S` seconds instead of waiting again."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar
from contextlib import contextmanager

from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from ...core.clock import Clock, optional_clock
from .errors import HistoryUnavailable, describe, mask_url, scrub
from .schema import SCHEMA_VERSION, metadata, schema
from .watchdog import Watchdog

__all__ = ["Database", "CONNECT_TIMEOUT_S", "POOL_TIMEOUT_S", "SETUP_TIMEOUT_S", "STATEMENT_TIMEOUT_S",
           "SQLITE_BUSY_S", "RETRY_S"]

log = logging.getLogger("ivoryos_plugin.history")
T = TypeVar("T")

#: seconds to open a connection to a database server (libpq's ``connect_timeout``: whole seconds, 2 at least)
CONNECT_TIMEOUT_S = 2
#: seconds to wait for a connection of the store's own pool when every one is in use
POOL_TIMEOUT_S = 2.0
#: creating or checking the schema (the first use)
SETUP_TIMEOUT_S = 10.0
#: the server ends any statement of the store's connections after this long (PostgreSQL ``statement_timeout``)
STATEMENT_TIMEOUT_S = 10.0
#: SQLite waits this long for another program's lock (the driver's busy timeout)
SQLITE_BUSY_S = 5.0
#: after a read timed out or found the database unreachable, reads fail at once for this long
RETRY_S = 5.0


class Database:
    """One history database: its engine (made, and its schema checked, on first use) and bounded calls.

    Deadlines are the clock's ``monotonic()`` seconds.

    :param url: a SQLAlchemy URL.
    :param clock: what deadlines are measured and waited on (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK`
        when None)."""

    def __init__(self, url: str, clock: Optional[Clock] = None) -> None:
        self.url = url
        self.clock = optional_clock(clock)
        self.watchdog = Watchdog(self.clock)
        self._engine: Optional[Engine] = None
        self._ready = False  # the schema was created (or checked) once
        self._setup_lock = threading.Lock()  # one engine, one schema check
        self._local = threading.local()  # the deadline of the call this thread makes (see call)
        #: reads fail at once until then (the clock's ``monotonic()``)
        self.down_until = 0.0
        #: why the last read could not be answered ("" when it could)
        self.unavailable = ""

    # ------------------------------------------------------------ setup
    def engine(self, deadline: Optional[float] = None) -> Engine:
        """The store's own engine and pool (never the host's), with the schema created (and
        migrated) on first use.

        :param deadline: by when the first use's schema check ends (:data:`SETUP_TIMEOUT_S` from now
            by default).
        :raises HistoryUnavailable: the database did not answer by then."""
        if self._ready:
            assert self._engine is not None
            return self._engine
        deadline = self.clock.monotonic() + SETUP_TIMEOUT_S if deadline is None else deadline
        if not self._setup_lock.acquire(timeout=max(0.0, deadline - self.clock.monotonic())):
            raise self.fail(f"did not answer within {SETUP_TIMEOUT_S:g} s (its schema is being checked)")
        try:
            if self._engine is None:
                self._engine = self._create_engine()
            if not self._ready:
                self.call(self._engine, deadline, self._create_schema)
                self._ready = True
            return self._engine
        finally:
            self._setup_lock.release()

    def dispose(self) -> None:
        """Close the pool's connections (the engine is made again on next use)."""
        if self._engine is not None:
            self._engine.dispose()

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
                options["connect_args"] = libpq_args(url)
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
                    if self.watchdog.fired(getattr(self._local, "tokens", [])):
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
        outside :meth:`call`)."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            self._local.tokens.append(self.watchdog.arm(deadline, dbapi_connection))

    @contextmanager
    def watched(self, deadline: float) -> Iterator[None]:
        """Connections this thread opens or takes from the pool meanwhile are ended at ``deadline``
        (for a connection kept outside the pool, such as the SQLite writer's own).

        :param deadline: when."""
        self._local.deadline, self._local.tokens = deadline, []
        try:
            yield
        finally:
            for token in self._local.tokens:
                self.watchdog.disarm(token)
            self._local.deadline = None

    def call(self, engine: Engine, deadline: float, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` on a connection of the store's pool, ended at ``deadline``. Its
        transaction is rolled back unless ``work`` commits.

        :param engine: :meth:`engine`'s.
        :param deadline: when the call is ended.
        :param work: what to do with the connection.
        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        local = self._local
        if getattr(local, "deadline", None) is not None:  # (a call inside a call keeps the outer deadline)
            deadline = min(deadline, local.deadline)
        outer = getattr(local, "deadline", None), getattr(local, "tokens", []), getattr(local, "started", 0.0)
        if outer[0] is None:
            local.started = self.clock.monotonic()
        local.deadline, local.tokens = deadline, []
        tokens: List[int] = local.tokens
        conn: Optional[Connection] = None
        try:
            if self.clock.monotonic() >= deadline:
                raise self.fail(f"did not answer within {self._budget(deadline)}")
            conn = engine.connect()  # the pool's timeout, the driver's connect timeout, a pinged connection
            result = work(conn)
            conn.rollback()  # (nothing to send after a commit) a read's transaction ends within the deadline
            conn.close()
            conn = None
            return result
        except HistoryUnavailable:
            raise
        except Exception as exc:
            raise self._translate(exc, self.watchdog.fired(tokens), deadline, engine) from None
        finally:
            if conn is not None:  # failed: the connection is dropped without a word to the server
                try:
                    conn.invalidate()
                    conn.close()
                except Exception as exc:
                    log.debug("history: dropping a connection: %s", exc)
            for token in tokens:
                self.watchdog.disarm(token)
            local.deadline, local.tokens, local.started = outer

    def read(self, timeout: float, deadline: Optional[float], work: Callable[[Connection], T]) -> T:
        """A read: at once :class:`HistoryUnavailable` within :data:`RETRY_S` s of the last one that
        failed (one caller tries again after that, the others still fail at once), else ``work``
        bounded by ``deadline`` (``timeout`` seconds from now by default).

        :param timeout: seconds, when no deadline is given.
        :param deadline: when the read is ended, or None.
        :param work: what to read with the connection."""
        now = self.check_down()
        if self.down_until:
            self.down_until = now + RETRY_S  # this caller tries; the others keep failing at once meanwhile
        deadline = now + timeout if deadline is None else deadline
        result = self.call(self.engine(deadline), deadline, work)
        self.available()
        return result

    def check_down(self) -> float:
        """Raise :class:`HistoryUnavailable` while reads fail at once; else the clock's ``monotonic()``."""
        now = self.clock.monotonic()
        if now < self.down_until:
            raise HistoryUnavailable(f"{self.unavailable}; it is tried again in {self.down_until - now:.0f} s")
        return now

    def _translate(self, exc: Exception, fired: bool, deadline: float, engine: Engine) -> Exception:
        """The exception a failed call raises: :class:`HistoryUnavailable` when the database did not
        answer in time or cannot be reached (reads then fail at once for :data:`RETRY_S` s), else ``exc``."""
        detail = describe(exc, self.url)
        if fired or self.clock.monotonic() >= deadline:  # (the driver's error only says the connection was closed)
            return self.fail(f"did not answer within {self._budget(deadline)}")
        if isinstance(exc, sa_exc.TimeoutError):
            return self.fail(f"has no free connection after {POOL_TIMEOUT_S:g} s: {detail}")
        if engine.dialect.name != "sqlite" and isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return self.fail(f"cannot be reached: {detail}")
        return exc

    def _budget(self, deadline: float) -> str:
        """The time the current call was given, in words."""
        return f"{max(0.0, deadline - getattr(self._local, 'started', deadline)):.1f} s"

    def fail(self, what: str) -> HistoryUnavailable:
        """A :class:`HistoryUnavailable` naming the database; reads fail at once for :data:`RETRY_S` s.

        :param what: what happened (``"did not answer within 3.0 s"``)."""
        message = f"the history database {mask_url(self.url)} {what}"
        self.down_until = self.clock.monotonic() + RETRY_S
        self.unavailable = message
        return HistoryUnavailable(message, f"it {what}")

    def available(self) -> None:
        """The database answered: reads wait for it again."""
        self.down_until = 0.0
        self.unavailable = ""


def libpq_args(url: Any) -> Dict[str, Any]:
    """libpq's connection arguments for the store's own connections: a connect timeout (the URL's,
    when it is shorter) and a statement timeout (``options``; the URL's own options come after ours,
    so a statement_timeout it sets wins), and the application's name for ``pg_stat_activity``.

    :param url: the parsed SQLAlchemy URL."""
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
