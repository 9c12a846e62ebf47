"""The benchmark's instrument: a sensor that counts (and timestamps) its own reads and holds a
value that a simulated workflow changes at random moments."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Dict, Union


class Sensor:
    """Counts reads, so the benchmark sees what each viewing pattern costs the instrument."""

    def __init__(self) -> None:
        """A fresh sensor: no reads, value 0."""
        self.reads = 0
        self.value = 0
        self.changed_at = 0.0
        self._times: Deque[float] = deque(maxlen=200_000)
        self._lock = threading.Lock()

    def read(self) -> int:
        """One reading (counted, with its wall-clock time); returns the read count."""
        with self._lock:
            self.reads += 1
            self._times.append(time.time())
            return self.reads

    def set(self, value: int) -> Dict[str, Union[int, float]]:
        """Change the value (as a workflow step would) and record when.

        :param value: the new value."""
        with self._lock:
            self.value = value
            self.changed_at = time.time()
            return {"value": value, "t": self.changed_at}

    def current(self) -> Dict[str, Union[int, float]]:
        """The value and the wall-clock time it last changed (not counted as a read)."""
        with self._lock:
            return {"value": self.value, "t": self.changed_at}

    def read_stats(self, since: float, until: float) -> Dict[str, float]:
        """Reads whose time falls in ``[since, until]``: count, first and last time.

        :param since: window start (``time.time()``).
        :param until: window end."""
        with self._lock:
            inside = [t for t in self._times if since <= t <= until]
            return {"total": self.reads, "count": len(inside),
                    "first": inside[0] if inside else 0.0, "last": inside[-1] if inside else 0.0}
