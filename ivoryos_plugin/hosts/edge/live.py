"""The plugin's live channel on the edge: one WebSocket per page at ``/plugins/<name>/live``, with
what Socket.IO gives on IvoryOS 1.x: streams (one producer for all viewers, none without viewers,
recorded streams sampled always), ``publish`` with last-value replay, ``@plugin.on`` handlers with
acknowledgements, and the deck-busy state. Every publish is also sent to the edge's own one-way
channel ``/plugins/<name>/events`` (``ivoryos_edge.plugins.Plugin.publish``).

Streams, publish and handlers are the runtime's own hub (:class:`~ivoryos_plugin.runtime.live.LiveHub`):
the channel is its :class:`~ivoryos_plugin.runtime.live.Transport`, as Flask-SocketIO is on 1.x, and
hands each page's operations to the hub. It speaks JSON text frames:

- page -> server: ``{"op": "subscribe" | "unsubscribe", "stream": name, "id": n}``,
  ``{"op": "emit", "event": name, "data": value, "id": n}`` (``id`` asks for an acknowledgement);
- server -> page: ``{"type": "event", "event": name, "data": value}``, ``{"type": "ack", "id": n,
  "data": value}``, ``{"type": "deck", "busy", "verified", "reason", "run"}``.
"""
from __future__ import annotations

import asyncio
import collections
import json
import types
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Deque, Dict, Generator, List, Optional, Set

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ...runtime import payloads
from ...runtime.connections import Connection
from . import runstate, security

if TYPE_CHECKING:
    from .runtime_app import RuntimeApp

log = logging.getLogger("ivoryos_plugin.edge")
#: the most frames waiting for one slow page; past it the oldest are dropped (the latest value wins)
QUEUE_SIZE = 256
DECK_POLL_S = 0.5


@dataclass
class _Client:
    sid: str
    ws: WebSocket
    #: frames waiting while a send to this page waits for it to take more (bounded: the oldest dropped)
    backlog: Deque[str] = field(default_factory=lambda: collections.deque(maxlen=QUEUE_SIZE))
    #: a send to this page is waiting for it (its socket's buffer is full): later frames wait in the backlog
    sending: bool = False
    closed: bool = False
    rooms: Set[str] = field(default_factory=set)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """Go on with ``coro``, started by hand and suspended on ``waiting`` (an asyncio future), as the
    task awaiting this does: each thing it waits for is handed to the task, then it is resumed.

    :param coro: the coroutine.
    :param waiting: what its first ``send(None)`` yielded."""
    value = waiting
    while True:
        try:
            yield value
        except BaseException as exc:  # the task was cancelled: the coroutine is told where it waits
            try:
                value = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            value = coro.send(None)
        except StopIteration as stop:
            return stop.value


