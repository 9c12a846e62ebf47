"""What ``ivoryos_plugin.run`` puts on IvoryOS's app, request by request: the request guard (signup,
login, CSRF and origin, uploads), the page hook (tokens in IvoryOS's forms, a script for its fetch
and XHR calls), the response headers (Content-Security-Policy, frame options, ``no-store``), the
served uploads, the Host check and the default Socket.IO namespace's gate.

:mod:`.hardening` installs them and :mod:`.hardening_probes` proves them; IvoryOS's internals are
reached through the adapter (:mod:`.ivoryos`)."""
from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Dict, Optional, Sequence, Tuple

from flask import Flask, Response, redirect, request, session, url_for
from markupsafe import escape
from werkzeug.wrappers import Request as WerkzeugRequest

from ..runtime.connections import Connection
from ..runtime.extension import Extension
from ..runtime.inbound import host_allowed, host_refusal, request_host_ok
from ..runtime.replies import error_response, prefers_json, wants_json
from ..runtime.security import (BASELINE_CSP, NO_STORE_TYPES, SAFE_METHODS, SECURITY_HEADERS, AuthError,
                                authenticate, check_csrf, origin_allowed, origin_ok, page_csrf_token)
from . import ivoryos as adapter
from .hardening_logins import LoginCheck

if TYPE_CHECKING:
    from werkzeug.datastructures import FileStorage

    from .hardening import Options

log = logging.getLogger("ivoryos_plugin")

#: the script that gives IvoryOS's own fetch/XHR calls and forms the CSRF token (the framework's static file)
CSRF_SCRIPT = "ivoryos_csrf.js"
_CSRF_SCRIPT_NAME = CSRF_SCRIPT.encode()
CSP = "Content-Security-Policy"
#: what an uploaded file in IvoryOS's logo folder is served with: never a page, never sniffed
UPLOAD_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Content-Disposition", "attachment"),
                  (CSP, "default-src 'none'; sandbox"))
#: the image formats a logo may be: magic bytes -> (name, the file name endings served as that type)
IMAGES: Tuple[Tuple[bytes, str, Tuple[str, ...]], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG", (".png",)), (b"\xff\xd8\xff", "JPEG", (".jpg", ".jpeg")),
    (b"GIF87a", "GIF", (".gif",)), (b"GIF89a", "GIF", (".gif",)))
#: the security headers :meth:`Hooks.add_headers` adds when a response has none (the CSP is set apart)
_ADDED_HEADERS = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS if name != CSP)
_OWN_NAMES = frozenset({*(lowered for lowered, _, _ in _ADDED_HEADERS), CSP.lower()})
#: what :meth:`Hooks.page_points` finds in a page: the form tokens' places, the head tags' place, a <meta> there
PagePoints = Tuple[Tuple[int, ...], Optional[int], bool]
#: the pages :meth:`Hooks.page_points` remembers (by their bytes), and the largest it keeps
PAGES_KEPT, PAGE_BYTES = 16, 256 * 1024
_HOST_SOURCE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def content_security_policy(host: str, origins: Sequence[str] = ()) -> str:
    """The Content-Security-Policy of IvoryOS's pages (and the plugins' pages) under ``ivoryos_plugin.run``.

    IvoryOS's templates run inline scripts and ``onclick=`` handlers, so scripts may be inline (and,
    as inline scripts can anyway, ``eval``: Plotly's WebGL traces, Vue or Alpine.js on a plugin page,
    browser test tools need it); they come from this server only: the CDN libraries are served
    locally (``hosts/offline.py``). No other site frames a page, no plugin object runs, forms post
    only here.

    :param host: the request's ``Host`` (its WebSocket URLs are allowed; an odd value is left out).
    :param origins: CDN origins still needed (libraries without a local copy)."""
    extra = "".join(f" {origin}" for origin in origins)
    sockets = f" ws://{host} wss://{host}" if _HOST_SOURCE.fullmatch(host or "") else ""
    return "; ".join([
        "default-src 'self'", f"script-src 'self' 'unsafe-inline' 'unsafe-eval'{extra}", f"style-src 'self' 'unsafe-inline'{extra}",
        f"font-src 'self' data:{extra}", "img-src 'self' data: blob:", f"connect-src 'self'{sockets}",
        "worker-src 'self' blob:", "frame-src 'self'", "frame-ancestors 'self'", "object-src 'none'",
        "base-uri 'self'", "form-action 'self'"])


