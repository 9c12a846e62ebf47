"""``InstrumentLock``: a re-entrant lock owned by a flow of control (a thread, an asyncio task,
or a copy of its context), so coroutines on one event loop exclude each other too."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from typing import Dict, List, Optional

__all__ = ["InstrumentLock"]

#: id(lock) -> token of the acquisition this flow (thread, task, or a copy of its context) shares
_HELD: contextvars.ContextVar[Dict[int, object]] = contextvars.ContextVar("ivoryos_plugin_held")

class InstrumentLock:
    """A reentrant lock owned by a flow of control rather than by a thread.

    Used like ``threading.RLock`` (``acquire``, ``release``, ``with``), and from coroutines
    with ``async with`` / :meth:`acquire_async`, which wait without blocking the event loop.
    The owner is the thread or asyncio task that acquired it, together with what it runs in a
    copy of its context while holding it (``asyncio.to_thread``, child tasks): an async method
    may call a public method of its instrument in ``asyncio.to_thread`` without deadlock, and
    two tasks on one loop exclude each other. Not FIFO. A blocking ``acquire`` while another
    task of the same thread holds it would deadlock, so it raises ``RuntimeError``.
    """

    def __init__(self) -> None:
        """Create an unlocked lock."""
        self._cond = threading.Condition(threading.Lock())
        self._token: Optional[object] = None
        self._count = self._thread = 0
        self._waiters: List[asyncio.Future[None]] = []

    def _mine(self) -> bool:
        return self._count > 0 and _HELD.get({}).get(id(self)) is self._token

    def _take(self) -> bool:
        """Take the free lock, or re-enter it; False when another flow holds it."""
        if self._mine():
            self._count += 1
        elif self._count:
            return False
        else:
            self._token, self._count, self._thread = object(), 1, threading.get_ident()
            _HELD.set({**_HELD.get({}), id(self): self._token})
        return True

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire or re-enter the lock; True when acquired.

        :param blocking: wait while another flow holds it.
        :param timeout: most seconds to wait; -1 waits for ever."""
        with self._cond:
            if self._take() or not blocking:
                return self._mine()
            if self._thread == threading.get_ident():
                raise RuntimeError("InstrumentLock is held by another task of this thread: "
                                   "waiting would deadlock. Await the async method or use "
                                   "asyncio.to_thread.")
            self._cond.wait_for(lambda: not self._count, None if timeout < 0 else timeout)
            return self._take()

    async def acquire_async(self) -> None:
        """Acquire or re-enter the lock from a coroutine without blocking the event loop."""
        while True:
            with self._cond:
                if self._take():
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with self._cond, contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def release(self) -> None:
        """Release one level; the last one wakes every waiter."""
        with self._cond:
            if not self._mine():
                raise RuntimeError("cannot release an InstrumentLock this flow does not hold")
            self._count -= 1
            if self._count:
                return
            self._token, self._thread = None, 0
            _HELD.set({k: v for k, v in _HELD.get({}).items() if k != id(self)})
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    def locked(self) -> bool:
        """True while any flow holds the lock."""
        return self._count > 0

    def __enter__(self) -> InstrumentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> InstrumentLock:
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
