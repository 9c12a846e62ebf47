"""IvoryOS's own open doors, closed by ``ivoryos_plugin.run`` (plain ``ivoryos.run`` keeps them).

Each hardening answers one threat and has an opt-out, a keyword argument of ``ivoryos_plugin.run``
(docs/security.md lists them). Each is installed on IvoryOS's app when the run's extension attaches
it, then proven (:mod:`.hardening_probes`: a request through the installed guard, a client offered
to the guarded Socket.IO handler, a look at what is in place), proven again just before IvoryOS
listens, and only then printed. One that cannot be installed or proven stops
``ivoryos_plugin.run`` with a :class:`HardeningError` naming it and its opt-out; the health page
(``/ivoryos/plugins/``, ``status.json``) shows each one's state: on, off (opted out) or failed.

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
CSRF token (and this origin) on        another site's page starts, pauses, aborts runs  ``ivoryos_csrf=False``
IvoryOS's own state-changing routes    and uploads files in a logged-in browser
CSP, X-Frame-Options, nosniff,         another site frames the instrument controls      ``security_headers=False``
no-store on JSON                       (clickjacking); cached readings and tokens
session cookie SameSite=Lax            other sites' form posts carry the session        ``samesite_cookie=False``
a logo must be a real image; uploads   an HTML "logo" is a page on the lab's origin     ``check_uploads=False``
served as downloads with nosniff       (stored XSS)
=====================================  ===============================================  ==================================

:func:`take_options` takes the options out of ``run``'s keyword arguments; :func:`arm` (the
launcher's last step before ``ivoryos.run``) sets up the installation and the check before serving.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from flask import Flask

from ..runtime.attach import IvoryOSPlugins
from ..runtime.extension import Extension
from ..runtime.inbound import ALLOWED_HOSTS_KEY, allowed_host_names
from ..runtime.libraries import before_request_first
from . import ivoryos as adapter
from .hardening_probes import Probes
from .hardening_web import HostCheck, Hooks, socket_check

log = logging.getLogger("ivoryos_plugin")

__all__ = ["Options", "HardeningError", "Report", "take_options", "arm", "install", "describe"]


@dataclass(frozen=True)
class Options:
    """The opt-outs (all off: every hardening on).

    :param allow_signup: let anyone make an account (IvoryOS's signup page).
    :param allow_anonymous: let IvoryOS's routes answer without a login, as IvoryOS does.
    :param allow_anonymous_socket: let IvoryOS's Socket.IO namespace take anonymous clients from any origin.
    :param allowed_hosts: more Host names (a list or a comma-separated string); ``"*"``: any Host.
    :param keep_sessions_after_logout: a session cookie keeps working after logout, as with IvoryOS.
    :param login_csrf: require the login form's CSRF token.
    :param ivoryos_csrf: require the session's CSRF token (and this server's origin) on IvoryOS's own
        state-changing routes, and give IvoryOS's pages the token.
    :param security_headers: Content-Security-Policy, X-Frame-Options, nosniff and no-store on IvoryOS's responses.
    :param samesite_cookie: the session cookie is ``SameSite=Lax``.
    :param check_uploads: a logo must be an image, and IvoryOS's logo folder serves downloads."""

    allow_signup: bool = False
    allow_anonymous: bool = False
    allow_anonymous_socket: bool = False
    allowed_hosts: Union[None, str, Sequence[str]] = None
    keep_sessions_after_logout: bool = False
    login_csrf: bool = True
    ivoryos_csrf: bool = True
    security_headers: bool = True
    samesite_cookie: bool = True
    check_uploads: bool = True

    @property
    def any_host_header(self) -> bool:
        """Whether the Host check is off."""
        listed = self.allowed_hosts
        return listed == "*" or (not isinstance(listed, str) and listed is not None and "*" in listed)


NAMES = tuple(f.name for f in fields(Options))


class HardeningError(Exception):
    """A hardening item that could not be installed or proven: ``ivoryos_plugin.run`` does not serve.
    The message names each such item, why, and its opt-out."""


