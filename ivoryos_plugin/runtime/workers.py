"""Background workers: a periodic function or a loop given ``stop``; restart with backoff, suspend
after a crash loop (Indigo's fail-safe), stop within a bounded time."""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from ..core.specs import WorkerSpec
from ..hardware.deck import CALLER


class Stop:
    """Given to a loop worker: ``while stop.sleep(1): ...`` runs until the plugin stops.

    :param event: set when stopping."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True to keep going, False once stopping.

        :param seconds: how long to wait."""
        return not self._event.wait(max(0.0, seconds))

    @property
    def stopping(self) -> bool:
        """Whether the plugin is stopping."""
        return self._event.is_set()

    def __bool__(self) -> bool:
        return not self._event.is_set()


class WorkerRunner:
    """Runs one worker in a daemon thread.

    :param spec: the worker.
    :param logger: the plugin's logger."""

    def __init__(self, spec: WorkerSpec, logger: logging.Logger) -> None:
        self.spec = spec
        self.logger = logger
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
        self._thread = threading.Thread(target=self._run, name=f"ivoryos_plugin-worker-{self.spec.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def _call_once(self, stop: Stop) -> None:
        self.runs += 1
        if self.spec.every is None:
            self.spec.func(stop)
        else:
            self.spec.func()

    def _run(self) -> None:
        CALLER.set(f"plugin:{self.logger.name.rpartition('.')[2]} worker {self.spec.name}")  # this thread only
        stop = Stop(self._event)
        delay = self.spec.backoff
        while not self._event.is_set():
            try:
                self._call_once(stop)
                delay = self.spec.backoff
                if self.spec.every is None:
                    break  # a loop worker that returns is done
                stop.sleep(self.spec.every)
                continue
            except Exception as exc:
                now = time.monotonic()
                self.crashes = [t for t in self.crashes if now - t < self.spec.window] + [now]
                self.last_error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.logger.error("worker %r crashed (%d in %.0f s): %s", self.spec.name, len(self.crashes),
                                  self.spec.window, self.last_error)
                if len(self.crashes) > self.spec.max_crashes:
                    self.state = "suspended"
                    self.logger.error("worker %r suspended after %d crashes; restart it from the health page",
                                      self.spec.name, len(self.crashes))
                    return
            if not stop.sleep(delay):
                break
            self.restarts += 1
            delay = min(delay * 2, self.spec.max_backoff)
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
