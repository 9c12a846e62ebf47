"""Reading the history back: one stream's values over a range, downsampled by the database to at
most ``max_points`` buckets (min, max, mean); a long range from the per-second/minute/hour
aggregates, a short one or one run's values from the samples themselves. Functions of an open
connection: the store bounds them in time."""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .rollups import points
from .schema import ROLLUP_WIDTHS, rollups, samples

__all__ = ["read_series", "from_samples", "from_rollups", "newest_run", "READ_TIMEOUT_S"]

#: a request's reads (writing what is queued, the query, the newest run) end by then: a 503 after it
READ_TIMEOUT_S = 3.0


def read_series(conn: Connection, plugin: str, stream: str, *, machine: str, since: Optional[float],
                until: Optional[float], run: Optional[int], max_points: int) -> Dict[str, Any]:
    """``{"count", "downsampled", "points"}`` of one stream: from the aggregates when they serve the
    range (not for one run: a run's values are in the samples only), else from the samples.

    :param conn: a connection.
    :param plugin: the plugin.
    :param stream: the stream.
    :param machine: this machine's name, the ``host`` column (IvoryOS numbers runs per machine).
    :param since: the earliest time (epoch seconds), or None.
    :param until: the latest time, or None.
    :param run: only values taken during this IvoryOS run of ``machine``.
    :param max_points: at most this many points."""
    if run is None and conn.dialect.name in ("sqlite", "postgresql"):
        found = from_rollups(conn, plugin, stream, since, until, max_points)
        if found is not None:
            return found
    return from_samples(conn, plugin, stream, since, until, run, max_points, machine)


def from_samples(conn: Connection, plugin: str, stream: str, since: Optional[float], until: Optional[float],
                 run: Optional[int], max_points: int, machine: str) -> Dict[str, Any]:
    """The samples themselves when at most ``max_points``, else grouped in ``max_points`` buckets.

    :param conn: a connection.
    :param plugin: the plugin.
    :param stream: the stream.
    :param since: the earliest time, or None.
    :param until: the latest time, or None.
    :param run: one run's values of ``machine``, or None.
    :param max_points: at most this many points.
    :param machine: this machine's name (the ``host`` column)."""
    which = (samples.c.plugin == plugin) & (samples.c.stream == stream)
    if since is not None:
        which &= samples.c.t >= since
    if until is not None:
        which &= samples.c.t <= until
    if run is not None:  # IvoryOS numbers runs per machine: one machine's run, in a shared database
        which &= (samples.c.run_id == run) & (samples.c.host == machine)
    count, first, last = conn.execute(select(func.count(), func.min(samples.c.t), func.max(samples.c.t))
                                      .where(which)).one()
    if count <= max_points:
        rows = conn.execute(select(samples.c.t, samples.c.value, samples.c.run_id, samples.c.step)
                            .where(which).order_by(samples.c.t, samples.c.id)).all()
        found = [{"t": t, "value": json.loads(v), "run": r, "step": st} for t, v, r, st in rows]
        return {"count": count, "downsampled": False, "points": found}
    width = max((last - first) / max_points, 1e-9)
    bucket = func.floor((samples.c.t - first) / width)
    buckets = conn.execute(select(bucket.label("b"), func.min(samples.c.t), func.max(samples.c.t),
                                  func.min(samples.c.num), func.max(samples.c.num), func.sum(samples.c.num),
                                  func.count(samples.c.num), func.count())
                           .where(which).group_by(bucket).order_by(bucket)).all()
    return {"count": count, "downsampled": True, "points": points(buckets, max_points)}


def from_rollups(conn: Any, plugin: str, stream: str, since: Optional[float], until: Optional[float],
                 max_points: int) -> Optional[Dict[str, Any]]:
    """Downsample from the aggregates when the range holds more than ``max_points`` samples and
    spans more than ``max_points`` seconds; None to read the samples instead (a bucket at the edge of
    ``since``/``until`` may reach up to one aggregate's width beyond it).

    :param conn: a connection.
    :param plugin: the plugin.
    :param stream: the stream.
    :param since: the earliest time, or None.
    :param until: the latest time, or None.
    :param max_points: at most this many points."""
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
    found = points(buckets, max_points)
    return {"count": int(sum(p["n"] for p in found)), "downsampled": True, "points": found}


def newest_run(conn: Connection, plugin: str, stream: str, machine: str) -> Optional[int]:
    """The newest IvoryOS run of ``machine`` with recorded values of ``stream``, or None.

    :param conn: a connection.
    :param plugin: the plugin.
    :param stream: the stream.
    :param machine: this machine's name (the ``host`` column)."""
    found = conn.execute(select(func.max(samples.c.run_id)).where(
        (samples.c.plugin == plugin) & (samples.c.stream == stream) & (samples.c.host == machine))).scalar()
    return None if found is None else int(found)
