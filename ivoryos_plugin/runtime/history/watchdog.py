"""Ending a database call that waits past its deadline, from outside the waiting thread: a frozen
server never answers, and a driver can neither time out nor cancel a statement itself. The socket of
a server's connection is shut down (the waiting call sees it closed); a SQLite connection is
interrupted."""
from __future__ import annotations

import itertools
import os
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple

from ...core.clock import Clock, optional_clock, start_thread

__all__ = ["Watchdog", "interrupt"]


def interrupt(connection: Any) -> None:
    """End whatever the DBAPI ``connection`` waits for, from another thread.

    :param connection: a driver's connection (one with ``fileno()``, or SQLite's with ``interrupt()``)."""
    fileno = getattr(connection, "fileno", None)
    if callable(fileno):
        try:
            sock = socket.socket(fileno=os.dup(fileno()))
        except (OSError, ValueError, TypeError, Exception):  # already closed
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()
    elif callable(getattr(connection, "interrupt", None)):
        try:
            connection.interrupt()
        except Exception:  # closed meanwhile
            pass


class Watchdog:
    """Ends database calls still waiting at their deadline: one thread per store while calls are
    made (it ends :data:`LINGER_S` seconds after the last one ended, so no thread is left between the
    writer's batches), asleep until the nearest deadline.

    :param clock: what deadlines are measured and waited on (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK`
        when None; a test's ``ManualClock`` fires a deadline when it is advanced past it)."""

    LINGER_S = 0.5

    def __init__(self, clock: Optional[Clock] = None) -> None:
        self.clock = optional_clock(clock)
        self._lock = threading.Lock()
        self._changed = threading.Event()  # set on every arm, disarm and stop: the thread looks again
        self._armed: Dict[int, Tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def arm(self, deadline: float, connection: Any) -> int:
        """Watch ``connection`` until :meth:`disarm`; interrupt it at ``deadline``.

        :param deadline: the clock's ``monotonic()`` at which the call is ended.
        :param connection: the driver's connection the call waits on.
        :returns: the token to :meth:`disarm` it with."""
        with self._lock:
            token = next(self._ids)
            self._armed[token] = (deadline, connection)
            if self._thread is None:
                self._thread = start_thread("history-watchdog", self._run)
        self._changed.set()
        return token

    def fired(self, tokens: List[int]) -> bool:
        """Whether the watchdog ended the call of any of ``tokens``.

        :param tokens: tokens :meth:`arm` returned."""
        with self._lock:
            return any(t in self._fired for t in tokens)

    def disarm(self, token: int) -> None:
        """Stop watching (before the connection goes back to the pool: it is never interrupted after).

        :param token: what :meth:`arm` returned."""
        with self._lock:
            self._armed.pop(token, None)
            self._fired.discard(token)
            idle = not self._armed
        if idle:
            self._changed.set()  # (it waits for the nearest deadline: now it may end instead)

    def stop(self, timeout: float) -> None:
        """End the thread once nothing is armed (a call still waiting is ended at its deadline first).

        :param timeout: real seconds to wait for the thread."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._changed.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        idle_since = self.clock.monotonic()
        while True:
            self._changed.clear()  # (before looking: a change made after the look wakes the wait below)
            with self._lock:
                now = self.clock.monotonic()
                for token in [t for t, (deadline, _) in self._armed.items() if deadline <= now]:
                    _, connection = self._armed.pop(token)
                    self._fired.add(token)
                    interrupt(connection)  # under the lock: the connection cannot be disarmed and reused meanwhile
                if self._armed:
                    idle_since = now
                elif self._stopping or now - idle_since >= self.LINGER_S:
                    self._thread = None
                    return
                wake = min(deadline for deadline, _ in self._armed.values()) if self._armed else idle_since + self.LINGER_S
            self.clock.wait(self._changed, wake - now)
