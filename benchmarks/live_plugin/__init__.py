"""The live benchmark's plugin ``benchlive``: a 20 Hz stream of ``{"t", "seq"}`` read from the
deck's sensor, actions exposing the sensor's read counts and the ticks emitted, and a simulated
workflow that changes the sensor's value at random moments (published through ``observe``)."""
from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Tuple

from ivoryos_plugin import Plugin

RATE = {"hz": 20.0}
CHANGES = {"on": False, "value": 0}
TICKS: Deque[Tuple[int, float]] = deque(maxlen=100_000)
_SEQ = itertools.count(1)
_TICKS_LOCK = threading.Lock()

plugin = Plugin("benchlive", __name__, title="Live benchmark", version="1.0.0")


@plugin.route("/")
def main() -> str:
    """A placeholder page (the benchmark only uses the live events and actions)."""
    return "live benchmark plugin"


@plugin.route("/current")
def current() -> Dict[str, Any]:
    """The sensor's value and change time: what a 1 Hz polling page would fetch."""
    return dict(plugin.instrument("sensor").current())


@plugin.stream("value", hz=lambda: RATE["hz"])
def value() -> Dict[str, Any]:
    """One sensor read per tick; the payload carries the server's clock at emit."""
    plugin.instrument("sensor").read()
    with _TICKS_LOCK:
        seq, t = next(_SEQ), time.time()
        TICKS.append((seq, t))
    return {"t": t, "seq": seq}


@plugin.action(hardware=False)
def reads(since: float = 0.0, until: float = 0.0) -> Dict[str, float]:
    """The sensor's reads in ``[since, until]`` (wall clock) and its total."""
    return plugin.instrument("sensor").read_stats(since, until or time.time())


@plugin.action(hardware=False)
def ticks(since: float, until: float) -> Dict[str, List[int]]:
    """The sequence numbers of the stream ticks produced in ``[since, until]``."""
    with _TICKS_LOCK:
        return {"seqs": [seq for seq, t in TICKS if since <= t <= until]}


@plugin.action(hardware=False)
def set_rate(hz: float) -> Dict[str, float]:
    """Set the stream's rate."""
    RATE["hz"] = hz
    return {"hz": hz}


@plugin.action(hardware=False)
def changes(on: bool) -> Dict[str, bool]:
    """Start or stop the simulated workflow's value changes."""
    CHANGES["on"] = on
    return {"on": on}


@plugin.worker
def workflow(stop: Any) -> None:
    """A simulated workflow: while enabled, change the sensor's value at random moments
    (1.1 to 2.0 s apart, so a 1 Hz poller can see every value)."""
    rng = random.Random()
    while stop.sleep(rng.uniform(1.1, 2.0)):
        if CHANGES["on"]:
            CHANGES["value"] += 1
            plugin.instrument("sensor").set(CHANGES["value"])


@plugin.on_start
def start(deck: Any) -> None:
    """Publish every value change to the plugin's pages as ``changed``."""
    plugin.observe("sensor", lambda call: plugin.publish("changed", call.get("result")), methods=["set"])
