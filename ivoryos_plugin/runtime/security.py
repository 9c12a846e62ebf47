"""Deny by default: login (or a bearer token) on every plugin route, CSRF on unsafe methods,
safe response headers, and the framework's scripts injected into every plugin page."""
from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, cast
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, request, session, url_for
from flask_login import current_user
from markupsafe import escape

from . import payloads
from .csrf import check_csrf, csrf_problem, page_csrf_token_of
from .extension import Extension, extension_of
from .inbound import ALLOWED_HOSTS_KEY, allowed_host_names, body_too_large, host_header_allowed, host_header_ok, host_header_refusal, request_host_header_ok
from .replies import error_response, wants_json
from .sessions import AT_KEY, SID_KEY

if TYPE_CHECKING:
    from ..core.declarations import RouteRow
    from ..core.plugin import Plugin

__all__ = ["Principal", "AuthError", "authenticate", "guard_request", "guard_route", "route_row", "harden_response", "security_headers",
           "check_csrf", "origin_ok", "origin_allowed", "wants_json", "deny", "head_snippet", "ALLOWED_HOSTS_KEY",
           "allowed_host_names", "host_header_ok", "host_header_refusal", "request_host_header_ok", "body_too_large"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: the Content-Security-Policy of every plugin page in any host: no other site frames it, no plugin
#: object (Flash, PDF) runs, no <base> moves its relative URLs. ``ivoryos_plugin.run`` replaces it
#: with a full policy on every page of IvoryOS's app (hosts/hardening/responses.py).
BASELINE_CSP = "frame-ancestors 'self'; object-src 'none'; base-uri 'self'"
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),
                    ("X-Frame-Options", "SAMEORIGIN"),  # IvoryOS's left-panel iframe is same-origin
                    ("Referrer-Policy", "same-origin"),
                    ("Content-Security-Policy", BASELINE_CSP))
_HEADERS = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS)
_NAMES = frozenset(lowered for lowered, _, _ in _HEADERS)
#: generated replies a browser or a proxy never keeps (readings, history, tokens, status)
NO_STORE_TYPES = frozenset({"application/json", "text/csv"})


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    :param name: the user's or the token's name.
    :param via: ``"session"`` (a logged-in browser) or ``"token"`` (``Authorization: Bearer``).
    :param token: the token presented (for re-authorising a socket), or None.
    :param session_id: the framework's id of the session, or None.
    :param session_at: when the session logged in (epoch seconds), or None."""

    name: str
    via: str
    token: Optional[str] = None
    session_id: Optional[str] = None
    session_at: Any = None


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
    # (each of Flask's context proxies is looked up once: a lookup costs what a dict lookup does, twice)
    app, req = current_app._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
    return _authenticate(app, req, extension_of(app), plugin, token)


def _authenticate(app: Any, req: Any, ext: Extension, plugin: Optional[str],
                  token: Optional[str] = None) -> Optional[Principal]:
    """:func:`authenticate` with the app, the request and the framework's state at hand."""
    header = req.environ.get("HTTP_AUTHORIZATION", "")  # the Authorization header, as req.headers reads it
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    if token is not None and not isinstance(token, str):
        raise AuthError(401, f"the token must be a string, not {type(token).__name__}; send "
                             "{\"token\": \"ivp_...\"} as the Socket.IO auth payload.")
    if token:
        if ext.dev_token and hmac.compare_digest(token.encode(), ext.dev_token.encode()):
            return Principal(name="dev", via="token", token=token)
        record = ext.tokens.verify(token)
        if record is None:
            raise AuthError(401, "the bearer token is unknown or revoked; create one with "
                                 "'ivoryos-plugin token create NAME'.")
        if record.plugin and plugin and record.plugin != plugin:
            raise AuthError(403, f"token {record.name!r} is scoped to plugin {record.plugin!r}, not {plugin!r}.")
        return Principal(name=record.name, via="token", token=token)
    user = _session_user(app, ext)
    if user is None:
        return None
    sess = session._get_current_object()  # type: ignore[attr-defined]
    return Principal(name=str(user.get_id()), via="session", session_id=sess.get(SID_KEY),
                     session_at=sess.get(AT_KEY))


def _session_user(app: Any, ext: Extension) -> Any:
    """The user logged in with the request's session (Flask-Login), or None: nobody, no Flask-Login on
    the app, or a session that logged out (a copied cookie is nobody).

    :param app: the app.
    :param ext: its framework state."""
    if not hasattr(app, "login_manager"):  # set by Flask-Login's init_app
        return None
    user = current_user._get_current_object()
    if user and user.is_authenticated and not ext.sessions.session_ended(session._get_current_object()):  # type: ignore[attr-defined]
        return user
    return None


