"""A deck with a simulated balance on a real pty, for the concurrency test."""
import atexit

from ivoryos_plugin.sim import Balance, start_all, stop_all

SIMS = start_all()
atexit.register(stop_all, SIMS)
balance = Balance(SIMS["balance"].port)

if __name__ == "__main__":
    import os

    import ivoryos
    from hammer_plugin import plugin

    ivoryos.run(__name__, host="127.0.0.1", port=int(os.environ["PORT"]), blueprint_plugins=[plugin], debug=False)