def image_problem(upload: Optional["FileStorage"]) -> Optional[str]:
    """Why an uploaded logo is refused, or None when it is a PNG, JPEG, GIF or WebP image named as one
    (IvoryOS serves it from its static folder with the type its name says: an HTML or SVG "logo"
    would be a page, and its script would run, on the lab server's origin).

    :param upload: the form's file (None or an empty one: IvoryOS keeps the old logo)."""
    if upload is None or not upload.filename:
        return None
    from werkzeug.utils import secure_filename

    head = upload.stream.read(16)
    upload.stream.seek(0)
    name = secure_filename(upload.filename)
    ending = os.path.splitext(name)[1].lower()
    found = next(((kind, endings) for magic, kind, endings in IMAGES if head.startswith(magic)), None)
    if found is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = ("WebP", (".webp",))
    if found is None:
        return (f"{upload.filename!r} is not a PNG, JPEG, GIF or WebP image (SVG and HTML are refused: IvoryOS serves "
                "uploaded logos to anyone, and a browser would run their scripts on this server's origin).")
    kind, endings = found
    if ending not in endings:
        return f"{upload.filename!r} is a {kind} image but is named {name!r}: name it *{endings[0]}."
    return None


def refuse(status: int, message: str) -> Response:
    """A refusal: JSON for programs, a short page with a login link for browsers.

    :param status: the status.
    :param message: what was refused, why, and the fix."""
    if wants_json():
        return error_response(status, message)
    page = (f'<!doctype html><meta charset="utf-8"><title>IvoryOS</title><p style="font: 15px system-ui, '
            f'sans-serif; margin: 2em">{escape(message)}</p><p style="margin: 2em"><a href="'
            f'{url_for(adapter.LOGIN_ENDPOINT)}">Log in</a></p>')
    return Response(page, status=status, mimetype="text/html", headers=dict(SECURITY_HEADERS))


