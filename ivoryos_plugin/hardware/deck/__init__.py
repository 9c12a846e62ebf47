"""The deck layer: find instruments on the IvoryOS deck, serialise and observe their calls, and
keep plugins off the hardware while IvoryOS runs a workflow. Pure Python, no Flask.

The modules, by what they do: :mod:`.lookup` (the deck's instruments by IvoryOS's rule, the serial
ports they hold), :mod:`.guard` (the per-instrument lock installed by wrapping the live object's
methods, ``observe``, who is calling), :mod:`.gate` (the host's runner lock: ``Gate``,
``hardware_guard``, ``is_deck_busy``, ``DeckBusy``, ``DeckUnverified``).
"""
from __future__ import annotations

from ..locks import InstrumentLock
from .gate import DeckBusy, DeckUnverified, Gate, LockLike, hardware_guard, is_deck_busy
from .guard import CALLER, calling_as, guard_instrument, instrument_lock, observe
from .lookup import InstrumentUnavailable, claim_deck_ports, deck_instruments, get_instrument

__all__ = ["InstrumentUnavailable", "DeckBusy", "InstrumentLock", "deck_instruments",
           "get_instrument", "guard_instrument", "instrument_lock", "observe", "hardware_guard",
           "is_deck_busy", "Gate", "DeckUnverified", "LockLike", "claim_deck_ports", "CALLER", "calling_as"]
