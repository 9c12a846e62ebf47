"""The history's writer: values queued in memory by the producers (never blocking them) and written
in batches by one thread every :data:`FLUSH_S` seconds, so a crash loses at most the last batch. A
database that cannot be written keeps values queued up to ``buffer_max`` (then the oldest are dropped
and counted) and is tried again on a :class:`~ivoryos_plugin.core.clock.Backoff`; the outage is a
:class:`~.counts.Gap`. A batch whose COMMIT got no answer is settled by the writers table, so no
value is written twice."""
from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ...core.clock import Backoff, Clock, optional_clock, start_thread
from .. import payloads
from .counts import Counts, Gap, RowCounts
from .database import SQLITE_BUSY_S, Database
from .errors import describe, mask_url
from .rollups import aggregates, sqlite_upsert, upsert
from .schema import ROLLUP_COLUMNS, ROW, SQLITE_INSERT, Row, number_of, samples, writers

__all__ = ["Writer", "FLUSH_S", "RETRY_MAX_S", "BATCH", "WRITE_TIMEOUT_S", "MIN_BATCH_S"]

log = logging.getLogger("ivoryos_plugin.history")

FLUSH_S = 2.0  # a batch's cost is mostly per batch: every 2 s costs a 50 Hz stream a third less than every 1 s
#: the longest wait between two tries of a database that cannot be written (the first is twice FLUSH_S)
RETRY_MAX_S = 5.0
BATCH = 2000
#: one batch of the writer
WRITE_TIMEOUT_S = 10.0
#: a flush with a deadline starts no batch with less time left than this (a batch is never cut short
#: on a database that merely answers slowly)
MIN_BATCH_S = 0.5


