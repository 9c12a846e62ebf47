"""The demo's deck: a simulated balance, syringe pump and hotplate, each on a real pty.

Importing this module starts the three simulators and connects a driver to each; the drivers are
the module's globals ``balance``, ``pump`` and ``hotplate``, which IvoryOS shows as the deck's
instruments. The pump dispenses water into a vial on the balance: each ``pump.dispense(ml)`` adds
``ml`` grams to the pan, so a workflow that dispenses moves the balance's live chart.
The simulators stop at interpreter exit (or earlier, with :func:`shutdown`).

``ivoryos-plugin demo`` serves IvoryOS with every installed plugin on this deck (so does
``python -m ivoryos_plugin.tools.demo_deck``, without the demo's banner).
"""
# No ``from __future__ import annotations`` here: it would add a global ``annotations``, which
# IvoryOS would list as an instrument.
import atexit as _atexit
import threading as _threading
from typing import Any as _Any, Dict as _Dict

from ivoryos_plugin.sim import Balance as _Balance
from ivoryos_plugin.sim import Hotplate as _Hotplate
from ivoryos_plugin.sim import Pump as _Pump
from ivoryos_plugin.sim import start_all as _start_all
from ivoryos_plugin.sim import stop_all as _stop_all

#: The running simulators by name (``.port`` is each one's serial port); not an instrument.
SIMULATORS: _Dict[str, _Any] = _start_all()
_VIAL_LOCK = _threading.Lock()


class DemoPump(_Pump):
    """Syringe pump dispensing water into the vial on the demo's balance."""

    def dispense(self, volume_ml: float) -> float:
        """Dispense a volume into the vial on the balance and wait until the pump is done.

        :param volume_ml: millilitres to dispense, 0 < volume <= 1000.
        :returns: the volume dispensed, in ml.
        """
        dispensed = super().dispense(volume_ml)
        scale = SIMULATORS["balance"]
        with _VIAL_LOCK:
            scale.load(scale.mass + dispensed)  # water: 1 g per ml
        return dispensed


balance = _Balance(SIMULATORS["balance"].port)
pump = DemoPump(SIMULATORS["pump"].port)
hotplate = _Hotplate(SIMULATORS["hotplate"].port)
_stopped = _threading.Event()


def shutdown() -> None:
    """Close the drivers and stop the simulators (idempotent; also runs at interpreter exit)."""
    if _stopped.is_set():
        return
    _stopped.set()
    for driver in (balance, pump, hotplate):
        try:
            driver.close()
        except Exception:  # a driver that fails to close must not keep a pty alive
            pass
    _stop_all(SIMULATORS)


_atexit.register(shutdown)

if __name__ == "__main__":
    import ivoryos_plugin

    ivoryos_plugin.run(__name__)
