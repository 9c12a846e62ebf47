"""Drivers for the simulated instruments, ready to be held as deck-script globals.

IvoryOS lists the public methods of deck objects as actions, so every public method has
type hints and a docstring. Each driver owns a :class:`~ivoryos_plugin.hardware.serial.SerialDevice`,
so it is thread-safe and reconnects by itself when the instrument comes back.
"""
from __future__ import annotations

from typing import Any, Optional, TypeVar

from ..serial.device import SerialDevice

__all__ = ["InstrumentError", "Balance", "Pump", "Hotplate"]

_GRAMS_PER = {"g": 1.0, "mg": 0.001, "kg": 1000.0}
_D = TypeVar("_D", bound="_Driver")


class InstrumentError(RuntimeError):
    """The instrument rejected a command (``ERR ...`` reply) or answered nonsense."""


class _Driver:
    """Shared plumbing: a serial device plus checked request/reply helpers."""

    def __init__(self, port: str, *, timeout: float = 1.0, name: Optional[str] = None, **device_kw: Any) -> None:
        """Open the instrument's port.

        :param port: serial device path or pyserial URL (e.g. a simulator's ``.port``).
        :param timeout: seconds to wait for each reply.
        :param name: label for logs and errors (default: the class name).
        :param device_kw: passed to :class:`SerialDevice`.
        """
        self._dev = SerialDevice(port, timeout=timeout, name=name or type(self).__name__.lower(), **device_kw)

    def _ask(self, command: str, timeout: Optional[float] = None) -> str:
        """Query and raise :class:`InstrumentError` on an ``ERR`` reply.

        :param command: the command line.
        :param timeout: seconds to wait (default: the driver timeout).
        """
        reply = self._dev.query(command, timeout)
        if reply.startswith("ERR"):
            raise InstrumentError(f"{self._dev.name}: {command!r} -> {reply!r}")
        return reply

    def _do(self, command: str, timeout: Optional[float] = None) -> None:
        """Send a command that must answer ``OK``.

        :param command: the command line.
        :param timeout: seconds to wait (default: the driver timeout).
        """
        reply = self._ask(command, timeout)
        if reply != "OK":
            raise InstrumentError(f"{self._dev.name}: {command!r} -> {reply!r}, expected 'OK'")

    def _number(self, command: str) -> float:
        """Query a numeric value.

        :param command: the query command.
        """
        reply = self._ask(command)
        try:
            return float(reply)
        except ValueError:
            raise InstrumentError(f"{self._dev.name}: {command!r} -> {reply!r}, expected a number") from None

    def identify(self) -> str:
        """Return the instrument's identification string."""
        return self._ask("ID?")

    def close(self) -> None:
        """Close the connection to the instrument."""
        self._dev.close()

    def __enter__(self: _D) -> _D:
        """Use the driver in a ``with`` block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close at the end of a ``with`` block.

        :param exc: the exception triple, ignored.
        """
        self.close()


class Balance(_Driver):
    """Analytical balance (protocol of :class:`~ivoryos_plugin.sim.BalanceSimulator`)."""

    def read(self) -> dict[str, Any]:
        """Read the balance: ``{"value", "unit", "grams", "stable"}``.

        ``value`` is in the balance's current unit, ``grams`` the same reading in grams.
        """
        reply = self._ask("W?")
        parts = reply.split()
        if len(parts) != 4 or parts[0] != "W" or parts[2] not in _GRAMS_PER or parts[3] not in ("S", "U"):
            raise InstrumentError(f"{self._dev.name}: unexpected weight reply {reply!r}")
        value = float(parts[1])
        return {"value": value, "unit": parts[2], "grams": value * _GRAMS_PER[parts[2]], "stable": parts[3] == "S"}

    def weigh(self) -> float:
        """Return the net weight in the balance's current unit (see :attr:`unit`)."""
        return float(self.read()["value"])

    def tare(self) -> None:
        """Zero the balance with the current load on the pan."""
        self._do("T")

    def set_unit(self, unit: str) -> None:
        """Select the weighing unit.

        :param unit: ``"g"``, ``"mg"`` or ``"kg"``.
        """
        if unit not in _GRAMS_PER:
            raise ValueError(f"unit must be one of {sorted(_GRAMS_PER)}, not {unit!r}")
        self._do(f"U {unit}")

    @property
    def unit(self) -> str:
        """The current weighing unit (asks the balance)."""
        return self._ask("U?")

    @property
    def stable(self) -> bool:
        """Whether the current reading is stable (asks the balance)."""
        return bool(self.read()["stable"])


class Pump(_Driver):
    """Syringe pump (protocol of :class:`~ivoryos_plugin.sim.PumpSimulator`)."""

    def set_rate(self, ml_min: float) -> None:
        """Set the flow rate.

        :param ml_min: millilitres per minute, 0 < rate <= 100.
        """
        self._do(f"RATE {float(ml_min):g}")

    def rate(self) -> float:
        """Return the flow rate in ml/min."""
        return self._number("RATE?")

    def dispense(self, volume_ml: float) -> float:
        """Dispense a volume and wait until the pump reports completion.

        :param volume_ml: millilitres to dispense, 0 < volume <= 1000.
        :returns: the volume dispensed, in ml.
        """
        self._do(f"DISPENSE {float(volume_ml):g}", timeout=self._dev.timeout + 10.0)
        return float(volume_ml)

    def dispensed(self) -> float:
        """Return the total volume dispensed so far, in ml."""
        return self._number("VOL?")

    def stop(self) -> None:
        """Stop pumping."""
        self._do("STOP")


class Hotplate(_Driver):
    """Hotplate stirrer (protocol of :class:`~ivoryos_plugin.sim.HotplateSimulator`)."""

    def set_temperature(self, celsius: float) -> None:
        """Set the plate temperature setpoint.

        :param celsius: setpoint, 0 to 350 degrees Celsius.
        """
        self._do(f"TEMP {float(celsius):g}")

    def temperature(self) -> float:
        """Return the current plate temperature in degrees Celsius."""
        return self._number("TEMP?")

    def setpoint(self) -> float:
        """Return the temperature setpoint in degrees Celsius."""
        return self._number("SET?")

    def set_stirring(self, rpm: int) -> None:
        """Set the stirring speed.

        :param rpm: revolutions per minute, 0 to 1500 (0 stops stirring).
        """
        self._do(f"STIR {int(rpm)}")

    def stirring(self) -> int:
        """Return the stirring speed in rpm."""
        return int(self._number("STIR?"))
