"""IvoryOS's session cookie sent again only when the session changed (``ivoryos_plugin.run``).

IvoryOS's ``before_request`` sets ``session.permanent = False`` on every request (verified on 1.7.2),
which marks the session modified, so Flask's signed-cookie sessions sign the unchanged session again
and send it in a ``Set-Cookie`` with every response. That costs each request a serialization,
a compression, an HMAC and a header (about a fifth of the CPU of IvoryOS's status poll), and it
loses updates: a browser's status poll that started before a form post ended answers later with
the session as it was, and its ``Set-Cookie`` undoes the post's change (the draft chosen, the
CSRF token minted).

:class:`ChangedOnlySessions` is Flask's :class:`~flask.sessions.SecureCookieSessionInterface` that
compares the session's serialized content at the end of a request with what the cookie held, and
sends nothing when they are the same (a change inside a nested value counts: the content is
compared, not the flag). Everything else is Flask's: a changed or new session, a cleared one (the
cookie deleted), a permanent one (its expiry rolls), and ``Vary: Cookie`` on a response that read the
session. An unchanged cookie is still sent again once it is :data:`REFRESH_S` old, so that a session
in use never reaches the app's ``PERMANENT_SESSION_LIFETIME``, the age past which Flask refuses a
cookie's signature.

Installed by :func:`keep_unchanged_sessions` only on an app whose session interface is Flask's own
(an app with Flask-Session, or one of its own, is left alone)."""
from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Callable, Optional

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.json.tag import TaggedJSONSerializer
from itsdangerous.encoding import base64_decode, bytes_to_int

__all__ = ["REFRESH_S", "ChangedOnlySessions", "keep_unchanged_sessions"]

#: how old (seconds) an unchanged session's cookie may get before it is sent again anyway
REFRESH_S = 3600.0
#: the serialized content of the session the current request opened (set while its cookie is loaded)
_OPENED: ContextVar[Optional[str]] = ContextVar("ivoryos_plugin_opened_session", default=None)
#: the attribute of a session that holds its cookie's content and signing time, as opened
_AS_OPENED = "_ivoryos_plugin_as_opened"


class _RememberingSerializer(TaggedJSONSerializer):
    """Flask's session serializer that remembers the last text it loaded (in this context): the
    content of the cookie just verified, with no second serialization to compare against."""

    def loads(self, value: str) -> Any:
        """Flask's ``loads``, the text remembered.

        :param value: the cookie's serialized content (its signature already verified)."""
        _OPENED.set(value)
        return super().loads(value)


class ChangedOnlySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions that send the cookie only when the session changed (or its
    cookie is :data:`REFRESH_S` old).

    :param clock: the time in seconds (``time.time``; a test moves it)."""

    serializer = _RememberingSerializer()

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def open_session(self, app: Flask, request: Request) -> Optional[SecureCookieSession]:
        """Flask's session, with the content and signing time of the cookie it came from.

        :param app: the app.
        :param request: the request."""
        _OPENED.set(None)
        session = super().open_session(app, request)
        opened = _OPENED.get()
        if session is not None and opened is not None:
            cookie = request.cookies.get(self.get_cookie_name(app), "")
            setattr(session, _AS_OPENED, (opened, _signed_at(cookie)))
        return session

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:  # type: ignore[override]  # (Flask's takes a SessionMixin)
        """Flask's ``save_session``, skipped when the session is the one its cookie holds.

        :param app: the app.
        :param session: the request's session.
        :param response: the response."""
        as_opened = getattr(session, _AS_OPENED, None)
        if (as_opened is not None and session.modified and not session.permanent and session
                and self.clock() - as_opened[1] < REFRESH_S and self.serializer.dumps(dict(session)) == as_opened[0]):
            if session.accessed:
                response.vary.add("Cookie")  # (what Flask adds whenever a response read the session)
            return
        super().save_session(app, session, response)


def _signed_at(cookie: str) -> float:
    """When an itsdangerous timed signature (``payload.timestamp.signature``) was made, or 0 when the
    cookie does not read as one (then it counts as old: sent again)."""
    try:
        return float(bytes_to_int(base64_decode(cookie.rsplit(".", 2)[-2])))
    except Exception:
        return 0.0


def keep_unchanged_sessions(app: Flask, clock: Callable[[], float] = time.time) -> bool:
    """Give ``app`` :class:`ChangedOnlySessions` when its session interface is Flask's own.

    :param app: IvoryOS's app.
    :param clock: the time in seconds.
    :returns: whether it was installed."""
    if type(app.session_interface) is not SecureCookieSessionInterface:
        return False
    app.session_interface = ChangedOnlySessions(clock)
    return True
