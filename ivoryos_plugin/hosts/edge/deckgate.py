"""One gate between our hardware actions and every driver call the edge itself makes, so that "the
deck is idle" and "the action runs" are one step against a run that starts.

ivoryos-edge offers no hook around a run's start, but it has one door every driver call passes
through just before it is handed to the driver: ``ivoryos_edge.safety.guard.enforce`` ("the one call
every door makes": a run's step, an optimization trial's step, a manual ``POST /api/execute``;
verified on ivoryos-edge 0.1.1). :func:`install` wraps that one method of the edge's guard object:
the wrapper first waits, without blocking the edge's event loop, until no action of ours is in
flight, then runs the edge's own checks unchanged (so the readings its safety rules take, which call
an instrument inside ``enforce``, see the deck after our action, never half-way through it), and
marks the call as being sent from the moment it stops waiting until the edge's task that made it
next yields to its loop after the checks (by then the edge's own state says so: the run's
``active_run_id`` is set before its first step, a manual call is in ``active_tasks``).

Our side (:meth:`DeckGate.enter_action`) reads the edge's run state and counts the action in under
the same mutex. So either the action read "idle" and is counted before the edge's call reaches the
gate (the run's first driver call waits for the action to end), or the edge's run or call came
first and the action is refused: no interleaving lets both touch the hardware.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from typing import Any, Awaitable, Callable, List, Optional, Tuple, TypeVar

__all__ = ["DeckGate", "HookUnavailable", "install", "installed"]

T = TypeVar("T")

#: the attribute the gate is kept under on the edge's guard object (one per edge, not a module global)
ATTRIBUTE = "_ivoryos_plugin_deck_gate"


class HookUnavailable(RuntimeError):
    """The edge's driver-call door (``ivoryos_edge.safety.guard.enforce``) cannot be wrapped."""


def _wake(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


class DeckGate:
    """Our in-flight hardware actions and the edge's driver calls, mutually exclusive.

    Actions of ours may overlap one another (the per-instrument locks serialise those on one
    instrument); an edge driver call waits for all of them, and an action is refused while the edge
    runs, calls, or is handing a call to a driver."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._actions = 0
        self._edge_calls = 0
        self._waiters: List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []

    # -------------------------------------------------------------- our side (any thread)
    def enter_action(self, edge_busy: Callable[[], bool]) -> bool:
        """Count an action of ours in when the edge is idle; False (nothing counted) when it is not.

        :param edge_busy: reads the edge's run state (may raise: then nothing is counted)."""
        with self._mutex:
            if self._edge_calls or edge_busy():
                return False
            self._actions += 1
            return True

    def leave_action(self) -> None:
        """Count an action of ours out; the edge's calls that waited for it go on."""
        with self._mutex:
            self._actions -= 1
            waiters: List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []
            if self._actions == 0:
                waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop has closed: nobody waits there any more
                pass

    @property
    def actions(self) -> int:
        """How many actions of ours are in flight."""
        return self._actions

    @property
    def waiting(self) -> int:
        """How many edge driver calls wait for our actions to end."""
        return len(self._waiters)

    # -------------------------------------------------------------- the edge's side (its loop)
    async def edge_call(self, checks: Callable[[], Awaitable[T]]) -> T:
        """Wait until no action of ours is in flight, then run the edge's ``checks`` and mark the
        call as being sent (our actions are refused) from then until the calling task next yields to
        the loop after them; a refusal or a cancellation unmarks it at once.

        :param checks: the edge's own checks of the call (its ``enforce``)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._mutex:
                if self._actions == 0:
                    self._edge_calls += 1
                    break
                future: "asyncio.Future[None]" = loop.create_future()
                self._waiters.append((loop, future))
            await future
        try:
            result = await checks()
        except BaseException:  # refused (nothing is sent) or cancelled
            self._edge_call_sent()
            raise
        loop.call_soon(self._edge_call_sent)  # the edge records the call before its task yields
        return result

    def _edge_call_sent(self) -> None:
        with self._mutex:
            self._edge_calls -= 1


def _guard() -> Any:
    safety = sys.modules.get("ivoryos_edge.safety")
    guard = getattr(safety, "guard", None) if safety is not None else None
    if guard is None:
        raise HookUnavailable("ivoryos_edge.safety.guard is not loaded: no ivoryos-edge server runs in this process")
    return guard


def install() -> DeckGate:
    """The edge's deck gate, its ``guard.enforce`` wrapped on first use (once per edge guard object).

    :raises HookUnavailable: the edge has no ``safety.guard.enforce`` coroutine to wrap."""
    guard = _guard()
    gate = getattr(guard, ATTRIBUTE, None)
    if isinstance(gate, DeckGate):
        return gate
    enforce = getattr(guard, "enforce", None)
    if enforce is None or not inspect.iscoroutinefunction(enforce):
        raise HookUnavailable("ivoryos_edge.safety.guard.enforce is not the coroutine it was on 0.1.1")
    gate = DeckGate()

    @functools.wraps(enforce)
    async def enforce_after_our_actions(*args: Any, **kwargs: Any) -> Any:
        # our actions in flight end first: the edge's own checks, and the instrument readings its
        # safety rules take, see the deck after our action, never half-way through it
        return await gate.edge_call(lambda: enforce(*args, **kwargs))

    guard.enforce = enforce_after_our_actions
    setattr(guard, ATTRIBUTE, gate)
    return gate


def installed() -> Optional[DeckGate]:
    """The edge's deck gate when :func:`install` has run, else None."""
    try:
        gate = getattr(_guard(), ATTRIBUTE, None)
    except HookUnavailable:
        return None
    return gate if isinstance(gate, DeckGate) else None


