"""A plugin that extends IvoryOS's workflows with steps, used by tests/test_steps.py."""
import threading
import time
from typing import Any, Dict, List, Literal

from ivoryos_plugin import Plugin

plugin = Plugin("plate_log", __name__, title="Plate log", version="1.0.0",
                description="Files labelled values under the workflow run that made them.",
                template_folder=None)

RECORDS: List[Dict[str, Any]] = []
CALLS: List[Dict[str, Any]] = []
_lock = threading.Lock()
_released = threading.Event()  # ends a running hold early (the release action)


@plugin.route("/")
def main() -> Dict[str, Any]:
    return {"records": RECORDS}


@plugin.step
def record(label: str, value: float = 0.0, unit: Literal["g", "mL"] = "g") -> Dict[str, Any]:
    """File a labelled value under the current run; returns what was filed."""
    entry = {"label": label, "value": value, "unit": unit, "run": plugin.current_run(),
             "sensor_total": plugin.instrument("sensor").total}
    with _lock:
        RECORDS.append(entry)
    return entry


@plugin.step
def hold(seconds: float = 1.0) -> float:
    """Keep the workflow in this step for a while."""
    began = time.monotonic()
    _released.wait(seconds)  # (a release before this step began ends it at once)
    _released.clear()
    return round(time.monotonic() - began, 3)


@plugin.step
def explode(message: str = "plate jammed") -> None:
    """Fail, as a faulty instrument does."""
    raise RuntimeError(message)


@plugin.action
def bump(by: int = 1) -> Dict[str, int]:
    return {"total": plugin.instrument("sensor").bump(by)}


@plugin.action(hardware=False)
def release() -> Dict[str, bool]:
    """End the running hold step now (a test's deck stays held exactly as long as it needs)."""
    _released.set()
    return {"released": True}


@plugin.action(hardware=False)
def seen() -> Dict[str, Any]:
    with _lock:
        return {"records": list(RECORDS), "calls": list(CALLS)}


@plugin.on_start
def watch(deck: Any) -> None:
    def on_call(call: Dict[str, Any]) -> None:
        with _lock:
            CALLS.append({"instrument": call["instrument"], "method": call["method"],
                          "phase": call.get("phase"), "error": call.get("error")})

    plugin.observe("plate_log", on_call)
