"""CSRF on unsafe methods, for :mod:`.security`'s guard: Flask-WTF's token, each one verified once per
session until it expires, and the token a page's ``<meta>`` carries, signed once a minute."""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

from flask import current_app, g, request, session
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf

from .extension import Extension, extension_of
from .libraries import csrf_expiry, remember_csrf_token

__all__ = ["check_csrf", "csrf_problem", "page_csrf_token", "page_csrf_token_of"]


def check_csrf() -> Optional[str]:
    """None when the request carries a valid Flask-WTF CSRF token, else the reason."""
    app, req = current_app._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
    return csrf_problem(app, req, extension_of(app))


def csrf_problem(app: Any, req: Any, ext: Extension) -> Optional[str]:
    """:func:`check_csrf` with the app, the request and the framework's state at hand."""
    environ = req.environ  # the X-CSRFToken and X-CSRF-Token headers, as req.headers reads them
    token = (environ.get("HTTP_X_CSRFTOKEN") or environ.get("HTTP_X_CSRF_TOKEN")
             or (req.form.get("csrf_token") if req.mimetype in (
                 "application/x-www-form-urlencoded", "multipart/form-data") else None))
    raw, secret = session.get(app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")), _csrf_secret(app)
    key = (token, raw, secret) if isinstance(token, str) and token and isinstance(raw, str) and raw and secret else None
    valid = ext.csrf_valid  # a token verified once is not verified again until it expires
    if key is not None and valid.get(key, 0.0) > time.time():
        return None  # this very token was verified for this session, and has not expired since
    try:
        validate_csrf(token)
    except ValidationError as exc:
        return str(exc)
    if key is not None:
        try:
            _remember(valid, key, _csrf_expiry(str(token)))
        except Exception:  # a Flask-WTF that signs differently: verified, not cached (verified again next time)
            pass
    return None


def _csrf_secret(app: Any = None) -> str:
    app = current_app if app is None else app
    return str(app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key or "")


def _csrf_expiry(token: str) -> float:
    return csrf_expiry(token, _csrf_secret(), float(current_app.config.get("WTF_CSRF_TIME_LIMIT", 3600) or 0))


def _remember(cache: Dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) > 4096:  # bounded: old sessions' entries go
        cache.clear()
    cache[key] = value


def page_csrf_token() -> str:
    """The CSRF token for a page's ``<meta>``: Flask-WTF's ``generate_csrf()``, whose signed token is
    reused for a minute for the same session (signing costs an HMAC per page)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return page_csrf_token_of(app, extension_of(app))


def page_csrf_token_of(app: Any, ext: Extension) -> str:
    """:func:`page_csrf_token` with the app and the framework's state at hand."""
    field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    here = g._get_current_object()
    if field in here:  # made already in this request (IvoryOS's before_request does): what generate_csrf() returns
        return str(here.get(field))
    raw, secret = session.get(field), _csrf_secret(app)
    if not (isinstance(raw, str) and raw and secret):
        return str(generate_csrf())
    signed = ext.csrf_signed
    found, now = signed.get((raw, secret)), time.time()
    if found is None or now - found[1] > 60.0:
        found = (str(generate_csrf()), now)
        _remember(signed, (raw, secret), found)
    if not remember_csrf_token(field, found[0], secret, here):  # what generate_csrf() gives for the rest of the request
        return str(generate_csrf())
    return found[0]
