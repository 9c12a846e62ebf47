"""What the history counts: values written, dropped and deleted, the gaps when the database could not
be written, and the rows per stream (kept by the writer and by retention, so the health page never
counts a table of millions)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

__all__ = ["Gap", "Counts", "RowCounts"]


@dataclass
class Gap:
    """A time the database could not be written.

    :param started: the clock's ``time()`` when writes started failing.
    :param ended: when they succeeded again (None: still failing).
    :param error: the last error."""

    started: float
    ended: Optional[float] = None
    error: str = ""


@dataclass
class Counts:
    """The store's totals since it started.

    :param written: values committed.
    :param dropped: values dropped from a full queue (the oldest first).
    :param deleted: rows retention deleted.
    :param gaps: the times writes failed, oldest first."""

    written: int = 0
    dropped: int = 0
    deleted: int = 0
    gaps: List[Gap] = field(default_factory=list)


class RowCounts:
    """Rows per ``(plugin, stream)``: counted once (:meth:`set`), then kept by what is committed
    (:meth:`add`); :attr:`ready` once counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: Dict[Tuple[str, str], int] = {}
        self.ready = False

    def set(self, counted: Dict[Tuple[str, str], int]) -> None:
        """The rows the database counted.

        :param counted: rows per ``(plugin, stream)``."""
        with self.lock:
            self.rows = counted
            self.ready = True

    def add(self, changes: Mapping[Tuple[str, str], int]) -> None:
        """Add committed changes (negative for deletes), once the rows are counted.

        :param changes: the change per ``(plugin, stream)``."""
        if not self.ready:
            return
        with self.lock:
            for key, change in changes.items():
                self.rows[key] = max(0, self.rows.get(key, 0) + change)

    def get(self, key: Tuple[str, str]) -> Optional[int]:
        """The rows of ``key``, or None before they are counted.

        :param key: ``(plugin, stream)``."""
        with self.lock:
            return self.rows.get(key) if self.ready else None

    def of(self, plugin: str, counted: Optional[Dict[Tuple[str, str], int]] = None) -> Dict[str, int]:
        """``plugin``'s streams that have rows, and how many.

        :param plugin: the plugin.
        :param counted: counts to read instead of the kept ones."""
        with self.lock:
            rows = self.rows if counted is None else counted
            return {stream: count for (owner, stream), count in rows.items() if owner == plugin and count > 0}
