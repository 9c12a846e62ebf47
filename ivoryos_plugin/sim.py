"""Simulated serial instruments on real pseudo-terminals, and drivers for them (public path of
:mod:`ivoryos_plugin.hardware.sim`).

>>> from ivoryos_plugin import sim
>>> sims = sim.start_all()                  # {"balance": ..., "pump": ..., "hotplate": ...}
>>> balance = sim.Balance(sims["balance"].port)
>>> sims["balance"].load(12.5); balance.weigh()
>>> balance.close(); sim.stop_all(sims)
"""
from __future__ import annotations

from .hardware.sim import (Balance, BalanceSimulator, DeckCamera, EchoSimulator, Hotplate, HotplateSimulator, InstrumentError,
                           PtySimulator, Pump, PumpSimulator, Reply, UnknownCommand, start_all, stop_all)

__all__ = [
    "PtySimulator", "EchoSimulator", "Reply", "UnknownCommand",
    "BalanceSimulator", "PumpSimulator", "HotplateSimulator",
    "Balance", "Pump", "Hotplate", "InstrumentError",
    "start_all", "stop_all", "DeckCamera",
]
