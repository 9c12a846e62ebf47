"""Balance dashboard: a live weight chart, a stability indicator, tare and unit controls.

The readings are recorded (kept a week): the chart opens with the last ten minutes, and the page
links the CSV of the IvoryOS run in progress, or of the last one recorded.

The chart shows the balance's readings in the unit chosen in the settings (a display choice: it
never touches the balance). The *Balance unit* control changes the unit of the balance itself,
which is what workflows get from ``balance.weigh()``; like *Tare*, it drives the hardware, so it is
refused (409) while an IvoryOS workflow holds the deck.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Literal, Optional

from pydantic import BaseModel, Field

from ivoryos_plugin import Plugin

Unit = Literal["g", "mg", "kg"]
GRAMS_PER: Dict[str, float] = {"g": 1.0, "mg": 0.001, "kg": 1000.0}
MAX_WAIT_S = 600.0  # the longest wait_until_stable accepts


class Settings(BaseModel):
    """What the dashboard reads, how often, and in which unit it draws."""

    instrument: str = Field("balance", min_length=1, max_length=64, pattern=r"^[a-z_][A-Za-z0-9_]*$",
                            description="The balance's name on the deck (a deck-script global).")
    rate_hz: float = Field(5.0, gt=0, le=20, description="Readings per second while someone watches (at most 20).")
    unit: Unit = Field("g", description="The unit the chart shows.")


plugin = Plugin("balance", __name__, title="Balance", version="1.0.0", settings=Settings,
                description="Live weight chart of the deck's balance, with tare and unit controls.",
                steps_as="balance_steps")  # the deck's instrument is already called "balance"


def _balance() -> Any:
    """The deck's balance named in the settings (503 with the loaded names when it is missing)."""
    return plugin.instrument(plugin.settings.instrument)


@plugin.route("/")
def main() -> str:
    """The dashboard page."""
    return plugin.render("balance.html", settings=plugin.settings, units=list(GRAMS_PER))


# Recorded (downsampled by its grams), so the page opens with the last ten minutes and offers each
# run's readings as CSV; it reads the balance at rate_hz even with no one watching.
@plugin.stream("weight", hz=lambda: plugin.settings.rate_hz, record="grams", keep_s=7 * 24 * 3600)
def weight() -> Dict[str, Any]:
    """One reading for every viewer: the weight in the chart's unit, and whether it is stable."""
    reading = _balance().read()
    unit = plugin.settings.unit
    return {"t": time.time(), "value": reading["grams"] / GRAMS_PER[unit], "unit": unit,
            "grams": reading["grams"], "stable": reading["stable"], "balance_unit": reading["unit"]}


@plugin.action
def tare() -> Dict[str, Any]:
    """Zero the balance with what is on the pan now (refused while a workflow runs)."""
    balance = _balance()
    balance.tare()
    return {"ok": True, "reading": balance.read()}


@plugin.action
def set_unit(unit: Unit) -> Dict[str, Any]:
    """Set the balance's own weighing unit (refused while a workflow runs)."""
    balance = _balance()
    balance.set_unit(unit)
    return {"ok": True, "unit": balance.unit}


@plugin.step(timeout=MAX_WAIT_S + 30)  # the framework fails a call that outlasts this, and frees the deck
def wait_until_stable(timeout_s: float = 30.0, tolerance_g: float = 0.002, settle_s: float = 0.5) -> float:
    """Wait until the balance settles: it reports stable and its readings stay within tolerance_g
    grams of each other for settle_s seconds. Returns the settled weight in grams; fails after
    timeout_s seconds, at most 600 (the workflow then pauses for a retry)."""
    if not 0 < timeout_s <= MAX_WAIT_S or tolerance_g < 0 or settle_s < 0:  # NaN and Infinity never get here
        raise ValueError(f"timeout_s={timeout_s}, tolerance_g={tolerance_g}, settle_s={settle_s}: use a timeout "
                         f"above 0 and at most {MAX_WAIT_S:g} s, and a non-negative tolerance and settling time.")
    balance = _balance()
    deadline = time.monotonic() + timeout_s
    since: Optional[float] = None  # when the current run of steady readings began
    reference = 0.0
    while not plugin.step_cancelled():  # true once the call gave up (a balance too slow to answer)
        reading = balance.read()
        now = time.monotonic()
        if reading["stable"] and since is not None and abs(reading["grams"] - reference) <= tolerance_g:
            if now - since >= settle_s:
                return float(reading["grams"])
        elif reading["stable"]:
            since, reference = now, reading["grams"]
        else:
            since = None
        if now >= deadline:
            state = "stable" if reading["stable"] else "unstable"
            raise TimeoutError(f"the balance did not settle within {timeout_s} s (last reading {reading['grams']} g, "
                               f"{state}); raise timeout_s or tolerance_g, or check for drafts and vibration.")
        time.sleep(0.05)
    raise TimeoutError("the call gave up before the balance answered; check the balance's connection.")
