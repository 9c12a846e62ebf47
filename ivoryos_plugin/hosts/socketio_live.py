"""Flask-SocketIO's binding of the live hub (IvoryOS 1.x and the dev host): a namespace per plugin
(``/ivoryos/<name>``) that authenticates each client on connect and hands its events to the
plugin's :class:`~ivoryos_plugin.runtime.live.LiveHub`; rooms for the streams; background work through
the server's ``start_background_task``; the :class:`Publisher` of other processes through the
servers' message queue (Redis).

The runtime never imports Socket.IO (an import contract checks it): the host installs this binding
as the app's :class:`~ivoryos_plugin.runtime.live.LiveServer` when it adopts the app (:func:`install`).
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from flask import request
from flask_socketio import Namespace, SocketIO
from socketio.exceptions import ConnectionRefusedError

from ..runtime import payloads
from ..runtime.connections import Connection
from ..runtime.inbound import host_header_refusal, request_host_header_ok
from ..runtime.live import LiveHub, Task, start_thread
from ..runtime.security import AuthError, authenticate, origin_allowed
from . import websockets

if TYPE_CHECKING:
    from ..runtime.extension import Extension

__all__ = ["QUEUE_ENV", "PluginNamespace", "Publisher", "SocketIOServer", "SocketIOTransport", "check_async_mode",
           "install", "publisher"]

log = logging.getLogger("ivoryos_plugin.live")
#: the environment variable naming the message queue the servers share (``redis://...``)
QUEUE_ENV = "IVORYOS_PLUGIN_MESSAGE_QUEUE"


def install(ext: "Extension") -> None:
    """Serve the live events of the app's plugins on its Flask-SocketIO server (an app without one
    gets none). Called by the host when it adopts the app, before any plugin gets its runtime.

    :param ext: the app's framework state."""
    if ext.socketio is None or ext.live is not None:
        return
    check_async_mode(ext.socketio)
    websockets.end_sessions_cleanly()  # no byte after a close frame, no HTTP 500 inside a WebSocket
    ext.live = SocketIOServer(ext.socketio)


def check_async_mode(socketio: Any) -> None:
    """Warn loudly when the Socket.IO server is not in threading mode (gevent or eventlet
    installed switch IvoryOS silently; the framework's workers and streams use threads).

    :param socketio: the ``flask_socketio.SocketIO``."""
    mode = getattr(socketio, "async_mode", None)
    if mode not in (None, "threading"):
        log.warning("Socket.IO runs in %r mode; ivoryos_plugin needs 'threading' (streams, workers and "
                    "hardware locks use threads). Uninstall gevent/eventlet from this environment (pip uninstall "
                    "eventlet gevent): Flask-SocketIO picks them whenever they are installed, and ivoryos.run takes "
                    "no async_mode.", mode)


class SocketIOTransport:
    """One plugin's namespace on the app's Socket.IO server (a :class:`~ivoryos_plugin.runtime.live.Transport`).

    :param socketio: the ``flask_socketio.SocketIO``.
    :param namespace: the plugin's namespace."""

    def __init__(self, socketio: Any, namespace: str) -> None:
        self._socketio = socketio
        self.namespace = namespace

    def emit(self, event: str, data: Any, to: Optional[str] = None) -> None:
        """Send to a client, a room, or the whole namespace (on every server of the message queue).

        :param event: the event's name.
        :param data: a JSON-serialisable value.
        :param to: a client id, a room, or None."""
        self._socketio.emit(event, data, namespace=self.namespace, to=to)

    def join(self, sid: str, room: str) -> None:
        """Put a client in a room (as ``flask_socketio.join_room``).

        :param sid: the client id.
        :param room: the room."""
        self._socketio.server.enter_room(sid, room, namespace=self.namespace)

    def leave(self, sid: str, room: str) -> None:
        """Take a client out of a room (as ``flask_socketio.leave_room``).

        :param sid: the client id.
        :param room: the room."""
        self._socketio.server.leave_room(sid, room, namespace=self.namespace)


class SocketIOServer:
    """The app's Flask-SocketIO server as its :class:`~ivoryos_plugin.runtime.live.LiveServer`.

    :param socketio: the ``flask_socketio.SocketIO``."""

    def __init__(self, socketio: Any) -> None:
        self.socketio = socketio

    def transport(self, namespace: str) -> SocketIOTransport:
        """The plugin's namespace.

        :param namespace: its URL prefix."""
        return SocketIOTransport(self.socketio, namespace)

    def start_task(self, target: Callable[[], None], name: str) -> Task:
        """Start ``target()`` with the server's ``start_background_task`` (a daemon thread in threading
        mode), named ``name``. In another mode (warned about by :func:`check_async_mode`) a plain
        thread, as the framework's waits are threading's.

        :param target: what the task runs.
        :param name: the thread's name."""
        if getattr(self.socketio, "async_mode", "threading") != "threading":
            return start_thread(target, name)

        def named() -> None:
            threading.current_thread().name = name
            target()

        task: Task = self.socketio.start_background_task(named)
        if isinstance(task, threading.Thread):
            task.name = name
        return task

    def serve(self, hub: LiveHub) -> None:
        """Add the plugin's namespace to the server.

        :param hub: the plugin's hub."""
        self.socketio.on_namespace(PluginNamespace(hub))
        server = getattr(self.socketio, "server", None)
        if server is not None:  # an event nested too deep to parse is answered (400), never dropped
            if getattr(server.packet_class, "guarded_namespaces", None) is None:
                server.packet_class = payloads.guarded_packet_class(server.packet_class, set())
            server.packet_class.guarded_namespaces.add(hub.namespace)

    def disconnect(self, namespace: str, sid: str) -> None:
        """Close a client's connection.

        :param namespace: its namespace.
        :param sid: its id."""
        server = getattr(self.socketio, "server", None)
        if server is not None:
            server.disconnect(sid, namespace=namespace)


