"""``GET /ivoryos/<plugin>/history/<stream>`` (JSON) and ``.../<stream>.csv``: recorded values,
``?since=&until=`` (epoch seconds, ISO 8601, or negative seconds from now: ``since=-600``),
``?run=<IvoryOS run id>``, ``?max_points=`` (1 to 100000, default 1000: more values than that come
back downsampled per time bucket to min, max and mean). The JSON also names ``last_run``: the newest
IvoryOS run of this machine with recorded values of the stream (None before any).

A database that does not answer within :data:`~.reader.READ_TIMEOUT_S` seconds (or cannot be
reached) is a 503 ``{"error": ...}`` naming it (passwords masked) and the fix, with ``Retry-After``.
The CSV is safe to open in a spreadsheet: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return is prefixed with ``'`` (OWASP's advice against formula injection); numbers
the stream returned stay numbers. The file's name in ``Content-Disposition`` is an ASCII fallback plus
``filename*`` in UTF-8 (RFC 6266 and 5987), whatever the series is called."""
from __future__ import annotations

import csv
import datetime
import io
import json
import re
import time
import unicodedata
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from flask import Response, jsonify, request

from ..replies import error_response
from .errors import HistoryUnavailable, mask_url, scrub
from .reader import READ_TIMEOUT_S

if TYPE_CHECKING:
    from ...core.plugin import Plugin
    from .store import HistoryStore

__all__ = ["history", "parse_query", "cell", "attachment", "MAX_POINTS", "FORMULA_START"]

MAX_POINTS = 100_000


def _time(text: str, now: float) -> float:
    """An instant from a query parameter: epoch seconds, negative seconds from now, or ISO 8601."""
    try:
        value = float(text)
    except ValueError:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # a local time, as a person types it
        return parsed.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return now + value if value < 0 else value


def parse_query(args: Any) -> Tuple[Dict[str, Any], Dict[str, List[str]]]:
    """The query's parameters, and ``{field: [problems]}`` for the ones that are wrong.

    :param args: ``request.args``."""
    now = time.time()
    errors: Dict[str, List[str]] = {}
    out: Dict[str, Any] = {"since": None, "until": None, "run": None, "max_points": 1000}
    for key in ("since", "until"):
        text = args.get(key)
        if text not in (None, ""):
            try:
                out[key] = _time(text, now)
            except ValueError:
                errors[key] = [f"{text!r} is not a time: use epoch seconds, negative seconds from now "
                               "(-600 = ten minutes ago) or ISO 8601 (2026-12-02T10:00:00)"]
    for key, low, high in (("run", 0, 2 ** 31 - 1), ("max_points", 1, MAX_POINTS)):
        text = args.get(key)
        if text not in (None, ""):
            try:
                number = int(text)
                if not low <= number <= high:
                    raise ValueError
                out[key] = number
            except ValueError:
                errors[key] = [f"{text!r} must be a whole number from {low} to {high}"]
    unknown = sorted(set(args) - {"since", "until", "run", "max_points"})
    if unknown:
        errors["_"] = [f"unknown parameter(s) {', '.join(unknown)}; use since, until, run, max_points"]
    if not errors and out["since"] is not None and out["until"] is not None and out["since"] > out["until"]:
        errors["until"] = ["must not be before since"]
    return out, errors


def history(plugin: "Plugin", name: str, open_store: Callable[[], "HistoryStore"]) -> Response:
    """Serve one recorded series as JSON or CSV.

    :param plugin: the plugin.
    :param name: the stream, with ``.csv`` for CSV.
    :param open_store: the app's history store (opened on first use: a refused query opens nothing)."""
    as_csv = name.endswith(".csv")
    stream = name[:-4] if as_csv else name
    query, errors = parse_query(request.args)
    if errors:
        return error_response(400, f"Plugin {plugin.name!r}: bad history query for {stream!r}.", errors=errors)
    store = open_store()
    deadline = store.clock.monotonic() + READ_TIMEOUT_S  # one bound for the whole request
    try:
        found = store.query(plugin.name, stream, since=query["since"], until=query["until"], run=query["run"],
                            max_points=query["max_points"], deadline=deadline)
        last_run = store.last_run(plugin.name, stream, deadline=deadline)
    except HistoryUnavailable:
        raise  # a 503 with Retry-After, from runtime/errors.py's table
    except Exception as exc:
        message = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", store.url)
        return error_response(503, f"Plugin {plugin.name!r}: the history database {mask_url(store.url)} cannot be "
                                   f"read ({message}); see the server's log.")
    if as_csv:
        spec = plugin.declarations.streams.get(stream)
        key = spec.record if spec is not None and isinstance(spec.record, str) else "value"
        return _csv(plugin.name, stream, found["points"], found["downsampled"], key)
    return jsonify({"plugin": plugin.name, "stream": stream, **query, **found, "last_run": last_run})


def _csv(plugin: str, stream: str, points: List[Dict[str, Any]], downsampled: bool, key: str = "value") -> Response:
    """The CSV of a series. A dict value gives its ``key`` (the stream's ``record="grams"``, else
    ``"value"``) in the ``value`` column and the whole reading as JSON in ``data``."""
    out = io.StringIO()
    writer = csv.writer(out)
    if downsampled:  # every cell is a number or a time the framework wrote
        writer.writerow(["t", "time", "min", "max", "mean", "n"])
        for p in points:
            writer.writerow([f"{p['t']:.6f}", _iso(p["t"]), p["min"], p["max"], p["mean"], p["n"]])
    else:
        writer.writerow(["t", "time", "value", "run", "step", "data"])
        for p in points:
            value = p["value"]
            whole = isinstance(value, dict)
            writer.writerow([f"{p['t']:.6f}", _iso(p["t"]), cell(value.get(key) if whole else value),
                             "" if p["run"] is None else p["run"], "" if p["step"] is None else p["step"],
                             cell(value) if whole else ""])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = attachment(f"{plugin}-{stream}.csv")
    return response


#: what a spreadsheet reads as the start of a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A recorded value as a CSV cell: a number stays a number (a negative one too: the stream
    returned a number, not text); text, and anything else as its JSON, is prefixed with ``'`` when it
    starts as a formula does (:data:`FORMULA_START`), so a spreadsheet shows it instead of running it.

    :param value: the value as stored (JSON)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value for downloading ``filename``, whatever it holds (RFC 6266):
    ``filename="..."`` in plain ASCII (every other character an ``_``) and, when that differs,
    ``filename*=UTF-8''...`` with the real name percent-encoded (RFC 5987). Control characters
    (a NUL, CR, LF) never reach a header.

    :param filename: the file's name (a stream's name is whatever its URL said).

    Example::

        attachment('balance-"weight".csv')
        # attachment; filename="balance-_weight_.csv"; filename*=UTF-8''balance-%22weight%22.csv"""
    name = re.sub(r"[\x00-\x1f\x7f]", "_", filename)
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", fallback).strip(".") or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe="!#$&+-.^_`|~")
    return value


def _iso(t: Optional[float]) -> str:
    return "" if t is None else datetime.datetime.fromtimestamp(t).isoformat(timespec="milliseconds")
