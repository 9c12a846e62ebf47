"""The order of what a page is sent when it arrives while values are on their way: a viewer that
subscribes while the producer sends a value gets that value once (not live and again as the replay of
the last one), and a client that connects while a value is published gets the newest value last (not
the replay of the older one after it). The plugin's real :class:`LiveHub` and its producer thread;
the transport is a stand-in that keeps rooms as Socket.IO does and lets the test act at the exact
moment the race needs (a real server never stops there on cue). ``test_edge_fanout.py`` checks the
same on the edge's real WebSocket channel, where CI once saw the repeated frame."""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from ivoryos_plugin import Plugin
from ivoryos_plugin.runtime.connections import Connection, Connections
from ivoryos_plugin.runtime.live.hub import LiveHub
from ivoryos_plugin.runtime.live.transport import start_thread

NAMESPACE = "/ivoryos/order"
#: how long the test lets the other thread try to send at the racy moment (it must not get through)
RACE_S = 0.3
WAIT_S = 10.0

values: "queue.Queue[Any]" = queue.Queue()
plugin = Plugin("order", __name__)


@plugin.stream("level", hz=1000)
def level() -> Any:
    return values.get(timeout=WAIT_S)


class Rooms:
    """A transport with Socket.IO's audience rules: ``to=None`` is every client of the namespace, a
    client id is that client, anything else a room; who is in the audience is decided when the value
    is sent. ``before_send`` runs before a value reaches its audience (the racy moment)."""

    def __init__(self) -> None:
        self.clients: Set[str] = set()
        self.rooms: Dict[str, Set[str]] = {}
        self.got: Dict[str, List[Tuple[str, Any]]] = {}
        self.before_join: Optional[Callable[[str, str], None]] = None
        self.before_send: Optional[Callable[[str, Any, Optional[str]], None]] = None
        self.sent = threading.Condition()

    def emit(self, event: str, data: Any, to: Optional[str] = None) -> None:
        hook = self.before_send
        if hook is not None:
            hook(event, data, to)
        with self.sent:
            audience = self.clients if to is None else {to} if to in self.clients else self.rooms.get(to, set())
            for sid in audience:
                self.got.setdefault(sid, []).append((event, data))
            self.sent.notify_all()

    def join(self, sid: str, room: str) -> None:
        with self.sent:
            self.rooms.setdefault(room, set()).add(sid)
        hook = self.before_join
        if hook is not None:
            hook(sid, room)

    def leave(self, sid: str, room: str) -> None:
        with self.sent:
            self.rooms.get(room, set()).discard(sid)

    def seen(self, sid: str, event: str) -> List[Any]:
        with self.sent:
            return [data for name, data in self.got.get(sid, []) if name == event]

    def wait_for(self, sid: str, event: str, data: Any, timeout: float = WAIT_S) -> bool:
        with self.sent:
            return self.sent.wait_for(lambda: (event, data) in self.got.get(sid, []), timeout)


@pytest.fixture()
def hub() -> Iterator[Tuple[LiveHub, Rooms]]:
    while not values.empty():
        values.get_nowait()
    rooms = Rooms()
    made = LiveHub(plugin=plugin.name, namespace=NAMESPACE, streams=plugin.declarations.streams,
                   handlers={}, transport=rooms, start_task=start_thread, acting=contextlib.nullcontext,
                   recorder=lambda name, field: lambda value, text: None,
                   # the real table of connections; these clients carry no token or session to check again
                   connections=Connections(credentials=None, disconnect=lambda connection, why: None),  # type: ignore[arg-type]
                   ensure_started=lambda: None, logger=logging.getLogger("test_live_order"))
    try:
        yield made, rooms
    finally:
        values.put(None)  # the producer, if it waits for a read, takes this one and sees nobody left
        for sid in list(rooms.clients):
            made.disconnect(sid)
        made.stop_all()


def connect(hub: LiveHub, rooms: Rooms, sid: str) -> None:
    with rooms.sent:
        rooms.clients.add(sid)  # in the namespace before its connect handler runs, as in python-socketio
    hub.connect(Connection(sid=sid, namespace=NAMESPACE, plugin=plugin.name))


def in_another_thread(work: Callable[[], None], done: Callable[[], bool]) -> threading.Thread:
    """Start ``work`` and give it :data:`RACE_S` to get ``done`` (it should not, with the hub's order kept)."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(RACE_S)
    done()
    return thread


def test_a_value_read_while_a_viewer_subscribes_reaches_it_once_after_the_last_one(
        hub: Tuple[LiveHub, Rooms]) -> None:
    live, rooms = hub
    connect(live, rooms, "a")
    assert live.subscribe("a", {"stream": "level"})["ok"]
    values.put(0)
    assert rooms.wait_for("a", "level", 0), "the first viewer never got the first value"
    connect(live, rooms, "b")

    def read_one_more(sid: str, room: str) -> None:  # b is in the room; its replay is not sent yet
        rooms.before_join = None
        values.put(1)  # the producer reads 1 now and sends it to the room, unless the hub holds it back
        with rooms.sent:
            rooms.sent.wait_for(lambda: ("level", 1) in rooms.got.get("a", []), RACE_S)

    rooms.before_join = read_one_more
    assert live.subscribe("b", {"stream": "level"})["ok"]
    assert rooms.wait_for("b", "level", 1), "the viewer that subscribed never got the value read meanwhile"
    assert rooms.seen("b", "level") == [0, 1], "each value once, the last one first, then the one read meanwhile"
    assert rooms.seen("a", "level") == [0, 1]


def test_a_value_published_while_a_client_connects_reaches_it_last(hub: Tuple[LiveHub, Rooms]) -> None:
    live, rooms = hub
    connect(live, rooms, "a")
    live.publish("state", {"run": "running"})
    publisher: List[threading.Thread] = []

    def publish_meanwhile(event: str, data: Any, to: Optional[str]) -> None:
        if to == "c" and event == "state":  # the replay of the older value, about to be sent
            rooms.before_send = None
            publisher.append(in_another_thread(lambda: live.publish("state", {"run": "finished"}),
                                               lambda: rooms.wait_for("c", "state", {"run": "finished"}, RACE_S)))

    rooms.before_send = publish_meanwhile
    connect(live, rooms, "c")
    assert publisher, "the replay was never sent"
    publisher[0].join(WAIT_S)
    assert rooms.wait_for("c", "state", {"run": "finished"}), "the client never got the value published meanwhile"
    assert rooms.seen("c", "state")[-1] == {"run": "finished"}, (
        f"the newest value must come last: {rooms.seen('c', 'state')}")
    assert rooms.seen("a", "state") == [{"run": "running"}, {"run": "finished"}]
    assert live.last_published["state"] == {"run": "finished"}
