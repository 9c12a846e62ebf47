"""What ``ivoryos_plugin.run`` is asked to harden: the opt-outs (:class:`Options`, taken out of
``run``'s keyword arguments by :func:`take_options`), the items they turn on or off (:func:`items`,
each with its key on the health page and ``status.json``), and the line printed for each at start
(:func:`describe`). Plain data and sentences: nothing here touches an app."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Sequence, Union

from ...runtime.inbound import ALLOWED_HOSTS_KEY, allowed_host_names

__all__ = ["Options", "NAMES", "Item", "items", "HOST_HEADER", "RENAMED", "take_options", "describe"]

#: the key of the Host-header allow-list item (``"hosts"`` until this release: :data:`RENAMED`)
HOST_HEADER = "host_header"
#: items whose key changed: the new key -> the old one, still given on ``status.json`` for one release
RENAMED = {HOST_HEADER: "hosts"}


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
        Item(HOST_HEADER, "Host allow-list", "allowed_hosts='*'", not options.any_host_header),
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
    names = sorted(n for n in allowed_host_names({ALLOWED_HOSTS_KEY: options.allowed_hosts},
                                                 os.environ.get(ALLOWED_HOSTS_KEY, "")) if n != "*")
    return ", ".join(["localhost", "IP addresses", *names])


def describe(options: Options) -> List[str]:
    """One line per hardening, each with its opt-out (or the warning when it is opted out).

    :param options: the options."""
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
