"""Keeping plugins off the hardware while the host runs a workflow: the :class:`Gate` a host gives
(its runner lock, its queue, what to do once a plugin releases the lock), :func:`hardware_guard`,
:func:`is_deck_busy`, and the refusals :class:`DeckBusy` and :class:`DeckUnverified` (a gate that
cannot verify the deck is idle refuses: safety fails closed). Pure Python, no Flask."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Protocol, Union

logger = logging.getLogger("ivoryos_plugin.deck")

__all__ = ["DeckBusy", "DeckUnverified", "Gate", "LockLike", "hardware_guard", "is_deck_busy"]


class DeckBusy(RuntimeError):
    """IvoryOS is running a workflow or step, so a plugin may not drive the hardware now."""

    def __init__(self, plugin: Optional[str] = None) -> None:
        """:param plugin: the plugin refused, named in the message."""
        self.plugin = plugin
        who = f"Plugin {plugin!r} cannot" if plugin else "Cannot"
        super().__init__(f"{who} use the instruments now: an IvoryOS workflow or step is "
                         "running. Retry when it finishes.")

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (self.plugin,)


class LockLike(Protocol):
    """What :func:`hardware_guard` needs of a lock; ``threading.Lock`` fits."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class DeckUnverified(RuntimeError):
    """The framework cannot verify that no workflow is running, so hardware actions are refused.

    Safety fails closed: a hardware action runs only when the host's runner lock is known and free."""

    def __init__(self, reason: str, plugin: Optional[str] = None) -> None:
        """:param reason: why the deck cannot be verified idle (names the host and what is missing).
        :param plugin: the plugin refused, named in the message."""
        self.reason, self.plugin = reason, plugin
        who = f"Plugin {plugin!r}: hardware" if plugin else "Hardware"
        super().__init__(f"{who} actions are refused: cannot verify the deck is idle ({reason}). "
                         "Check the health page /ivoryos/plugins/; a supported IvoryOS version fixes it.")

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (self.reason, self.plugin)


def _no_queue() -> int:
    return 0


def _nothing_to_resume() -> None:
    return None


@dataclass
class Gate:
    """How the hardware layer knows the deck is idle: the host's runner lock, its queue, and what to
    do once a plugin releases the lock. Hosts build it (the IvoryOS adapter probes IvoryOS for it).

    :param lock: the lock the host's workflow runner holds while it runs; None when unknown.
    :param problem: why the deck cannot be verified idle (non-empty: hardware actions are refused).
    :param queued: how many workflows wait for the lock.
    :param after_release: start a workflow queued while a plugin held the lock."""

    lock: Optional[LockLike] = None
    problem: str = ""
    queued: Callable[[], int] = _no_queue
    after_release: Callable[[], None] = _nothing_to_resume

    @classmethod
    def unverified(cls, problem: str) -> "Gate":
        """A gate that refuses every hardware action with ``problem``.

        :param problem: why the deck cannot be verified idle."""
        return cls(lock=None, problem=problem)

    def check(self, plugin: Optional[str] = None) -> LockLike:
        """The lock, or :class:`DeckUnverified` when the deck cannot be verified idle.

        :param plugin: the plugin asking, for the message."""
        if self.problem or self.lock is None:
            raise DeckUnverified(self.problem or "no runner lock is known for this app", plugin)
        return self.lock


def _gate(gate: Union[Gate, LockLike]) -> Gate:
    return gate if isinstance(gate, Gate) else Gate(lock=gate)


@contextlib.contextmanager
def hardware_guard(gate: Union[Gate, LockLike], *, plugin: Optional[str] = None) -> Iterator[None]:
    """Hold the host's runner lock while the body drives hardware, or refuse at once.

    Not reentrant (with a ``threading.Lock``); code run by a workflow step gets
    :class:`DeckBusy`, as the workflow holds the lock. On exit the lock is always released,
    then a workflow queued meanwhile is started (``gate.after_release``).

    :param gate: the app's :class:`Gate` (or a bare lock).
    :param plugin: the plugin's name, for the error message.
    :raises DeckUnverified: the gate cannot verify that the deck is idle (fails closed).
    :raises DeckBusy: the lock is held: a workflow or step is running."""
    gate = _gate(gate)
    lock = gate.check(plugin)
    if not lock.acquire(blocking=False):
        raise DeckBusy(plugin)
    try:
        yield
    finally:
        lock.release()
        try:
            gate.after_release()
        except Exception:
            logger.exception("Could not start the host's queued workflow")


def is_deck_busy(gate: Union[Gate, LockLike]) -> bool:
    """True while the runner lock is held or workflows wait for it; True when it cannot be verified.

    :param gate: the app's :class:`Gate` (or a bare lock)."""
    gate = _gate(gate)
    if gate.problem or gate.lock is None:
        return True
    lock = gate.lock
    locked = getattr(lock, "locked", None)
    if callable(locked):
        held = bool(locked())
    elif lock.acquire(blocking=False):
        lock.release()
        held = False
    else:
        held = True
    try:
        return held or gate.queued() > 0
    except Exception:
        logger.exception("Cannot read the host's workflow queue")
        return True