@dataclass(frozen=True)
class Item:
    """One hardening: its key, its name on the health page, its opt-out, and whether it is on."""

    key: str
    title: str
    opt_out: str
    on: bool


def items(options: Options) -> List[Item]:
    """The hardening items, in the order they are printed.

    :param options: the options."""
    return [
        Item("signup", "signup off", "allow_signup=True", not options.allow_signup),
        Item("login", "a login on every IvoryOS route", "allow_anonymous=True", not options.allow_anonymous),
        Item("socket", "IvoryOS's Socket.IO namespace: a login and this origin", "allow_anonymous_socket=True",
             not options.allow_anonymous_socket),
        Item("hosts", "Host allow-list", "allowed_hosts='*'", not options.any_host_header),
        Item("sessions", "logout ends the session", "keep_sessions_after_logout=True",
             not options.keep_sessions_after_logout),
        Item("login_csrf", "the login form's CSRF token", "login_csrf=False", options.login_csrf),
        Item("csrf", "CSRF token and origin on IvoryOS's own routes", "ivoryos_csrf=False", options.ivoryos_csrf),
        Item("headers", "Content-Security-Policy, X-Frame-Options, no-store", "security_headers=False",
             options.security_headers),
        Item("cookie", "session cookie SameSite=Lax", "samesite_cookie=False", options.samesite_cookie),
        Item("uploads", "uploads: real images only, served as downloads", "check_uploads=False", options.check_uploads),
    ]


def take_options(run_kwargs: Dict[str, Any]) -> Options:
    """Take the hardening options out of ``run_kwargs`` (``ivoryos_plugin.run``'s extra keyword
    arguments, so ``ivoryos.run`` never sees them).

    :param run_kwargs: the keyword arguments (changed in place).
    :raises TypeError: an option of the wrong type."""
    given = {name: run_kwargs.pop(name) for name in NAMES if name in run_kwargs}
    for name, value in given.items():
        if name != "allowed_hosts" and not isinstance(value, bool):
            raise TypeError(f"ivoryos_plugin.run({name}=...) takes True or False, not {value!r}.")
    return Options(**given)


def _allowed_host_header_names(options: Options) -> str:
    import os

    names = sorted(n for n in allowed_host_names({ALLOWED_HOSTS_KEY: options.allowed_hosts},
                                                 os.environ.get(ALLOWED_HOSTS_KEY, "")) if n != "*")
    return ", ".join(["localhost", "IP addresses", *names])


def describe(options: Options) -> List[str]:
    """One line per hardening, each with its opt-out (or the warning when it is opted out).

    :param options: the options."""
    import os

    env_any = os.environ.get(ALLOWED_HOSTS_KEY, "").strip() == "*"
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
        "page is not refused." if options.any_host_header or env_any else
        f"Host check: {_allowed_host_header_names(options)}; other Host headers get 400 (a DNS-rebinding page would pass as "
        "same-origin); allowed_hosts=[...] or env IVORYOS_PLUGIN_ALLOWED_HOSTS adds names, '*' turns it off.",
        "a session cookie keeps working after logout (keep_sessions_after_logout=True), as with ivoryos.run."
        if options.keep_sessions_after_logout else
        "logout ends the session on the server: a cookie copied before it stops working (ivoryos.run: it keeps "
        "working); keep_sessions_after_logout=True turns it off.",
        "the login form is accepted without its CSRF token (login_csrf=False), as with ivoryos.run."
        if not options.login_csrf else
        "the login form carries a CSRF token and a login without it is refused (ivoryos.run: another site can "
        "log the browser in to its own account); login_csrf=False turns it off.",
        "IvoryOS's own routes take POSTs without a CSRF token, from any page (ivoryos_csrf=False), as with "
        "ivoryos.run: another site's page can start, pause and abort runs in a logged-in browser."
        if not options.ivoryos_csrf else
        "IvoryOS's own forms and routes need the session's CSRF token and this server's origin (ivoryos.run: "
        "another site's page starts, pauses and aborts runs and uploads files in a logged-in browser); its pages "
        "send the token; ivoryos_csrf=False turns it off.",
        "IvoryOS's pages have no Content-Security-Policy or X-Frame-Options (security_headers=False), as with "
        "ivoryos.run: any site can frame the instrument controls." if not options.security_headers else
        "IvoryOS's pages: a Content-Security-Policy (scripts from this server only, frame-ancestors 'self'), "
        "X-Frame-Options SAMEORIGIN, nosniff, and no-store on JSON (ivoryos.run: any site can frame the "
        "instrument controls); security_headers=False turns it off.",
        "the session cookie keeps the config's SameSite (samesite_cookie=False)." if not options.samesite_cookie else
        "the session cookie is SameSite=Lax (ivoryos.run: no SameSite, sent with other sites' form posts); "
        "samesite_cookie=False turns it off.",
        "IvoryOS takes any file as a logo and serves it as a page (check_uploads=False), as with ivoryos.run."
        if not options.check_uploads else
        "a logo must be a PNG, JPEG, GIF or WebP image, and IvoryOS's logo folder serves downloads with nosniff "
        "(ivoryos.run: an HTML 'logo' runs its script on this server's origin); check_uploads=False turns it off.",
    ]


