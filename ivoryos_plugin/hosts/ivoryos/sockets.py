"""IvoryOS's Socket.IO server: its default namespace's handler table (a plain plugin's
``init_socketio`` chained after IvoryOS's own handlers, the guard put in front of ``connect``), and the
message queue several server processes share. Part of the IvoryOS adapter (:mod:`ivoryos_plugin.hosts.ivoryos`)."""
from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, Dict, Optional

from flask import Blueprint

log = logging.getLogger("ivoryos_plugin.ivoryos")


# ------------------------------------------------------------------ Socket.IO internals
def default_namespace_handlers(socketio: Any) -> Dict[str, Any]:
    """The live dict of the server's default-namespace handlers (python-socketio's
    ``Server.handlers['/']``; verified on python-socketio 5.x), or ``{}``.

    :param socketio: a ``flask_socketio.SocketIO``."""
    server = getattr(socketio, "server", None)
    handlers = getattr(server, "handlers", None) if server is not None else None
    if not isinstance(handlers, dict):
        return {}
    return handlers.setdefault("/", {})  # type: ignore[no-any-return]


class _DefaultNamespace:
    """What the framework knows of one Socket.IO server's default namespace: the handlers the host
    (IvoryOS) registered itself, snapshotted once before the first plain plugin's ``init_socketio``,
    and which plugin registered each other event last."""

    def __init__(self, handlers: Dict[str, Any]) -> None:
        self.host: Dict[str, Any] = dict(handlers)
        self.owners: Dict[str, str] = {}


_NAMESPACES: "weakref.WeakKeyDictionary[Any, _DefaultNamespace]" = weakref.WeakKeyDictionary()


def _host_first(host: Callable[..., Any], plugin: Callable[..., Any], name: str, event: str) -> Callable[..., Any]:
    """One handler for an event both the host and a plugin handle: the host's runs first and gives
    the answer, then the plugin's (an exception of the plugin's is logged, never raised)."""
    def both(*args: Any) -> Any:
        answer = host(*args)
        try:
            plugin(*args)
        except Exception as exc:
            log.error("plugin %r: its Socket.IO handler for %r raised %s: %s", name, event, type(exc).__name__, exc)
        return answer

    both._ivoryos_plugin_host = host  # type: ignore[attr-defined]
    return both


def guard_init_socketio(blueprint: Blueprint, warn: Callable[[str, str], None]) -> None:
    """Wrap a plain Blueprint's ``init_socketio`` so that it behaves as under plain IvoryOS, except
    that it can neither crash IvoryOS nor put IvoryOS's own default-namespace handlers out of action.

    The host's handlers (python-socketio's ``Server.handlers['/']``; verified on python-socketio
    5.x with IvoryOS 1.6.4, 1.6.14 and 1.7.2) are snapshotted once, before the first plugin's
    ``init_socketio``. A plugin handler for one of those events runs after the host's, which keeps
    answering. Between plugins nothing changes: as python-socketio does, the handler registered
    last is the one that runs. Each of these cases, and an ``init_socketio`` that raises, is a
    warning (the plugin runs), never a failure.

    :param blueprint: the plain Blueprint.
    :param warn: ``warn(plugin, message)``, the extension's warning recorder."""
    original = getattr(blueprint, "init_socketio", None)
    if original is None or getattr(original, "_ivoryos_plugin_guard", False):
        return
    name = blueprint.name
    fix = (f"register the plugin's handlers in its own namespace (namespace='/ivoryos/{name}'), or port it to "
           "ivoryos_plugin.Plugin and use @plugin.on(...)")

    def guarded(socketio: Any) -> None:
        handlers = default_namespace_handlers(socketio)
        server = getattr(socketio, "server", None)
        state = _NAMESPACES.get(server) if server is not None else None
        if state is None:
            state = _DefaultNamespace(handlers)
            if server is not None:
                _NAMESPACES[server] = state
        before = dict(handlers)
        try:
            original(socketio)
        except Exception as exc:
            log.error("plugin %r: init_socketio raised %s: %s", name, type(exc).__name__, exc)
            warn(name, f"init_socketio raised {type(exc).__name__}: {exc}; its pages are served, but some of its "
                       "Socket.IO handlers may be missing. Fix init_socketio.")
        for event in sorted(e for e, h in handlers.items() if before.get(e) is not h):
            if event in state.host:
                handlers[event] = _host_first(state.host[event], handlers[event], name, event)
                warn(name, f"init_socketio handles Socket.IO event {event!r} on the default namespace, where IvoryOS "
                           f"has its own handler: IvoryOS's keeps answering and the plugin's runs after it; {fix}.")
            previous = state.owners.get(event)
            if previous is not None and previous != name:
                warn(name, f"plugins {previous!r} and {name!r} both handle Socket.IO event {event!r} on the default "
                           f"namespace: {name!r}'s handler, registered last, is the only one that runs (as under plain "
                           f"IvoryOS); {fix}.")
            state.owners[event] = name

    guarded._ivoryos_plugin_guard = True  # type: ignore[attr-defined]
    setattr(blueprint, "init_socketio", guarded)


