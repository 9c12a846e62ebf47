"""Live events: a Socket.IO namespace per plugin, shared stream producers, publish with replay,
and a publisher for other processes through the message queue (Redis)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Set

from flask import request
from flask_socketio import Namespace, join_room, leave_room
from socketio.exceptions import ConnectionRefusedError

from ..core.specs import StreamSpec
from ..hardware.deck import CALLER
from . import registry
from .security import AuthError, authenticate, origin_allowed

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime

log = logging.getLogger("ivoryos_plugin.live")
FRAMEWORK_EVENTS = ("connect", "disconnect", "subscribe", "unsubscribe")


@dataclass
class Stream:
    """One running (or idle) stream in one app: a single producer for all its subscribers.

    :param spec: the declaration.
    :param runtime: the plugin's runtime."""

    spec: StreamSpec
    runtime: "PluginRuntime"
    subscribers: Set[str] = field(default_factory=set)
    last: Any = None
    has_last: bool = False
    reads: int = 0
    errors: int = 0
    _thread: Optional[threading.Thread] = None
    _wake: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def room(self) -> str:
        """The Socket.IO room of this stream's subscribers."""
        return f"stream:{self.spec.name}"

    def rate(self) -> float:
        """The current rate in Hz (a callable ``hz`` that fails or returns nonsense means 1 Hz)."""
        hz = self.spec.hz
        try:
            value = float(hz() if callable(hz) else hz)
        except Exception:
            log.exception("stream %r: hz callable failed; using 1 Hz", self.spec.name)
            return 1.0
        return value if 0 < value <= 1000 else 1.0

    def add(self, sid: str) -> None:
        """Subscribe ``sid``; start the producer if it is the first viewer.

        :param sid: the Socket.IO client id."""
        with self._lock:
            self.subscribers.add(sid)
            self._wake.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name=f"ivoryos_plugin-stream-{self.spec.name}")
                self._thread.start()

    def remove(self, sid: str) -> None:
        """Unsubscribe ``sid``; the producer stops when no viewer is left.

        :param sid: the Socket.IO client id."""
        with self._lock:
            self.subscribers.discard(sid)
            if not self.subscribers:
                self._wake.set()

    def stop(self) -> None:
        """Drop every subscriber and stop the producer (at shutdown)."""
        with self._lock:
            self.subscribers.clear()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    def _emit(self, event: str, data: Any) -> None:
        socketio = self.runtime.socketio
        if socketio is not None:
            socketio.emit(event, data, namespace=self.runtime.namespace, to=self.room)

    def _loop(self) -> None:
        CALLER.set(f"plugin:{self.runtime.plugin.name} stream {self.spec.name}")  # this thread only
        registry.CURRENT.set(self.runtime)  # plugin.settings in the producer means this app's
        backoff = 0.0
        due = time.monotonic()
        while True:
            with self._lock:
                if not self.subscribers:
                    self._thread = None
                    return
            try:
                value = self.spec.func()
                self.reads += 1
                self.last, self.has_last, backoff = value, True, 0.0
                self._emit(self.spec.name, value)
            except Exception as exc:
                self.reads += 1
                self.errors += 1
                backoff = min(max(backoff * 2, 0.5), 10.0)
                log.warning("stream %r of plugin %r failed: %s", self.spec.name, self.runtime.plugin.name, exc)
                self._emit("stream_error", {"stream": self.spec.name, "error": f"{type(exc).__name__}: {exc}",
                                            "retry_in": backoff})
            due += 1.0 / self.rate()
            now = time.monotonic()
            if due < now:  # a slow producer: drop the missed ticks, latest value wins
                due = now
            self._wake.wait(due - now + backoff)


class StreamHub:
    """The streams of one plugin runtime.

    :param runtime: the plugin's runtime."""

    def __init__(self, runtime: "PluginRuntime") -> None:
        self.runtime = runtime
        self.streams: Dict[str, Stream] = {
            name: Stream(spec, runtime) for name, spec in runtime.plugin._streams.items()}

    def drop(self, sid: str) -> None:
        """Remove a disconnected client from every stream.

        :param sid: the Socket.IO client id."""
        for stream in self.streams.values():
            stream.remove(sid)

    def stop_all(self) -> None:
        """Stop every producer."""
        for stream in self.streams.values():
            stream.stop()

    def status(self) -> Dict[str, Any]:
        """Viewers, rate and counters of each stream."""
        return {name: {"viewers": len(s.subscribers), "hz": s.rate(), "running": s._thread is not None,
                       "reads": s.reads, "errors": s.errors} for name, s in self.streams.items()}


