"""Untrusted JSON (request bodies, Socket.IO payloads, settings values) and the JSON we answer with.

Three things standard JSON parsers let through are refused here: nesting deeper than
:data:`MAX_DEPTH` (Python's parser raises ``RecursionError`` near 1,000 levels: a 2 kB body was a
500, a Socket.IO event went unanswered), non-finite numbers (``NaN``, ``Infinity``, ``1e999``, or
the strings ``"NaN"``/``"inf"`` that pydantic turns into floats), which are not JSON: a browser's
``JSON.parse`` rejects a reply holding them, and lone surrogates (``"\\ud800"``), which JSON's
escapes allow but no UTF-8 file, log or reply can hold (writing the settings file was a 500).
Replies never carry non-finite numbers: :func:`finite` turns them into ``null``, as
``JSON.stringify`` does. Pure logic, no Flask.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, List, Optional, Tuple

from pydantic import BaseModel

__all__ = ["MAX_DEPTH", "PayloadError", "Unparsed", "guarded_packet_class", "parse_json", "check_nesting",
           "problem", "finite", "finite_json", "dumps_finite"]

#: the deepest nesting accepted in any JSON body, socket payload or setting value
MAX_DEPTH = 64
NOT_FINITE = "is not a finite number (NaN and Infinity are not JSON); send a finite number"
TOO_DEEP = f"the JSON is nested deeper than {MAX_DEPTH} levels; send a flatter value"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_text(text: str) -> Optional[str]:
    """Why ``text`` cannot be stored or sent (it holds a lone surrogate), or None."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (f"holds a lone surrogate ({ascii(found.group())[1:-1]}), which is not text (UTF-8 cannot encode it); "
            "send valid Unicode text")


class Unparsed:
    """What stands for a Socket.IO event's arguments that could not be parsed (nested too deep for
    Python's parser): the plugin's namespace answers it with a 400 (:func:`problem` names it).

    :param reason: why, for the answer.
    :param ack: whether the client asked for an acknowledgement (else it gets an ``error`` event)."""

    def __init__(self, reason: str, ack: bool) -> None:
        self.reason, self.ack = reason, ack

    def __repr__(self) -> str:
        return f"<unparsed payload: {self.reason}>"


def guarded_packet_class(base: Any, namespaces: Any) -> Any:
    """A subclass of python-socketio's packet class ``base`` whose decoding survives an event
    nested too deep for Python's parser (it raised ``RecursionError``: the event was dropped, its
    ack never came) in one of ``namespaces``: the event arrives with one :class:`Unparsed` argument.

    :param base: the server's ``packet_class`` (``socketio.packet.Packet``).
    :param namespaces: the set of namespaces to guard (kept, so more can be added later)."""

    class GuardedPacket(base):  # type: ignore[misc]
        guarded_namespaces = namespaces

        def decode(self, encoded_packet: Any) -> Any:
            try:
                return super().decode(encoded_packet)
            except RecursionError:
                event = _event_name(encoded_packet) if self.namespace in self.guarded_namespaces else None
                if event is None or self.packet_type != 2:  # socketio.packet.EVENT
                    raise
                self.data = [event, Unparsed(TOO_DEEP, ack=self.id is not None)]
                return 0

    return GuardedPacket


def _event_name(encoded: Any) -> Optional[str]:
    """The event name of an encoded Socket.IO event packet (``2/ns,7["name",...``), or None."""
    if not isinstance(encoded, str):
        return None
    start = encoded.find("[")
    if start == -1:
        return None
    try:
        name, _ = json.JSONDecoder().raw_decode(encoded[start + 1:].lstrip())
    except (ValueError, RecursionError):
        return None
    return name if isinstance(name, str) else None


class PayloadError(ValueError):
    """A body or payload that is refused (a 400): nested too deep, a non-finite number, a lone
    surrogate, not JSON.

    :param message: what is wrong and the fix (without the plugin's name: the caller adds it).
    :param where: the path of the bad value (``"tags[0]"``, ``"a.b"``), or ``""``."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    @property
    def field(self) -> str:
        """The top-level field holding the bad value (``"tags"`` for ``tags[0]``), or ``""``."""
        return re.split(r"[.\[]", self.where, maxsplit=1)[0]


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
        raise PayloadError(TOO_DEEP) from None
    except PayloadError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PayloadError(f"the body is not JSON ({exc})") from None
    found = _find(value, MAX_DEPTH, finite)
    if found is not None:
        where, message = found
        raise PayloadError(message, where=where)
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
    """Why ``value`` (a parsed payload, validated arguments, a settings model) is refused, or None:
    nested too deep, a non-finite number, a lone surrogate in a string or a key (each named by
    where it is, ``tags[0]``), or a Socket.IO payload that could not be parsed (:class:`Unparsed`).

    Walks without recursion, so any depth is measured safely.

    :param value: the value.
    :param max_depth: the deepest nesting allowed.
    :param finite: refuse NaN and Infinity too (False: only the nesting and the text)."""
    found = _find(value, max_depth, finite)
    return None if found is None else found[1]


def _find(value: Any, max_depth: int, finite: bool) -> Optional[Tuple[str, str]]:
    """``(where, why)`` of the first thing :func:`problem` refuses in ``value``, or None."""
    stack: List[Tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, float):
            if finite and not math.isfinite(item):
                return where, f"{where or 'the value'} {NOT_FINITE}"
            continue
        if isinstance(item, str):
            why = _not_text(item)
            if why is not None:
                return where, f"{where or 'the value'} {why}"
            continue
        if isinstance(item, (int, bool)) or item is None:
            continue
        if isinstance(item, Unparsed):
            return where, item.reason
        children = _children(item)
        if children is None:
            continue
        if depth >= max_depth:
            return where, f"the JSON is nested deeper than {max_depth} levels; send a flatter value"
        if isinstance(item, dict):
            for key in item:
                why = _not_text(key) if isinstance(key, str) else None
                if why is not None:
                    return where, f"a key of {where or 'the object'} ({ascii(key)}) {why}"
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


#: the attribute a reply written by the framework's own JSON writer carries (``allow_nan=False``: its
#: body holds no NaN or Infinity), so the response hook does not read the body again to look for them
FINITE_REPLY = "_ivoryos_plugin_finite"


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
