"""The deck layer: find instruments on the IvoryOS deck, serialise and observe their calls,
and keep plugins off the hardware while IvoryOS runs a workflow. Pure Python, no Flask.

``guard_instrument`` replaces each public method of an instrument *in place* (an instance
attribute shadowing the class's method) by a wrapper that holds the instrument's
:class:`InstrumentLock` during the call and reports it to observers. IvoryOS calls steps via
``getattr(instrument, method)``, so workflow steps go through the same lock and observers.
Only plain functions, static and class methods defined on the class are wrapped; properties
(reads are *not* serialised), dunders, ``_private`` names, generator methods and methods added
later are left alone. Objects without an instance ``__dict__`` (``__slots__``) are not wrapped;
they still get a lock, which callers then hold themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Protocol

logger = logging.getLogger(__name__)

__all__ = [
    "InstrumentUnavailable", "DeckBusy", "InstrumentLock", "deck_instruments", "get_instrument",
    "guard_instrument", "instrument_lock", "observe", "hardware_guard", "is_deck_busy",
]

Event = Dict[str, Any]
Callback = Callable[[Event], object]

_GUARD_ATTR = "_ivoryos_plugin_guard"
_STATE = threading.Lock()           # guards installation and the observer lists
_UNWRAPPABLE: Dict[int, Any] = {}   # id(obj) -> (obj, guard) for objects without __dict__
_CALL_IDS = itertools.count(1)
#: lock id -> token of the acquisition this flow of control (thread or task) takes part in
_HELD: contextvars.ContextVar[Dict[int, object]] = contextvars.ContextVar("ivoryos_plugin_held")
#: set while observers run: their own instrument calls are not reported (no feedback loops)
_IN_OBSERVER: contextvars.ContextVar[bool] = contextvars.ContextVar("ivoryos_plugin_observer",
                                                                   default=False)


class InstrumentUnavailable(LookupError):
    """An instrument a plugin needs is not on the deck (or no deck is loaded)."""

    def __init__(self, name: str, loaded: Iterable[str] = (), plugin: Optional[str] = None,
                 deck_loaded: bool = True) -> None:
        """:param name: the instrument asked for.
        :param loaded: names of the instruments the deck has.
        :param plugin: the plugin asking, named in the message.
        :param deck_loaded: False when IvoryOS has no deck at all."""
        self.name, self.loaded, self.plugin = name, sorted(loaded), plugin
        self.deck_loaded = deck_loaded
        who = f"Plugin {plugin!r}: instrument" if plugin else "Instrument"
        if deck_loaded:
            message = (f"{who} {name!r} is not on the deck; loaded: "
                       f"{', '.join(self.loaded) or '(none)'}. "
                       "Check the deck script or the plugin's settings.")
        else:
            message = (f"{who} {name!r} is unavailable: no deck is loaded. Start IvoryOS "
                       "with a deck script (ivoryos.run(__name__)).")
        super().__init__(message)

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments, not the message."""
        return (type(self), (self.name, self.loaded, self.plugin, self.deck_loaded))


