"""Deck camera: live video of the deck for every viewer from one capture, and a photo of the plate
as a workflow step (``deck_camera.snapshot(label)``), kept per run on the gallery page.

The camera here is the simulated one, which draws the simulated deck from what its instruments do
(observed, never polled); a lab passes its camera instead: ``plugin.camera("deck", 0)``.
"""
from typing import Any, Dict

from ivoryos_plugin import Plugin
from ivoryos_plugin.sim import DeckCamera

CAMERA = DeckCamera(width=640, height=480)

plugin = Plugin("deck_camera", __name__, title="Deck camera", version="1.0.0",
                description="Live video of the deck, and a photo of the plate at each workflow step.")
plugin.camera("deck", CAMERA, fps=10, width=640, quality=80)


@plugin.route("/")
def main() -> str:
    """The camera page."""
    return plugin.render("deck_camera.html")


def _dispensed(call: Dict[str, Any]) -> None:
    volume = call.get("result")
    if volume is None:
        volume = call["kwargs"].get("volume_ml", call["args"][0] if call["args"] else 0.0)
    CAMERA.dispensed(float(volume))


def _weighed(call: Dict[str, Any]) -> None:
    result = call.get("result")
    grams = result.get("grams") if isinstance(result, dict) else result
    if isinstance(grams, (int, float)):
        CAMERA.weighed(float(grams))


@plugin.on_start
def follow_the_deck(deck: Any) -> None:
    """Draw what the deck's pump and balance do (if the deck has them)."""
    if "pump" in plugin.instruments:
        plugin.observe("pump", _dispensed, methods=["dispense"])
    if "balance" in plugin.instruments:
        plugin.observe("balance", _weighed, methods=["weigh", "read"])
