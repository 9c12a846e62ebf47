""":class:`HistoryStore`: the recorded values of every plugin of one app, put together from the
database (bounded calls), the writer (queue and thread), retention and the reader, each given what
it needs here; and the health page's status of it."""
from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ...core.clock import Clock, optional_clock
from .counts import Counts, RowCounts
from .database import Database
from .errors import HistoryUnavailable, describe, mask_url
from .reader import READ_TIMEOUT_S, newest_run, read_series
from .retention import Retainer, Retention, count_rows
from .rollups import aggregates
from .schema import Row
from .writer import Writer

__all__ = ["HistoryStore", "STATUS_TIMEOUT_S"]

#: the health page's row counts
STATUS_TIMEOUT_S = 2.0


class HistoryStore:
    """Recorded values of every plugin of one app.

    :param url: a SQLAlchemy URL.
    :param buffer_max: values kept in memory while the database cannot be written.
    :param clock: the values' times, the writer's period and backoff, retention's ages and every
        call's deadline (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` when None; a test's
        ``ManualClock``). Deadlines given to its methods are this clock's ``monotonic()``."""

    def __init__(self, url: str, *, buffer_max: int = 200_000, clock: Optional[Clock] = None) -> None:
        self.url = url
        self.buffer_max = buffer_max
        self.clock = optional_clock(clock)
        self.writer_id = uuid.uuid4().hex
        self.counts = Counts()
        self.rows = RowCounts()
        self.db = Database(url, self.clock)
        self.writer = Writer(self.db, self.counts, self.rows, machine=socket.gethostname(), writer_id=self.writer_id,
                             buffer_max=buffer_max, after_flush=self._after_flush, clock=self.clock)
        self.retainer = Retainer(self.db, self.writer, self.counts, self.rows, self.clock)
        #: the queue (tuples of :data:`~.schema.ROW`)
        self.buffer = self.writer.buffer

    # ------------------------------------------------------------ the parts' state, as before the split
    @property
    def machine(self) -> str:
        """This machine's name (``socket.gethostname()``): the ``host`` column of each value written,
        and what ``?run=`` reads (IvoryOS numbers runs per machine)."""
        return self.writer.machine

    @machine.setter
    def machine(self, machine: str) -> None:
        self.writer.machine = machine

    @property
    def error(self) -> str:
        """The last write's error ("" once a write succeeded again)."""
        return self.writer.error

    @property
    def unavailable(self) -> str:
        """Why the last read could not be answered ("" when it could)."""
        return self.db.unavailable

    @property
    def _stop(self) -> threading.Event:
        """Set: the writer thread is stopping (set before the first value: none starts)."""
        return self.writer.stopping

    @property
    def _thread(self) -> Optional[threading.Thread]:
        """The writer's thread (a caller that flushes by itself may set one: then none starts)."""
        return self.writer.thread

    @_thread.setter
    def _thread(self, thread: Optional[threading.Thread]) -> None:
        self.writer.thread = thread

    @staticmethod
    def aggregates(batch: List[Row]) -> List[Tuple[Any, ...]]:
        """A batch's per-bucket aggregates (see :func:`~.rollups.aggregates`).

        :param batch: queued samples."""
        return aggregates(batch)

    # ------------------------------------------------------------ setup
    def engine(self, deadline: Optional[float] = None) -> Engine:
        """The store's own engine and pool, with the schema created on first use.

        :param deadline: by when the first use's schema check ends.
        :raises HistoryUnavailable: the database did not answer by then."""
        return self.db.engine(deadline)

    def retain(self, plugin: str, stream: str, retention: Retention) -> None:
        """Set how much of ``plugin``'s ``stream`` is kept (enforced in the background).

        :param plugin: the plugin.
        :param stream: the stream.
        :param retention: the limits."""
        self.retainer.retain(plugin, stream, retention)

    def start(self) -> None:
        """Start the writer thread (once)."""
        self.writer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer.

        :param timeout: seconds to wait for the last write."""
        self.writer.stop(timeout)
        self.db.dispose()
        self.db.watchdog.stop(timeout)

    def _after_flush(self) -> None:
        self.retainer.tick()

    # ------------------------------------------------------------ writing
    def record(self, plugin: str, stream: str, value: Any, *, t: Optional[float] = None,
               run: Optional[Dict[str, Any]] = None, field_name: Optional[str] = None,
               text: Optional[str] = None) -> None:
        """Queue one value (returns at once; written within :data:`~.writer.FLUSH_S` s).

        :param plugin: the plugin.
        :param stream: the stream (or any name given to ``plugin.record_value``).
        :param value: a JSON-serialisable value (a non-finite float is stored as ``null``, anything
            else JSON cannot hold as its ``repr``).
        :param t: its time (epoch seconds; the clock's ``time()`` by default).
        :param run: ``plugin.current_run()`` when it was taken.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param text: ``value``'s JSON, when the caller has it from :func:`payloads.finite_json`."""
        self.writer.record(plugin, stream, value, t=t, run=run, field_name=field_name, text=text)

    def recorder(self, plugin: str, stream: str, field_name: Optional[str],
                 current_run: Callable[[], Optional[Dict[str, Any]]]) -> Callable[[Any, str], None]:
        """What a recorded stream calls for each value: :meth:`record` for one stream, with the
        value's JSON already made (see ``payloads.finite_json``), the time now and the run from
        ``current_run``. The least work per value: a stream calls it at its own rate.

        :param plugin: the plugin.
        :param stream: the stream.
        :param field_name: the key of a dict value to downsample (default ``"value"``).
        :param current_run: ``plugin.current_run``."""
        return self.writer.recorder(plugin, stream, field_name, current_run)

    def flush(self, deadline: Optional[float] = None) -> bool:
        """Write everything queued now; False (values kept) when the database cannot be written.

        :param deadline: after which no batch is started and a batch still being written is ended."""
        return self.writer.flush(deadline)

    def enforce_retention(self, now: Optional[float] = None) -> int:
        """Delete what the streams' retention no longer keeps; the number of rows deleted.

        :param now: the time to measure ages from (the clock's ``time()``)."""
        return self.retainer.enforce(now)

    # ------------------------------------------------------------ reading
    def query(self, plugin: str, stream: str, *, since: Optional[float] = None, until: Optional[float] = None,
              run: Optional[int] = None, max_points: int = 1000, deadline: Optional[float] = None) -> Dict[str, Any]:
        """Recorded values, downsampled by the database to at most ``max_points`` buckets (min/max/mean).

        What is queued is written first (so every value taken until now is seen), unless the writer
        reports a failure (it retries on its own backoff) or holds the queue past the deadline (see
        :mod:`.reader` for how a range is read).

        :param plugin: the plugin.
        :param stream: the stream.
        :param since: the earliest time (epoch seconds), or None.
        :param until: the latest time, or None.
        :param run: only values taken during this IvoryOS run of this machine.
        :param max_points: at most this many points come back.
        :param deadline: by when it answers (:data:`~.reader.READ_TIMEOUT_S` from now by default).
        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        deadline = self.clock.monotonic() + READ_TIMEOUT_S if deadline is None else deadline
        self.writer.flush_before_read(deadline)  # half the time at most, the query the rest
        return self.db.read(READ_TIMEOUT_S, deadline, lambda conn: read_series(
            conn, plugin, stream, machine=self.machine, since=since, until=until, run=run, max_points=max_points))

    def last_run(self, plugin: str, stream: str, *, deadline: Optional[float] = None) -> Optional[int]:
        """The newest IvoryOS run (of this machine) with recorded values of ``stream``, or None.

        :param plugin: the plugin.
        :param stream: the stream.
        :param deadline: by when it answers (:data:`~.reader.READ_TIMEOUT_S` from now by default).
        :raises HistoryUnavailable: the database did not answer by then, or cannot be reached."""
        return self.db.read(READ_TIMEOUT_S, deadline, lambda conn: newest_run(conn, plugin, stream, self.machine))

    def status(self, plugin: str) -> Dict[str, Any]:
        """Rows per stream, disk use, queue and gaps, for the health page: answers within
        :data:`STATUS_TIMEOUT_S` s; when the database does not, ``available`` is false, ``unavailable``
        says why and ``rows`` are the counts of the last time it answered.

        The rows are the store's counts (kept by the writer and retention), so a call costs the same
        with ten rows as with millions: the database is only asked whether it answers (``SELECT 1``),
        or, the first time, to count every stream once.

        :param plugin: the plugin."""
        problem = ""
        deadline = self.clock.monotonic() + STATUS_TIMEOUT_S
        counted: Optional[Dict[Tuple[str, str], int]] = None
        try:
            if self.rows.ready:
                self.db.read(STATUS_TIMEOUT_S, deadline, lambda conn: conn.execute(select(1)).scalar())
            elif not self._recount_now(deadline):  # the writer holds its lock: this call's own count
                counted = self.db.read(STATUS_TIMEOUT_S, deadline, count_rows)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, HistoryUnavailable) else describe(exc, self.url)
        streams = self.rows.of(plugin, counted)
        disk = None
        if self.url.startswith("sqlite:///"):
            base = Path(self.url[len("sqlite:///"):])
            disk = sum(p.stat().st_size for p in (base, Path(f"{base}-wal")) if p.exists())
        error, gaps = self.writer.outage()
        return {"database": mask_url(self.url), "available": not problem, "unavailable": problem, "rows": streams,
                "disk_bytes": disk, "queued": self.writer.pending(), "written": self.counts.written,
                "dropped": self.counts.dropped, "deleted": self.counts.deleted, "error": error, "gaps": gaps}

    def _recount_now(self, deadline: float) -> bool:
        """The first count, for a caller that cannot wait for the writer (bounded like a read)."""
        self.db.check_down()
        counted = self.retainer.recount(deadline, wait=STATUS_TIMEOUT_S / 4)
        self.db.available()
        return counted
