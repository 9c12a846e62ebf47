"""The one way the framework answers an error in JSON: ``{"error": sentence, ...}`` with a status,
and the one way it tells whether a request wants JSON or HTML."""
from __future__ import annotations

from typing import Any, Optional

from flask import Response, jsonify, request

__all__ = ["error_response", "prefers_json", "wants_json"]

#: what a reply can be, HTML first: an ``Accept`` that ranks both alike (``*/*``) gets HTML
_KINDS = ("text/html", "application/json")
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def error_response(status: int, message: str, **extra: Any) -> Response:
    """A JSON error reply: ``{"error": message, **extra}`` with ``status``.

    :param status: the HTTP status.
    :param message: a sentence for a person: what is wrong and the fix.
    :param extra: more JSON fields (``errors={field: [messages]}``, ``busy=True``...)."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def prefers_json(req: Any = None) -> bool:
    """Whether a request's ``Accept`` header ranks JSON above HTML (``*/*`` and no header: HTML).

    :param req: a Flask or Werkzeug request (default: the current one); a WSGI middleware passes
        ``werkzeug.wrappers.Request(environ)``."""
    found = (request if req is None else req).accept_mimetypes.best_match(_KINDS)
    return bool(found == "application/json")


def wants_json(req: Optional[Any] = None) -> bool:
    """Whether the caller is a program (a JSON reply) rather than a browser page (HTML, a redirect): a
    method other than GET, HEAD and OPTIONS, a JSON body, a path ending in ``.json``, or an ``Accept``
    that prefers JSON (:func:`prefers_json`).

    :param req: a Flask request (default: the current one)."""
    req = request if req is None else req
    if req.method not in _SAFE or req.is_json or req.path.endswith(".json"):
        return True
    return prefers_json(req)
