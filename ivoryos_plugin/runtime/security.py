"""Deny by default: login (or a bearer token) on every plugin route, CSRF on unsafe methods,
safe response headers, and the framework's scripts injected into every plugin page."""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any, Optional, cast
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, request, url_for
from markupsafe import Markup, escape

from .extension import current_extension
from .replies import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    :param name: the user's or the token's name.
    :param via: ``"session"`` (a logged-in browser) or ``"token"`` (``Authorization: Bearer``)."""

    name: str
    via: str


class AuthError(Exception):
    """A credential was presented and is wrong (bad token: 401; token for another plugin: 403)."""

    def __init__(self, status: int, message: str) -> None:
        """:param status: 401 or 403.
        :param message: what is wrong and the fix."""
        super().__init__(message)
        self.status = status


def authenticate(plugin: Optional[str], token: Optional[str] = None) -> Optional[Principal]:
    """The caller of the current request (or Socket.IO handshake), or None when anonymous.

    :param plugin: the plugin being called (token scopes are checked against it).
    :param token: a token given some other way (the Socket.IO auth payload).
    :raises AuthError: a token was presented and is invalid, revoked or out of scope."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    if token is not None and not isinstance(token, str):
        raise AuthError(401, f"the token must be a string, not {type(token).__name__}; send "
                             "{\"token\": \"ivp_...\"} as the Socket.IO auth payload.")
    if token:
        ext = current_extension()
        if ext.host_token and hmac.compare_digest(token.encode(), ext.host_token.encode()):
            return Principal(name="dev", via="token")
        record = ext.tokens.verify(token)
        if record is None:
            raise AuthError(401, "the bearer token is unknown or revoked; create one with "
                                 "'ivoryos-plugin token create NAME'.")
        if record.plugin and plugin and record.plugin != plugin:
            raise AuthError(403, f"token {record.name!r} is scoped to plugin {record.plugin!r}, not {plugin!r}.")
        return Principal(name=record.name, via="token")
    if not hasattr(current_app, "login_manager"):  # set by Flask-Login's init_app
        return None
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return Principal(name=str(current_user.get_id()), via="session")
    return None


def wants_json() -> bool:
    """Whether the caller is a program (JSON error) rather than a browser page (redirect)."""
    if request.method not in SAFE_METHODS or request.is_json or request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def login_url() -> str:
    """The login page: IvoryOS's ``auth.login`` (the standalone host serves the same endpoint)."""
    if "auth.login" in current_app.view_functions:
        return url_for("auth.login", next=request.full_path.rstrip("?"))
    return "/"


def deny(status: int = 401, message: str = "login required") -> Response:
    """Refuse an anonymous or badly authenticated request: JSON for programs, a redirect for pages.

    :param status: 401 or 403.
    :param message: the reason."""
    if status == 401 and not wants_json():
        if request.headers.get("Sec-Fetch-Dest") in ("iframe", "frame"):
            # a left-panel widget on IvoryOS's login page: redirected, the frame would show the login
            # page, with its own widget frame inside, nested again and again
            return Response('<!doctype html><meta charset="utf-8"><p style="font: 13px system-ui, sans-serif; '
                            'color: #6c757d; margin: 8px">Log in to see this panel.</p>', mimetype="text/html",
                            headers={"Cache-Control": "no-store"})
        return cast(Response, redirect(login_url()))
    return error_response(status, message, login=login_url())


def check_csrf() -> Optional[str]:
    """None when the request carries a valid Flask-WTF CSRF token, else the reason."""
    from flask_wtf.csrf import ValidationError, validate_csrf

    token = (request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
             or (request.form.get("csrf_token") if request.mimetype in (
                 "application/x-www-form-urlencoded", "multipart/form-data") else None))
    try:
        validate_csrf(token)
    except ValidationError as exc:
        return str(exc)
    return None


