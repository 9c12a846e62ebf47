"""A 96-well plate's values (pure Python, thread-safe, no Flask): well names, a fill cursor, colours."""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

ROWS = "ABCDEFGH"
COLUMNS = tuple(range(1, 13))
#: Wells in fill order: A1, A2, ... A12, B1, ... H12.
WELLS: Tuple[str, ...] = tuple(f"{row}{col}" for row in ROWS for col in COLUMNS)
WELL_PATTERN = r"^[A-H](?:[1-9]|1[0-2])$"
#: Colour stops of the 0..1 scale (light to dark blue), as RGB.
STOPS: Tuple[Tuple[float, Tuple[int, int, int]], ...] = (
    (0.0, (239, 246, 255)), (0.5, (66, 146, 198)), (1.0, (8, 48, 107)))
EMPTY = "#ffffff"


def colour(value: Optional[float]) -> str:
    """The fill of a well holding ``value`` (0..1, clamped); white for an empty well.

    :param value: the well's value, or None when nothing was put in it."""
    if value is None:
        return EMPTY
    v = min(max(float(value), 0.0), 1.0)
    for (lo, c0), (hi, c1) in zip(STOPS, STOPS[1:]):
        if v <= hi:
            f = (v - lo) / (hi - lo)
            return "#" + "".join(f"{int(a + (b - a) * f + 0.5):02x}" for a, b in zip(c0, c1))
    return "#" + "".join(f"{c:02x}" for c in STOPS[-1][1])


class Plate:
    """The values of one plate's wells and the cursor of the next well to fill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, float] = {}
        self._next = 0

    def set(self, well: str, value: float) -> None:
        """Give ``well`` its ``value``.

        :param well: a well name such as ``"B7"``.
        :param value: its value (0..1 is the colour scale)."""
        if well not in WELLS:
            raise ValueError(f"{well!r} is not a well of a 96-well plate (A1..H12)")
        with self._lock:
            self._values[well] = float(value)

    def fill_next(self, value: float) -> str:
        """Give the next well in fill order ``value``, advance the cursor (wrapping after H12).

        :param value: the value.
        :returns: the well filled."""
        with self._lock:
            well = WELLS[self._next]
            self._values[well] = float(value)
            self._next = (self._next + 1) % len(WELLS)
            return well

    def clear(self) -> None:
        """Empty every well and put the cursor back on A1."""
        with self._lock:
            self._values.clear()
            self._next = 0

    def snapshot(self) -> Dict[str, object]:
        """``{"wells": {name: value}, "next": name}``, a copy safe to send."""
        with self._lock:
            return {"wells": dict(self._values), "next": WELLS[self._next]}

    def rows(self) -> List[List[Tuple[str, Optional[float]]]]:
        """The plate as 8 rows of 12 ``(well, value or None)`` pairs, for drawing."""
        with self._lock:
            return [[(f"{row}{col}", self._values.get(f"{row}{col}")) for col in COLUMNS] for row in ROWS]
