"""The edge's run state, read through one touch, probed at start, failing closed.

ivoryos-edge has no runner lock and no busy guard: its queue runs a workflow from its own event loop
and says which run it is running only in an internal attribute,
``ivoryos_edge.server.queue_manager.active_run_id`` (verified on ivoryos-edge 0.1.1), beside the
manual calls in flight (``ivoryos_edge.server.active_tasks``). :func:`touch` is the one place that
reads them. Hardware actions and steps run only while it answers "no run, no call": when it cannot be
read (the edge changed, or no edge runs in this process) they are refused with 503, never run.

The read and the action are one step against a run that starts: :class:`EdgeRunnerLock` reads the
state and counts the action in under the mutex of the edge's :class:`~.deckgate.DeckGate`, whose hook
on the edge's driver-call door makes the run's first call wait for the action (deckgate.py).
"""
from __future__ import annotations

import importlib.metadata
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ...hardware.deck import DeckUnverified, Gate
from .deckgate import DeckGate, HookUnavailable, install

log = logging.getLogger("ivoryos_plugin.edge")

#: the ivoryos-edge versions this touch was verified on
VERIFIED = ("0.1.1",)
UNSTARTED_GATE = Gate.unverified("the edge has not started this plugin yet")


class RunStateUnreadable(RuntimeError):
    """The edge's run state cannot be read."""


@dataclass(frozen=True)
class RunState:
    """What the edge is doing now.

    :param run_id: the queued run it is executing, or None.
    :param manual_calls: how many single calls (``POST /api/execute``) are in flight."""

    run_id: Optional[int]
    manual_calls: int

    @property
    def busy(self) -> bool:
        """Whether a run or a manual call holds the deck."""
        return self.run_id is not None or self.manual_calls > 0


def _read() -> RunState:
    server = sys.modules.get("ivoryos_edge.server")
    if server is None:
        raise RunStateUnreadable("ivoryos_edge.server is not loaded: no ivoryos-edge server runs in this process")
    try:
        run_id = server.queue_manager.active_run_id
        calls = len(server.active_tasks)
    except AttributeError as exc:
        raise RunStateUnreadable(f"ivoryos-edge no longer has {exc.name or 'its run state'} "
                                 f"(verified on {', '.join(VERIFIED)})") from None
    if run_id is not None and not isinstance(run_id, int):
        raise RunStateUnreadable(f"queue_manager.active_run_id is {run_id!r}, not a run id")
    return RunState(run_id=run_id, manual_calls=int(calls))


#: the one touch of the edge's internals (a test replaces it to make the state unreadable)
touch = _read


def read() -> RunState:
    """The edge's run state through :data:`touch`.

    :raises RunStateUnreadable: it cannot be read."""
    try:
        state = touch()
    except RunStateUnreadable:
        raise
    except Exception as exc:
        raise RunStateUnreadable(f"reading it failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, RunState):
        raise RunStateUnreadable(f"the touch answered {state!r}")
    return state


class EdgeRunnerLock:
    """The runner lock the framework's hardware guard takes, for the edge: free only when the edge
    runs nothing and no other hardware action of this plugin holds it; it raises
    :class:`DeckUnverified` (a 503) when the edge's run state cannot be read.

    Taking it reads the run state and counts the action in on the edge's deck gate in one step, so a
    run that starts meanwhile waits for the action before its first driver call (deckgate.py).

    :param plugin: the plugin's name, for messages.
    :param gate: the edge's deck gate (:func:`~.deckgate.install`)."""

    def __init__(self, plugin: str, gate: DeckGate) -> None:
        self.plugin = plugin
        self.gate = gate
        self._lock = threading.Lock()

    def _state(self) -> RunState:
        try:
            return read()
        except RunStateUnreadable as exc:
            raise DeckUnverified(f"the ivoryos-edge run state cannot be read: {exc}", self.plugin) from None

    def _busy(self) -> bool:
        return self._state().busy

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock when the edge is idle (never waits for a run).

        :param blocking: ignored: a run is never waited for.
        :param timeout: ignored."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            entered = self.gate.enter_action(self._busy)
        except BaseException:
            self._lock.release()
            raise
        if not entered:
            self._lock.release()
        return entered

    def release(self) -> None:
        """Let go of the lock (the edge's calls that waited for it go on)."""
        self.gate.leave_action()
        self._lock.release()

    def locked(self) -> bool:
        """Whether the deck is taken (a run, a manual call, an action); True when unreadable."""
        try:
            return self._state().busy or self._lock.locked()
        except DeckUnverified:
            return True


def probe(plugin: str) -> Gate:
    """Verify the touch once, at start, and hook the edge's driver-call door (deckgate.py): the gate
    hardware actions pass, or one that refuses them all with the reason (named on the plugin's
    health information).

    :param plugin: the plugin's name."""
    problem = ""
    try:
        read()
        gate = install()
    except RunStateUnreadable as exc:
        problem = f"the ivoryos-edge run state cannot be read: {exc}"
    except HookUnavailable as exc:
        problem = f"the ivoryos-edge driver-call door cannot be hooked: {exc}"
    if problem:
        log.error("ivoryos_plugin: plugin %r: hardware actions are refused: %s", plugin, problem)
        return Gate.unverified(problem)
    version = edge_version()
    if version not in VERIFIED:
        log.warning("ivoryos_plugin: ivoryos-edge %s is not a version the run-state touch was verified on (%s); "
                    "it reads, so hardware actions run.", version, ", ".join(VERIFIED))
    return Gate(lock=EdgeRunnerLock(plugin, gate))


def edge_version() -> str:
    """The installed ivoryos-edge version ("unknown" when it is not installed as a distribution)."""
    try:
        return importlib.metadata.version("ivoryos-edge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_names: Dict[int, str] = {}


def _run_name(run_id: int) -> Optional[str]:
    if run_id in _names:
        return _names[run_id]
    models = sys.modules.get("ivoryos_edge.models")
    try:
        with models.sync_session() as session:  # type: ignore[union-attr]
            run = session.get(models.WorkflowRun, run_id)  # type: ignore[union-attr]
            name = str(run.name) if run is not None else None
    except Exception:
        return None
    if len(_names) > 256:
        _names.clear()
    _names[run_id] = name or f"run {run_id}"
    return _names[run_id]


def current_run() -> Optional[Dict[str, Any]]:
    """The edge run in progress as the framework's ``plugin.current_run()`` gives it:
    ``{"run_id", "run_name", "phase", "step", "iteration"}``, or None."""
    try:
        state = read()
    except RunStateUnreadable:
        return None
    if state.run_id is None:
        return None
    return {"run_id": state.run_id, "run_name": _run_name(state.run_id), "phase": None, "step": None,
            "iteration": None, "host": "ivoryos-edge", "at": time.time()}
