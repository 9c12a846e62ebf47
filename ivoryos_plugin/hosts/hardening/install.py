"""Installing the hardening on IvoryOS's app, proving it, and reporting each item's state: :func:`arm`
(the launcher's last step before ``ivoryos.run``) sets up :func:`install` as the run's extension's
hook and the check just before IvoryOS listens; :class:`Report` keeps each item's state for the
health page; :class:`HardeningError` stops ``ivoryos_plugin.run`` naming each item that could not be
installed or proven, and its opt-out."""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional

from flask import Flask

from ...runtime.attach import IvoryOSPlugins
from ...runtime.extension import Extension
from ...runtime.inbound import ALLOWED_HOSTS_KEY
from ...runtime.libraries import app_hooks, before_request_first
from .. import ivoryos as adapter
from .. import offline
from .hooks import Hooks
from .host_header import HostHeaderCheck
from .options import HOST_HEADER, RENAMED, Options, describe, items
from .probes import Probes
from .sockets import socket_check

log = logging.getLogger("ivoryos_plugin")

__all__ = ["HardeningError", "Report", "arm", "install"]


class HardeningError(Exception):
    """A hardening item that could not be installed or proven: ``ivoryos_plugin.run`` does not serve.
    The message names each such item, why, and its opt-out."""


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
        "opt_out", "detail"}``; an item still on is looked at again (its hook still in place). An item
        whose key changed (:data:`~.options.RENAMED`) is followed by a copy under its old key, marked
        ``"renamed_to"`` (programs reading ``status.json`` keep working for one release; the health
        page leaves the copy out)."""
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
            if item.key in RENAMED:  # the old key, for one release (CHANGELOG: docs/security.md)
                states.append({**states[-1], "item": RENAMED[item.key], "renamed_to": item.key})
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
    if HOST_HEADER in on:
        app.wsgi_app = HostHeaderCheck(app.wsgi_app, app)  # type: ignore[method-assign]
    if "cookie" in on:
        for key in ("SESSION_COOKIE_SAMESITE", "REMEMBER_COOKIE_SAMESITE"):
            if app.config.get(key) not in ("Lax", "Strict"):
                app.config[key] = "Lax"
    after = app_hooks(app, "after_request_funcs")
    rewrites = [hook for hook in after if isinstance(hook, offline.OfflineAssets)]
    others, framework_after = [hook for hook in after if hook not in rewrites], ext.after_each_request
    hooks = Hooks(app, ext, options, _cdn_origins(app), on, rewrites=rewrites,
                  # the framework's after hook when Flask would run it right after the one added below
                  # (the last added runs first)
                  then=[framework_after] if framework_after is not None and others[-1:] == [framework_after] else [])
    before_request_first(app, hooks.before)  # before IvoryOS's own
    if hooks.after_steps:
        for hook in (*hooks.rewrites, *hooks.then):  # run first and last by the one hook below
            after.remove(hook)
        app.after_request(hooks.after)  # one hook for them all: Flask's per-hook cost is paid once
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
    local = offline.available_assets() if app.config.get(offline.CONFIG_KEY, True) else {}
    origins = sorted({"https://" + url.split("/")[2] for url in adapter.CDN_ASSETS if url not in local})
    if origins:
        log.warning("ivoryos_plugin: IvoryOS's pages load libraries from %s (no local copy): the "
                    "Content-Security-Policy allows these origins; run 'npm ci' to serve them locally.",
                    ", ".join(origins))
    return origins
