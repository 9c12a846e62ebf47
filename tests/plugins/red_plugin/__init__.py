"""The red team's plugin (tests/test_security2*.py, tests/test_churn.py): an unbounded float
setting, actions and a Socket.IO handler whose side effects are appended to a journal on disk,
a stream reading the deck's meter, static/ and public/ files, and a file beside them that no
route may serve."""
import json
import os
from typing import Any, List

from pydantic import BaseModel, Field

from ivoryos_plugin import Plugin


class Settings(BaseModel):
    """``gain`` is a float with no bounds: NaN and Infinity must still be refused."""

    gain: float = 1.0
    label: str = Field("red", max_length=200)
    tags: List[Any] = []


plugin = Plugin("red", __name__, title="Red", version="1.0.0", settings=Settings,
                description="red-team test plugin")


def _journal(kind: str, value: Any) -> int:
    path = plugin.data_dir / "journal.jsonl"
    with open(path, "a+", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "value": value}, default=repr) + "\n")
        handle.seek(0)
        return sum(1 for _ in handle)


@plugin.route("/")
def main():
    return plugin.render("red.html")


@plugin.action(hardware=False)
def record(value: float = 0.0, text: str = "", items: List[Any] = []) -> dict:
    return {"lines": _journal("record", {"value": value, "text": text, "items": len(items)})}


@plugin.action
def tare() -> dict:
    """A hardware action (the rebinding page's target)."""
    return {"tared": plugin.instrument("meter").tare()}


@plugin.on("mark")
def mark(data):
    return {"lines": _journal("mark", data)}


@plugin.stream("tick", hz=float(os.environ.get("RED_HZ", "5")))
def tick():
    return {"n": plugin.instrument("meter").read()}


@plugin.action(hardware=False)
def reading() -> dict:
    """A sensor that answers NaN (a disconnected probe): the reply must still be JSON."""
    return {"reading": float("nan"), "peak": float("inf"), "ok": True}
