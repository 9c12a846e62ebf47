"""IvoryOS's own open doors, closed by ``ivoryos_plugin.run`` (plain ``ivoryos.run`` keeps them).

Each hardening answers one threat and has an opt-out, a keyword argument of ``ivoryos_plugin.run``
(docs/security.md lists them). Each is installed on IvoryOS's app when the run's extension attaches
it, then proven (:mod:`.probes`: a request through the installed guard, a client offered
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

This package is the public place of those names (``from ivoryos_plugin.hosts import hardening``);
its modules, by concern: :mod:`.options` (the opt-outs, the items, the lines printed),
:mod:`.install` (arm, install, the report and its error), :mod:`.guard` (the request guard),
:mod:`.logins` (its login check), :mod:`.pages` (the page hook), :mod:`.responses` (the headers
and the served uploads), :mod:`.hooks` (those hooks as installed), :mod:`.host_header` (the
Host-header check), :mod:`.sockets` (the default Socket.IO namespace's gate) and :mod:`.probes`
(the proof of each item).
"""
from __future__ import annotations

from .install import HardeningError, Report, arm, install
from .options import HOST_HEADER, NAMES, RENAMED, Item, Options, describe, items, take_options

__all__ = ["Options", "HardeningError", "Report", "take_options", "arm", "install", "describe", "items", "Item",
           "NAMES", "HOST_HEADER", "RENAMED"]
