"""A test plugin exercising every framework feature, used by the server tests."""
import os
import threading
import time

from ivoryos_plugin import Plugin

RATE = {"hz": float(os.environ.get("PROBE_HZ", "20"))}
STARTS = {"count": 0}

plugin = Plugin("probe", __name__, title="Probe", version="0.3.0", description="test plugin")


@plugin.route("/")
def main():
    return plugin.render("probe.html")


@plugin.route("/hello", public=True)
def hello():
    return {"hello": "world"}


@plugin.stream("value", hz=lambda: RATE["hz"])
def value():
    sensor = plugin.instrument("sensor")
    return {"n": sensor.read(), "t": time.time()}


@plugin.action(hardware=False)
def reads() -> dict:
    return {"reads": plugin.instrument("sensor").reads, "starts": STARTS["count"]}


@plugin.action(hardware=False)
def set_rate(hz: float) -> dict:
    RATE["hz"] = hz
    return {"hz": hz}


@plugin.action(hardware=False)
def publish_later(value: int, delay: float = 0.2) -> dict:
    def later() -> None:
        time.sleep(delay)
        plugin.publish("note", {"value": value})

    threading.Thread(target=later, daemon=True).start()
    return {"scheduled": value}


@plugin.action
def bump(by: int = 1) -> dict:
    return {"total": plugin.instrument("sensor").bump(by)}


@plugin.action
def hold(seconds: float = 1.0) -> dict:
    return {"held": plugin.instrument("sensor").slow(seconds)}


@plugin.action(hardware=False)
def total() -> dict:
    return {"total": plugin.instrument("sensor").total}


@plugin.action
def jam() -> None:
    plugin.instrument("sensor").fail("jammed by test")


@plugin.action
def missing() -> None:
    plugin.instrument("nope")


@plugin.on("echo")
def echo(data):
    return {"echo": data}


@plugin.on_start
def start(deck):
    STARTS["count"] += 1
    plugin.publish("started", {"starts": STARTS["count"]})