def join_message_queue(socketio: Any, url: str) -> bool:
    """Make IvoryOS's already-initialised Socket.IO server fan out through ``url``.

    Swaps python-socketio's client manager (``server.manager``, ``manager_initialized``; verified on
    python-socketio 5.x) for a Redis one on Flask-SocketIO's channel before any client connects, so
    events emitted by any process on the queue reach this server's clients. Returns False (and logs)
    when clients are already connected or the queue is unreachable.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param url: ``redis://host:port/db``."""
    import socketio as python_socketio

    server = getattr(socketio, "server", None)
    if server is None:
        return False
    if isinstance(server.manager, python_socketio.PubSubManager):
        return True
    if server.manager_initialized and any(server.manager.get_namespaces()):
        log.error("the message queue must be set before the server starts: clients are already connected")
        return False
    try:
        manager = python_socketio.RedisManager(url, channel="flask-socketio")  # Flask-SocketIO's channel
    except Exception as exc:
        log.error("cannot join the message queue %s: %s", url, exc)
        return False
    manager.set_server(server)
    server.manager = manager
    server.manager_initialized = False
    log.info("Socket.IO events fan out through %s", url)
    return True


def guard_default_namespace(socketio: Any, check: Callable[[str, Any, Any], Optional[str]],
                            gone: Callable[[str], None]) -> bool:
    """Put ``check`` in front of the default namespace's ``connect`` handler (IvoryOS's own, which
    sends the run's state), and call ``gone(sid)`` when a default-namespace client leaves.

    Uses python-socketio's handler table ``server.handlers['/']`` (verified on python-socketio 5.18,
    Flask-SocketIO 5.7, IvoryOS 1.6.14 and 1.7.2, whose handlers are registered there with
    ``@socketio.on``; probed at start by :func:`default_namespace_refusal`). A client ``check``
    refuses is never in the namespace, so its events reach no handler.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param check: ``check(sid, environ, auth)`` -> a refusal message, or None to let the client in.
    :param gone: called with the sid of a client that disconnected.
    :returns: whether IvoryOS's ``connect`` handler is now behind ``check``: False when there is no
        Socket.IO server, or no ``connect`` handler where IvoryOS 1.7.2 puts it (a renamed table or
        a class-based namespace: the guard would guard nothing of IvoryOS's)."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    if getattr(socketio, "server", None) is None:
        return False
    handlers = default_namespace_handlers(socketio)
    original, left = handlers.get("connect"), handlers.get("disconnect")
    if original is None:
        return False
    if getattr(original, "_ivoryos_plugin_guard", False):
        return True

    def connect(sid: str, environ: Any, *rest: Any) -> Any:
        why = check(sid, environ, rest[0] if rest else None)
        if why is not None:
            raise Refused(why)
        if original is None:
            return None
        try:
            return original(sid, environ, *rest)
        except BaseException:
            gone(sid)
            raise

    def disconnect(sid: str, *rest: Any) -> Any:
        gone(sid)
        return left(sid, *rest) if left is not None else None

    connect._ivoryos_plugin_guard = True  # type: ignore[attr-defined]
    handlers["connect"], handlers["disconnect"] = connect, disconnect
    return True


def default_namespace_guarded(socketio: Any) -> bool:
    """Whether the default namespace's ``connect`` handler is still :func:`guard_default_namespace`'s
    (or a plain plugin's handler chained after it by :func:`guard_init_socketio`): what the health
    page re-checks. Reads python-socketio's ``server.handlers['/']`` (verified on python-socketio 5.x).

    :param socketio: the ``flask_socketio.SocketIO``."""
    handler = default_namespace_handlers(socketio).get("connect")
    while handler is not None:
        if getattr(handler, "_ivoryos_plugin_guard", False):
            return True
        handler = getattr(handler, "_ivoryos_plugin_host", None)
    return False


def default_namespace_refusal(socketio: Any, environ: Dict[str, Any]) -> Optional[str]:
    """Offer the default namespace's ``connect`` handler a client, as python-socketio does for a new
    one (``handler(sid, environ, auth)``; verified on python-socketio 5.x), and return its refusal,
    or None when it let the client in. The probe of the Socket.IO guard at start: called outside
    any request, with a made-up sid that no transport holds.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param environ: the WSGI environ of the handshake (no cookie: an anonymous client)."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    connect = default_namespace_handlers(socketio).get("connect")
    if connect is None:
        return None
    try:
        answer = connect("ivoryos_plugin-probe", environ, None)
    except Refused as exc:
        return str((exc.error_args or {}).get("message") or "refused")
    except Exception as exc:  # a handler that fails is not a refusal: python-socketio lets the client in
        log.info("the default namespace's connect handler raised %s for the probe: %s", type(exc).__name__, exc)
        return None
    return "refused (the handler answered False)" if answer is False else None
