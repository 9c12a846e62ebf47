"""Live events: a Socket.IO namespace per plugin, shared stream producers, publish with replay,
and a publisher for other processes through the message queue (Redis)."""
from __future__ import annotations

import inspect
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
from . import payloads, registry
from .connections import Connection
from .inbound import host_refusal, request_host_ok
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
    recording: bool = False
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

    def record_always(self) -> None:
        """Sample even with no viewer (a recorded stream), until :meth:`stop`."""
        with self._lock:
            self.recording = True
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
            if not self.subscribers and not self.recording:
                self._wake.set()

    def stop(self) -> None:
        """Drop every subscriber and stop the producer (at shutdown)."""
        with self._lock:
            self.subscribers.clear()
            self.recording = False
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    def _emit(self, event: str, data: Any) -> None:
        # NaN or Infinity would make the page's JSON.parse drop the event
        self._send(event, payloads.finite(data))

    def _send(self, event: str, data: Any) -> None:
        socketio = self.runtime.socketio
        if socketio is not None:
            socketio.emit(event, data, namespace=self.runtime.namespace, to=self.room)

    def _loop(self) -> None:
        CALLER.set(f"plugin:{self.runtime.plugin.name} stream {self.spec.name}")  # this thread only
        registry.CURRENT.set(self.runtime)  # plugin.settings in the producer means this app's
        backoff = 0.0
        due = time.monotonic()
        record = self.spec.record
        recorder = None
        if record:
            recorder = self.runtime.recorder(self.spec.name, record if isinstance(record, str) else None)
        while True:
            with self._lock:
                if not self.subscribers and not self.recording:
                    self._thread = None
                    return
            try:
                value = self.spec.func()
                self.reads += 1
                self.last, self.has_last, backoff = value, True, 0.0
                if recorder is not None:  # one JSON encoding checks what is sent and is what is stored
                    value, text = payloads.finite_json(value)
                    self._send(self.spec.name, value)
                    recorder(value, text)
                else:
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
        self._lock = threading.Lock()  # the connected clients and the subscriptions change together
        self._live: Set[str] = set()

    def connected(self, sid: str) -> None:
        """A client was let into the namespace: from now on it may subscribe.

        :param sid: the Socket.IO client id."""
        with self._lock:
            self._live.add(sid)

    def subscribe(self, stream: Stream, sid: str) -> bool:
        """Subscribe ``sid`` if it is still connected; False (and nothing done) for a client that left
        (a ``subscribe`` handled after its disconnect would otherwise watch for ever).

        :param stream: the stream.
        :param sid: the Socket.IO client id."""
        with self._lock:
            if sid not in self._live:
                return False
            stream.add(sid)
            return True

    def drop(self, sid: str) -> None:
        """Remove a disconnected client from every stream.

        :param sid: the Socket.IO client id."""
        with self._lock:
            self._live.discard(sid)
            for stream in self.streams.values():
                stream.remove(sid)

    def viewers(self) -> int:
        """How many clients are connected to the namespace."""
        with self._lock:
            return len(self._live)

    def stop_all(self) -> None:
        """Stop every producer."""
        for stream in self.streams.values():
            stream.stop()

    def status(self) -> Dict[str, Any]:
        """Viewers, rate and counters of each stream."""
        return {name: {"viewers": len(s.subscribers), "hz": s.rate(), "running": s._thread is not None,
                       "recording": s.recording,
                       "reads": s.reads, "errors": s.errors} for name, s in self.streams.items()}


