"""Time, backoff and threads, written once for every worker, stream, camera, serial device, history
writer and retention sweep of the framework.

- :class:`Clock` is what they read the time from and wait on. :data:`SYSTEM_CLOCK` is the real one;
  :class:`ManualClock` is moved by hand (``clock.advance(30)``), so a test asserts counts and order
  after a given amount of clock time instead of sleeping it.
- :class:`Backoff` is the one restart delay: ``first``, doubled up to ``maximum``, back to the start on
  :meth:`Backoff.reset`.
- :func:`start_thread` starts the framework's background threads: daemon, named
  ``ivoryos_plugin-<name>`` (so a thread dump says whose it is)."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, Optional, Protocol

__all__ = ["Clock", "SystemClock", "ManualClock", "SYSTEM_CLOCK", "Backoff", "start_thread", "THREAD_PREFIX"]

#: the prefix of every background thread the framework starts
THREAD_PREFIX = "ivoryos_plugin-"


class Clock(Protocol):
    """The time a framework object reads and waits on."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""

    def time(self) -> float:
        """Seconds since the epoch (for timestamps and ages of files)."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait until ``event`` is set or ``seconds`` of this clock have passed.

        :param event: the event that ends the wait early (a stop).
        :param seconds: how long to wait at most (0 or less: do not wait).
        :returns: whether ``event`` is set."""


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time` and :meth:`threading.Event.wait`."""

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    def time(self) -> float:
        """:func:`time.time`."""
        return time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """``event.wait(seconds)`` (never negative).

        :param event: the event that ends the wait early.
        :param seconds: how long to wait at most."""
        return event.wait(max(0.0, seconds))


#: the clock every framework object uses unless given another
SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that moves only when told to: ``advance(seconds)`` wakes every wait whose time has come.

    Waits from other threads (a worker's ``stop.sleep``, a stream's poll) block until the test advances
    the clock past their deadline or sets their event; :meth:`wait_for_waiters` lets a test know that a
    thread has reached its wait before it advances.

    :param start: the initial :meth:`time` (``monotonic`` starts at 0)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._epoch = float(start)
        self._now = 0.0
        self._changed = threading.Condition()
        self._waiting = 0

    def monotonic(self) -> float:
        """The seconds advanced so far."""
        with self._changed:
            return self._now

    def time(self) -> float:
        """``start`` plus the seconds advanced so far."""
        with self._changed:
            return self._epoch + self._now

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Block until ``event`` is set or the clock has been advanced by ``seconds``.

        :param event: the event that ends the wait early.
        :param seconds: clock seconds to wait at most."""
        with self._changed:
            deadline = self._now + max(0.0, seconds)
            self._waiting += 1
            self._changed.notify_all()
            try:
                while not event.is_set() and self._now < deadline:
                    # an event set from another thread does not notify this condition: look again soon
                    self._changed.wait(0.005)
            finally:
                self._waiting -= 1
                self._changed.notify_all()
            return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake the waits that are due.

        :param seconds: how far (0 or more).
        :raises ValueError: for a negative or non-finite amount (a clock never goes back)."""
        if not (seconds >= 0.0) or seconds == float("inf"):
            raise ValueError(f"ManualClock.advance({seconds!r}): give a finite number of seconds ≥ 0")
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def wait_for_waiters(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``count`` threads wait on this clock.

        :param count: how many waits.
        :param timeout: real seconds to give up after.
        :returns: whether that many were waiting."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._waiting < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True


class Backoff:
    """A restart delay: ``first``, then doubled after each failure up to ``maximum``.

    >>> delay = Backoff(0.5, 4.0)
    >>> [delay.next() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> delay.reset(); delay.next()
    0.5

    :param first: the first delay in seconds (≥ 0).
    :param maximum: the longest delay (at least ``first``).
    :param factor: how much each failure multiplies the delay (≥ 1)."""

    def __init__(self, first: float, maximum: float, factor: float = 2.0) -> None:
        if not (first >= 0.0 and maximum >= first and factor >= 1.0) or maximum == float("inf"):
            raise ValueError(f"Backoff({first!r}, {maximum!r}, factor={factor!r}): give 0 ≤ first ≤ maximum "
                             "(finite) and factor ≥ 1")
        self.first = float(first)
        self.maximum = float(maximum)
        self.factor = float(factor)
        self._next = self.first

    def next(self) -> float:
        """The delay to wait now; the one after it grows."""
        delay = self._next
        self._next = min(max(delay * self.factor, self.first), self.maximum)
        return delay

    def peek(self) -> float:
        """The delay :meth:`next` will return, without using it."""
        return self._next

    def reset(self) -> None:
        """Back to ``first`` (after a success)."""
        self._next = self.first


def start_thread(name: str, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Start one of the framework's background threads: a daemon named ``ivoryos_plugin-<name>``.

    :param name: what the thread does, e.g. ``"worker-poll"`` (the prefix is added once).
    :param target: what it runs.
    :param args: ``target``'s positional arguments.
    :param kwargs: ``target``'s keyword arguments.
    :returns: the started thread."""
    full = name if name.startswith(THREAD_PREFIX) else THREAD_PREFIX + name
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, name=full, daemon=True)
    thread.start()
    return thread


def running_threads(prefix: str = THREAD_PREFIX) -> List[threading.Thread]:
    """The live threads whose name starts with ``prefix`` (the framework's own, by default).

    :param prefix: the name prefix."""
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def optional_clock(clock: Optional[Clock]) -> Clock:
    """``clock``, or :data:`SYSTEM_CLOCK` when None (for constructors' ``clock=None`` parameter).

    :param clock: the clock given, if any."""
    return SYSTEM_CLOCK if clock is None else clock
