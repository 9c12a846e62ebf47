"""What the framework does once per process rather than per app: stop every app's plugins at
interpreter exit (``atexit``) or, when a program asks for it, at SIGTERM (:func:`stop_on_sigterm`),
and follow logins and logouts through Flask-Login's signals, which are process-wide by nature.

No per-app state here: the apps come from :func:`ivoryos_plugin.runtime.registry.apps`, and each
signal finds its app's framework state in ``app.extensions["ivoryos_plugin"]``. A library installs
no signal handler: the programs call :func:`stop_on_sigterm`.
"""
from __future__ import annotations

import atexit
import signal
import threading
from typing import Any

from flask import Flask, session

from . import registry
from .extension import KEY, Extension
from .sessions import SID_KEY, USER_KEY

__all__ = ["install", "stop_all_apps", "stop_on_sigterm"]


def stop_all_apps() -> None:
    """Stop the plugins of every app in this process (atexit, SIGTERM)."""
    for ext in registry.apps():
        ext.stop_all()


def install() -> None:
    """Stop every app's plugins at interpreter exit, and follow logins and logouts (a session id
    per login; a logout ends it and its sockets). Called at each attach; doing it again changes nothing."""
    atexit.unregister(stop_all_apps)  # once, however many apps attach
    atexit.register(stop_all_apps)
    from flask_login import user_logged_in, user_logged_out

    user_logged_in.connect(_logged_in, weak=False)  # blinker keeps one connection per receiver
    user_logged_out.connect(_logged_out, weak=False)


def stop_on_sigterm() -> bool:
    """Stop every app's plugins (workers, then ``on_stop``) when the process gets SIGTERM, then exit
    with 128 + 15, as a shell reports it. The framework's programs call it (``ivoryos_plugin.run``,
    the dev host, the demo); a deck started with plain ``ivoryos.run`` calls it before ``ivoryos.run``
    to get the same (without it, SIGTERM ends the process and ``on_stop`` does not run; SIGINT and
    a normal exit run it anyway). A handler someone else installed is left alone.

    :returns: whether the handler is installed (False off the main thread, or when SIGTERM is taken).

    Example::

        import ivoryos, ivoryos_plugin

        ivoryos_plugin.stop_on_sigterm()
        ivoryos.run(__name__, blueprint_plugins=[plugin])
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current not in (signal.SIG_DFL, None):
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _logged_in(app: Flask, **extra: Any) -> None:
    ext = app.extensions.get(KEY)
    if isinstance(ext, Extension):
        ext.sessions.begin(session)


def _logged_out(app: Flask, **extra: Any) -> None:
    ext = app.extensions.get(KEY)
    if not isinstance(ext, Extension):
        return
    sid, user = session.get(SID_KEY), session.get(USER_KEY)
    ext.sessions.end(sid, user)
    ext.connections.end_session(sid, user)


def _on_sigterm(signum: int, frame: Any) -> None:
    stop_all_apps()
    raise SystemExit(128 + signum)
