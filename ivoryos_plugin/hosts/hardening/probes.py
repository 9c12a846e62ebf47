"""Proof that each hardening item of ``ivoryos_plugin.run`` is in place and does what it says, on
IvoryOS's real app: requests offered to the installed guard in a request context (never through
IvoryOS's views, so nothing runs and no first request is recorded), a client offered to the guarded
Socket.IO handler, the session cookie as Flask would set it, the hooks looked for where Flask calls
them. Run after installing, again just before IvoryOS listens (:mod:`.install`), and the cheap
part (:meth:`Probes.structure`) on every view of the health page."""
from __future__ import annotations

import io
import os
import re
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

from flask import Flask, Response, request, session
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder

from ...runtime.attach import STATIC_FOLDER
from ...runtime.extension import Extension
from ...runtime.libraries import app_hooks
from ...runtime.security import BASELINE_CSP
from .. import ivoryos as adapter
from .hooks import Hooks
from .host_header import HostHeaderCheck, host_header_check_installed
from .options import HOST_HEADER, Options
from .pages import CSRF_SCRIPT
from .responses import CSP

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OTHER_ORIGIN = "http://evil.example"
#: the items the request guard (``Hooks.before``) carries
GUARDED = frozenset({"signup", "login", "sessions", "login_csrf", "csrf", "uploads"})
_SAMPLE_PAGE = ('<!doctype html><html><head><script>var x;</script></head><body>'
                '<form role="form" method=\'POST\' name="login" action="/x"><input name="a"></form></body></html>')
_TOKEN_IN_FORM = re.compile(r"<form\b[^>]*>\s*<input type=\"hidden\" name=\"csrf_token\" value=\"[^\"]+\">")
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


class _ProbeUser:
    """A logged-in user for the probes' request contexts only (Flask-Login's user protocol)."""

    is_authenticated, is_active, is_anonymous = True, True, False

    def get_id(self) -> str:
        """The probe's id (no account has it)."""
        return "ivoryos_plugin-probe"


