"""What a plugin's live hub needs from the host that serves it: a :class:`Transport` to reach the
plugin's clients, a way to start background tasks (:data:`StartTask`), and, per app, a
:class:`LiveServer` that makes both and routes the clients' events to the hub.

Flask-SocketIO implements these in :mod:`ivoryos_plugin.hosts.socketio_live` (a namespace per
plugin, rooms, ``start_background_task``); another host (a plain WebSocket) implements the same
three names. Nothing here knows a wire protocol.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from ...core.clock import start_thread as start_framework_thread

if TYPE_CHECKING:
    from .hub import LiveHub

__all__ = ["FRAMEWORK_EVENTS", "LiveServer", "NullTransport", "StartTask", "Task", "Transport", "start_thread"]

#: the events the hub answers itself (a plugin's ``@plugin.on`` cannot take them)
FRAMEWORK_EVENTS = ("connect", "disconnect", "subscribe", "unsubscribe")


class Transport(Protocol):
    """How one plugin's hub reaches its clients (Socket.IO: the plugin's namespace).

    A client is named by its id (``sid``); a room is a set of clients (a stream's viewers), so a
    value sent to a room is encoded once, whatever the number of viewers."""

    def emit(self, event: str, data: Any, to: Optional[str] = None) -> None:
        """Send ``data`` as ``event``: to one client or one room (``to``), or to every client (None).
        Called from any thread.

        :param event: the event's name.
        :param data: a JSON-serialisable value.
        :param to: a client id, a room, or None."""

    def join(self, sid: str, room: str) -> None:
        """Put client ``sid`` in ``room`` (called while the hub handles one of its events).

        :param sid: the client id.
        :param room: the room."""

    def leave(self, sid: str, room: str) -> None:
        """Take client ``sid`` out of ``room``.

        :param sid: the client id.
        :param room: the room."""


class Task(Protocol):
    """A started background task (a thread under Flask-SocketIO's threading mode)."""

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the task to end, at most ``timeout`` seconds.

        :param timeout: seconds, or None for ever."""


#: starts ``target()`` in the background as the host starts its tasks; ``name`` names it (a thread's
#: name, seen in ``threading.enumerate()``); returns at once
StartTask = Callable[[Callable[[], None], str], Task]


def start_thread(target: Callable[[], None], name: str) -> Task:
    """The default :data:`StartTask` (an app without a live server): one of the framework's daemon
    threads, started by the one helper, :func:`ivoryos_plugin.core.clock.start_thread`.

    Not a second way to start a thread: only the shape differs. A :data:`StartTask` takes
    ``(target, name)`` and no arguments for ``target``, as a host's own starter does (Flask-SocketIO's
    ``start_background_task`` in :meth:`LiveServer.start_task`), so a hub is given either without
    knowing which; the clock's helper takes ``(name, target, *args)``.

    :param target: what the task runs.
    :param name: the thread's name (``ivoryos_plugin-`` is added when missing)."""
    return start_framework_thread(name, target)


class NullTransport:
    """The transport of an app with no live server: sends nothing (recorded streams still sample)."""

    def emit(self, event: str, data: Any, to: Optional[str] = None) -> None:
        """Drop the event.

        :param event: the event's name.
        :param data: the value.
        :param to: the client or room."""

    def join(self, sid: str, room: str) -> None:
        """Nothing to join.

        :param sid: the client id.
        :param room: the room."""

    def leave(self, sid: str, room: str) -> None:
        """Nothing to leave.

        :param sid: the client id.
        :param room: the room."""


class LiveServer(Protocol):
    """A host's live transport in one app (``app.extensions["ivoryos_plugin"].live``), installed by
    the host when it adopts the app."""

    def transport(self, namespace: str) -> Transport:
        """The transport of the plugin mounted at ``namespace`` (``/ivoryos/<name>``).

        :param namespace: the plugin's URL prefix."""

    def start_task(self, target: Callable[[], None], name: str) -> Task:
        """Start ``target()`` in the background, as this host starts its tasks (a :data:`StartTask`).

        :param target: what the task runs.
        :param name: its name."""

    def serve(self, hub: "LiveHub") -> None:
        """Route the clients of ``hub.namespace`` to the hub: authenticate them on connect, then call
        :meth:`LiveHub.connect`, :meth:`~LiveHub.subscribe`, :meth:`~LiveHub.unsubscribe`,
        :meth:`~LiveHub.dispatch` and :meth:`~LiveHub.disconnect`.

        :param hub: the plugin's hub."""

    def disconnect(self, namespace: str, sid: str) -> None:
        """Close one client's connection (its credential no longer holds).

        :param namespace: its namespace (``/`` for the host's own).
        :param sid: its id."""