# ------------------------------------------------------------------ installing, proving, reporting
class Report:
    """Each item's state on one run: what :func:`install` did, what the probes found.

    :param options: the options."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.items = items(options)
        self.problems: Dict[str, str] = {}
        self.probes: Optional[Probes] = None
        #: False once ``ivoryos.run`` returned: a hook left behind (IvoryOS returned without
        #: registering the framework) never hardens another app of the process
        self.armed = True

    @property
    def installed(self) -> bool:
        """Whether :func:`install` ran on IvoryOS's app."""
        return self.probes is not None

    def fail_if_any(self, problems: Dict[str, str], when: str) -> None:
        """Record ``problems`` (item key -> why) and raise :class:`HardeningError` naming each.

        :param problems: the failed items.
        :param when: what was being done (for the message)."""
        self.problems.update(problems)
        if not problems:
            return
        lines = [f"IvoryOS's hardening failed {when}, so ivoryos_plugin.run does not serve it:"]
        for item in self.items:
            if item.key in problems:
                lines.append(f"  - {item.title}: {problems[item.key]} Opt out of it with "
                             f"ivoryos_plugin.run(..., {item.opt_out}) only if you accept that risk "
                             f"(docs/security.md), or install an IvoryOS this framework was verified on "
                             f"({adapter.VERIFIED_ON}).")
        raise HardeningError("\n".join(lines))

    def status(self) -> List[Dict[str, str]]:
        """Each item, for the health page: ``{"item", "title", "state": "on" | "off" | "failed",
        "opt_out", "detail"}``; an item still on is looked at again (its hook still in place)."""
        current = dict(self.problems)
        if self.probes is not None:
            for key, problem in self.probes.structure().items():
                current.setdefault(key, problem)
        states = []
        for item in self.items:
            if not item.on:
                state, detail = "off", f"opted out: {item.opt_out}"
            elif item.key in current or not self.installed:
                state, detail = "failed", current.get(item.key) or "not installed."
            else:
                state, detail = "on", "installed, proven at start, still in place"
            states.append({"item": item.key, "title": item.title, "state": state, "opt_out": item.opt_out,
                           "detail": detail})
        return states