class Probes:
    """The probes of one hardened app.

    :param app: IvoryOS's app.
    :param ext: its framework state.
    :param hooks: the installed hooks.
    :param options: the opt-outs.
    :param on: the keys of the items that are on."""

    def __init__(self, app: Flask, ext: Extension, hooks: Hooks, options: Options, on: Set[str]) -> None:
        self.app, self.ext, self.hooks, self.options, self.on = app, ext, hooks, options, set(on)

    def run(self) -> Dict[str, str]:
        """Every item that is on, looked at and then tried: item key -> what is wrong."""
        problems = self.structure()
        for key in sorted(self.on - set(problems)):
            probe: Callable[[], Optional[str]] = getattr(self, f"_probe_{key}")
            try:
                why = probe()
            except Exception as exc:  # a probe that cannot run proves nothing
                why = f"its probe failed ({type(exc).__name__}: {exc})."
            if why is not None:
                problems[key] = why
        return problems

    def structure(self) -> Dict[str, str]:
        """Whether each hook is still where Flask, Werkzeug and python-socketio call it (cheap: no request)."""
        app, hooks, problems = self.app, self.hooks, {}
        after = app_hooks(app, "after_request_funcs")
        if hooks.before not in app_hooks(app, "before_request_funcs"):
            problems.update({key: "the request guard is not among the app's before_request functions."
                             for key in self.on & GUARDED})
        steps = hooks.after_steps if hooks.after in after else ()
        if hooks.pages not in steps:
            problems.update({key: "the page hook (tokens in IvoryOS's forms) is not among the app's after_request "
                                  "functions." for key in self.on & {"login_csrf", "csrf"}})
        if "headers" in self.on and hooks.headers not in steps:
            problems["headers"] = "the headers hook is not among the app's after_request functions."
        if "uploads" in self.on and hooks.uploads not in steps:
            problems["uploads"] = "the hook on served uploads is not among the app's after_request functions."
        if "cookie" in self.on and app.config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
            problems["cookie"] = f"SESSION_COOKIE_SAMESITE is {app.config.get('SESSION_COOKIE_SAMESITE')!r}."
        if "socket" in self.on and not adapter.default_namespace_guarded(self.ext.socketio):
            problems["socket"] = ("the default namespace's connect handler is not the guard (IvoryOS's would let "
                                  "anyone in).")
        if HOST_HEADER in self.on and not host_header_check_installed(app):
            problems[HOST_HEADER] = "the Host check is not in the app's WSGI chain."
        return problems

    # ------------------------------------------------------------- helpers
    def _url(self, endpoint: str, method: str = "POST") -> Optional[str]:
        rule = next((r for r in self.app.url_map.iter_rules(endpoint) if method in (r.methods or ())), None)
        return None if rule is None else self._rule_url(rule, method)

    def _rule_url(self, rule: Rule, method: str) -> Optional[str]:
        try:
            url = self.app.url_map.bind("localhost").build(rule.endpoint, {arg: 1 for arg in rule.arguments},
                                                          method=method)
        except Exception:
            return None
        return str(url)

    @contextmanager
    def _request(self, method: str, path: str, user: bool = False, token: bool = False,
                 origin: Optional[str] = None, accept: str = "application/json", data: Any = None) -> Iterator[None]:
        headers = {"Accept": accept, **({"Origin": origin} if origin else {})}
        with self.app.test_request_context(path, method=method, headers=headers, data=data,
                                           base_url="http://localhost"):
            if user:
                from flask_login import login_user

                login_user(_ProbeUser())
            if token:
                from flask_wtf.csrf import generate_csrf

                request.environ["HTTP_X_CSRFTOKEN"] = generate_csrf()  # request.headers reads the environ
            yield

    def _answer(self, method: str, path: str, **kwargs: Any) -> Optional[Response]:
        """What the request guard answers (None: it lets the request through to IvoryOS)."""
        with self._request(method, path, **kwargs):
            return self.hooks.before()

    def _status(self, method: str, path: Optional[str], **kwargs: Any) -> Optional[int]:
        if path is None:
            return None
        answer = self._answer(method, path, **kwargs)
        return None if answer is None else answer.status_code

    def _index(self) -> str:
        return self._url("main.index", "GET") or "/"

    # ------------------------------------------------------------- one probe per item
    def _probe_signup(self) -> Optional[str]:
        status = self._status("POST", self._url(adapter.SIGNUP_ENDPOINT))
        return None if status == 403 else f"an anonymous signup (POST {adapter.SIGNUP_ENDPOINT}) was answered {status}."

    def _probe_login(self) -> Optional[str]:
        for method, path in (("GET", self._index()), ("POST", self._url(adapter.RUN_CONTROL_ENDPOINTS[1]))):
            status = self._status(method, path)
            if status != 401:
                return f"an anonymous {method} {path} was answered {status}, not 401."
        return None

    def _probe_sessions(self) -> Optional[str]:
        return None  # the request guard clears an ended session first: its place is what structure() checks

    def _probe_login_csrf(self) -> Optional[str]:
        status = self._status("POST", self._url(adapter.LOGIN_ENDPOINT))
        if status != 400:
            return f"a login without its CSRF token was answered {status}, not 400."
        with self._request("GET", self._url(adapter.LOGIN_ENDPOINT, "GET") or "/", accept="text/html"):
            page = self.hooks.pages(Response(_SAMPLE_PAGE, mimetype="text/html")).get_data(as_text=True)
        return None if _TOKEN_IN_FORM.search(page) else "the login form would be served without its CSRF token."

    def _probe_csrf(self) -> Optional[str]:
        probed: Set[str] = set()
        missed: List[str] = []
        for rule in self.app.url_map.iter_rules():
            if rule.endpoint in (adapter.LOGIN_ENDPOINT, adapter.STATIC_ENDPOINT):
                continue
            for method in sorted(UNSAFE & set(rule.methods or ())):
                url = self._rule_url(rule, method)
                owned = self.ext.registrations.owner(rule.endpoint) is not None  # a plugin added it to the app
                if url is None or self.ext.plugin_of_path(url) is not None or owned:
                    continue  # a plugin's route: its own guard checks CSRF
                probed.add(rule.endpoint)
                if (self._status(method, url, user=True) or 0) < 400:  # 400, or 403 for signup when it is off
                    missed.append(f"{method} {url}")
        if missed:
            return (f"{len(missed)} IvoryOS route(s) took a logged-in request without a CSRF token: "
                    f"{', '.join(missed[:6])}.")
        absent = [e for e in (*adapter.RUN_CONTROL_ENDPOINTS, adapter.LOGO_ENDPOINT) if e not in probed]
        if absent:
            return (f"IvoryOS's run controls and logo upload are not where the adapter knows them ({', '.join(absent)} "
                    "on IvoryOS 1.7.2), so the CSRF check on them cannot be proven.")
        pause = self._url(adapter.RUN_CONTROL_ENDPOINTS[1])
        if self._status("POST", pause, user=True, token=True) is not None:
            return f"POST {pause} with a valid CSRF token was refused (IvoryOS's own pages would break)."
        if self._status("POST", pause, user=True, token=True, origin=OTHER_ORIGIN) != 403:
            return f"POST {pause} from the page {OTHER_ORIGIN} was not refused."
        with self._request("GET", self._index(), user=True, accept="text/html"):
            page = self.hooks.pages(Response(_SAMPLE_PAGE, mimetype="text/html")).get_data(as_text=True)
        script = os.path.join(STATIC_FOLDER, CSRF_SCRIPT)
        if not _TOKEN_IN_FORM.search(page) or CSRF_SCRIPT not in page or not os.path.isfile(script):
            return f"IvoryOS's pages would not get the CSRF token (in their forms, and {script} for their scripts)."
        return None

    def _probe_headers(self) -> Optional[str]:
        with self._request("GET", self._index(), accept="text/html"):
            page = self.hooks.headers(Response("<p>", mimetype="text/html"))
            plugin_page = self.hooks.headers(Response("<p>", mimetype="text/html", headers={CSP: BASELINE_CSP}))
            data = self.hooks.headers(Response("{}", mimetype="application/json"))
        csp = page.headers.get(CSP, "")
        wanted = ("frame-ancestors 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'")
        if not all(part in csp for part in wanted) or plugin_page.headers.get(CSP) != csp:
            return f"IvoryOS's pages would get the Content-Security-Policy {csp!r}."
        if (page.headers.get("X-Frame-Options") != "SAMEORIGIN"
                or page.headers.get("X-Content-Type-Options") != "nosniff"):
            return "IvoryOS's pages would not get X-Frame-Options SAMEORIGIN and nosniff."
        if "no-store" not in data.headers.get("Cache-Control", ""):
            return "IvoryOS's JSON would be answered without Cache-Control: no-store."
        return None

    def _probe_cookie(self) -> Optional[str]:
        response = Response()
        with self.app.test_request_context("/", base_url="http://localhost"):
            session["ivoryos_plugin_probe"] = 1
            self.app.session_interface.save_session(self.app, session, response)
        cookie = response.headers.get("Set-Cookie", "")
        if "SameSite=Lax" in cookie or "SameSite=Strict" in cookie:
            return None
        return f"IvoryOS's session cookie would be set as {cookie[:60]!r}..., without SameSite."

    def _probe_uploads(self) -> Optional[str]:
        url = self._url(adapter.LOGO_ENDPOINT)
        if url is None or self.hooks.logo_path is None:
            return f"IvoryOS's logo upload ({adapter.LOGO_ENDPOINT}) or its folder is not where the adapter knows it."
        for content, name, refused in ((b"<html><script>alert(1)</script></html>", "logo.html", True),
                                       (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg", True),
                                       (_PNG, "logo.html", True), (_PNG, "logo.png", False)):
            data = {adapter.LOGO_FIELD: (io.BytesIO(content), name), "mode": "add"}
            status = self._status("POST", url, user=True, token=True, data=data)
            if (status == 400) is not refused:
                return f"a logo named {name!r} was answered {status}."
        with self._request("GET", f"{self.hooks.logo_path}logo.html", accept="text/html"):
            served = self.hooks.uploads(Response("<script>alert(1)</script>", mimetype="text/html"))
        if (served.headers.get("Content-Disposition") != "attachment" or "sandbox" not in served.headers.get(CSP, "")
                or served.headers.get("X-Content-Type-Options") != "nosniff"):
            return f"a file in {self.hooks.logo_path} would be served as a page."
        return None

    def _probe_socket(self) -> Optional[str]:
        environ = EnvironBuilder(path=f"{self.ext.socketio_path}/", base_url="http://localhost",
                                 query_string="EIO=4&transport=polling").get_environ()
        if adapter.default_namespace_refusal(self.ext.socketio, environ) is None:
            return "an anonymous client offered to the default namespace's connect handler was let in."
        return None

    def _probe_host_header(self) -> Optional[str]:
        reached: List[str] = []

        def inner(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
            reached.append(environ["HTTP_HOST"])
            return []

        check = HostHeaderCheck(inner, self.app)
        statuses: List[str] = []
        for host in ("evil.example", "127.0.0.1"):
            environ = EnvironBuilder(path="/", base_url=f"http://{host}").get_environ()
            body = check(environ, lambda status, headers, exc_info=None: statuses.append(status))
            list(body)
        if reached != ["127.0.0.1"] or not statuses or not statuses[0].startswith("400"):
            return f"the Host check let {reached} through and answered {statuses}."
        return None
