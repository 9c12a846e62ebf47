"""Background workers: a periodic function or a loop given ``stop``; restart with backoff, suspend
after a crash loop (Indigo's fail-safe), stop within a bounded time."""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Dict, List, Optional

from ..core.clock import Backoff, Clock, optional_clock, start_thread
from ..core.specs import WorkerSpec
from ..hardware.deck import CALLER


class Stop:
    """Given to a loop worker: ``while stop.sleep(1): ...`` runs until the plugin stops.

    :param event: set when stopping.
    :param clock: the clock :meth:`sleep` waits on (the runtime's; :data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK`
        when None)."""

    def __init__(self, event: threading.Event, clock: Optional[Clock] = None) -> None:
        self._event = event
        self._clock = optional_clock(clock)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds`` of the clock; True to keep going, False once stopping.

        :param seconds: how long to wait."""
        return not self._clock.wait(self._event, seconds)

    @property
    def stopping(self) -> bool:
        """Whether the plugin is stopping."""
        return self._event.is_set()

    def __bool__(self) -> bool:
        return not self._event.is_set()


class WorkerRunner:
    """Runs one worker in a daemon thread.

    :param spec: the worker.
    :param logger: the plugin's logger.
    :param clock: what the period, the restart delays and the crash window are measured on
        (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` when None; a test's ``ManualClock``)."""

    def __init__(self, spec: WorkerSpec, logger: logging.Logger, clock: Optional[Clock] = None) -> None:
        self.spec = spec
        self.logger = logger
        self.clock = optional_clock(clock)
        self.state = "idle"
        self.restarts = 0
        self.crashes: List[float] = []
        self.last_error = ""
        self.runs = 0
        self._event = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False  # the plugin is stopping: never start again
        self._start_lock = threading.Lock()

    def start(self) -> bool:
        """Start (or restart after a suspension) the worker's thread.

        :returns: True when a thread was started; False when the worker is already running or the
            plugin is stopping."""
        with self._start_lock:
            return self._start()

    def _start(self) -> bool:
        if self._closed:
            return False
        thread = self._thread
        if thread is not None and thread.is_alive():
            if self.state == "running":
                return False
            thread.join(1.0)  # a worker that has just given up: let its thread end
            if thread.is_alive():
                return False
        self._event = threading.Event()
        self.crashes = []
        self.state = "running"
        self._thread = start_thread(f"worker-{self.spec.name}", self._run)
        return True

    def _call_once(self, stop: Stop) -> None:
        self.runs += 1
        if self.spec.every is None:
            self.spec.func(stop)
        else:
            self.spec.func()

    def _run(self) -> None:
        CALLER.set(f"plugin:{self.logger.name.rpartition('.')[2]} worker {self.spec.name}")  # this thread only
        stop = Stop(self._event, self.clock)
        delay = Backoff(self.spec.backoff, max(self.spec.backoff, self.spec.max_backoff))
        while not self._event.is_set():
            try:
                self._call_once(stop)
                delay.reset()
                if self.spec.every is None:
                    break  # a loop worker that returns is done
                stop.sleep(self.spec.every)
                continue
            except Exception as exc:
                now = self.clock.monotonic()
                self.crashes = [t for t in self.crashes if now - t < self.spec.window] + [now]
                self.last_error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.logger.error("worker %r crashed (%d in %.0f s): %s", self.spec.name, len(self.crashes),
                                  self.spec.window, self.last_error)
                if len(self.crashes) > self.spec.max_crashes:
                    self.state = "suspended"
                    self.logger.error("worker %r suspended after %d crashes; restart it from the health page",
                                      self.spec.name, len(self.crashes))
                    return
            if not stop.sleep(delay.next()):
                break
            self.restarts += 1
        if self.state == "running":
            self.state = "stopped" if self._event.is_set() else "finished"

    def request_stop(self) -> None:
        """Ask the worker to stop (``stop.sleep`` returns False from now on); it never restarts."""
        with self._start_lock:
            self._closed = True
            self._event.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the thread; True when it ended. A worker that ignores stop is
        reported (state ``"unresponsive"``) and left behind as a daemon thread.

        :param timeout: seconds."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            self.state = "unresponsive"
            self.logger.error("worker %r ignored stop for %.1f s; shutting down without it",
                              self.spec.name, timeout)
            return False
        return True

    def status(self) -> Dict[str, Any]:
        """A JSON-able snapshot: state, restarts, crashes in the window, last error."""
        return {"state": self.state, "restarts": self.restarts, "crashes": len(self.crashes),
                "runs": self.runs, "every": self.spec.every, "last_error": self.last_error}