class Hooks:
    """The functions put on IvoryOS's app (each an attribute, so that the probes find them in place).

    :param app: IvoryOS's app.
    :param ext: its framework state.
    :param options: the opt-outs.
    :param origins: CDN origins the pages still need (no local copy).
    :param on: the keys of the hardening items that are on (which of the response hooks :attr:`after` runs)."""

    def __init__(self, app: Flask, ext: Extension, options: "Options", origins: Sequence[str] = (),
                 on: AbstractSet[str] = frozenset()) -> None:
        self.ext, self.options, self.origins = ext, options, tuple(origins)
        self.public = {adapter.LOGIN_ENDPOINT, adapter.STATIC_ENDPOINT} | (
            {adapter.SIGNUP_ENDPOINT} if options.allow_signup else set())
        self.logo_path = adapter.logo_folder(app)
        #: Flask-Login's answer, remembered while IvoryOS's users' database is unchanged
        self.logged_in = LoginCheck(app, lambda: adapter.users_database(app))
        self._policies: Dict[str, str] = {}  # Host -> its Content-Security-Policy
        self._pairs: Dict[str, Tuple[Tuple[str, str], ...]] = {}  # Host -> the headers of :meth:`header_pairs`
        self._script_tags: Dict[str, str] = {}  # script root -> the CSRF script's tag
        self._points: Dict[bytes, PagePoints] = {}  # a page's bytes -> :meth:`page_points`
        # bound once: the same objects are installed and looked for
        self.before = self.harden_request
        self.pages = self.harden_page
        self.headers = self.add_headers
        self.uploads = self.serve_upload
        self.after = self.harden_response
        #: what :attr:`after` runs, in the order Flask ran them as three hooks (the last added first)
        self.after_steps: Tuple[Callable[[Response], Response], ...] = tuple(step for step, wanted in (
            (self.uploads, "uploads" in on), (self.headers, "headers" in on),
            (self.pages, bool(on & {"login_csrf", "signup", "csrf"}))) if wanted)

    # ------------------------------------------------------------- before each request
    def harden_request(self) -> Optional[Response]:
        """Before IvoryOS's own ``before_request``: ended sessions, signup, login, CSRF and origin, uploads."""
        options, ext = self.options, self.ext
        # (each of Flask's context proxies looked up once: a lookup costs what a dict lookup does, twice)
        req, sess = request._get_current_object(), session._get_current_object()  # type: ignore[attr-defined]
        if not options.keep_sessions_after_logout and ext.sessions.session_ended(sess):
            sess.clear()  # logged out: the copied cookie is nobody's
        endpoint = req.endpoint
        if ext.plugin_of_path(req.path) is not None or ext.registrations.owner(endpoint) is not None:
            return None  # a plugin's route (also one it added to the app): its own guard (login, tokens, CSRF) answers
        if endpoint == adapter.SIGNUP_ENDPOINT and not options.allow_signup:
            return refuse(403, "IvoryOS: signup is off under ivoryos_plugin.run (anyone who reaches this port could "
                               "make an account and run the instruments). Ask whoever runs it, or start it with "
                               "ivoryos_plugin.run(..., allow_signup=True).")
        if endpoint == adapter.LOGIN_ENDPOINT and req.method == "POST" and options.login_csrf:
            reason = check_csrf()
            if reason is not None:
                return refuse(400, f"IvoryOS: login refused: {reason} The login form's CSRF token is missing or "
                                   "stale: reload the login page and log in again.")
        if endpoint is None or endpoint == adapter.STATIC_ENDPOINT:
            return None  # (no endpoint: a 404 or 405, which runs nothing and stays what it is)
        logged_in = self.logged_in(endpoint) if not (options.allow_anonymous or endpoint in self.public) else None
        if logged_in is False:
            if wants_json():
                return error_response(401, "IvoryOS: login required (ivoryos_plugin.run); log in at "
                                           f"{url_for(adapter.LOGIN_ENDPOINT)}.", login=url_for(adapter.LOGIN_ENDPOINT))
            return redirect(url_for(adapter.LOGIN_ENDPOINT))  # type: ignore[return-value]
        if req.method in SAFE_METHODS or endpoint == adapter.LOGIN_ENDPOINT:
            return None
        if options.ivoryos_csrf:
            refusal = self.csrf_refusal(self.logged_in(endpoint) if logged_in is None else logged_in)
            if refusal is not None:
                return refusal
        if options.check_uploads and endpoint == adapter.LOGO_ENDPOINT:
            problem = image_problem(request.files.get(adapter.LOGO_FIELD))
            if problem is not None:
                return refuse(400, f"IvoryOS: logo refused: {problem} (ivoryos_plugin.run; check_uploads=False "
                                   "turns the check off).")
        return None

    @staticmethod
    def csrf_refusal(logged_in: bool) -> Optional[Response]:
        """A state-changing request to IvoryOS: refused from another origin, and from a logged-in
        session without its CSRF token.

        :param logged_in: whether the request comes with a logged-in session."""
        if not origin_allowed():
            origin = request.headers.get("Origin")
            return refuse(403, f"IvoryOS: a {request.method} from the page {origin!r} is refused "
                               "(another site's page in a logged-in browser); add the origin to "
                               "IVORYOS_PLUGIN_ALLOWED_ORIGINS if it is yours (ivoryos_plugin.run; ivoryos_csrf=False "
                               "turns this off).")
        if not logged_in:
            return None  # nobody's credentials to borrow (programs without a login, allow_anonymous=True)
        reason = check_csrf()
        if reason is None:
            return None
        return refuse(400, f"IvoryOS: {reason} Under ivoryos_plugin.run IvoryOS's forms and routes need the session's "
                           "CSRF token: reload the page (IvoryOS's pages send it); a program sends the X-CSRFToken "
                           "header, from GET /ivoryos/plugins/csrf.json; ivoryos_plugin.run(..., ivoryos_csrf=False) "
                           "turns this off.")

    # ------------------------------------------------------------- after each request
    def harden_response(self, response: Response) -> Response:
        """After each of IvoryOS's requests: :attr:`after_steps` (uploads, headers, pages), one hook.

        :param response: any response of the app."""
        for step in self.after_steps:
            response = step(response)
        return response

    def harden_page(self, response: Response) -> Response:
        """IvoryOS's HTML: the login form's token, no signup link, and (``ivoryos_csrf``) a token in
        every POST form and the script that sends it with IvoryOS's fetch and XHR calls.

        :param response: any response of the app."""
        if (response.mimetype != "text/html" or response.direct_passthrough or response.is_streamed
                or response.status_code >= 400):
            return response
        options = self.options
        body = response.get_data()  # bytes: read, and written back, once (IvoryOS's pages are UTF-8)
        changed = False
        if request.endpoint == adapter.LOGIN_ENDPOINT and response.status_code == 200:
            page = original = body.decode()
            if options.login_csrf:
                page = adapter.login_form_with_token(page, page_csrf_token())
            if not options.allow_signup:
                page = adapter.without_signup_link(page)
            if page != original:
                body, changed = page.encode(), True
        if options.ivoryos_csrf:
            token = page_csrf_token()
            field = adapter.token_field(token)
            points, head, has_meta = self.page_points(body, remember=not changed)
            inserts = [(at, field) for at in points]
            if head is not None:
                tags = "" if has_meta else f'<meta name="csrf-token" content="{escape(token)}">\n'
                inserts.append((head, f"{tags}{self.csrf_script_tag()}\n".encode()))
            if inserts:
                body, changed = adapter.with_inserts(body, inserts), True
        if changed:
            response.set_data(body)
        return response

    def page_points(self, body: bytes, remember: bool = True) -> PagePoints:
        """Where :meth:`harden_page` puts the tokens in ``body``: after each POST form's opening tag that has
        none, and the ``<head>``'s tags (None when it has the script already, or no ``<head>``), with
        whether the ``<head>`` has its ``<meta name="csrf-token">``. Worked out from the page alone, so
        remembered for the page's very bytes: IvoryOS renders the same page again and again, and
        looking a page up (one hash of it) costs a fraction of scanning it for forms.

        :param body: the page (UTF-8).
        :param remember: whether to keep the answer (not for a page that is never the same twice)."""
        found = self._points.get(body)
        if found is not None:
            return found
        head = adapter.head_tags_point(body)
        has_meta = False
        if head is not None:
            # the script and the <meta> are looked for in the <head> only, where they go (not in
            # the whole page: each search of it costs more than the rest of this hook); the
            # script runs once however often a page loads it
            end = adapter.head_end(body)
            if body.find(_CSRF_SCRIPT_NAME, 0, end) != -1:
                head = None
            else:
                has_meta = body.find(b'name="csrf-token"', 0, end) != -1
        found = (tuple(adapter.form_token_points(body)), head, has_meta)
        if remember and len(body) <= PAGE_BYTES:
            if len(self._points) >= PAGES_KEPT:  # bounded: PAGES_KEPT pages of at most PAGE_BYTES
                self._points.clear()
            self._points[body] = found
        return found

    def csrf_script_tag(self) -> str:
        """The ``<script>`` of :data:`CSRF_SCRIPT` for the current request's script root, made once per root."""
        root = request.script_root
        tag = self._script_tags.get(root)
        if tag is None:
            src, refresh = url_for("plugins.static", filename=CSRF_SCRIPT), url_for("plugins.csrf_json")
            tag = f'<script src="{escape(src)}" data-refresh="{escape(refresh)}"></script>'
            if len(self._script_tags) >= 16:
                self._script_tags.clear()
            self._script_tags[root] = tag
        return tag

    def add_headers(self, response: Response) -> Response:
        """Every response of IvoryOS's app: frame options, nosniff, referrer policy, the CSP (a
        route's own CSP is kept; the plugins' baseline is replaced), ``no-store`` on generated JSON and CSV.

        :param response: any response of the app."""
        headers = response.headers
        present = {name.lower() for name, _ in headers}  # one pass over its list, not one per header added
        raw = getattr(headers, "_list", None)  # Werkzeug's list of (name, value) pairs (verified on 3.1)
        if present.isdisjoint(_OWN_NAMES) and type(raw) is list:
            # the usual case, none of them set: the pairs made once per Host, appended as they are (each
            # Headers.add checks its value again, which costs more than the rest of this hook)
            raw.extend(self.header_pairs(request.host))
        else:
            for lowered, name, value in _ADDED_HEADERS:
                if lowered not in present:
                    headers.add(name, value)
            if "content-security-policy" not in present or headers.get(CSP) == BASELINE_CSP:
                headers[CSP] = self.policy(request.host)
        if ("cache-control" not in present and response.mimetype in NO_STORE_TYPES and not response.direct_passthrough
                and response.status_code < 400
                and (request.method == "GET" or self.ext.plugin_of_path(request.path) is not None)):
            # (what a cache could keep: an error, or IvoryOS's answer to a POST, is not kept anyway, and a
            # no-store body its scripts never read keeps the request open in the browser)
            headers.add("Cache-Control", "no-store")
        return response

    def header_pairs(self, host: str) -> Tuple[Tuple[str, str], ...]:
        """The security headers of a response that has none of them, the CSP for ``host``, made once per Host.

        :param host: the request's ``Host``."""
        found = self._pairs.get(host)
        if found is None:
            if len(self._pairs) >= 64:  # a client sending odd Hosts cannot grow it
                self._pairs.clear()
            found = self._pairs[host] = (*((name, value) for _, name, value in _ADDED_HEADERS),
                                         (CSP, self.policy(host)))
        return found

    def policy(self, host: str) -> str:
        """:func:`content_security_policy` for a request's ``Host``, made once per Host.

        :param host: the request's ``Host``."""
        found = self._policies.get(host)
        if found is None:
            if len(self._policies) >= 64:  # a client sending odd Hosts cannot grow it
                self._policies.clear()
            found = self._policies[host] = content_security_policy(host, self.origins)
        return found

    def serve_upload(self, response: Response) -> Response:
        """A file from IvoryOS's logo folder: a download, never sniffed, never a page (an image
        still shows in an ``<img>``).

        :param response: any response of the app."""
        if self.logo_path and request.path.startswith(self.logo_path):
            for name, value in UPLOAD_HEADERS:
                response.headers[name] = value
        return response