def guard_request(plugin: str, public: bool) -> Optional[Response]:
    """Before every request to a plugin: authenticate, refuse suspended plugins, check CSRF.

    :param plugin: the plugin's name.
    :param public: whether the endpoint was declared ``public=True``."""
    ext = current_extension()
    try:
        principal = authenticate(plugin)
    except AuthError as exc:
        return deny(exc.status, f"Plugin {plugin!r}: {exc}")
    if principal is None and not public:
        return deny(401, f"Plugin {plugin!r}: login required (log in to IvoryOS, or send "
                         "'Authorization: Bearer <token>').")
    if request.method not in SAFE_METHODS and principal is not None and principal.via != "token":
        reason = check_csrf()
        if reason is not None:
            return error_response(400, f"Plugin {plugin!r}: {reason} Send the page's "
                                       "<meta name=\"csrf-token\"> value as the X-CSRFToken header "
                                       "(ivoryos_plugin.js does) or a csrf_token form field.")
    runtime = ext.runtimes.get(plugin)
    if runtime is not None and runtime.state != "running":
        ext.ensure_started()
    if runtime is not None and runtime.state != "running":
        return error_response(503, f"Plugin {plugin!r} is {runtime.state}: {runtime.reason}",
                              state=runtime.state, reason=runtime.reason)
    return None


def origin_ok(origin: Optional[str], host: str, allowed: Any = None) -> bool:
    """Whether a Socket.IO client from ``origin`` may connect to the server at ``host``.

    No Origin (not a browser: browsers always send one on WebSocket and cross-site requests) or
    the server's own host is fine; any other origin must be listed in ``allowed``.

    :param origin: the request's ``Origin`` header, e.g. ``"http://127.0.0.1:8000"``.
    :param host: the request's ``Host`` header.
    :param allowed: ``app.config["IVORYOS_PLUGIN_ALLOWED_ORIGINS"]``: an origin, a list, or ``"*"``."""
    if not origin:
        return True
    if isinstance(allowed, str):
        allowed = [allowed]
    listed = {str(a).strip().rstrip("/").lower() for a in (allowed or [])}
    origin = origin.strip().rstrip("/").lower()
    if "*" in listed or origin in listed:
        return True
    return urlsplit(origin).netloc == host.strip().lower()


def origin_allowed() -> bool:
    """Whether the current request's Origin (if any) is this host or one configured as allowed."""
    return origin_ok(request.headers.get("Origin"), request.host,
                     current_app.config.get("IVORYOS_PLUGIN_ALLOWED_ORIGINS"))


def head_snippet(plugin: Optional[str]) -> str:
    """The tags every plugin page gets in its ``<head>``: CSRF meta, plugin meta, scripts.

    :param plugin: the plugin's name, or None for the framework's own pages."""
    from flask_wtf.csrf import generate_csrf

    ext = current_extension()
    tags = [f'<meta name="csrf-token" content="{escape(generate_csrf())}">']
    if plugin is not None:
        meta = {"name": plugin, "namespace": f"{ext.url_prefix}/{plugin}", "path": ext.socketio_path,
                "actions": f"{ext.url_prefix}/{plugin}/actions/"}
        tags.append(f"<meta name=\"ivoryos-plugin\" content=\"{escape(json.dumps(meta))}\">")
    for script in ("vendor/socket.io.min.js", "ivoryos_plugin.js"):
        src = url_for("plugins.static", filename=script)
        tags.append(f'<script src="{escape(src)}"></script>')
    return "\n".join(tags)


def harden_response(response: Response, plugin: Optional[str]) -> Response:
    """Add security headers, and inject :func:`head_snippet` into HTML pages.

    :param response: the plugin's response.
    :param plugin: the plugin's name, or None."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # IvoryOS's left-panel iframe is same-origin
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if (response.mimetype == "text/html" and not response.direct_passthrough
            and not response.is_streamed and response.status_code < 300):
        body = response.get_data(as_text=True)
        marker = body.lower().find("</head>")
        if marker == -1:
            marker = body.lower().find("<body")
        if marker != -1 and 'name="ivoryos-plugin-injected"' not in body:
            snippet = Markup('<meta name="ivoryos-plugin-injected" content="1">\n') + Markup(head_snippet(plugin))
            response.set_data(body[:marker] + str(snippet) + "\n" + body[marker:])
    return response