class LiveChannel:
    """The transport of one plugin runtime's hub on the edge (``runtime.hub.transport``).

    :param rt: the plugin's private runtime app.
    :param mirror: the edge plugin's ``publish`` (its ``/events`` channel), or None."""

    def __init__(self, rt: "RuntimeApp", mirror: Optional[Callable[[Any], None]] = None) -> None:
        self.rt = rt
        self.mirror = mirror
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.clients: Dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._deck_task: Optional["asyncio.Task[None]"] = None
        self._deck_last: Optional[str] = None

    # ----------------------------------------------------------- what the runtime calls (any thread)
    def emit(self, event: str, data: Any = None, to: Optional[str] = None) -> None:
        """Send ``event`` to the plugin's pages: all of them, a room's (a stream's viewers) or one
        page (``to=<sid>``). Safe from any thread. A publish to all is mirrored to ``/events``.

        :param event: the event.
        :param data: a JSON-able value.
        :param to: the audience."""
        text = json.dumps({"type": "event", "event": event, "data": data}, allow_nan=False, default=repr)
        with self._lock:
            clients = list(self.clients.values())
        if to is None:
            targets = clients
            if self.mirror is not None:
                try:
                    self.mirror({"event": event, "data": data})
                except Exception:
                    log.exception("plugin %r: the edge's /events channel refused %r", self.rt.name, event)
        else:
            targets = [c for c in clients if c.sid == to or to in c.rooms]
        loop = self.loop
        if not targets or loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:  # the hub answering a page's operation: in order with the rest of the answer
            self._fan(targets, text)
        else:
            loop.call_soon_threadsafe(self._fan, targets, text)  # one wake-up of the loop for all viewers

    @classmethod
    def _fan(cls, targets: List[_Client], text: str) -> None:
        for client in targets:
            cls._put(client, text)

    def join(self, sid: str, room: str) -> None:
        """Put a page in a room (a stream's viewers).

        :param sid: the page's id.
        :param room: the room."""
        with self._lock:
            client = self.clients.get(sid)
        if client is not None:
            client.rooms.add(room)

    def leave(self, sid: str, room: str) -> None:
        """Take a page out of a room.

        :param sid: the page's id.
        :param room: the room."""
        with self._lock:
            client = self.clients.get(sid)
        if client is not None:
            client.rooms.discard(room)

    @classmethod
    def _put(cls, client: _Client, text: str) -> None:
        """Send ``text`` to one page, in the loop's thread, at once: no task, no queue for a page that
        takes the frame now (a send that does not have to wait for the page completes in this call). A
        send that has to wait (the page's socket buffer is full) goes on in a task of its own; frames for
        that page wait behind it (at most :data:`QUEUE_SIZE`, the oldest dropped), so a slow page never
        holds up the others.

        :param client: the page.
        :param text: the frame."""
        if client.closed:
            return
        if client.sending:
            client.backlog.append(text)
            return
        coro = client.ws.send_text(text)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:  # the page went away: its read loop ends the connection
            client.closed = True
            return
        client.sending = True
        asyncio.ensure_future(cls._finish(client, coro, waiting))

    @staticmethod
    async def _finish(client: _Client, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        """The send that had to wait, then the page's backlog, in order."""
        try:
            await _resume(coro, waiting)
            while client.backlog and not client.closed:
                await client.ws.send_text(client.backlog.popleft())
        except Exception:
            client.closed = True
        finally:
            client.sending = False
            if client.closed:
                client.backlog.clear()

    # ----------------------------------------------------------------------------- deck state
    def deck_state(self) -> Dict[str, Any]:
        """``{"busy", "verified", "reason", "run"}``, as ``deck.json`` answers."""
        ext = self.rt.ext
        problem = ext.gate.problem
        verified = not problem and ext.gate.lock is not None
        busy = ext.deck_busy()
        if verified:
            try:
                runstate.read()
            except runstate.RunStateUnreadable as exc:
                verified, problem = False, f"the ivoryos-edge run state cannot be read: {exc}"
        if not verified:
            reason = f"Hardware actions are refused: cannot verify the deck is idle ({problem})."
        elif busy:
            reason = "An ivoryos-edge run or manual call holds the deck: hardware actions are refused until it ends."
        else:
            reason = "No ivoryos-edge run holds the deck: hardware actions run."
        run = ext.run_context()
        if run is not None:
            run = {key: run.get(key) for key in ("run_id", "run_name", "step")}
        return {"busy": busy, "verified": verified, "reason": reason, "run": run}

    async def _follow_deck(self) -> None:
        while True:
            with self._lock:
                if not self.clients:
                    self._deck_task = None
                    return
            state = await run_in_threadpool(self.deck_state)
            text = json.dumps({"type": "deck", **state}, default=repr)
            if text != self._deck_last:
                self._deck_last = text
                with self._lock:
                    clients = list(self.clients.values())
                for client in clients:
                    self._put(client, text)
            await asyncio.sleep(DECK_POLL_S)

    # ----------------------------------------------------------------------------- one page
    async def serve(self, ws: WebSocket) -> None:
        """The WebSocket endpoint ``/plugins/<name>/live``.

        :param ws: the connection (the edge's Origin/Host guard has let it in)."""
        name = self.rt.name
        why = security.foreign(ws.headers)
        refused = security.check_token(self.rt.ext, name, ws.headers, ws.query_params.get("token"))
        runtime = self.rt.runtime
        if why is not None or refused is not None or runtime.state != "running":
            await ws.accept()
            reason = why or (json.loads(bytes(refused.body)).get("error") if refused is not None else None) \
                or f"Plugin {name!r} is {runtime.state}: {runtime.current_reason()}"
            await ws.send_text(json.dumps({"type": "refused", "error": reason}))
            await ws.close(code=1008)
            return
        await ws.accept()
        self.loop = asyncio.get_running_loop()
        client = _Client(sid=uuid.uuid4().hex, ws=ws)
        with self._lock:
            self.clients[client.sid] = client
            if self._deck_task is None:
                self._deck_last = None
                self._deck_task = asyncio.ensure_future(self._follow_deck())
        runtime.hub.connect(Connection(sid=client.sid, namespace=runtime.namespace, plugin=name))  # replays
        if self._deck_last is not None:
            self._put(client, self._deck_last)
        try:
            while True:
                text = await ws.receive_text()
                answer = await self._handle(client, text)
                if answer is not None:
                    self._put(client, json.dumps(answer, default=repr, allow_nan=False))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            client.closed = True
            with self._lock:
                self.clients.pop(client.sid, None)
            runtime.hub.disconnect(client.sid)

    async def _handle(self, client: _Client, text: str) -> Optional[Dict[str, Any]]:
        name = self.rt.name
        try:
            # non-finite numbers are refused per event, in its acknowledgement (as on 1.x)
            message = payloads.parse_json(text.encode("utf-8", "surrogatepass"), finite=False)
        except payloads.PayloadError as exc:
            return {"type": "error", "status": 400, "error": f"Plugin {name!r}: {exc}."}
        if not isinstance(message, dict) or message.get("op") not in ("subscribe", "unsubscribe", "emit"):
            return {"type": "error", "status": 400,
                    "error": f"Plugin {name!r}: send {{\"op\": \"subscribe\"|\"unsubscribe\"|\"emit\", ...}}."}
        ident = message.get("id")
        reply = await self._op(client, message)
        result = reply["data"] if message["op"] == "emit" else reply
        if ident is not None:
            return {"type": "ack", "id": ident, "data": result}
        if isinstance(result, dict) and result.get("ok") is False:  # nobody waits for an ack: said as an error
            return {"type": "error", **result, "op": message["op"], "event": message.get("event"),
                    "stream": message.get("stream")}
        return None

    async def _op(self, client: _Client, message: Dict[str, Any]) -> Dict[str, Any]:
        hub = self.rt.runtime.hub
        op = message["op"]
        if op == "subscribe":
            return hub.subscribe(client.sid, message.get("stream"))
        if op == "unsubscribe":
            return hub.unsubscribe(client.sid, message.get("stream"))
        return {"data": await run_in_threadpool(self._call, client, message)}

    def _call(self, client: _Client, message: Dict[str, Any]) -> Any:
        """Run an ``@plugin.on`` handler (a worker thread), as 1.x answers its acks.

        :param client: the page.
        :param message: its ``emit`` operation."""
        event = message.get("event")
        args = [message["data"]] if "data" in message else []
        return payloads.finite(self.rt.runtime.hub.dispatch(client.sid, event if isinstance(event, str) else "", args))
