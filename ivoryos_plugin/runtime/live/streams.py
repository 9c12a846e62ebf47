"""One stream in one app: a single producer for all its viewers, running only while someone watches
(or always, for a recorded stream), each value sent once to the stream's room."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, ContextManager, Optional, Set

from ...core.clock import Backoff, Clock, optional_clock
from ...core.specs import StreamSpec
from ...hardware.deck import CALLER
from .. import payloads
from .transport import StartTask, Task

__all__ = ["Recorder", "RecorderFactory", "Stream"]

log = logging.getLogger("ivoryos_plugin.live")

#: what a recorded stream calls with each value and its JSON (``HistoryStore.recorder``)
Recorder = Callable[[Any, str], None]
#: makes the recorder of stream ``name`` keeping the field ``field_name`` (None: ``"value"``)
RecorderFactory = Callable[[str, Optional[str]], Recorder]
#: a failing producer waits this long more before its next read, doubled each failure up to ERROR_BACKOFF_MAX_S
ERROR_BACKOFF_S = 0.5
ERROR_BACKOFF_MAX_S = 10.0


class Stream:
    """One running (or idle) stream: a single producer for all its subscribers.

    :param spec: the declaration.
    :param plugin: the plugin's name (for the logs and the instrument locks' caller).
    :param send: sends an event to a room (the hub's transport).
    :param start_task: starts the producer as the host starts its tasks.
    :param acting: a context in which plugin calls mean this app's runtime (``plugin.settings``).
    :param recorder: makes the history recorder of a recorded stream.
    :param clock: what the ticks and the error backoff are measured and waited on
        (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` when None; a test's ``ManualClock``)."""

    def __init__(self, spec: StreamSpec, plugin: str, send: Callable[[str, Any, str], None], start_task: StartTask,
                 acting: Callable[[], ContextManager[None]], recorder: RecorderFactory,
                 clock: Optional[Clock] = None) -> None:
        self.spec = spec
        self.clock = optional_clock(clock)
        self.plugin = plugin
        self._send_to = send
        self._start_task = start_task
        self._acting = acting
        self._recorder = recorder
        self.subscribers: Set[str] = set()
        self.last: Any = None
        self.has_last = False
        self.reads = 0
        self.errors = 0
        self.recording = False
        #: the producer task while it runs, else None
        self._thread: Optional[Task] = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
        #: held while a value becomes the last one and is sent, and while a new viewer joins and gets the
        #: last one (:meth:`joining`): so a viewer gets each value once and the newest last
        self._sending = threading.Lock()

    @property
    def room(self) -> str:
        """The room of this stream's subscribers."""
        return f"stream:{self.spec.name}"

    @property
    def running(self) -> bool:
        """Whether the producer runs."""
        return self._thread is not None

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

        :param sid: the client id."""
        with self._lock:
            self.subscribers.add(sid)
            self._wake.clear()
            self._start()

    def record_always(self) -> None:
        """Sample even with no viewer (a recorded stream), until :meth:`stop`."""
        with self._lock:
            self.recording = True
            self._wake.clear()
            self._start()

    def _start(self) -> None:  # under self._lock
        if self._thread is None:
            self._thread = self._start_task(self._loop, f"ivoryos_plugin-stream-{self.spec.name}")

    def remove(self, sid: str) -> None:
        """Unsubscribe ``sid``; the producer stops when no viewer is left.

        :param sid: the client id."""
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
            task = self._thread
        if task is not None and task is not threading.current_thread():
            task.join(2.0)

    def joining(self) -> ContextManager[Any]:
        """Hold the stream's sends while a viewer joins its room and is sent :attr:`last`: a value the
        producer reads meanwhile is sent after, to the room with the new viewer in it (taken first,
        it is the last value the viewer is sent; never both, and never the older one after it)."""
        return self._sending

    def _emit(self, event: str, data: Any) -> None:
        # NaN or Infinity would make the page's JSON.parse drop the event
        self._send_to(event, payloads.finite(data), self.room)

    def _send_last(self, value: Any, sent: Any) -> None:
        """Make ``value`` the last one and send it (as ``sent``) to the room, as one step for a viewer
        joining (:meth:`joining`)."""
        with self._sending:
            self.last, self.has_last = value, True
            self._send_to(self.spec.name, sent, self.room)

    def _loop(self) -> None:
        CALLER.set(f"plugin:{self.plugin} stream {self.spec.name}")  # this task only
        with self._acting():  # plugin.settings in the producer means this app's
            self._produce()

    def _produce(self) -> None:
        errors = Backoff(ERROR_BACKOFF_S, ERROR_BACKOFF_MAX_S)
        backoff = 0.0  # the extra wait after a failed read (none after a good one)
        due = self.clock.monotonic()
        record = self.spec.record
        recorder: Optional[Recorder] = None
        if record:
            recorder = self._recorder(self.spec.name, record if isinstance(record, str) else None)
        while True:
            with self._lock:
                if not self.subscribers and not self.recording:
                    self._thread = None
                    return
            try:
                value = self.spec.func()
                self.reads += 1
                backoff = 0.0
                errors.reset()
                if recorder is not None:  # one JSON encoding checks what is sent and is what is stored
                    value, text = payloads.finite_json(value)
                    self._send_last(value, value)
                    recorder(value, text)  # (outside the send lock: a hung database holds up no viewer)
                else:
                    self._send_last(value, payloads.finite(value))
            except Exception as exc:
                self.reads += 1
                self.errors += 1
                backoff = errors.next()
                log.warning("stream %r of plugin %r failed: %s", self.spec.name, self.plugin, exc)
                self._emit("stream_error", {"stream": self.spec.name, "error": f"{type(exc).__name__}: {exc}",
                                            "retry_in": backoff})
            due += 1.0 / self.rate()
            now = self.clock.monotonic()
            if due < now:  # a slow producer: drop the missed ticks, latest value wins
                due = now
            self.clock.wait(self._wake, due - now + backoff)
