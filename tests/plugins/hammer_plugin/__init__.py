"""A plugin that hammers one simulated balance through actions and a stream."""
from ivoryos_plugin import Plugin

plugin = Plugin("hammer", __name__, title="Hammer")


@plugin.route("/")
def main():
    return {"ok": True}


@plugin.stream("weight", hz=50)
def weight():
    return plugin.instrument("balance").read()


@plugin.action(hardware=False)
def weigh() -> dict:
    balance = plugin.instrument("balance")
    balance.tare()
    return {"grams": balance.weigh(), "unit": balance.unit}


@plugin.action(hardware=False)
def sim_stats() -> dict:
    import sys

    sim = sys.modules["__main__"].SIMS["balance"]
    commands = [command for command, _ in sim.log]
    return {"garbled": sim.garbled, "overlapped": sim.overlapped, "commands": len(commands),
            "kinds": sorted(set(c.split()[0] for c in commands))}