def arm(options: Options, say: Callable[[str], None], framework: IvoryOSPlugins) -> Report:
    """The launcher's call just before ``ivoryos.run``: install the hardening on IvoryOS's app when the
    run's extension attaches it (its blueprint registered by IvoryOS), prove it there, prove it again
    before IvoryOS listens, then ``say`` one line per item.

    :param options: the options (:func:`take_options`).
    :param say: prints a line.
    :param framework: the run's extension: the install is its hook (``on_attach``), so no other app
        of the process (an edge plugin's, a dev host, a test's) gets it.
    :raises HardeningError: the check before serving cannot be put in place."""
    report = Report(options)

    def gate() -> None:
        if not report.armed:
            return
        if not report.installed:
            report.fail_if_any({item.key: "IvoryOS's app never registered the framework's blueprint, so nothing was "
                                          "installed." for item in report.items if item.on}, "before serving")
        assert report.probes is not None
        report.fail_if_any(report.probes.run(), "just before serving")
        for line in describe(options):
            say(line)
            log.info("hardening: %s", line)

    if not adapter.before_serving(gate):
        report.fail_if_any({item.key: "the check before IvoryOS serves cannot be put in place (ivoryos.run's "
                                      "socketio.run was not found)." for item in report.items if item.on}, "to start")
    framework.on_attach(lambda app, ext: install(app, ext, report))
    return report


def install(app: Flask, ext: Extension, report: Report) -> None:
    """Harden IvoryOS's ``app`` and prove each item (the registration hook :func:`arm` sets up).

    :param app: IvoryOS's app.
    :param ext: its framework state.
    :param report: the run's report (filled in).
    :raises HardeningError: an item that is on could not be installed or proven."""
    if not report.armed:
        return
    options = report.options
    ext.hardening = report.status
    on = {item.key for item in report.items if item.on}
    if not adapter.is_ivoryos_app(app):
        report.fail_if_any({key: f"IvoryOS's app was not recognised (its import name is {app.import_name!r}, not "
                                 "'ivoryos.app'), so nothing was installed on it." for key in sorted(on)},
                           "to install")
        return  # every item is opted out: nothing to do on an app that is not IvoryOS's
    if options.allowed_hosts is not None:
        listed = options.allowed_hosts
        app.config[ALLOWED_HOSTS_KEY] = [listed] if isinstance(listed, str) else list(listed)
    if "hosts" in on:
        app.wsgi_app = HostCheck(app.wsgi_app, app)  # type: ignore[method-assign]
    if "cookie" in on:
        for key in ("SESSION_COOKIE_SAMESITE", "REMEMBER_COOKIE_SAMESITE"):
            if app.config.get(key) not in ("Lax", "Strict"):
                app.config[key] = "Lax"
    hooks = Hooks(app, ext, options, _cdn_origins(app), on)
    before_request_first(app, hooks.before)  # before IvoryOS's own
    if hooks.after_steps:
        app.after_request(hooks.after)  # one hook for the three: Flask's per-hook cost is paid once
    problems: Dict[str, str] = {}
    if "socket" in on:
        if ext.socketio is None:
            problems["socket"] = "IvoryOS's app has no Socket.IO server to guard."
        elif not adapter.guard_default_namespace(ext.socketio, socket_check(app, ext),
                                                 lambda sid: ext.connections.remove("/", sid)):
            problems["socket"] = ("IvoryOS's connect handler is not in python-socketio's handler table "
                                  "(server.handlers['/']['connect']), so the guard would guard nothing.")
    report.probes = Probes(app, ext, hooks, options, on)
    report.fail_if_any(problems, "to install")
    report.fail_if_any(report.probes.run(), "its check after installing")


def _cdn_origins(app: Flask) -> List[str]:
    """The CDN origins IvoryOS's pages still load from (libraries without a local copy, or the local
    copies turned off): the Content-Security-Policy allows them, and says so in the log."""
    from . import offline

    local = offline.available_assets() if app.config.get(offline.CONFIG_KEY, True) else {}
    origins = sorted({"https://" + url.split("/")[2] for url in adapter.CDN_ASSETS if url not in local})
    if origins:
        log.warning("ivoryos_plugin: IvoryOS's pages load libraries from %s (no local copy): the "
                    "Content-Security-Policy allows these origins; run 'npm ci' to serve them locally.",
                    ", ".join(origins))
    return origins
