"""A plugin whose ``on_start`` blocks (for ``$SLOW_SECONDS``, 120 by default)."""
import os
import time

from ivoryos_plugin import Plugin

plugin = Plugin("slow", __name__, title="Slow", version="1.0.0")


@plugin.route("/")
def main():
    return {"slow": True}


@plugin.on_start
def wait_for_ever(deck):
    time.sleep(float(os.environ.get("SLOW_SECONDS", "120")))