class PluginNamespace(Namespace):  # type: ignore[misc]
    """The plugin's namespace ``/ivoryos/<name>``: authenticated clients only.

    :param runtime: the plugin's runtime."""

    def __init__(self, runtime: "PluginRuntime") -> None:
        super().__init__(runtime.namespace)
        self.runtime = runtime
        for event, handler in runtime.plugin._handlers.items():
            # Flask-SocketIO's Namespace dispatches event E to the attribute on_E (its public model)
            setattr(self, f"on_{event}", self._guarded(event, handler))

    def refusal(self, data: Any) -> Optional[Dict[str, Any]]:
        """The ack refusing an event, or None to handle it: a client whose credential was revoked
        (or its session logged out) since it connected is disconnected; a payload nested too deep
        (even too deep to parse), holding NaN or Infinity or a lone surrogate is a 400, also sent as
        an ``event_error`` event when the client asked for no ack.

        :param data: the event's payload."""
        ext, name, sid = self.runtime.ext, self.runtime.plugin.name, _sid()
        connection = ext.connections.get(self.namespace, sid)
        why = "it is not connected" if connection is None else ext.connections.problem(connection)
        if why is not None:
            if connection is not None:
                ext.connections._disconnect(connection, why)
            return {"ok": False, "status": 401, "error": f"Plugin {name!r}: refused: {why}; connect again."}
        found = payloads.problem(data)
        if found is None:
            return None
        answer = {"ok": False, "status": 400, "error": f"Plugin {name!r}: {found}."}
        unparsed = [a for a in (data if isinstance(data, list) else [data]) if isinstance(a, payloads.Unparsed)]
        if unparsed and not unparsed[0].ack:  # an emit without a callback: told by an event_error event
            event = (getattr(request, "event", None) or {}).get("message")
            self.socketio.emit("event_error", {**answer, "event": event}, namespace=self.namespace, to=sid)
        return answer

    def _guarded(self, event: str, handler: Any) -> Any:
        name = self.runtime.plugin.name
        try:
            signature: Optional[inspect.Signature] = inspect.signature(handler)
        except (TypeError, ValueError):
            signature = None

        def guarded(*args: Any) -> Any:
            refused = self.refusal(list(args))
            if refused is not None:
                return refused
            if signature is not None:
                try:
                    signature.bind(*args)
                except TypeError:
                    return {"ok": False, "status": 400, "error": f"Plugin {name!r}: event {event!r} takes "
                            f"{len(signature.parameters)} payload(s), got {len(args)}; send one JSON value."}
            try:
                return handler(*args)
            except Exception as exc:  # the ack says so, rather than never coming
                self.runtime.plugin.logger.exception("Socket.IO handler %r failed", event)
                return {"ok": False, "status": 500, "error": f"Plugin {name!r}: event {event!r} failed: "
                                                             f"{type(exc).__name__}: {exc}"}

        guarded.__name__ = getattr(handler, "__name__", event)
        guarded.__wrapped__ = handler  # type: ignore[attr-defined]
        return guarded

    def on_connect(self, auth: Any = None) -> None:
        """Refuse anonymous clients and foreign origins; replay the last published values.

        :param auth: the client's auth payload (``{"token": ...}`` for programs)."""
        name = self.runtime.plugin.name
        try:
            if not request_host_ok():
                raise ConnectionRefusedError(f"Plugin {name!r}: {host_refusal(request.host)}")
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
        sid = _sid()
        self.runtime.hub.connected(sid)
        self.runtime.ext.connections.add(Connection(
            sid=sid, namespace=self.namespace, plugin=name, token=principal.token,
            session_id=principal.session_id, user=principal.name if principal.via == "session" else None,
            session_at=principal.session_at))
        self.runtime.ext.ensure_started()
        for event, data in list(self.runtime.last_published.items()):
            self.socketio.emit(event, data, namespace=self.namespace, to=_sid())

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the client's subscriptions.

        :param reason: why it disconnected."""
        sid = _sid()
        self.runtime.hub.drop(sid)
        self.runtime.ext.connections.remove(self.namespace, sid)

    def on_subscribe(self, data: Any = None) -> Dict[str, Any]:
        """``subscribe {stream}``: join the stream and get its last value at once.

        :param data: ``{"stream": name}``."""
        refused = self.refusal(data)
        if refused is not None:
            return refused
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {_shown(data)}; streams: {sorted(self.runtime.hub.streams)}"}
        sid = _sid()
        join_room(stream.room)
        if not self.runtime.hub.subscribe(stream, sid):  # it left while this event waited: nobody to send to
            return {"ok": False, "error": "the client disconnected"}
        if stream.has_last:
            self.socketio.emit(stream.spec.name, payloads.finite(stream.last), namespace=self.namespace, to=sid)
        return {"ok": True, "hz": stream.rate()}

    def on_unsubscribe(self, data: Any = None) -> Dict[str, Any]:
        """``unsubscribe {stream}``.

        :param data: ``{"stream": name}``."""
        refused = self.refusal(data)
        if refused is not None:
            return refused
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {_shown(data)}"}
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
                    "hardware locks use threads). Uninstall gevent/eventlet from this environment (pip uninstall "
                    "eventlet gevent): Flask-SocketIO picks them whenever they are installed, and ivoryos.run takes "
                    "no async_mode.", mode)


def _shown(data: Any) -> str:
    """A payload as an error message shows it (short)."""
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."


def _sid() -> str:
    """The Socket.IO client id of the current event (Flask-SocketIO sets ``request.sid``)."""
    return str(getattr(request, "sid"))


def register_namespace(runtime: "PluginRuntime", socketio: Any) -> None:
    """Add the plugin's namespace to the app's Socket.IO server.

    :param runtime: the plugin's runtime.
    :param socketio: the ``flask_socketio.SocketIO``."""
    socketio.on_namespace(PluginNamespace(runtime))
    server = getattr(socketio, "server", None)
    if server is not None:  # an event nested too deep to parse is answered (400), never dropped
        if getattr(server.packet_class, "guarded_namespaces", None) is None:
            server.packet_class = payloads.guarded_packet_class(server.packet_class, set())
        server.packet_class.guarded_namespaces.add(runtime.namespace)


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
