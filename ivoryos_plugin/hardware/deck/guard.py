"""Serialise and observe an instrument's calls. Pure Python, no Flask.

:func:`guard_instrument` replaces each public method of an instrument *in place* (an instance
attribute shadowing the class's method) by a wrapper that holds the instrument's
:class:`InstrumentLock` during the call and reports it to observers (:func:`observe`). IvoryOS calls
steps via ``getattr(instrument, method)``, so workflow steps pass the same lock and observers.
Wrapped: plain functions, static and class methods defined on the class when guarded. Left alone:
properties (their reads are *not* serialised), dunders, ``_private`` names, generator methods,
methods added later. Objects without an instance ``__dict__`` (``__slots__``) are not wrapped;
they still get a lock, which callers then hold themselves. A guarded instrument cannot be
pickled or deep-copied, and a shallow copy shares the original's wrappers and lock (both live
in its ``__dict__``): copy instruments before guarding them, not after. Observers are told who
calls (:data:`CALLER`, set by :func:`calling_as`).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import threading
import time
import types
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from ..locks import InstrumentLock

logger = logging.getLogger("ivoryos_plugin.deck")

__all__ = ["CALLER", "calling_as", "guard_instrument", "instrument_lock", "observe"]

Event = Dict[str, Any]
Callback = Callable[[Event], object]

_GUARD_ATTR = "_ivoryos_plugin_guard"
_STATE = threading.Lock()  # guards installation and observer lists
_UNWRAPPABLE: Dict[int, Any] = {}  # id(obj) -> (obj, guard); the strong ref pins the id
_CALL_IDS = itertools.count(1)
#: Who is calling, for observers: "plugin:<name> <kind> <what>" inside a plugin's stream, action or
#: worker; unset (reported as "deck") for IvoryOS's workflows, single steps and anything else.
CALLER: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("ivoryos_plugin_caller", default=None)


class calling_as:  # noqa: N801 (used as a function: ``with calling_as(...)``)
    """Mark the instrument calls made inside the block as coming from ``source`` (a context manager;
    a class, not a generator: it runs around every action and step call).

    :param source: e.g. ``"plugin:balance stream weight"``."""

    __slots__ = ("source", "_token")

    def __init__(self, source: str) -> None:
        self.source = source

    def __enter__(self) -> None:
        self._token = CALLER.set(self.source)

    def __exit__(self, *exc: object) -> None:
        CALLER.reset(self._token)


#: True while an observer runs: its own instrument calls are not reported (no feedback loops)
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("ivoryos_plugin_quiet",
                                                             default=False)


class _Guard:
    """One instrument's lock, wrapped method names and observers."""

    def __init__(self) -> None:
        self.lock = InstrumentLock()
        self.methods: frozenset[str] = frozenset()
        self.wrapped = False
        #: (callback, instrument name, methods or None, starts); replaced, never mutated
        self.observers: Tuple[Tuple[Callback, str, Optional[frozenset[str]], bool], ...] = ()


def _wrappable(cls: type, name: str) -> bool:
    """True when ``cls.name`` is a public plain, static or class method, not a generator.

    :param cls: the instrument's class.
    :param name: an attribute name."""
    try:
        static = inspect.getattr_static(cls, name)
    except AttributeError:
        return False
    func = static.__func__ if isinstance(static, (staticmethod, classmethod)) else static
    return not name.startswith("_") and isinstance(func, types.FunctionType) and not (
        inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func))


def _attrs(obj: object) -> Optional[Dict[str, Any]]:
    """``obj``'s instance ``__dict__``, read past any ``__getattr__``; None if it has none.

    :param obj: the instrument."""
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return attrs if isinstance(attrs, dict) else None


def _guard_of(obj: object) -> _Guard:
    """``obj``'s guard, created (and its methods wrapped) on first use.

    :param obj: the instrument."""
    found = (_attrs(obj) or {}).get(_GUARD_ATTR)
    if isinstance(found, _Guard):
        return found
    with _STATE:
        attrs = _attrs(obj)
        entry = _UNWRAPPABLE.get(id(obj), (None, None))
        found = entry[1] if entry[0] is obj else (attrs or {}).get(_GUARD_ATTR)
        if isinstance(found, _Guard):
            return found
        guard = _Guard()
        if attrs is None:
            _UNWRAPPABLE[id(obj)] = (obj, guard)
            return guard
        names = []
        for name in sorted(n for n in dir(type(obj)) if _wrappable(type(obj), n)):
            with contextlib.suppress(Exception):
                method = getattr(obj, name)  # honours a callable the instance overrides with
                if callable(method):
                    attrs[name] = _wrap(guard, name, method)
                    names.append(name)
        guard.methods, guard.wrapped = frozenset(names), True
        attrs[_GUARD_ATTR] = guard
        return guard


def guard_instrument(obj: object) -> InstrumentLock:
    """Serialise ``obj``'s public methods on its own reentrant lock; idempotent.

    The wrappers keep the signature, type hints, docstring and async-ness of the bound
    methods they replace (``inspect.signature``, ``inspect.iscoroutinefunction``).

    :param obj: the instrument; the deck's own object is changed in place.
    :returns: the instrument's lock (an :class:`InstrumentLock`, not a ``threading.RLock``)."""
    return _guard_of(obj).lock