def _caller_via(app: Any, req: Any, ext: Extension, plugin: str) -> Optional[str]:
    """How the request's caller is authenticated, as :func:`_authenticate` decides it (``"token"``,
    ``"session"``, or None: anonymous), without making the :class:`Principal` the guard does not use.

    :raises AuthError: a token was presented and is invalid, revoked or out of scope."""
    if "HTTP_AUTHORIZATION" in req.environ:  # a bearer token, or another scheme (then the session decides)
        principal = _authenticate(app, req, ext, plugin)
        return None if principal is None else principal.via
    return "session" if _session_user(app, ext) is not None else None


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


def route_row(plugin: "Plugin", endpoint: Optional[str]) -> Optional["RouteRow"]:
    """The row of ``plugin``'s declarations table that serves a request's ``endpoint`` (``"name.local"``),
    or None: another blueprint's endpoint, or a nested blueprint's (``name.child.public``), which is never
    one of the plugin's public or body-limited routes.

    :param plugin: the plugin.
    :param endpoint: the request's endpoint (``request.endpoint``), or None."""
    return plugin.declarations.app_route(endpoint)


#: ``guard_request``'s ``row`` when the caller did not look the route up: the guard does
_LOOK_UP: Any = object()


def guard_request(plugin: str, public: bool, row: Any = _LOOK_UP) -> Optional[Response]:
    """Before every request to a plugin: authenticate, refuse suspended plugins, check CSRF.

    :param plugin: the plugin's name.
    :param public: whether the endpoint was declared ``public=True``.
    :param row: the route's row of the plugin's declarations table (None: not one of its routes), when
        the caller has it; by default it is looked up from the request's endpoint."""
    app, req = current_app._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
    return _guard(app, req, extension_of(app), plugin, public, row)


def guard_route(plugin: "Plugin") -> Optional[Response]:
    """:func:`guard_request` for a request to one of ``plugin``'s own routes: its row of the declarations
    table is looked up once, and whether the route serves anonymous callers is asked only of one.

    :param plugin: the plugin."""
    app, req = current_app._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
    return _guard(app, req, extension_of(app), plugin.name, None, route_row(plugin, req.endpoint))


def _guard(app: Any, req: Any, ext: Extension, plugin: str, public: Optional[bool], row: Any) -> Optional[Response]:
    """:func:`guard_request` with the app, the request and the framework's state at hand (``public``
    None: the route's ``row`` says whether it is public; it runs before every request to a plugin, so
    each check reads the request's environ once and builds nothing it does not need)."""
    # (the raw header, as the hardening's middleware judges it: its name is Werkzeug's request.host's,
    # which only drops a default port and is worked out afresh on each access)
    if not ext.host_header_verdicts.allowed(req.environ.get("HTTP_HOST") or req.host, app.config):
        return error_response(400, f"Plugin {plugin!r}: {host_header_refusal(req.host)}")
    if "\x00" in req.path:  # no route serves it, and a file path holding it is an OS error (a 500)
        return error_response(404, f"Plugin {plugin!r}: no such page: the path holds a NUL character (%00).")
    try:
        via = _caller_via(app, req, ext, plugin)
    except AuthError as exc:
        return deny(exc.status, f"Plugin {plugin!r}: {exc}")
    if via is None and not (public if public is not None
                            else row is not None and row.policy.allows_anonymous(req.view_args)):
        return deny(401, f"Plugin {plugin!r}: login required (log in to IvoryOS, or send "
                         "'Authorization: Bearer <token>').")
    runtime = ext.runtimes.get(plugin)
    if req.method not in SAFE_METHODS:
        if runtime is not None:
            if row is _LOOK_UP:
                row = route_row(runtime.plugin, req.endpoint)
            if row is not None and row.policy.body_limited and body_too_large(runtime.plugin.max_body, req):
                return error_response(413, f"Plugin {plugin!r}: the body is larger than {runtime.plugin.max_body} "
                                           "bytes (max_body); send less, or raise Plugin(max_body=...).")
        if via == "session":
            reason = csrf_problem(app, req, ext)
            if reason is not None:
                return error_response(400, f"Plugin {plugin!r}: {reason} Send the page's "
                                           "<meta name=\"csrf-token\"> value as the X-CSRFToken header "
                                           "(ivoryos_plugin.js does) or a csrf_token form field.")
    if runtime is not None and runtime.state != "running":
        ext.ensure_started(plugin=plugin)  # (a request during the plugin's start waits for it, within bounds)
        if runtime.state != "running":
            reason = runtime.current_reason()
            return error_response(503, f"Plugin {plugin!r} is {runtime.state}: {reason}",
                                  state=runtime.state, reason=reason)
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
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ext = extension_of(app)
    key = (plugin, request.script_root)
    rest = ext.snippets.get(key)
    if rest is None:  # the same for every page of the plugin in this app: built once
        tags = []
        if plugin is not None:
            meta = {"name": plugin, "namespace": f"{ext.url_prefix}/{plugin}", "path": ext.socketio_path,
                    "actions": f"{ext.url_prefix}/{plugin}/actions/"}
            tags.append(f"<meta name=\"ivoryos-plugin\" content=\"{escape(json.dumps(meta))}\">")
        for script in ("vendor/socket.io.min.js", "ivoryos_plugin.js"):
            src = url_for("plugins.static", filename=script)
            tags.append(f'<script src="{escape(src)}"></script>')
        rest = ext.snippets[key] = "\n".join(tags)
    return f'<meta name="csrf-token" content="{escape(page_csrf_token_of(app, ext))}">\n{rest}'


