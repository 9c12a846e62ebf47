"""A left-panel widget on every IvoryOS page: each instrument call of a running workflow, live
(method, arguments, result or error, duration), and whether IvoryOS's runner holds the deck.

It also keeps, per workflow run, the result of every step (instrument methods and other plugins'
steps alike), and offers a step of its own: ``run_monitor.note(text)`` files a note in that record."""
import collections
import json
import threading
import time
from typing import Any, Deque, Dict, List

from ivoryos_plugin import Plugin

plugin = Plugin("run_monitor", __name__, title="Run monitor", version="1.0.0", placement="left_panel",
                description="Shows every instrument call as it happens, and whether the deck is busy.")

RECENT: Deque[Dict[str, Any]] = collections.deque(maxlen=50)
#: run id -> the finished steps of that workflow run, in order (the last 20 runs are kept)
RUNS: "collections.OrderedDict[int, List[Dict[str, Any]]]" = collections.OrderedDict()
KEEP_RUNS = 20
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
    run = plugin.current_run()
    if run is not None and call.get("phase") == "end" and call.get("source") == "deck":
        outcome = {"error": call["error"]} if call.get("error") else {"result": call.get("result")}
        _file(run, {"instrument": call.get("instrument"), "method": call.get("method"), **outcome})


def _file(run: Dict[str, Any], entry: Dict[str, Any]) -> None:
    """Keep ``entry`` in the record of the workflow run ``run`` and push the runs to the pages."""
    with _lock:
        steps = RUNS.setdefault(run["run_id"], [])
        steps.append({"step": run.get("step"), "phase": run.get("phase"), **entry})
        while len(RUNS) > KEEP_RUNS:
            RUNS.popitem(last=False)
        runs = {str(run_id): list(entries) for run_id, entries in RUNS.items()}
    plugin.publish("runs", runs)


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


@plugin.action(hardware=False)
def runs() -> dict:
    """Every kept run's steps: ``{run id: [{step, phase, instrument, method, result|error}, ...]}``."""
    with _lock:
        return {"runs": {str(run_id): list(entries) for run_id, entries in RUNS.items()}}


@plugin.step
def note(text: str) -> Dict[str, Any]:
    """Write a note into the run monitor's record of the current workflow run; returns the note."""
    run = plugin.current_run()
    return {"note": text, "t": time.time(), "run_id": run["run_id"] if run else None}  # filed by on_call