class DeckBusy(RuntimeError):
    """The deck is in use by IvoryOS (a workflow or single step), so a plugin may not drive it."""

    def __init__(self, plugin: Optional[str] = None) -> None:
        """:param plugin: the plugin that was refused, named in the message."""
        self.plugin = plugin
        who = f"Plugin {plugin!r} cannot" if plugin else "Cannot"
        super().__init__(f"{who} use the instruments now: an IvoryOS workflow or step is "
                         "running. Retry when it finishes.")

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments, not the message."""
        return (type(self), (self.plugin,))


def _is_excluded(value: object) -> bool:
    """True for the classes IvoryOS skips on a deck: ``flask.Blueprint`` and ``logging.Logger``.

    :param value: a deck global."""
    if isinstance(value, logging.Logger):
        return True
    flask = sys.modules.get("flask")  # a Blueprint can only exist if Flask is imported
    blueprint = getattr(flask, "Blueprint", None)
    return isinstance(blueprint, type) and isinstance(value, blueprint)


def deck_instruments(deck: Optional[types.ModuleType]) -> Dict[str, object]:
    """The deck's instruments by name, by IvoryOS 1.7.2's rule (``generate_interface_schema``):
    globals whose type is not a builtin, whose name starts neither with ``_`` nor an uppercase
    letter, and that are not a ``flask.Blueprint`` or ``logging.Logger``.

    :param deck: the deck module, or None when none is loaded (gives ``{}``)."""
    if deck is None:
        return {}
    return {name: value for name, value in vars(deck).items()
            if type(value).__module__ != "builtins" and not name[:1].isupper()
            and not name.startswith("_") and not _is_excluded(value)}


def get_instrument(deck: Optional[types.ModuleType], name: str,
                   plugin: Optional[str] = None) -> object:
    """The deck's own instrument object called ``name`` (the same object, never a copy).

    :param deck: the deck module, or None when none is loaded.
    :param name: the instrument's global name in the deck script.
    :param plugin: the plugin asking, named in the error.
    :raises InstrumentUnavailable: no deck, or no such instrument on it."""
    instruments = deck_instruments(deck)
    if name not in instruments:
        raise InstrumentUnavailable(name, instruments, plugin, deck_loaded=deck is not None)
    return instruments[name]


class InstrumentLock:
    """A reentrant lock owned by a flow of control rather than a thread.

    Like ``threading.RLock`` (``acquire``/``release``/``with``), plus ``async with`` and
    :meth:`acquire_async`, which waits without blocking the event loop. The owner is the
    thread or asyncio task that acquired it, *and* what it starts with a copy of its context
    while holding it (``asyncio.to_thread``, child tasks): an async method may run a public
    method of the same instrument in ``asyncio.to_thread`` without deadlocking. Two tasks on
    one event loop exclude each other. Not FIFO. A blocking ``acquire`` in a thread whose
    other task holds the lock would deadlock, so it raises ``RuntimeError`` instead.
    """

    def __init__(self) -> None:
        """Create an unlocked lock."""
        self._cond = threading.Condition(threading.Lock())
        self._token: Optional[object] = None
        self._count = 0
        self._thread = 0
        self._waiters: List[asyncio.Future[None]] = []

    def _mine(self) -> bool:
        return self._count > 0 and _HELD.get({}).get(id(self)) is self._token

    def _take(self) -> None:
        self._token, self._count, self._thread = object(), 1, threading.get_ident()
        _HELD.set({**_HELD.get({}), id(self): self._token})

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire (or re-enter) the lock; True when acquired.

        :param blocking: wait for the lock when another flow holds it.
        :param timeout: most seconds to wait; -1 waits for ever."""
        with self._cond:
            if self._mine():
                self._count += 1
                return True
            if self._count and blocking and self._thread == threading.get_ident():
                raise RuntimeError("InstrumentLock is held by another task of this thread; "
                                   "waiting would deadlock. Use the async method or "
                                   "asyncio.to_thread.")
            if blocking and not self._cond.wait_for(lambda: self._count == 0,
                                                    None if timeout < 0 else timeout):
                return False
            if self._count:
                return False
            self._take()
            return True

    async def acquire_async(self) -> None:
        """Acquire (or re-enter) the lock from a coroutine without blocking the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._mine():
                    self._count += 1
                    return
                if not self._count:
                    self._take()
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with self._cond:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    def release(self) -> None:
        """Release one level of the lock; fully released, it wakes every waiter."""
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


class _Observer:
    __slots__ = ("callback", "instrument", "methods", "starts")

    def __init__(self, callback: Callback, instrument: str, methods: Optional[frozenset[str]],
                 starts: bool) -> None:
        self.callback, self.instrument, self.methods = callback, instrument, methods
        self.starts = starts


class _Guard:
    """The lock, wrapped method names and observers of one instrument."""

    def __init__(self) -> None:
        self.lock = InstrumentLock()
        self.methods: frozenset[str] = frozenset()
        self.wrapped = False
        self.observers: tuple[_Observer, ...] = ()  # replaced, never mutated


def _wrappable(cls: type, name: str) -> bool:
    """True when ``cls.name`` is a public plain/static/class method that is not a generator.

    :param cls: the instrument's class.
    :param name: the attribute name."""
    if name.startswith("_"):
        return False
    try:
        static = inspect.getattr_static(cls, name)
    except AttributeError:
        return False
    func = static.__func__ if isinstance(static, (staticmethod, classmethod)) else static
    return isinstance(func, types.FunctionType) and not (
        inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func))


def _attrs(obj: object) -> Optional[Dict[str, Any]]:
    """``obj``'s instance ``__dict__``, read without ``__getattr__``; None if it has none.

    :param obj: the instrument."""
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return attrs if isinstance(attrs, dict) else None


def _install(obj: object) -> _Guard:
    """Create ``obj``'s guard and wrap its methods; caller holds ``_STATE``.

    :param obj: the instrument."""
    guard = _Guard()
    attrs = _attrs(obj)
    if attrs is None:
        _UNWRAPPABLE[id(obj)] = (obj, guard)  # strong ref keeps the id from being reused
        return guard
    names = []
    for name in sorted(n for n in dir(type(obj)) if _wrappable(type(obj), n)):
        try:
            method = getattr(obj, name)
        except Exception:
            continue
        if callable(method):
            attrs[name] = _wrap(guard, name, method)
            names.append(name)
    guard.methods, guard.wrapped = frozenset(names), True
    attrs[_GUARD_ATTR] = guard
    return guard


def _guard_of(obj: object) -> _Guard:
    """``obj``'s guard, installing it on first use.

    :param obj: the instrument."""
    guard = (_attrs(obj) or {}).get(_GUARD_ATTR)
    if isinstance(guard, _Guard):
        return guard
    with _STATE:
        entry = _UNWRAPPABLE.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]  # type: ignore[no-any-return]
        guard = (_attrs(obj) or {}).get(_GUARD_ATTR)
        return guard if isinstance(guard, _Guard) else _install(obj)


def guard_instrument(obj: object) -> InstrumentLock:
    """Serialise ``obj``'s public methods on its own reentrant lock; idempotent.

    Wrappers keep the signature, type hints, docstring and async-ness (``inspect.signature``,
    ``inspect.iscoroutinefunction``) of the bound methods they replace.

    :param obj: the instrument (the deck's own object: it is changed in place).
    :returns: the instrument's lock (see :class:`InstrumentLock`)."""
    return _guard_of(obj).lock


def instrument_lock(obj: object) -> InstrumentLock:
    """The instrument's lock, for holding it across several calls; installs the guard if needed.

    :param obj: the instrument."""
    return _guard_of(obj).lock


class _Call:
    """Timing and observer reports of one call of a wrapped method."""

    def __init__(self, guard: _Guard, method: str, args: tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> None:
        self.guard, self.method, self.args, self.kwargs = guard, method, args, kwargs
        self.quiet = _IN_OBSERVER.get()
        self.outcome: Dict[str, Any] = {}
        self.started = self.finished = 0.0
        self.call_id = 0

    def begin(self) -> None:
        self.started = time.time()
        self.call_id = next(_CALL_IDS)
        self._report("start")

    def end(self, key: str, value: Any) -> None:
        self.finished = time.time()
        self.outcome = {key: value}

    def _report(self, phase: str) -> None:
        if self.quiet:
            return
        for obs in self.guard.observers:
            if (obs.methods is not None and self.method not in obs.methods) or (
                    phase == "start" and not obs.starts):
                continue
            event: Event = {"instrument": obs.instrument, "method": self.method,
                            "args": list(self.args), "kwargs": dict(self.kwargs),
                            "phase": phase, "call_id": self.call_id, "started": self.started}
            if phase == "end":
                event.update(self.outcome, finished=self.finished,
                             duration=self.finished - self.started)
            token = _IN_OBSERVER.set(True)
            try:
                returned = obs.callback(event)
                if inspect.iscoroutine(returned):
                    returned.close()
                    logger.warning("Observer %r of %s.%s returned a coroutine; callbacks must "
                                   "be plain functions", obs.callback, obs.instrument,
                                   self.method)
            except Exception:
                logger.exception("Observer %r of %s.%s failed", obs.callback, obs.instrument,
                                 self.method)
            finally:
                _IN_OBSERVER.reset(token)

    def report_end(self) -> None:
        if self.call_id:
            self._report("end")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _wrap(guard: _Guard, name: str, bound: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper of ``bound`` holding the guard's lock and reporting the call.

    Start events are reported while the lock is held, just before the method runs; end
    events right after this call released its hold on the lock.

    :param guard: the instrument's guard.
    :param name: the method name.
    :param bound: the bound method to wrap."""
    if inspect.iscoroutinefunction(bound):
        @functools.wraps(bound)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _Call(guard, name, args, kwargs)
            await guard.lock.acquire_async()
            try:
                call.begin()
                try:
                    result = await bound(*args, **kwargs)
                except BaseException as exc:
                    call.end("error", _error(exc))
                    raise
                call.end("result", result)
                return result
            finally:
                guard.lock.release()
                call.report_end()
        return async_wrapper

    @functools.wraps(bound)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _Call(guard, name, args, kwargs)
        guard.lock.acquire()
        try:
            call.begin()
            try:
                result = bound(*args, **kwargs)
            except BaseException as exc:
                call.end("error", _error(exc))
                raise
            call.end("result", result)
            return result
        finally:
            guard.lock.release()
            call.report_end()
    return wrapper


def observe(obj: object, callback: Callback, *, instrument: str,
            methods: Optional[Iterable[str]] = None, starts: bool = False) -> Callable[[], None]:
    """Call ``callback`` after each call of ``obj``'s public methods (guarding ``obj``).

    The event: ``instrument``, ``method``, ``args`` (list), ``kwargs`` (dict), ``phase``
    (``"end"``), ``call_id``, ``started``, ``finished`` (``time.time()``), ``duration`` and
    ``result``, or ``error`` (``"ExcType: message"``; the exception still propagates). Values
    are the raw objects. With ``starts`` it is also called with ``phase="start"`` (``started``
    and no outcome) while the lock is held, just before the method runs; end events come
    after the lock is released. Callbacks run in the caller's thread (the event loop for
    async methods): keep them fast. One that raises is logged and changes nothing; calls
    made from inside a callback are not reported.

    :param obj: the instrument.
    :param callback: called with each event dict.
    :param instrument: the name put into events (usually the deck name).
    :param methods: only these method names (default all wrapped methods).
    :param starts: also report the start of each call.
    :returns: a function that unsubscribes (idempotent).
    :raises TypeError: ``obj`` cannot be wrapped (no ``__dict__``) or ``methods`` is a str.
    :raises ValueError: a name in ``methods`` is not a wrapped public method."""
    guard = _guard_of(obj)
    if not guard.wrapped:
        raise TypeError(f"cannot observe {type(obj).__name__!r} objects: they have no "
                        "__dict__ (__slots__), so their methods cannot be wrapped")
    if isinstance(methods, str):
        raise TypeError("methods must be an iterable of method names, not a str")
    wanted = None if methods is None else frozenset(methods)
    if wanted is not None and wanted - guard.methods:
        raise ValueError(f"{instrument!r} has no public method(s) "
                         f"{', '.join(sorted(wanted - guard.methods))}; it has: "
                         f"{', '.join(sorted(guard.methods)) or '(none)'}")
    entry = _Observer(callback, instrument, wanted, starts)
    with _STATE:
        guard.observers = guard.observers + (entry,)

    def unsubscribe() -> None:
        with _STATE:
            guard.observers = tuple(o for o in guard.observers if o is not entry)
    return unsubscribe


class LockLike(Protocol):
    """What :func:`hardware_guard` needs of a lock (``threading.Lock`` fits)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


_FALLBACK_LOCK = threading.Lock()  # used when IvoryOS is not importable
_LOGGED: set[str] = set()


def _log_once(key: str, message: str, *args: object) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.warning(message, *args)


def _ivoryos_runner_lock() -> Optional[LockLike]:
    """IvoryOS's ``global_state.runner_lock`` (held while a workflow or step runs), or None."""
    try:
        from ivoryos.runtime.state import global_state
        return global_state.runner_lock  # type: ignore[no-any-return]
    except Exception as exc:  # ImportError, or anything IvoryOS's import-time setup raises
        _log_once("lock", "IvoryOS's runner lock is unavailable (%s: %s); plugins only "
                  "exclude each other", type(exc).__name__, exc)
        return None


def _ivoryos_runner(import_it: bool = True) -> Any:
    """IvoryOS's ``ScriptRunner`` (``ivoryos.socket_handlers.runner``), or None.

    :param import_it: import IvoryOS if it is not imported yet."""
    if not import_it and "ivoryos.socket_handlers" not in sys.modules:
        return None
    try:
        from ivoryos.socket_handlers import runner
        return runner
    except Exception as exc:
        _log_once("runner", "IvoryOS's runner is unavailable (%s: %s); queued workflows "
                  "are not resumed", type(exc).__name__, exc)
        return None


def _queue_length(runner: Any) -> int:
    """Number of workflows waiting in IvoryOS's queue (0 when unknown).

    :param runner: IvoryOS's ScriptRunner, or None."""
    try:
        return len(runner.execution_queue) if runner is not None else 0
    except Exception as exc:
        _log_once("queue", "Cannot read IvoryOS's execution queue (%s)", exc)
        return 0


def _resume_ivoryos_queue(runner: Any) -> None:
    """Start the next queued workflow, as IvoryOS only does when its own runs finish.

    :param runner: IvoryOS's ScriptRunner, or None."""
    if not _queue_length(runner) or getattr(runner, "paused", False) or getattr(
            runner, "queue_paused", False):
        return
    try:
        runner._process_queue()
    except Exception:
        logger.exception("Could not start IvoryOS's queued workflow")


@contextlib.contextmanager
def hardware_guard(runner_lock: Optional[LockLike] = None, *,
                   plugin: Optional[str] = None) -> Iterator[None]:
    """Hold IvoryOS's runner lock while the body drives hardware, or refuse at once.

    Not reentrant with a ``threading.Lock``, and a workflow step calling code under this
    guard gets :class:`DeckBusy` (the workflow holds the lock). On exit the lock is always
    released, then a workflow queued meanwhile is started (unless the queue is paused).

    :param runner_lock: the lock to use; default IvoryOS's ``global_state.runner_lock``
        (a module-level lock when IvoryOS is not importable).
    :param plugin: the plugin's name, for the error message.
    :raises DeckBusy: the lock is held (a workflow or step is running)."""
    lock = runner_lock if runner_lock is not None else _ivoryos_runner_lock()
    if lock is None:
        lock = _FALLBACK_LOCK
    if not lock.acquire(blocking=False):
        raise DeckBusy(plugin)
    try:
        yield
    finally:
        lock.release()
        _resume_ivoryos_queue(_ivoryos_runner(import_it=runner_lock is None))


def is_deck_busy(runner_lock: Optional[LockLike] = None) -> bool:
    """True while IvoryOS's runner lock is held or workflows wait in its queue.

    :param runner_lock: the lock to check; default as for :func:`hardware_guard`."""
    lock = runner_lock if runner_lock is not None else _ivoryos_runner_lock()
    if lock is None:
        lock = _FALLBACK_LOCK
    locked = getattr(lock, "locked", None)
    if callable(locked):
        held = bool(locked())
    elif lock.acquire(blocking=False):
        lock.release()
        held = False
    else:
        held = True
    return held or _queue_length(_ivoryos_runner(import_it=runner_lock is None)) > 0