_REWRITTEN = frozenset({"application/json", "text/html"})
_TAGS = {tag: re.compile(re.escape(tag), re.IGNORECASE) for tag in ("</head>", "<body")}


def _first(html: str, tag: str) -> int:
    """Where ``tag`` first appears in ``html`` in any case, or -1: a plain find of the usual lowercase
    spelling bounds the (slower) case-blind search to the text before it."""
    found = html.find(tag)
    match = _TAGS[tag].search(html, 0, len(html) if found == -1 else found + len(tag))
    return -1 if match is None else match.start()


def harden_response(response: Response, plugin: Optional[str]) -> Response:
    """Add security headers, and inject :func:`head_snippet` into HTML pages.

    :param response: the plugin's response.
    :param plugin: the plugin's name, or None."""
    if getattr(response, payloads.FINITE_REPLY, False):  # the framework's own JSON: nothing to read or rewrite
        return _add_headers(response, "application/json")
    mimetype = response.mimetype
    if mimetype not in _REWRITTEN or response.direct_passthrough or response.is_streamed:
        return _add_headers(response, mimetype)  # a file, a stream, or neither JSON nor HTML: the body is not read
    if mimetype == "application/json":
        fixed = payloads.dumps_finite(response.get_data(as_text=True))
        if fixed is not None:  # a route's own jsonify wrote NaN or Infinity: null, as JSON.stringify does
            response.set_data(fixed + "\n")
    elif response.status_code < 300:
        body = response.get_data(as_text=True)
        marker = _first(body, "</head>")
        if marker == -1:
            marker = _first(body, "<body")
        if marker != -1 and _INJECTED not in body:
            response.set_data(f"{body[:marker]}{_INJECTED_TAG}{head_snippet(plugin)}\n{body[marker:]}")
    return _add_headers(response, mimetype)  # (after set_data, which replaces Content-Length in a shorter list)


#: the mark of a page that has the framework's tags already (never injected twice)
_INJECTED = 'name="ivoryos-plugin-injected"'
_INJECTED_TAG = f'<meta {_INJECTED} content="1">\n'
#: the attribute of a response :func:`security_headers` has done (the app's after hook, which covers the
#: errors under a plugin's prefix that never reach its blueprint's hooks, does not do it again)
_HEADERS_DONE = "_ivoryos_plugin_headers"


def security_headers(response: Response) -> Response:
    """Add the security headers (:data:`SECURITY_HEADERS`), and ``Cache-Control: no-store`` on
    generated JSON and CSV (not files), keeping any the route set itself.

    :param response: any response under a plugin's prefix, errors included."""
    if getattr(response, _HEADERS_DONE, False):
        return response  # the plugin's hook did it; the app's hook comes next
    return _add_headers(response, response.mimetype)


def _add_headers(response: Response, mimetype: Optional[str]) -> Response:
    """:func:`security_headers` with the response's mimetype at hand."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}  # one pass over its list, not one per header
    raw = getattr(headers, "_list", None)  # Werkzeug's list of (name, value) pairs (verified on 3.1)
    if present.isdisjoint(_NAMES) and type(raw) is list:
        raw.extend(SECURITY_HEADERS)  # none set yet (the usual case): constants, not checked again by each add
    else:
        for lowered, name, value in _HEADERS:
            if lowered not in present:
                headers.add(name, value)
    if "cache-control" not in present and not response.direct_passthrough and mimetype in NO_STORE_TYPES:
        if type(raw) is list:
            raw.append(("Cache-Control", "no-store"))  # (a constant: not checked again by an add)
        else:
            headers.add("Cache-Control", "no-store")
    setattr(response, _HEADERS_DONE, True)
    return response