class PluginNamespace(Namespace):  # type: ignore[misc]
    """The plugin's namespace ``/ivoryos/<name>``: authenticated clients only.

    :param runtime: the plugin's runtime."""

    def __init__(self, runtime: "PluginRuntime") -> None:
        super().__init__(runtime.namespace)
        self.runtime = runtime
        for event, handler in runtime.plugin._handlers.items():
            # Flask-SocketIO's Namespace dispatches event E to the attribute on_E (its public model)
            setattr(self, f"on_{event}", handler)

    def on_connect(self, auth: Any = None) -> None:
        """Refuse anonymous clients and foreign origins; replay the last published values.

        :param auth: the client's auth payload (``{"token": ...}`` for programs)."""
        name = self.runtime.plugin.name
        try:
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
        self.runtime.ext.ensure_started()
        for event, data in list(self.runtime.last_published.items()):
            self.socketio.emit(event, data, namespace=self.namespace, to=_sid())

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the client's subscriptions.

        :param reason: why it disconnected."""
        self.runtime.hub.drop(_sid())

    def on_subscribe(self, data: Any = None) -> Dict[str, Any]:
        """``subscribe {stream}``: join the stream and get its last value at once.

        :param data: ``{"stream": name}``."""
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {data!r}; streams: {sorted(self.runtime.hub.streams)}"}
        join_room(stream.room)
        if stream.has_last:
            self.socketio.emit(stream.spec.name, stream.last, namespace=self.namespace, to=_sid())
        stream.add(_sid())
        return {"ok": True, "hz": stream.rate()}

    def on_unsubscribe(self, data: Any = None) -> Dict[str, Any]:
        """``unsubscribe {stream}``.

        :param data: ``{"stream": name}``."""
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {data!r}"}
        leave_room(stream.room)
        stream.remove(_sid())
        return {"ok": True}

    def _stream(self, data: Any) -> Optional[Stream]:
        name = data.get("stream") if isinstance(data, dict) else data
        return self.runtime.hub.streams.get(name) if isinstance(name, str) else None


QUEUE_ENV = "IVORYOS_PLUGIN_MESSAGE_QUEUE"


def check_async_mode(socketio: Any) -> None:
    """Warn loudly when the Socket.IO server is not in threading mode (gevent or eventlet
    installed switch IvoryOS silently; the framework's workers and streams use threads).

    :param socketio: the ``flask_socketio.SocketIO``."""
    mode = getattr(socketio, "async_mode", None)
    if mode not in (None, "threading"):
        log.warning("Socket.IO runs in %r mode; ivoryos_plugin needs 'threading' (streams, workers and "
                    "hardware locks use threads). Uninstall gevent/eventlet or pass async_mode='threading'.",
                    mode)


def _sid() -> str:
    """The Socket.IO client id of the current event (Flask-SocketIO sets ``request.sid``)."""
    return str(getattr(request, "sid"))


def register_namespace(runtime: "PluginRuntime", socketio: Any) -> None:
    """Add the plugin's namespace to the app's Socket.IO server.

    :param runtime: the plugin's runtime.
    :param socketio: the ``flask_socketio.SocketIO``."""
    socketio.on_namespace(PluginNamespace(runtime))


class Publisher:
    """Publish into a plugin's namespace from another process (an acquisition script, another
    machine) through the servers' message queue. Make one with :func:`publisher`.

    :param plugin: the plugin's name.
    :param url: the message queue, e.g. ``redis://127.0.0.1:6379/0``.
    :param url_prefix: IvoryOS's URL prefix (``/ivoryos``)."""

    def __init__(self, plugin: str, url: str, url_prefix: str = "/ivoryos") -> None:
        from flask_socketio import SocketIO

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