def socket_check(app: Flask, ext: Extension) -> Any:
    """The default namespace's gate: this server's Host and origin, and a logged-in session (or token).

    :param app: IvoryOS's app.
    :param ext: its framework state."""
    def check(sid: str, environ: Any, auth: Any) -> Optional[str]:
        with app.request_context(environ):
            try:
                if not request_host_ok():
                    return f"IvoryOS's Socket.IO: {host_refusal(request.host)}"
                origin = request.headers.get("Origin")
                if not origin_ok(origin, request.host, app.config.get("IVORYOS_PLUGIN_ALLOWED_ORIGINS")):
                    return (f"IvoryOS's Socket.IO: origin {origin!r} is not allowed; add it to "
                            "IVORYOS_PLUGIN_ALLOWED_ORIGINS if it is yours.")
                token = auth.get("token") if isinstance(auth, dict) else None
                principal = authenticate(None, token)
            except AuthError as exc:
                return f"unauthorized: IvoryOS's Socket.IO: {exc}"
            except Exception as exc:  # an error never lets a client in
                log.exception("refusing a client of IvoryOS's Socket.IO: the credential check failed")
                return f"unauthorized: IvoryOS's Socket.IO: the credential check failed ({type(exc).__name__})"
            if principal is None:
                return ("unauthorized: IvoryOS's Socket.IO needs a logged-in session (ivoryos_plugin.run; "
                        "allow_anonymous_socket=True turns this off)")
            ext.connections.add(Connection(
                sid=sid, namespace="/", token=principal.token, session_id=principal.session_id,
                user=principal.name if principal.via == "session" else None, session_at=principal.session_at))
        return None

    return check


