"""What the history says when its database fails: :class:`HistoryUnavailable` (a 503 for a request),
and database URLs and drivers' errors with every password masked (SQLAlchemy's own
``URL.render_as_string(hide_password=True)``, plus the query parameters that hold a password)."""
from __future__ import annotations

import re
from typing import List

from sqlalchemy.engine import make_url

__all__ = ["SECRET_PARAMETERS", "HistoryUnavailable", "mask_url", "scrub", "describe"]

#: query-string parameters of a URL that hold a password (masked like the URL's own password)
SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword"})


class HistoryUnavailable(RuntimeError):
    """The history database did not answer in time or cannot be reached (a 503 for a request).

    :param message: what happened, naming the database with its passwords masked.
    :param reason: the same without the database's name."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def mask_url(url: str) -> str:
    """``url`` for a log or a page: its password and every query parameter named in
    :data:`SECRET_PARAMETERS` shown as ``***`` (SQLAlchemy's own rendering).

    :param url: a SQLAlchemy URL (one that does not parse is masked by pattern).

    Example::

        mask_url("postgresql+psycopg://lab:pw@db/history?sslpassword=k")
        # 'postgresql+psycopg://lab:***@db/history?sslpassword=***'"""
    try:
        parsed = make_url(url)
    except Exception:
        return _mask_pattern(url)
    query = {key: "***" if key.lower() in SECRET_PARAMETERS else value for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _mask_pattern(text: str) -> str:
    """Passwords masked in text that is not a URL SQLAlchemy parses (an error message, a typo)."""
    text = re.sub(r"(://[^/:@\s]*:)[^@\s]*@", r"\1***@", text)
    names = "|".join(sorted(SECRET_PARAMETERS))
    return re.sub(rf"(?i)\b({names})(\s*=\s*)('[^']*'|[^&\s]*)", r"\1\2***", text)


def _secrets(url: str) -> List[str]:
    """The secret values of a URL (its password, the values of its password parameters)."""
    try:
        parsed = make_url(url)
    except Exception:
        return []
    found = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in SECRET_PARAMETERS:
            found.extend([value] if isinstance(value, str) else list(value))
    return [str(s) for s in found if s]


def scrub(message: str, url: str) -> str:
    """``message`` (a driver's error, say) with the secrets of ``url`` and anything that looks like a
    password in a URL or a connection string masked.

    :param message: the text.
    :param url: the database URL whose secrets must not show."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return _mask_pattern(message)


def describe(exc: BaseException, url: str) -> str:
    """An exception in one line, for a log, a page or a gap: its type and first line, with the
    secrets of ``url`` masked.

    :param exc: the exception.
    :param url: the database URL whose secrets must not show."""
    if isinstance(exc, HistoryUnavailable):
        return exc.reason
    first = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(f"{type(exc).__name__}: {first}", url)
