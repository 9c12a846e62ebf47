"""A left-panel widget on every IvoryOS page: each instrument call of a running workflow, live
(method, arguments, result or error, duration), and whether IvoryOS's runner holds the deck."""
import collections
import json
import threading
from typing import Any, Deque, Dict, List

from ivoryos_plugin import Plugin

plugin = Plugin("run_monitor", __name__, title="Run monitor", version="1.0.0", placement="left_panel",
                description="Shows every instrument call as it happens, and whether the deck is busy.")

RECENT: Deque[Dict[str, Any]] = collections.deque(maxlen=50)
_lock = threading.Lock()
_shown = {"busy": None}


def _plain(record: Dict[str, Any]) -> Dict[str, Any]:
    """The call record as JSON (values that are not JSON are shown by their repr)."""
    return json.loads(json.dumps(record, default=repr))


def on_call(record: Dict[str, Any]) -> None:
    """Observer of every instrument: keep the call and push the list to the pages. Plugins' live
    streams read instruments many times a second: they are left out, workflow calls stay."""
    if " stream " in record.get("source", ""):
        return
    call = _plain(record)
    with _lock:
        key = (call.get("instrument"), call.get("method"), call.get("started"))
        for i, old in enumerate(RECENT):  # the end of a call replaces its start
            if (old.get("instrument"), old.get("method"), old.get("started")) == key:
                del RECENT[i]
                break
        RECENT.append(call)
        calls: List[Dict[str, Any]] = list(RECENT)
    plugin.publish("calls", calls)


@plugin.on_start
def watch(deck: Any) -> None:
    for name in plugin.instruments:
        plugin.observe(name, on_call, starts=True)


@plugin.worker(every=0.5)
def busy_state() -> None:
    busy = plugin.deck_busy()
    if _shown["busy"] != busy:
        _shown["busy"] = busy
        plugin.publish("busy", {"busy": busy})


@plugin.route("/")
def main():
    return plugin.render("run_monitor.html")


@plugin.route("/widget")
def widget():
    return plugin.render("run_monitor_widget.html")


@plugin.action(hardware=False)
def clear() -> dict:
    with _lock:
        RECENT.clear()
    plugin.publish("calls", [])
    return {"cleared": True}
