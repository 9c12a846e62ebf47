"""The per-bucket aggregates (per second, minute and hour) the writer keeps beside the samples:
computed from a batch in Python, added to the rollups table by one upsert per dialect, and merged
back into at most ``max_points`` points when a long range is read. Pure logic and statements: no
connection is made here."""
from __future__ import annotations

import functools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import func

from .schema import ROLLUP_COLUMNS, ROLLUP_WIDTHS, Row, rollups

__all__ = ["aggregates", "upsert", "sqlite_upsert", "points"]


def aggregates(batch: Sequence[Row]) -> List[Tuple[Any, ...]]:
    """A batch's per-bucket aggregates, as rows of :data:`~.schema.ROLLUP_COLUMNS`: one pass over the
    samples into seconds, then the seconds into minutes and hours.

    :param batch: queued samples (tuples of :data:`~.schema.ROW`)."""
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


@functools.lru_cache(maxsize=None)
def sqlite_upsert() -> str:
    """The SQLite upsert as SQL for the driver, its parameters in :data:`~.schema.ROLLUP_COLUMNS` order."""
    from sqlalchemy.dialects import sqlite

    compiled = upsert("sqlite").compile(dialect=sqlite.dialect())
    if tuple(compiled.positiontup or ()) != ROLLUP_COLUMNS:
        raise RuntimeError(f"the rollup upsert's parameters are {compiled.positiontup}, not {ROLLUP_COLUMNS}")
    return str(compiled)


@functools.lru_cache(maxsize=None)
def upsert(dialect: str) -> Any:
    """The statement that adds aggregates to the rollups (built once per dialect: building it costs
    more than running it), or None for a database without ``ON CONFLICT`` upserts here.

    :param dialect: SQLAlchemy's name of the dialect (``"postgresql"``, ``"sqlite"``)."""
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


def points(buckets: Any, max_points: int) -> List[Dict[str, Any]]:
    """Buckets ``(b, first t, last t, min, max, sum, numeric count, count)`` as points, at most
    ``max_points`` (float rounding can make one bucket too many: the last two are then merged).

    :param buckets: the rows of a ``GROUP BY`` bucket query, in time order.
    :param max_points: how many points at most."""
    found = [{"t": (t0 + t1) / 2, "t_first": t0, "t_last": t1, "min": _num(lo), "max": _num(hi),
              "mean": float(total) / nums if nums else None, "n": int(n), "_sum": _num(total), "_nums": int(nums or 0)}
             for _, t0, t1, lo, hi, total, nums, n in buckets]
    while len(found) > max_points:
        b = found.pop()
        a = found[-1]
        total = (a["_sum"] or 0.0) + (b["_sum"] or 0.0)
        nums = a["_nums"] + b["_nums"]
        a.update(t_last=b["t_last"], t=(a["t_first"] + b["t_last"]) / 2, n=a["n"] + b["n"],
                 min=_opt(min, a["min"], b["min"]), max=_opt(max, a["max"], b["max"]),
                 mean=total / nums if nums else None, _sum=total, _nums=nums)
    for point in found:
        del point["_sum"], point["_nums"]
    return found


def _num(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _opt(pick: Any, a: Optional[float], b: Optional[float]) -> Optional[float]:
    values = [v for v in (a, b) if v is not None]
    return float(pick(values)) if values else None
