"""Untrusted JSON (request bodies, Socket.IO payloads, settings values) and the JSON we answer with.

Two things standard JSON parsers let through are refused here: nesting deeper than
:data:`MAX_DEPTH` (Python's parser raises ``RecursionError`` near 1,000 levels: a 2 kB body was a
500) and non-finite numbers (``NaN``, ``Infinity``, ``1e999``, or the strings ``"NaN"``/``"inf"``
that pydantic turns into floats), which are not JSON: a browser's ``JSON.parse`` rejects a reply
holding them. Replies never carry them: :func:`finite` turns them into ``null``, as
``JSON.stringify`` does. Pure logic, no Flask.
"""
from __future__ import annotations

import json
import math
from typing import Any, List, Optional, Tuple

from pydantic import BaseModel

__all__ = ["MAX_DEPTH", "PayloadError", "parse_json", "check_nesting", "problem", "finite", "finite_json",
           "dumps_finite"]

#: the deepest nesting accepted in any JSON body, socket payload or setting value
MAX_DEPTH = 64
NOT_FINITE = "is not a finite number (NaN and Infinity are not JSON); send a finite number"


class PayloadError(ValueError):
    """A body or payload that is refused (a 400): nested too deep, a non-finite number, not JSON.

    :param message: what is wrong and the fix (without the plugin's name: the caller adds it)."""


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"{name} {NOT_FINITE}")


def parse_json(raw: bytes, finite: bool = True) -> Any:
    """Parse a JSON body, refusing what :func:`problem` refuses.

    :param raw: the body.
    :param finite: refuse non-finite numbers here; False leaves them to a per-field check after
        validation (so the 400 names the field holding them).
    :raises PayloadError: not JSON, nested deeper than :data:`MAX_DEPTH`, or a non-finite number."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant) if finite else json.loads(raw)
    except RecursionError:
        raise PayloadError(f"the JSON is nested deeper than {MAX_DEPTH} levels; send a flatter value") from None
    except PayloadError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PayloadError(f"the body is not JSON ({exc})") from None
    found = problem(value, finite=finite)
    if found is not None:
        raise PayloadError(found)
    return value


def check_nesting(raw: bytes) -> None:
    """Refuse a body nested deeper than :data:`MAX_DEPTH` before another parser reads it (pydantic's
    and Python's give up with unclear errors, or a ``RecursionError``). A body with too few brackets
    to be that deep is not parsed at all.

    :param raw: the body.
    :raises PayloadError: nested too deep, or not JSON."""
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        parse_json(raw, finite=False)


def _children(value: Any) -> Optional[List[Any]]:
    if isinstance(value, dict):
        return list(value.keys()) + list(value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    if isinstance(value, BaseModel):
        return [getattr(value, name, None) for name in type(value).model_fields]
    return None


def problem(value: Any, max_depth: int = MAX_DEPTH, finite: bool = True) -> Optional[str]:
    """Why ``value`` (a parsed payload, validated arguments, a settings model) is refused, or None.

    Walks without recursion, so any depth is measured safely.

    :param value: the value.
    :param max_depth: the deepest nesting allowed.
    :param finite: refuse NaN and Infinity too (False: only the nesting)."""
    stack: List[Tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, float):
            if finite and not math.isfinite(item):
                return f"{where or 'the value'} {NOT_FINITE}"
            continue
        if isinstance(item, (str, int, bool)) or item is None:
            continue
        children = _children(item)
        if children is None:
            continue
        if depth >= max_depth:
            return f"the JSON is nested deeper than {max_depth} levels; send a flatter value"
        if isinstance(item, dict):
            stack.extend((v, depth + 1, f"{where}.{k}" if where else str(k)) for k, v in item.items())
            stack.extend((k, depth + 1, where) for k in item if isinstance(k, float))
        elif isinstance(item, BaseModel):
            stack.extend((getattr(item, name, None), depth + 1, f"{where}.{name}" if where else name)
                         for name in type(item).model_fields)
        else:
            stack.extend((v, depth + 1, f"{where}[{i}]" if where else f"[{i}]") for i, v in enumerate(children))
    return None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (a copy only when there is one).

    :param value: a JSON-able value (dicts, lists, tuples, numbers, strings)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except ValueError:
        pass
    except (TypeError, RecursionError):
        return value  # not plain JSON: left to the serialiser that knows its types
    return _replace(value)


def finite_json(value: Any) -> Tuple[Any, str]:
    """``value`` as :func:`finite` makes it, and its JSON text, from one encoding when it is plain
    JSON (what a stream sends and records). A value JSON cannot hold (a ``datetime``, a model) is
    written as its ``repr``; a non-finite float as ``null``.

    :param value: a value to send and record."""
    try:
        return value, json.dumps(value, allow_nan=False)
    except ValueError:
        value = _replace(value)
        return value, json.dumps(value, allow_nan=False, default=repr)
    except (TypeError, RecursionError):
        return value, json.dumps(_replace(value), allow_nan=False, default=repr)


def _replace(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _replace(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(v) for v in value]
    return value


def dumps_finite(text: str) -> Optional[str]:
    """A JSON text with its ``NaN``/``Infinity`` tokens made ``null``, or None when it has none.

    :param text: a reply body that may hold them (Python's ``json.dumps`` writes them)."""
    if "NaN" not in text and "Infinity" not in text:
        return None
    try:
        json.loads(text, parse_constant=_refuse_constant)
        return None  # the words were inside strings
    except PayloadError:
        pass
    except ValueError:
        return None
    try:
        return json.dumps(_replace(json.loads(text)), separators=(",", ":"))
    except (ValueError, RecursionError):
        return None
