"""Simulated serial instruments on real pseudo-terminals, and drivers for them.

>>> from ivoryos_plugin import sim
>>> sims = sim.start_all()                  # {"balance": ..., "pump": ..., "hotplate": ...}
>>> balance = sim.Balance(sims["balance"].port)
>>> sims["balance"].load(12.5); balance.weigh()
>>> balance.close(); sim.stop_all(sims)
"""
from __future__ import annotations

from typing import Mapping, Optional

from .base import PtySimulator, Reply, UnknownCommand
from .camera import DeckCamera
from .drivers import Balance, Hotplate, InstrumentError, Pump
from .echo import EchoSimulator
from .instruments import BalanceSimulator, HotplateSimulator, PumpSimulator

__all__ = [
    "PtySimulator", "EchoSimulator", "Reply", "UnknownCommand",
    "BalanceSimulator", "PumpSimulator", "HotplateSimulator",
    "Balance", "Pump", "Hotplate", "InstrumentError",
    "start_all", "stop_all", "DeckCamera",
]

_started: dict[str, PtySimulator] = {}


def start_all() -> dict[str, PtySimulator]:
    """Start one balance, pump and hotplate simulator.

    :returns: ``{"balance": ..., "pump": ..., "hotplate": ...}``; connect to each ``.port``.
    """
    sims: dict[str, PtySimulator] = {}
    try:
        for name, cls in (("balance", BalanceSimulator), ("pump", PumpSimulator), ("hotplate", HotplateSimulator)):
            sims[name] = cls(name).start()
    except BaseException:
        stop_all(sims)
        raise
    _started.update(sims)
    return sims


def stop_all(sims: Optional[Mapping[str, PtySimulator]] = None) -> None:
    """Stop simulators (by default every one started by :func:`start_all`).

    :param sims: the simulators to stop, e.g. the dict :func:`start_all` returned.
    """
    targets = dict(_started if sims is None else sims)
    for name, sim in targets.items():
        sim.stop()
        if _started.get(name) is sim:
            del _started[name]