def instrument_lock(obj: object) -> InstrumentLock:
    """The instrument's lock, to hold across several calls; guards ``obj`` if needed.

    :param obj: the instrument."""
    return _guard_of(obj).lock


class _Call:
    """One call of a wrapped method: holds the lock (``with``/``async with``) and reports."""

    def __init__(self, guard: _Guard, method: str, args: Tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> None:
        self.guard, self.method, self.args, self.kwargs = guard, method, args, kwargs
        self.outcome: Dict[str, Any] = {}
        self.started = 0.0
        self.call_id = 0

    def _begin(self) -> _Call:
        try:
            self.started, self.call_id = time.time(), next(_CALL_IDS)
            self._report("start")
        except BaseException:  # e.g. KeyboardInterrupt in an observer: do not leak the lock
            self.guard.lock.release()
            raise
        return self

    def __enter__(self) -> _Call:
        self.guard.lock.acquire()
        return self._begin()

    async def __aenter__(self) -> _Call:
        await self.guard.lock.acquire_async()
        return self._begin()

    def done(self, result: Any) -> Any:
        self.outcome = {"result": result}
        return result

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        finished = time.time()
        if exc is not None:
            self.outcome = {"error": f"{type(exc).__name__}: {exc}"}
        self.guard.lock.release()
        self._report("end", **self.outcome, finished=finished, duration=finished - self.started)

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def _report(self, phase: str, **outcome: Any) -> None:
        if _QUIET.get():
            return
        for callback, instrument, methods, starts in self.guard.observers:
            if (methods is not None and self.method not in methods) or (
                    phase == "start" and not starts):
                continue
            event: Event = {"instrument": instrument, "method": self.method,
                            "args": list(self.args), "kwargs": dict(self.kwargs),
                            "phase": phase, "call_id": self.call_id, "started": self.started,
                            "source": CALLER.get() or "deck", **outcome}
            quiet = _QUIET.set(True)
            try:
                if inspect.iscoroutine(returned := callback(event)):
                    returned.close()
                    raise TypeError("observer callbacks must be plain functions")
            except Exception:
                logger.exception("Observer %r of %s.%s failed", callback, instrument,
                                 self.method)
            finally:
                _QUIET.reset(quiet)


def _wrap(guard: _Guard, name: str, bound: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper of ``bound`` that holds the guard's lock and reports the call.

    :param guard: the instrument's guard.
    :param name: the method's name.
    :param bound: the bound method."""
    if inspect.iscoroutinefunction(bound):
        @functools.wraps(bound)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with _Call(guard, name, args, kwargs) as call:
                return call.done(await bound(*args, **kwargs))
        return async_wrapper

    @functools.wraps(bound)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _Call(guard, name, args, kwargs) as call:
            return call.done(bound(*args, **kwargs))
    return wrapper


def observe(obj: object, callback: Callback, *, instrument: str,
            methods: Optional[Iterable[str]] = None, starts: bool = False) -> Callable[[], None]:
    """Call ``callback`` after each call of ``obj``'s public methods (guarding ``obj``).

    Events: ``instrument``, ``method``, ``args`` (list), ``kwargs`` (dict), ``phase``
    (``"end"``), ``call_id``, ``started``, ``finished`` (``time.time()``), ``duration``, and
    ``result`` or ``error`` (``"ExcType: message"``; the exception still propagates). Values
    are the raw objects. With ``starts``, also ``phase="start"`` events (no outcome), sent
    while the lock is held, just before the method runs; end events are sent after the call
    released its hold on the lock. Callbacks run in the calling thread (the event loop, for
    async methods): keep them fast. One that raises is logged and changes nothing; the
    instrument calls a callback makes are not reported.

    :param obj: the instrument.
    :param callback: called with each event dict.
    :param instrument: the name put in events (usually its deck name).
    :param methods: only these method names (default: all wrapped methods).
    :param starts: also report the start of each call.
    :returns: a function that unsubscribes (idempotent).
    :raises TypeError: ``obj`` has no ``__dict__`` (cannot be wrapped), or ``methods`` is a str.
    :raises ValueError: a name in ``methods`` is not a wrapped public method."""
    guard = _guard_of(obj)
    if not guard.wrapped:
        raise TypeError(f"cannot observe {type(obj).__name__!r} objects: they have no "
                        "__dict__ (__slots__), so their methods cannot be wrapped")
    if isinstance(methods, str):
        raise TypeError("methods must be an iterable of method names, not a str")
    wanted = None if methods is None else frozenset(methods)
    if wanted is not None and wanted - guard.methods:
        raise ValueError(f"{instrument!r} has no public method "
                         f"{', '.join(sorted(wanted - guard.methods))}; it has: "
                         f"{', '.join(sorted(guard.methods)) or '(none)'}")
    entry = (callback, instrument, wanted, starts)
    with _STATE:
        guard.observers += (entry,)

    def unsubscribe() -> None:
        with _STATE:
            guard.observers = tuple(o for o in guard.observers if o is not entry)
    return unsubscribe
