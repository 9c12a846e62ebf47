"""Simulated lab instruments (balance, syringe pump, hotplate stirrer) on ptys.

Every protocol is ASCII, one command per line (``\\r\\n`` or ``\\n``), one reply line per
command ending in ``\\r\\n``. Unknown commands answer ``ERR unknown command`` and count in
``garbled``; valid commands with a bad argument answer ``ERR <reason>``.
"""
from __future__ import annotations

import math
import random
import threading
import time
from typing import Any, Optional

from .base import HandlerResult, PtySimulator, Reply, UnknownCommand

__all__ = ["BalanceSimulator", "PumpSimulator", "HotplateSimulator"]


def _number(command: str, arg: str) -> float:
    """Parse a numeric argument or reject the command as malformed.

    :param command: the whole command, for the error.
    :param arg: the argument text.
    """
    try:
        value = float(arg)
    except ValueError:
        raise UnknownCommand(command) from None
    if not math.isfinite(value):
        raise UnknownCommand(command)
    return value


class BalanceSimulator(PtySimulator):
    """An analytical balance.

    Protocol:

    ==============  ===========================================================
    ``W?``          ``W <value:.3f> <unit> <S|U>``: net weight in the current unit
                    with gaussian noise; ``U`` (unstable) for ``settle_time`` s
                    after :meth:`load`, ``S`` otherwise
    ``T``           ``OK``: tare (subtract the current mass from later readings)
    ``U g|mg|kg``   ``OK`` (``ERR unknown unit`` for other units)
    ``U?``          the current unit
    ``ID?``         ``SIM-BALANCE``
    ==============  ===========================================================

    :param name: port symlink name.
    :param noise_g: standard deviation of the reading noise when stable, in grams.
    :param settle_time: seconds a reading stays unstable after a load change.
    :param seed: seed for the noise generator (reproducible readings).
    :param kw: passed to :class:`PtySimulator`.
    """

    ident = "SIM-BALANCE"
    UNITS = {"g": 1.0, "mg": 1000.0, "kg": 0.001}

    def __init__(self, name: Optional[str] = "balance", *, noise_g: float = 0.0002, settle_time: float = 0.3,
                 seed: Optional[int] = None, **kw: Any) -> None:
        """Configure the balance (empty pan, unit ``g``).

        :param name: see the class docstring.
        :param noise_g: see the class docstring.
        :param settle_time: see the class docstring.
        :param seed: see the class docstring.
        :param kw: see the class docstring.
        """
        super().__init__(name, **kw)
        self.noise_g, self.settle_time = noise_g, settle_time
        self.unit = "g"
        self.tare_g = 0.0
        self._rng = random.Random(seed)
        self._load: tuple[float, float, float] = (0.0, 0.0, -math.inf)  # mass, step size, changed at

    @property
    def mass(self) -> float:
        """The true gross mass on the pan, in grams."""
        return self._load[0]

    def load(self, grams: float) -> None:
        """Put ``grams`` (gross) on the pan; readings are unstable for ``settle_time`` s.

        :param grams: the new true mass.
        """
        self._load = (float(grams), abs(float(grams) - self._load[0]), time.monotonic())

    def stable(self) -> bool:
        """Whether the reading has settled since the last load change."""
        return time.monotonic() - self._load[2] >= self.settle_time

    def handle(self, command: str) -> HandlerResult:
        """Answer one balance command.

        :param command: the command line.
        """
        if command == "W?":
            mass, step, _ = self._load
            stable = self.stable()
            sigma = self.noise_g if stable else self.noise_g + 0.01 * step
            grams = mass - self.tare_g + self._rng.gauss(0.0, sigma)
            return f"W {grams * self.UNITS[self.unit]:.3f} {self.unit} {'S' if stable else 'U'}"
        if command == "T":
            self.tare_g = self._load[0]
            return "OK"
        if command == "U?":
            return self.unit
        verb, _, arg = command.partition(" ")
        if verb == "U" and arg:
            if arg.strip() not in self.UNITS:
                return "ERR unknown unit"
            self.unit = arg.strip()
            return "OK"
        return super().handle(command)


