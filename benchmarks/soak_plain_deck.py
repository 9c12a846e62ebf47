"""The soak's anchor (for bench_soak.py): plain ``ivoryos.run`` on the demo's deck, without any plugin.

The instruments are the demo's own (a balance, a pump and a hotplate, each simulated on a real pty,
the same code ``ivoryos-plugin demo`` serves); IvoryOS listens on 127.0.0.1:$PORT and keeps its data
in ./ivoryos_data of the working directory. Nothing of the framework runs here but the simulators
and their drivers (the hardware layer), which the demo runs as well.
"""
import os as _os

from ivoryos_plugin.tools.demo_deck import balance, hotplate, pump  # noqa: F401  (the instruments)

if __name__ == "__main__":
    import ivoryos

    ivoryos.run(__name__, host="127.0.0.1", port=int(_os.environ["PORT"]), debug=False)