class PluginNamespace(Namespace):  # type: ignore[misc]
    """The plugin's namespace ``/ivoryos/<name>``: authenticated clients only, their events handled
    by the plugin's hub.

    :param hub: the plugin's hub."""

    def __init__(self, hub: LiveHub) -> None:
        super().__init__(hub.namespace)
        self.hub = hub
        for event in hub.handlers:
            # Flask-SocketIO's Namespace dispatches event E to the attribute on_E (its public model)
            setattr(self, f"on_{event}", self._handler(event))

    def _handler(self, event: str) -> Callable[..., Any]:
        hub, handler = self.hub, self.hub.handlers[event]

        def guarded(*args: Any) -> Any:
            return hub.dispatch(_sid(), event, list(args))

        guarded.__name__ = getattr(handler, "__name__", event)
        guarded.__wrapped__ = handler  # type: ignore[attr-defined]
        return guarded

    def on_connect(self, auth: Any = None) -> None:
        """Refuse anonymous clients and foreign origins; let the others into the hub (which replays
        the last published values).

        :param auth: the client's auth payload (``{"token": ...}`` for programs)."""
        name = self.hub.plugin
        try:
            if not request_host_header_ok():
                raise ConnectionRefusedError(f"Plugin {name!r}: {host_header_refusal(request.host)}")
            if not origin_allowed():
                raise ConnectionRefusedError(
                    f"Plugin {name!r}: origin {request.headers.get('Origin')!r} is not allowed; add it to "
                    "app.config['IVORYOS_PLUGIN_ALLOWED_ORIGINS'] if it is yours.")
            token = auth.get("token") if isinstance(auth, dict) else None
            principal = authenticate(name, token)
        except ConnectionRefusedError:
            raise
        except AuthError as exc:
            raise ConnectionRefusedError(f"unauthorized: Plugin {name!r}: {exc}") from None
        except Exception as exc:  # never let an error accept the client (an app-wide on_error_default
            # handler would swallow it and python-socketio would then complete the connection)
            log.exception("plugin %r: refusing a Socket.IO client: the credential check failed", name)
            raise ConnectionRefusedError(f"unauthorized: Plugin {name!r}: the credential check failed "
                                         f"({type(exc).__name__})") from None
        if principal is None:
            raise ConnectionRefusedError(f"unauthorized: plugin {name!r} needs a logged-in session or a token")
        self.hub.connect(Connection(
            sid=_sid(), namespace=self.namespace, plugin=name, token=principal.token,
            session_id=principal.session_id, user=principal.name if principal.via == "session" else None,
            session_at=principal.session_at))

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the client's subscriptions.

        :param reason: why it disconnected."""
        self.hub.disconnect(_sid())

    def on_subscribe(self, data: Any = None) -> Any:
        """``subscribe {stream}``: join the stream and get its last value at once.

        :param data: ``{"stream": name}``."""
        return self.hub.subscribe(_sid(), data)

    def on_unsubscribe(self, data: Any = None) -> Any:
        """``unsubscribe {stream}``.

        :param data: ``{"stream": name}``."""
        return self.hub.unsubscribe(_sid(), data)


def _sid() -> str:
    """The Socket.IO client id of the current event (Flask-SocketIO sets ``request.sid``)."""
    return str(getattr(request, "sid"))


class Publisher:
    """Publish into a plugin's namespace from another process (an acquisition script, another
    machine) through the servers' message queue. Make one with :func:`publisher`.

    :param plugin: the plugin's name.
    :param url: the message queue, e.g. ``redis://127.0.0.1:6379/0``.
    :param url_prefix: IvoryOS's URL prefix (``/ivoryos``)."""

    def __init__(self, plugin: str, url: str, url_prefix: str = "/ivoryos") -> None:
        self.namespace = f"{url_prefix.rstrip('/')}/{plugin}"
        self._socketio = SocketIO(message_queue=url)

    def publish(self, event: str, data: Any = None) -> None:
        """Send ``data`` as ``event`` to every page of the plugin, on every server on the queue.

        :param event: the event's name.
        :param data: a JSON-serialisable value."""
        self._socketio.emit(event, data, namespace=self.namespace)


def publisher(plugin: str, url: str, url_prefix: str = "/ivoryos") -> Publisher:
    """A :class:`Publisher` for ``plugin`` on the message queue ``url``.

    :param plugin: the plugin's name.
    :param url: the message queue, e.g. ``redis://127.0.0.1:6379/0``.
    :param url_prefix: IvoryOS's URL prefix.

    Example::

        pub = ivoryos_plugin.publisher("balance", "redis://127.0.0.1:6379/0")
        pub.publish("calls", {"method": "weigh"})
    """
    return Publisher(plugin, url, url_prefix)