class PumpSimulator(PtySimulator):
    """A syringe pump.

    Protocol:

    ==================  =======================================================
    ``RATE <ml_min>``   ``OK``; ``ERR rate out of range`` unless 0 < rate <= 100
    ``RATE?``           the rate, ``<ml_min:.3f>``
    ``DISPENSE <ml>``   ``OK`` once done: after ``ml / rate`` minutes scaled by
                        ``time_scale``, at most ``max_delay`` s (busy meanwhile);
                        ``ERR volume out of range`` unless 0 < ml <= 1000
    ``VOL?``            total volume dispensed, ``<ml:.3f>``
    ``STOP``            ``OK``
    ``ID?``             ``SIM-PUMP``
    ==================  =======================================================

    :param name: port symlink name.
    :param time_scale: simulated seconds per real second of dispensing time.
    :param max_delay: cap on the dispense time, seconds.
    :param kw: passed to :class:`PtySimulator`.
    """

    ident = "SIM-PUMP"

    def __init__(self, name: Optional[str] = "pump", *, time_scale: float = 0.01, max_delay: float = 0.5,
                 **kw: Any) -> None:
        """Configure the pump (rate 10 ml/min, nothing dispensed).

        :param name: see the class docstring.
        :param time_scale: see the class docstring.
        :param max_delay: see the class docstring.
        :param kw: see the class docstring.
        """
        super().__init__(name, **kw)
        self.time_scale, self.max_delay = time_scale, max_delay
        self.rate_ml_min = 10.0
        self.total_ml = 0.0

    def handle(self, command: str) -> HandlerResult:
        """Answer one pump command.

        :param command: the command line.
        """
        if command == "RATE?":
            return f"{self.rate_ml_min:.3f}"
        if command == "VOL?":
            return f"{self.total_ml:.3f}"
        if command == "STOP":
            return "OK"
        verb, _, arg = command.partition(" ")
        if verb == "RATE" and arg:
            rate = _number(command, arg)
            if not 0 < rate <= 100:
                return "ERR rate out of range"
            self.rate_ml_min = rate
            return "OK"
        if verb == "DISPENSE" and arg:
            volume = _number(command, arg)
            if not 0 < volume <= 1000:
                return "ERR volume out of range"
            self.total_ml += volume
            seconds = volume / self.rate_ml_min * 60.0 * self.time_scale
            return Reply("OK", min(seconds, self.max_delay))
        return super().handle(command)


class HotplateSimulator(PtySimulator):
    """A hotplate stirrer whose temperature approaches the setpoint exponentially.

    Protocol:

    ===============  ==========================================================
    ``TEMP <c>``     ``OK``: new setpoint; ``ERR temperature out of range``
                     unless 0 <= c <= 350
    ``TEMP?``        current plate temperature, ``<c:.1f>``
    ``SET?``         the setpoint, ``<c:.1f>``
    ``STIR <rpm>``   ``OK``; ``ERR speed out of range`` unless 0 <= rpm <= 1500
    ``STIR?``        the stirring speed, an integer
    ``ID?``          ``SIM-HOTPLATE``
    ===============  ==========================================================

    :param name: port symlink name.
    :param ambient: starting temperature and initial setpoint, Celsius.
    :param tau: time constant of the temperature approach, seconds.
    :param kw: passed to :class:`PtySimulator`.
    """

    ident = "SIM-HOTPLATE"

    def __init__(self, name: Optional[str] = "hotplate", *, ambient: float = 25.0, tau: float = 1.0,
                 **kw: Any) -> None:
        """Configure the hotplate (at ambient, not stirring).

        :param name: see the class docstring.
        :param ambient: see the class docstring.
        :param tau: see the class docstring.
        :param kw: see the class docstring.
        """
        super().__init__(name, **kw)
        self.tau = tau
        self.rpm = 0
        self._state_lock = threading.Lock()
        self._ramp = (ambient, ambient, time.monotonic())  # start temperature, setpoint, since

    @property
    def setpoint(self) -> float:
        """The temperature setpoint, Celsius."""
        return self._ramp[1]

    def temperature(self) -> float:
        """The current plate temperature, Celsius."""
        start, target, since = self._ramp
        return target + (start - target) * math.exp(-(time.monotonic() - since) / self.tau)

    def handle(self, command: str) -> HandlerResult:
        """Answer one hotplate command.

        :param command: the command line.
        """
        if command == "TEMP?":
            return f"{self.temperature():.1f}"
        if command == "SET?":
            return f"{self.setpoint:.1f}"
        if command == "STIR?":
            return str(self.rpm)
        verb, _, arg = command.partition(" ")
        if verb == "TEMP" and arg:
            celsius = _number(command, arg)
            if not 0 <= celsius <= 350:
                return "ERR temperature out of range"
            with self._state_lock:
                self._ramp = (self.temperature(), celsius, time.monotonic())
            return "OK"
        if verb == "STIR" and arg:
            rpm = _number(command, arg)
            if not 0 <= rpm <= 1500 or rpm != int(rpm):
                return "ERR speed out of range"
            self.rpm = int(rpm)
            return "OK"
        return super().handle(command)