class HostCheck:
    """WSGI middleware, outermost (Socket.IO's transport included): 400 for a Host that is not
    localhost, an IP address or configured (``IVORYOS_PLUGIN_ALLOWED_HOSTS``).

    :param wsgi_app: the app's WSGI callable.
    :param app: the Flask app (its config is read per request)."""

    def __init__(self, wsgi_app: Any, app: Flask) -> None:
        self.wsgi_app, self.app = wsgi_app, app

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        """Answer the request, or refuse its Host.

        :param environ: the WSGI environ.
        :param start_response: the WSGI callable."""
        host = str(environ.get("HTTP_HOST") or "")
        if host_allowed(host, self.app):
            return self.wsgi_app(environ, start_response)
        message = f"400 Bad Request: {host_refusal(host)}"
        if prefers_json(WerkzeugRequest(environ)):
            import json

            body, mimetype = json.dumps({"error": message}), "application/json"
        else:
            body, mimetype = message, "text/plain"
        response = Response(body, status=400, mimetype=mimetype, headers=dict(SECURITY_HEADERS))
        return response(environ, start_response)


def host_check_installed(app: Flask) -> bool:
    """Whether a :class:`HostCheck` is in the app's WSGI chain (it wraps Flask-SocketIO's middleware).

    :param app: the app."""
    layer: Any = app.wsgi_app
    for _ in range(16):
        if isinstance(layer, HostCheck):
            return True
        layer = getattr(layer, "wsgi_app", None)
        if layer is None:
            return False
    return False
