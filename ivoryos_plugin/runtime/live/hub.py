"""One plugin's live events in one app, whatever carries them: the clients let in, the streams they
watch, the last published values (replayed to a client that connects), and the ``@plugin.on``
handlers (a payload in, the acknowledgement out).

The host's transport calls the hub: :meth:`LiveHub.connect` once it has authenticated a client,
then :meth:`~LiveHub.subscribe`, :meth:`~LiveHub.unsubscribe`, :meth:`~LiveHub.dispatch` for its
events, and :meth:`~LiveHub.disconnect` when it leaves. The hub answers through its
:class:`~.transport.Transport`, from any thread.
"""
from __future__ import annotations

import inspect
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, List, Mapping, Optional, Set

from ...core.clock import Clock
from ...core.specs import StreamSpec
from .. import payloads
from .streams import RecorderFactory, Stream
from .transport import StartTask, Transport

if TYPE_CHECKING:
    from ..connections import Connection, Connections

__all__ = ["LiveHub"]

Ack = Dict[str, Any]


class LiveHub:
    """The live side of one plugin runtime.

    :param plugin: the plugin's name.
    :param namespace: its URL prefix, which names its clients' channel (the Socket.IO namespace).
    :param streams: its streams (name -> declaration).
    :param handlers: its ``@plugin.on`` handlers (event -> function).
    :param transport: how values reach its clients (:attr:`transport`).
    :param start_task: how the host starts background work (the stream producers).
    :param acting: a context in which plugin calls mean this runtime.
    :param recorder: makes the history recorder of a recorded stream.
    :param connections: the app's live connections, re-authorised while they live.
    :param ensure_started: starts the app's plugins (a client connecting is a first use).
    :param logger: the plugin's logger (a handler that raises is logged there).
    :param published: values published before this runtime existed, replayed like later ones.
    :param clock: what the streams' ticks and backoff wait on (the app's; the real one by default)."""

    def __init__(self, *, plugin: str, namespace: str, streams: Mapping[str, StreamSpec],
                 handlers: Mapping[str, Callable[..., Any]], transport: Transport, start_task: StartTask,
                 acting: Callable[[], ContextManager[None]], recorder: RecorderFactory,
                 connections: "Connections", ensure_started: Callable[[], None], logger: logging.Logger,
                 published: Optional[Dict[str, Any]] = None, clock: Optional[Clock] = None) -> None:
        self.plugin = plugin
        self.namespace = namespace
        #: how values reach the clients; a host whose transport is made after the runtime (the edge's
        #: channel) sets it before any client connects
        self.transport = transport
        self.handlers = dict(handlers)
        self._acting = acting
        self._connections = connections
        self._ensure_started = ensure_started
        self._logger = logger
        self._signatures: Dict[str, Optional[inspect.Signature]] = {
            event: _signature(handler) for event, handler in self.handlers.items()}
        self.streams: Dict[str, Stream] = {
            name: Stream(spec, plugin, self._send_to, start_task, acting, recorder, clock=clock) for name, spec in streams.items()}
        #: the last value of each published event, replayed to a client that connects
        self.last_published: Dict[str, Any] = dict(published or {})
        self._lock = threading.Lock()  # the connected clients and the subscriptions change together
        #: held while a value is published and while a connecting client is sent the last ones
        self._publishing = threading.Lock()
        self._live: Set[str] = set()

    def _send_to(self, event: str, data: Any, room: str) -> None:
        self.transport.emit(event, data, to=room)

    # ------------------------------------------------------------ the transport's callbacks
    def connect(self, connection: "Connection") -> None:
        """A client was authenticated by the transport: let it in, start the app's plugins if
        nothing did yet, and replay the last published values to it.

        :param connection: the client and the credential it connected with."""
        sid = connection.sid
        with self._lock:
            self._live.add(sid)
        self._connections.add(connection)
        self._ensure_started()
        with self._publishing:  # a value published meanwhile is sent after the one replayed (the newest last)
            for event, data in list(self.last_published.items()):
                self.transport.emit(event, data, to=sid)

    def disconnect(self, sid: str) -> None:
        """A client left: forget its subscriptions (a producer with no viewer left stops).

        :param sid: the client id."""
        with self._lock:
            self._live.discard(sid)
            for stream in self.streams.values():
                stream.remove(sid)
        self._connections.remove(self.namespace, sid)

    def subscribe(self, sid: str, data: Any) -> Ack:
        """``subscribe {stream}``: join the stream and get its last value at once.

        :param sid: the client id.
        :param data: ``{"stream": name}``.
        :returns: the acknowledgement (``ok``, the stream's rate)."""
        refused = self.refusal(sid, "subscribe", data)
        if refused is not None:
            return refused
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {_shown(data)}; streams: {sorted(self.streams)}"}
        with stream.joining():  # a value read meanwhile is sent after the last one, once (not live and replayed)
            self.transport.join(sid, stream.room)
            with self._lock:  # a subscribe handled after its client's disconnect would otherwise watch for ever
                live = sid in self._live
                if live:
                    stream.add(sid)
            if live and stream.has_last:
                self.transport.emit(stream.spec.name, payloads.finite(stream.last), to=sid)
        if not live:
            return {"ok": False, "error": "the client disconnected"}
        return {"ok": True, "hz": stream.rate()}

    def unsubscribe(self, sid: str, data: Any) -> Ack:
        """``unsubscribe {stream}``.

        :param sid: the client id.
        :param data: ``{"stream": name}``."""
        refused = self.refusal(sid, "unsubscribe", data)
        if refused is not None:
            return refused
        stream = self._stream(data)
        if stream is None:
            return {"ok": False, "error": f"no stream {_shown(data)}"}
        self.transport.leave(sid, stream.room)
        stream.remove(sid)
        return {"ok": True}

    def dispatch(self, sid: str, event: str, args: List[Any]) -> Any:
        """Call the plugin's handler of ``event`` with the payloads a client sent (in this runtime:
        ``plugin.settings`` in it means this app's).

        :param sid: the client id.
        :param event: the event's name.
        :param args: the payloads (one, usually).
        :returns: the handler's value, or a refusal (``{"ok": False, "status": ..., "error": ...}``):
            404 for an event no handler takes, 401 for a credential that no longer holds, 400 for a
            bad payload or a wrong number of them, 500 when the handler raised (the acknowledgement
            says so rather than never coming)."""
        name = self.plugin
        handler = self.handlers.get(event)
        if handler is None:
            return {"ok": False, "status": 404, "error": f"Plugin {name!r} has no handler for event {event!r}; "
                    f"events: {sorted(self.handlers)}."}
        refused = self.refusal(sid, event, args)
        if refused is not None:
            return refused
        signature = self._signatures.get(event)
        if signature is not None:
            try:
                signature.bind(*args)
            except TypeError:
                return {"ok": False, "status": 400, "error": f"Plugin {name!r}: event {event!r} takes "
                        f"{len(signature.parameters)} payload(s), got {len(args)}; send one JSON value."}
        try:
            with self._acting():
                return handler(*args)
        except Exception as exc:  # the ack says so, rather than never coming
            self._logger.exception("live event handler %r failed", event)
            return {"ok": False, "status": 500, "error": f"Plugin {name!r}: event {event!r} failed: "
                                                         f"{type(exc).__name__}: {exc}"}

    def refusal(self, sid: str, event: str, data: Any) -> Optional[Ack]:
        """The acknowledgement refusing an event, or None to handle it: a client whose credential was
        revoked (or its session logged out) since it connected is disconnected; a payload nested too
        deep (even too deep to parse), holding NaN or Infinity or a lone surrogate is a 400, also sent
        as an ``event_error`` event when the client asked for no acknowledgement.

        :param sid: the client id.
        :param event: the event's name.
        :param data: the event's payload (or the list of them)."""
        connections, name = self._connections, self.plugin
        connection = connections.get(self.namespace, sid)
        why = "it is not connected" if connection is None else connections.problem(connection)
        if why is not None:
            if connection is not None:
                connections.disconnect(connection, why)
            return {"ok": False, "status": 401, "error": f"Plugin {name!r}: refused: {why}; connect again."}
        found = payloads.problem(data)
        if found is None:
            return None
        answer = {"ok": False, "status": 400, "error": f"Plugin {name!r}: {found}."}
        unparsed = [a for a in (data if isinstance(data, list) else [data]) if isinstance(a, payloads.Unparsed)]
        if unparsed and not unparsed[0].ack:  # an emit without a callback: told by an event_error event
            self.transport.emit("event_error", {**answer, "event": event}, to=sid)
        return answer

    # ------------------------------------------------------------ the plugin's side
    def publish(self, event: str, data: Any) -> None:
        """Remember ``data`` for replay and send it to every client of the plugin.

        :param event: the event's name.
        :param data: a JSON-serialisable value (NaN and Infinity are sent as null)."""
        data = payloads.finite(data)
        with self._publishing:
            self.last_published[event] = data
            self.transport.emit(event, data)

    def viewers(self) -> int:
        """How many clients are connected."""
        with self._lock:
            return len(self._live)

    def stop_all(self) -> None:
        """Stop every producer."""
        for stream in self.streams.values():
            stream.stop()

    def status(self) -> Dict[str, Any]:
        """Viewers, rate and counters of each stream."""
        return {name: {"viewers": len(s.subscribers), "hz": s.rate(), "running": s.running,
                       "recording": s.recording,
                       "reads": s.reads, "errors": s.errors} for name, s in self.streams.items()}

    def _stream(self, data: Any) -> Optional[Stream]:
        name = data.get("stream") if isinstance(data, dict) else data
        return self.streams.get(name) if isinstance(name, str) else None


def _signature(handler: Callable[..., Any]) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(handler)
    except (TypeError, ValueError):
        return None


def _shown(data: Any) -> str:
    """A payload as an error message shows it (short)."""
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."
