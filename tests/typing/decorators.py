"""Checked by mypy --strict in tests/test_typing.py: every decorator returns the function it decorates."""
from typing import Callable, Dict

from typing_extensions import assert_type

from ivoryos_plugin import Plugin, Stop

plugin = Plugin("typed", __name__)


def main() -> str:
    return "page"


def tare(settle_s: float, /) -> Dict[str, bool]:
    return {"ok": settle_s >= 0}


def weight() -> Dict[str, float]:
    return {"grams": 1.0}


def tick() -> None:
    return None


def loop(stop: Stop, /) -> None:
    while stop.sleep(1):
        pass


def start(deck: object, /) -> None:
    return None


assert_type(plugin.route("/")(main), Callable[[], str])
assert_type(plugin.action(tare), Callable[[float], Dict[str, bool]])
assert_type(plugin.action(hardware=False)(tare), Callable[[float], Dict[str, bool]])
assert_type(plugin.stream("weight", hz=5)(weight), Callable[[], Dict[str, float]])
assert_type(plugin.on("ping")(weight), Callable[[], Dict[str, float]])
assert_type(plugin.worker(tick), Callable[[], None])
assert_type(plugin.worker(every=60)(tick), Callable[[], None])
assert_type(plugin.worker(name="loop")(loop), Callable[[Stop], None])
assert_type(plugin.on_start(start), Callable[[object], None])
assert_type(plugin.on_stop(tick), Callable[[], None])
