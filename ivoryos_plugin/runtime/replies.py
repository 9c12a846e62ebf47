"""The one way the framework answers an error in JSON: ``{"error": sentence, ...}`` with a status."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def error_response(status: int, message: str, **extra: Any) -> Response:
    """A JSON error reply: ``{"error": message, **extra}`` with ``status``.

    :param status: the HTTP status.
    :param message: a sentence for a person: what is wrong and the fix.
    :param extra: more JSON fields (``errors={field: [messages]}``, ``busy=True``...)."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response
