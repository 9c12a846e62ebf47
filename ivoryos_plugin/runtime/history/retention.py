"""How much of each stream the history keeps (:class:`Retention`), and the passes that delete the
rest (:class:`Retainer`): every :data:`RETENTION_EVERY_S` seconds after the writer wrote everything,
each pass costing what it deletes, with the rows per stream counted exactly on the first pass and
every :data:`RECOUNT_EVERY_S` seconds (other machines may write the same stream)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection

from ...core.clock import Clock, optional_clock
from .counts import Counts, RowCounts
from .database import Database
from .schema import ROLLUP_WIDTHS, rollups, samples, writers
from .writer import Writer

__all__ = ["Retention", "Retainer", "RETENTION_EVERY_S", "RECOUNT_EVERY_S", "RETENTION_TIMEOUT_S"]

RETENTION_EVERY_S = 10.0
RECOUNT_EVERY_S = 600.0
#: one retention pass (deletes can be large)
RETENTION_TIMEOUT_S = 60.0


@dataclass
class Retention:
    """How much of one stream is kept.

    :param keep_s: rows older than this many seconds are deleted (None: no age limit).
    :param keep_rows: at most this many rows, the newest (None: no count limit)."""

    keep_s: Optional[float] = 7 * 86400.0
    keep_rows: Optional[int] = 1_000_000


def count_rows(conn: Connection) -> Dict[Tuple[str, str], int]:
    """Every stream's rows, counted by the database (one ``GROUP BY`` over the samples' index).

    :param conn: a connection."""
    return {(plugin, stream): int(rows) for plugin, stream, rows in conn.execute(
        select(samples.c.plugin, samples.c.stream, func.count()).group_by(samples.c.plugin, samples.c.stream))}


class Retainer:
    """The retention of one store's streams.

    :param db: the database.
    :param writer: the writer (a count waits for its batches; a failed pass is a gap like a failed write).
    :param counts: the store's totals (deleted).
    :param rows: the rows per stream (each committed delete is subtracted).
    :param clock: ages, the passes' period and their deadlines (:data:`SYSTEM_CLOCK` when None)."""

    def __init__(self, db: Database, writer: Writer, counts: Counts, rows: RowCounts,
                 clock: Optional[Clock] = None) -> None:
        self.db = db
        self.writer = writer
        self.counts = counts
        self.rows = rows
        self.clock = optional_clock(clock)
        self.retention: Dict[Tuple[str, str], Retention] = {}
        self._last_pass: Optional[float] = None
        self._counted_at: Optional[float] = None
        self._count_lock = threading.Lock()  # a count and a retention pass's deletes never interleave

    def retain(self, plugin: str, stream: str, retention: Retention) -> None:
        """Set how much of ``plugin``'s ``stream`` is kept (enforced in the background).

        :param plugin: the plugin.
        :param stream: the stream.
        :param retention: the limits."""
        self.retention[(plugin, stream)] = retention

    def tick(self) -> None:
        """The writer wrote everything: a pass when :data:`RETENTION_EVERY_S` s have passed since the last."""
        now = self.clock.monotonic()
        if self._last_pass is None or now - self._last_pass >= RETENTION_EVERY_S:
            self._last_pass = now
            self.enforce()

    def enforce(self, now: Optional[float] = None) -> int:
        """Delete what the streams' retention no longer keeps; the number of rows deleted.

        Every query walks the ``(plugin, stream, t)`` index from its oldest end, so a pass costs what
        it deletes, not the size of the table. A pass ends after :data:`RETENTION_TIMEOUT_S` s.

        :param now: the time to measure ages from (the clock's ``time()``)."""
        now = self.clock.time() if now is None else now
        recount = self._counted_at is None or self.clock.monotonic() - self._counted_at >= RECOUNT_EVERY_S
        deadline = self.clock.monotonic() + RETENTION_TIMEOUT_S
        try:
            if recount or not self.rows.ready:  # (not now if a reader is writing the queue: the next pass)
                self.recount(deadline, wait=0.0)
            with self._count_lock:
                changes: Dict[Tuple[str, str], int] = {}
                deleted = self.db.call(self.db.engine(deadline), deadline,
                                       lambda conn: self._pass(conn, now, recount, changes))
                self.rows.add(changes)  # what the commit deleted: the counts follow
        except Exception as exc:
            self.writer.failed(exc)
            return 0
        self.counts.deleted += deleted
        return deleted

    def recount(self, deadline: float, wait: Optional[float] = None) -> bool:
        """Count every stream's rows once and keep the counts, which the writer and retention then
        maintain; False (counts unchanged) when the writer holds its lock longer than ``wait`` seconds
        (until ``deadline`` by default) or a batch's commit is in doubt.

        :param deadline: when the count is ended.
        :param wait: seconds to wait for the writer's and retention's locks.
        :raises HistoryUnavailable: the database did not answer by ``deadline``."""
        until = deadline if wait is None else min(deadline, self.clock.monotonic() + wait)
        if not self.writer.flush_lock.acquire(timeout=max(0.0, until - self.clock.monotonic())):
            return False  # (no batch may commit between the count and the counters being set)
        try:
            if self.writer.doubtful is not None:  # written or not: the count cannot tell yet
                return False
            if not self._count_lock.acquire(timeout=max(0.0, until - self.clock.monotonic())):
                return False  # (a retention pass is deleting)
            try:
                self.rows.set(self.db.call(self.db.engine(deadline), deadline, count_rows))
                self._counted_at = self.clock.monotonic()
            finally:
                self._count_lock.release()
            return True
        finally:
            self.writer.flush_lock.release()

    def _pass(self, conn: Connection, now: float, recount: bool, changes: Dict[Tuple[str, str], int]) -> int:
        deleted = 0
        if conn.dialect.name == "postgresql":  # longer than other statements: deletes can be large
            conn.execute(text(f"SET LOCAL statement_timeout = {int(RETENTION_TIMEOUT_S * 1000)}"))
        for key, keep in list(self.retention.items()):
            plugin, stream = key
            which = (samples.c.plugin == plugin) & (samples.c.stream == stream)
            if keep.keep_s is not None:
                gone = conn.execute(delete(samples).where(which & (samples.c.t < now - keep.keep_s))).rowcount
                if gone:  # (the aggregates of what earlier passes deleted are gone already)
                    deleted += gone
                    changes[key] = changes.get(key, 0) - gone
                    drop_rollups(conn, plugin, stream, now - keep.keep_s)
            if keep.keep_rows is None:
                continue
            rows = self.rows.get(key)
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
                    drop_rollups(conn, plugin, stream, oldest)
        if recount:  # the batch numbers of stores long gone
            conn.execute(delete(writers).where(writers.c.t < now - 30 * 86400.0))
        conn.commit()
        return deleted


def drop_rollups(conn: Any, plugin: str, stream: str, before: float) -> None:
    """Delete the aggregates whose last value is older than ``before`` (each width's range of its
    primary key below ``before``: only what earlier passes left, so a pass stays small).

    :param conn: a connection in the pass's transaction.
    :param plugin: the plugin.
    :param stream: the stream.
    :param before: the time (epoch seconds)."""
    for width in ROLLUP_WIDTHS:
        conn.execute(delete(rollups).where((rollups.c.plugin == plugin) & (rollups.c.stream == stream)
                                           & (rollups.c.width == width) & (rollups.c.bucket < before)
                                           & (rollups.c.last_t < before)))
