"""A plugin with a recorded stream (a counter), used by tests/test_history.py."""
import itertools
import os
import threading
from typing import Any, Dict

from ivoryos_plugin import Plugin

_counter = itertools.count(1)
_lock = threading.Lock()
LAST = {"n": 0}

plugin = Plugin("recorder", __name__, title="Recorder", version="1.0.0")


@plugin.route("/")
def main() -> str:
    return plugin.render("recorder.html")


@plugin.stream("count", hz=float(os.environ.get("REC_HZ", "20")), record=True)
def count() -> Dict[str, Any]:
    with _lock:
        LAST["n"] = next(_counter)
        return {"value": LAST["n"]}


@plugin.action(hardware=False)
def produced() -> Dict[str, int]:
    return {"n": LAST["n"]}