class Writer:
    """The queue of one store and the thread that writes it.

    :param db: the database.
    :param counts: the store's totals (written, dropped, gaps).
    :param rows: the rows per stream (each committed batch is added).
    :param machine: this machine's name (the ``host`` column of each sample).
    :param writer_id: this store's row in the writers table.
    :param buffer_max: values kept in memory while the database cannot be written.
    :param after_flush: called by the thread after each flush that wrote everything (retention's turn).
    :param clock: the values' times, the flush period and the backoff (:data:`SYSTEM_CLOCK` when None)."""

    def __init__(self, db: Database, counts: Counts, rows: RowCounts, *, machine: str, writer_id: str,
                 buffer_max: int, after_flush: Callable[[], None] = lambda: None,
                 clock: Optional[Clock] = None) -> None:
        self.db = db
        self.counts = counts
        self.rows = rows
        self.machine = machine  # the ``host`` column of each value: this machine's name
        self.writer_id = writer_id
        self.buffer_max = buffer_max
        self.clock = optional_clock(clock)
        self._after_flush = after_flush
        self.buffer: Deque[Row] = collections.deque()
        self._sqlite: Any = None  # the writer's own connection to a SQLite file (see _write_sqlite)
        self.lock = threading.Lock()
        #: held while batches are written (in the order they were queued), and by a count of the rows
        self.flush_lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        #: the writer's thread once started (a caller that writes by itself may set its own: none starts)
        self.thread: Optional[threading.Thread] = None
        self._batches = 0  # the number of the last batch committed (on a server)
        self._committing: Optional[int] = None  # the batch whose COMMIT was sent and not yet answered
        self.doubtful: Optional[Tuple[int, List[Row]]] = None  # a batch whose commit got no answer
        self._in_flight = 0  # values of the batch being written
        #: the last write's error ("" once a write succeeded again)
        self.error = ""
        # the error and the gaps change together under it (see outage): the health page, read from other
        # threads, never shows an ended gap beside its error, or an open one without it
        self._outage_lock = threading.Lock()
        self._check_at = min(BATCH, buffer_max + 1)  # queue length at which a recorder calls _queued

    # ------------------------------------------------------------ the thread
    def start(self) -> None:
        """Start the writer thread (once)."""
        with self.lock:
            if self.thread is None and not self.stopping.is_set():
                self.thread = start_thread("history", self._run)

    def stop(self, timeout: float) -> None:
        """Write what is queued, then stop the thread and close the writer's own connection.

        :param timeout: real seconds to wait for the last write."""
        self.stopping.set()
        self.wake.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        # the writer's SQLite connection, unless a write still holds it after the wait
        if self._sqlite is not None and self.flush_lock.acquire(timeout=timeout):
            try:
                self._close_sqlite()
            finally:
                self.flush_lock.release()

    def _run(self) -> None:
        retry = Backoff(min(2 * FLUSH_S, RETRY_MAX_S), RETRY_MAX_S)
        while True:
            stopping = self.stopping.is_set()
            ok = self.flush()
            if ok:
                self._after_flush()
            if stopping:
                return
            if ok:
                retry.reset()
            self.clock.wait(self.wake, FLUSH_S if ok else retry.next())
            self.wake.clear()

    # ------------------------------------------------------------ queueing
    def record(self, plugin: str, stream: str, value: Any, *, t: Optional[float] = None,
               run: Optional[Dict[str, Any]] = None, field_name: Optional[str] = None,
               text: Optional[str] = None) -> None:
        """Queue one value (see :meth:`HistoryStore.record <.store.HistoryStore.record>`).

        :param plugin: the plugin.
        :param stream: the stream.
        :param value: a JSON-serialisable value.
        :param t: its time (the clock's ``time()``; now by default).
        :param run: ``plugin.current_run()`` when it was taken.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param text: ``value``'s JSON, when the caller has it."""
        if text is None:
            value, text = payloads.finite_json(value)
        self.buffer.append((plugin, stream, self.clock.time() if t is None else float(t), number_of(value, field_name),
                            text, run.get("run_id") if run else None, run.get("step") if run else None, self.machine))
        self.queued()

    def recorder(self, plugin: str, stream: str, field_name: Optional[str],
                 current_run: Callable[[], Optional[Dict[str, Any]]]) -> Callable[[Any, str], None]:
        """What a recorded stream calls for each value (see :meth:`HistoryStore.recorder
        <.store.HistoryStore.recorder>`): the least work per value.

        :param plugin: the plugin.
        :param stream: the stream.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param current_run: ``plugin.current_run``."""
        append, buffer, machine, now = self.buffer.append, self.buffer, self.machine, self.clock.time
        self.start()

        def record_value(value: Any, text: str) -> None:
            run = current_run()
            append((plugin, stream, now(), number_of(value, field_name), text,
                    run.get("run_id") if run else None, run.get("step") if run else None, machine))
            if len(buffer) >= self._check_at:
                self.queued()

        return record_value

    def queued(self) -> None:
        """After a value was queued (deque.append is atomic: the producer takes no lock): drop the
        oldest beyond ``buffer_max``, wake the writer for a full batch, start it on first use."""
        queued = len(self.buffer)
        if queued > self.buffer_max:
            with self.lock:
                while len(self.buffer) > self.buffer_max:
                    self.buffer.popleft()
                    self.counts.dropped += 1
        if self.thread is None:
            self.start()
        if queued >= BATCH and not self.error:  # (a failing database is retried on the writer's backoff)
            self.wake.set()

    def pending(self) -> int:
        """Values not known to be written: queued, being written, or in a batch whose commit is in doubt."""
        with self.lock:
            queued = len(self.buffer) + self._in_flight
        doubtful = self.doubtful
        return queued + (len(doubtful[1]) if doubtful is not None else 0)

    # ------------------------------------------------------------ writing
    def flush(self, deadline: Optional[float] = None) -> bool:
        """Write everything queued now; False (values kept) when the database cannot be written.

        :param deadline: the clock's ``monotonic()`` after which no batch is started and a batch still
            being written is ended (each batch gets :data:`WRITE_TIMEOUT_S` s at most)."""
        with self.flush_lock:
            return self._flush(deadline)

    def flush_before_read(self, deadline: float) -> None:
        """Write what is queued before a read, in half the time left at most, unless the writer
        reports a failure (it retries on its own backoff) or holds the queue past then.

        :param deadline: when the read must have answered."""
        now = self.clock.monotonic()
        if self.error or now < self.db.down_until:
            return
        half = now + max(0.0, deadline - now) / 2
        if self.flush_lock.acquire(timeout=max(0.0, half - self.clock.monotonic())):
            try:
                self._flush(half)
            finally:
                self.flush_lock.release()

    def _flush(self, deadline: Optional[float] = None) -> bool:
        if self.doubtful is not None and not self._settle_doubt(deadline):
            return False
        while True:
            if deadline is not None and deadline - self.clock.monotonic() < MIN_BATCH_S:  # the rest is the writer's
                return not self.buffer
            with self.lock:
                batch = [self.buffer.popleft() for _ in range(min(BATCH, len(self.buffer)))]
            if not batch:
                return True
            limit = self.clock.monotonic() + WRITE_TIMEOUT_S
            self._in_flight = len(batch)
            try:
                self.write(batch, limit if deadline is None else min(limit, deadline))
            except Exception as exc:
                self._in_flight = 0
                if self._committing is not None:  # the COMMIT was sent: it may have been applied
                    self.doubtful, self._committing = (self._committing, batch), None
                else:
                    self._requeue(batch)
                self.failed(exc)
                return False
            self._in_flight = 0
            self._written(batch)

    def _requeue(self, batch: List[Row]) -> None:
        with self.lock:
            self.buffer.extendleft(reversed(batch))  # kept, in order, for the next try
            while len(self.buffer) > self.buffer_max:
                self.buffer.popleft()
                self.counts.dropped += 1

    def _written(self, batch: List[Row]) -> None:
        """A batch was committed (under the flush lock, which a count holds too: a batch is counted
        by the count or here, never both)."""
        self.counts.written += len(batch)
        self.rows.add(collections.Counter((r[0], r[1]) for r in batch))
        self.recovered()

    def _settle_doubt(self, deadline: Optional[float]) -> bool:
        """A batch whose COMMIT got no answer (the connection was cut): it counts as written when the
        database holds its number in the writers table, else it is queued again (first). False when
        the database still cannot tell."""
        assert self.doubtful is not None
        number, batch = self.doubtful
        limit = self.clock.monotonic() + WRITE_TIMEOUT_S
        try:
            done = self.db.call(self.db.engine(limit), limit if deadline is None else min(limit, deadline),
                                lambda conn: conn.execute(select(writers.c.batch).where(
                                    writers.c.writer == self.writer_id)).scalar())
        except Exception as exc:
            self.failed(exc)
            return False
        self.doubtful = None
        if done is not None and done >= number:
            self._batches = max(self._batches, number)
            self._written(batch)
        else:
            self._requeue(batch)
        return True

    def write(self, batch: List[Row], deadline: float) -> None:
        """Write a batch of samples and add it to the aggregates, in one transaction, by ``deadline``.
        On SQLite through a connection the writer keeps and the driver's own ``executemany``
        (SQLAlchemy's per-row parameter processing and per-transaction bookkeeping cost as much as the
        writing); elsewhere through SQLAlchemy (on PostgreSQL it batches rows into multi-row VALUES,
        faster than the driver's), with the batch's number in the writers table, so a batch whose
        COMMIT got no answer is known to be written or not.

        :param batch: queued samples.
        :param deadline: when the write is ended."""
        engine = self.db.engine(deadline)
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._write_sqlite(engine, batch, deadline)
            return
        number = self._batches + 1

        def work(conn: Connection) -> None:
            conn.execute(insert(samples), [dict(zip(ROW, r)) for r in batch])
            statement = upsert(dialect)
            if statement is not None:  # another database: queries aggregate the samples themselves
                conn.execute(statement, [dict(zip(ROLLUP_COLUMNS, a)) for a in aggregates(batch)])
            mark = {"batch": number, "t": self.clock.time()}
            if not conn.execute(update(writers).where(writers.c.writer == self.writer_id).values(**mark)).rowcount:
                conn.execute(insert(writers).values(writer=self.writer_id, **mark))
            self._committing = number
            conn.commit()
            self._committing = None

        self.db.call(engine, deadline, work)
        self._batches = number

    def _write_sqlite(self, engine: Engine, batch: List[Row], deadline: float) -> None:
        if self._sqlite is None:
            with self.db.watched(deadline):
                self._sqlite = engine.raw_connection()  # from the pool: the engine's WAL settings apply
        connection = self._sqlite
        watchdog = self.db.watchdog
        token = watchdog.arm(deadline, connection.driver_connection)
        try:
            cursor = connection.cursor()
            # another program's lock is waited for until the deadline at most
            busy = max(0.0, min(SQLITE_BUSY_S, deadline - self.clock.monotonic()))
            cursor.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
            cursor.executemany(SQLITE_INSERT, batch)
            cursor.executemany(sqlite_upsert(), aggregates(batch))
            cursor.close()
            connection.commit()
        except BaseException as exc:
            fired = watchdog.fired([token])
            self._close_sqlite()  # rolled back; the next batch starts on a new connection
            if fired:
                raise self.db.fail("did not answer in time (a batch was being written)") from None
            raise
        finally:
            watchdog.disarm(token)

    def _close_sqlite(self) -> None:
        connection, self._sqlite = self._sqlite, None
        if connection is not None:
            try:
                connection.rollback()
                connection.close()
            except Exception as exc:
                log.debug("history: closing the writer's connection: %s", exc)

    # ------------------------------------------------------------ failing and recovering
    def failed(self, exc: BaseException) -> None:
        """A write (or a retention pass) failed: a gap starts, or goes on, with this error.

        :param exc: what failed."""
        message = describe(exc, self.db.url)
        with self._outage_lock:
            started = not self.counts.gaps or self.counts.gaps[-1].ended is not None
            if started:
                self.counts.gaps.append(Gap(started=self.clock.time()))
            self.counts.gaps[-1].error = message
            self.error = message
        if started:
            log.error("history: cannot write to %s (%s); values are kept in memory (up to %d)",
                      mask_url(self.db.url), message, self.buffer_max)

    def recovered(self) -> None:
        """A write succeeded: the gap ends and the error clears (together), reads wait for the database
        again."""
        with self._outage_lock:
            ended = bool(self.counts.gaps) and self.counts.gaps[-1].ended is None
            if ended:
                self.counts.gaps[-1].ended = self.clock.time()
            self.error = ""
        if ended:
            log.warning("history: writing to %s again", mask_url(self.db.url))
        self.db.available()

    def outage(self, last: int = 10) -> Tuple[str, List[Dict[str, Any]]]:
        """The last write's error and the ``last`` gaps, as one consistent reading.

        :param last: how many gaps, the newest last."""
        with self._outage_lock:
            return self.error, [{"started": g.started, "ended": g.ended, "error": g.error}
                                for g in self.counts.gaps[-last:]]
