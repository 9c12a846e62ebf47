"""Plate map: a 96-well plate drawn in SVG, each well coloured live from published values.

Wells change three ways, and every open page sees each change at once (the ``well`` event):
the ``set_well`` action, :func:`publish_well` called from Python, and the deck's pump: each
``dispense`` call, whoever makes it (an IvoryOS workflow, the Instruments page, this page's
*Dispense* button), colours the next well (A1, A2, ... H12) by the volume dispensed.
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, Dict, Optional

from pydantic import BaseModel, Field

from ivoryos_plugin import Plugin

from .plate import COLUMNS, ROWS, WELL_PATTERN, Plate, colour


class Settings(BaseModel):
    """Which pump fills the plate and what volume fills a well."""

    instrument: str = Field("pump", min_length=1, max_length=64, pattern=r"^[a-z_][A-Za-z0-9_]*$",
                            description="The pump on the deck whose dispense calls colour the wells.")
    full_ml: float = Field(1.0, gt=0, le=1000, description="The volume (ml) that colours a well fully.")


plugin = Plugin("plate_map", __name__, title="Plate map", version="1.0.0", settings=Settings,
                description="A live 96-well plate, coloured as the deck's pump dispenses.")
plate = Plate()
_following: Dict[str, Callable[[], None]] = {}  # instrument name -> stop observing


def publish_well(well: str, value: float, **extra: Any) -> Dict[str, Any]:
    """Record ``value`` in ``well`` and tell every open page.

    :param well: ``"A1"`` .. ``"H12"``.
    :param value: 0..1 is the colour scale.
    :param extra: more fields for the event (``source``, ``volume_ml``)."""
    plate.set(well, value)
    event = {"well": well, "value": value, **extra}
    plugin.publish("well", event)
    return event


def _dispensed(call: Dict[str, Any]) -> None:
    """Observer of the pump's ``dispense``: colour the next well by the volume dispensed."""
    if "error" in call:
        return
    volume = float(call.get("result") or 0.0)
    value = min(volume / plugin.settings.full_ml, 1.0)
    well = plate.fill_next(value)
    plugin.publish("well", {"well": well, "value": value, "volume_ml": volume, "source": call["instrument"]})


def _follow(name: Optional[str]) -> None:
    """Observe the pump ``name`` (and stop observing the previous one)."""
    for stop in list(_following.values()):
        stop()
    _following.clear()
    if name is None:
        return
    if name not in plugin.instruments:
        plugin.logger.warning("no instrument %r on the deck: only set_well colours the plate", name)
        return
    try:
        _following[name] = plugin.observe(name, _dispensed, methods=["dispense"])
    except ValueError as exc:  # it has no dispense method
        plugin.logger.warning("cannot follow %r: %s", name, exc)


@plugin.on_start
def start(deck: Any) -> None:
    """Start with an empty plate and follow the pump named in the settings."""
    plate.clear()
    _follow(plugin.settings.instrument)


@plugin.on_settings_change
def settings_changed(old: Settings, new: Settings) -> None:
    """Follow another pump when the setting changes."""
    if old.instrument != new.instrument:
        _follow(new.instrument)


@plugin.on_stop
def stop() -> None:
    """Stop observing the pump."""
    _follow(None)


@plugin.route("/")
def main() -> str:
    """The plate page: the SVG is drawn here, with the values known now."""
    return plugin.render("plate_map.html", rows=plate.rows(), row_names=ROWS, columns=COLUMNS,
                         colour=colour, next_well=plate.snapshot()["next"], settings=plugin.settings)


@plugin.on("snapshot")
def snapshot(data: Any = None) -> Dict[str, object]:
    """The whole plate, for a page that (re)connects."""
    return plate.snapshot()


@plugin.action(hardware=False)
def set_well(well: Annotated[str, Field(pattern=WELL_PATTERN)],
             value: Annotated[float, Field(ge=0, le=1)]) -> Dict[str, Any]:
    """Colour one well (no hardware involved: allowed while a workflow runs)."""
    return publish_well(well, value, source="set_well")


@plugin.action(hardware=False)
def clear() -> Dict[str, object]:
    """Empty the plate and start filling again at A1."""
    plate.clear()
    state = plate.snapshot()
    plugin.publish("plate", state)
    return state


@plugin.action
def dispense(volume_ml: Annotated[float, Field(gt=0, le=1000)] = 0.5) -> Dict[str, Any]:
    """Dispense with the pump (refused while a workflow runs); the next well is coloured."""
    pumped = plugin.instrument(plugin.settings.instrument).dispense(volume_ml)
    return {"ok": True, "volume_ml": pumped}
