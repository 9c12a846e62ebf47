"""The one wait of the kit's live clients, ``live.wait_for`` (Socket.IO, IvoryOS 1.x) and the edge's
``EdgeLive.wait_for`` (its WebSocket): look at what arrived until enough payloads of an event did, or
fail at a deadline saying what arrived instead."""
from __future__ import annotations

import time
from typing import Any, Callable, List

__all__ = ["wait_for_payloads"]


def wait_for_payloads(event: str, count: int, timeout: float, received: Callable[[], List[Any]],
                      arrived: Callable[[], List[Any]], pause: Callable[[float], object]) -> List[Any]:
    """Call ``received()`` until it holds ``count`` payloads, and return them all.

    :param event: the event's name (the failure names it).
    :param count: how many payloads to wait for.
    :param timeout: seconds.
    :param received: the event's payloads so far, in order.
    :param arrived: what did arrive, for the failure (the events' names).
    :param pause: waits between two looks; given the seconds left before the deadline.
    :raises AssertionError: fewer than ``count`` arrived within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = received()
        if len(got) >= count:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{event!r}: received {len(got)} of {count} within {timeout} s; got {arrived()}")
        pause(left)
