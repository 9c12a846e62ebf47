"""IvoryOS's own open doors, closed by ``ivoryos_plugin.run`` (plain ``ivoryos.run`` keeps them).

Each hardening answers one threat, is printed at start and has an opt-out, a keyword argument of
``ivoryos_plugin.run`` (docs/security.md lists them):

=====================================  ===============================================  ==================================
hardening                              threat                                           opt out
=====================================  ===============================================  ==================================
signup off                             anyone reaching the port makes an account        ``allow_signup=True``
login on every IvoryOS route           anonymous pause, abort, retry, draft edits,      ``allow_anonymous=True``
(but the login page and static files)  downloads
default Socket.IO namespace: a login   an anonymous socket, or a page on another        ``allow_anonymous_socket=True``
and this server's origin               origin, pauses or aborts a run
Host allow-list (400 otherwise)        a DNS-rebinding page is "same origin"            ``allowed_hosts=[...]``, ``"*"``;
                                                                                        env ``IVORYOS_PLUGIN_ALLOWED_HOSTS``
logout ends the session server-side    a cookie copied before logout keeps working      ``keep_sessions_after_logout=True``
login form needs its CSRF token        another site logs the browser in as its account  ``login_csrf=False``
=====================================  ===============================================  ==================================

:func:`apply` is the launcher's one call: it takes the options out of ``run``'s keyword arguments
and arranges for :func:`install` to run on IvoryOS's app when the framework's blueprint registers
(inside ``ivoryos.run``, before it serves). IvoryOS's internals are reached through the adapter.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Union

from flask import Flask, Response, redirect, request, session, url_for
from werkzeug.wrappers import Request as WerkzeugRequest

from ..runtime.attach import framework_blueprint
from ..runtime.connections import Connection
from ..runtime.extension import Extension
from ..runtime.replies import error_response
from ..runtime.inbound import HOSTS_KEY, allowed_host_names, host_ok, host_refusal, request_host_ok
from ..runtime.security import SECURITY_HEADERS, AuthError, authenticate, check_csrf, origin_ok, wants_json
from . import ivoryos as adapter

log = logging.getLogger("ivoryos_plugin")

__all__ = ["Options", "apply", "install", "describe"]


@dataclass(frozen=True)
class Options:
    """The opt-outs (all off: every hardening on).

    :param allow_signup: let anyone make an account (IvoryOS's signup page).
    :param allow_anonymous: let IvoryOS's routes answer without a login, as IvoryOS does.
    :param allow_anonymous_socket: let IvoryOS's Socket.IO namespace take anonymous clients from any origin.
    :param allowed_hosts: more Host names (a list or a comma-separated string); ``"*"``: any Host.
    :param keep_sessions_after_logout: a session cookie keeps working after logout, as with IvoryOS.
    :param login_csrf: require the login form's CSRF token."""

    allow_signup: bool = False
    allow_anonymous: bool = False
    allow_anonymous_socket: bool = False
    allowed_hosts: Union[None, str, Sequence[str]] = None
    keep_sessions_after_logout: bool = False
    login_csrf: bool = True

    @property
    def any_host(self) -> bool:
        """Whether the Host check is off."""
        hosts = self.allowed_hosts
        return hosts == "*" or (not isinstance(hosts, str) and hosts is not None and "*" in hosts)


NAMES = tuple(f.name for f in fields(Options))


def apply(run_kwargs: Dict[str, Any]) -> List[str]:
    """The launcher's call: take the hardening options out of ``run_kwargs`` (``ivoryos_plugin.run``'s
    extra keyword arguments, so ``ivoryos.run`` never sees them), harden IvoryOS's app when it
    registers the framework, and return one line per hardening to print.

    :param run_kwargs: the keyword arguments (changed in place).
    :raises TypeError: an option of the wrong type."""
    given = {name: run_kwargs.pop(name) for name in NAMES if name in run_kwargs}
    for name, value in given.items():
        if name != "allowed_hosts" and not isinstance(value, bool):
            raise TypeError(f"ivoryos_plugin.run({name}=...) takes True or False, not {value!r}.")
    options = Options(**given)
    framework_blueprint.on_register(lambda app, ext: install(app, ext, options))
    return describe(options)


def _host_list(options: Options) -> str:
    import os

    names = sorted(n for n in allowed_host_names({HOSTS_KEY: options.allowed_hosts},
                                                 os.environ.get(HOSTS_KEY, "")) if n != "*")
    return ", ".join(["localhost", "IP addresses", *names])


def describe(options: Options) -> List[str]:
    """One line per hardening, each with its opt-out (or the warning when it is opted out).

    :param options: the options."""
    import os

    env_any = os.environ.get(HOSTS_KEY, "").strip() == "*"
    return [
        "signup is open (allow_signup=True): anyone who reaches the port can make an account and run the "
        "instruments." if options.allow_signup else
        "signup off: only existing accounts log in (ivoryos.run: anyone who reaches the port makes one); "
        "allow_signup=True turns it on.",
        "IvoryOS's pages and routes answer without a login (allow_anonymous=True), as with ivoryos.run."
        if options.allow_anonymous else
        "a login on every IvoryOS page and route but the login page and static files (ivoryos.run: run "
        "controls, downloads and draft edits answer anyone); allow_anonymous=True turns it off.",
        "IvoryOS's Socket.IO accepts anonymous clients from any origin (allow_anonymous_socket=True)."
        if options.allow_anonymous_socket else
        "IvoryOS's Socket.IO namespace refuses anonymous clients and other origins (ivoryos.run: any page may "
        "pause or abort a run); IVORYOS_PLUGIN_ALLOWED_ORIGINS lists more origins, allow_anonymous_socket=True "
        "turns it off.",
        "any Host header is answered (allowed_hosts='*' or IVORYOS_PLUGIN_ALLOWED_HOSTS=*): a DNS-rebinding "
        "page is not refused." if options.any_host or env_any else
        f"Host check: {_host_list(options)}; other Host headers get 400 (a DNS-rebinding page would pass as "
        "same-origin); allowed_hosts=[...] or env IVORYOS_PLUGIN_ALLOWED_HOSTS adds names, '*' turns it off.",
        "a session cookie keeps working after logout (keep_sessions_after_logout=True), as with ivoryos.run."
        if options.keep_sessions_after_logout else
        "logout ends the session on the server: a cookie copied before it stops working (ivoryos.run: it keeps "
        "working); keep_sessions_after_logout=True turns it off.",
        "the login form is accepted without its CSRF token (login_csrf=False), as with ivoryos.run."
        if not options.login_csrf else
        "the login form carries a CSRF token and a login without it is refused (ivoryos.run: another site can "
        "log the browser in to its own account); login_csrf=False turns it off.",
    ]


# ------------------------------------------------------------------ installing on IvoryOS's app
def install(app: Flask, ext: Extension, options: Options) -> None:
    """Harden IvoryOS's ``app`` (the registration hook :func:`apply` sets up).

    :param app: IvoryOS's app (another app is left alone).
    :param ext: its framework state.
    :param options: the opt-outs."""
    if not adapter.is_ivoryos_app(app):
        return
    if options.allowed_hosts is not None:
        listed = options.allowed_hosts
        app.config[HOSTS_KEY] = [listed] if isinstance(listed, str) else list(listed)
    if not options.any_host:
        app.wsgi_app = HostCheck(app.wsgi_app, app)  # type: ignore[method-assign]
    public = {adapter.LOGIN_ENDPOINT, adapter.STATIC_ENDPOINT} | ({adapter.SIGNUP_ENDPOINT} if options.allow_signup
                                                                   else set())

    def harden_request() -> Optional[Response]:
        if not options.keep_sessions_after_logout and ext.sessions.session_ended(session):
            session.clear()  # logged out: the copied cookie is nobody's
        if ext.plugin_of_path(request.path) is not None:
            return None  # a plugin's route: its own guard (login, tokens, CSRF) answers
        endpoint = request.endpoint
        if endpoint == adapter.SIGNUP_ENDPOINT and not options.allow_signup:
            return _refuse(403, "IvoryOS: signup is off under ivoryos_plugin.run (anyone who reaches this port could "
                                "make an account and run the instruments). Ask whoever runs it, or start it with "
                                "ivoryos_plugin.run(..., allow_signup=True).")
        if endpoint == adapter.LOGIN_ENDPOINT and request.method == "POST" and options.login_csrf:
            reason = check_csrf()
            if reason is not None:
                return _refuse(400, f"IvoryOS: login refused: {reason} The login form's CSRF token is missing or "
                                    "stale: reload the login page and log in again.")
        if options.allow_anonymous or endpoint is None or endpoint in public:
            return None  # (no endpoint: a 404 or 405, which runs nothing and stays what it is)
        from flask_login import current_user

        if current_user.is_authenticated:
            return None
        if wants_json():
            return error_response(401, "IvoryOS: login required (ivoryos_plugin.run); log in at "
                                       f"{url_for(adapter.LOGIN_ENDPOINT)}.", login=url_for(adapter.LOGIN_ENDPOINT))
        return redirect(url_for(adapter.LOGIN_ENDPOINT))  # type: ignore[return-value]

    def login_page(response: Response) -> Response:
        if (request.endpoint == adapter.LOGIN_ENDPOINT and response.status_code == 200
                and response.mimetype == "text/html" and not response.direct_passthrough):
            from flask_wtf.csrf import generate_csrf

            page = response.get_data(as_text=True)
            if options.login_csrf:
                page = adapter.login_form_with_token(page, generate_csrf())
            if not options.allow_signup:
                page = adapter.without_signup_link(page)
            response.set_data(page)
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, harden_request)  # before IvoryOS's own
    app.after_request(login_page)
    if not options.allow_anonymous_socket and ext.socketio is not None:
        adapter.guard_default_namespace(ext.socketio, _socket_check(app, ext),
                                        lambda sid: ext.connections.remove("/", sid))
    for line in describe(options):
        log.info("hardening: %s", line)


def _refuse(status: int, message: str) -> Response:
    if wants_json():
        return error_response(status, message)
    page = (f'<!doctype html><meta charset="utf-8"><title>IvoryOS</title><p style="font: 15px system-ui, '
            f'sans-serif; margin: 2em">{_html(message)}</p><p style="margin: 2em"><a href="'
            f'{url_for(adapter.LOGIN_ENDPOINT)}">Log in</a></p>')
    return Response(page, status=status, mimetype="text/html", headers=dict(SECURITY_HEADERS))


def _html(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def _socket_check(app: Flask, ext: Extension) -> Any:
    """The default namespace's gate: this server's Host and origin, and a logged-in session (or token)."""
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
        if host_ok(host, allowed_host_names(self.app.config)):
            return self.wsgi_app(environ, start_response)
        message = f"400 Bad Request: {host_refusal(host)}"
        wants = WerkzeugRequest(environ).accept_mimetypes.best_match(["text/html", "application/json"])
        if wants == "application/json":
            import json

            body, mimetype = json.dumps({"error": message}), "application/json"
        else:
            body, mimetype = message, "text/plain"
        response = Response(body, status=400, mimetype=mimetype, headers=dict(SECURITY_HEADERS))
        return response(environ, start_response)
