"""The demo's simulated deck on ivoryos-edge (the next IvoryOS generation), with two example plugins
served by ``ivoryos_plugin.edge.run``: their code is the same as on IvoryOS 1.x.

    pip install -e '.[edge]'
    python examples/edge_deck.py      # then http://127.0.0.1:8080/ (no login: the edge has none)

An installed plugin is named by its entry point (``ivoryos_plugin.edge.<name>``, as an edge deck file
names it ``"ivoryos_plugin.edge:<name>"``); a plugin object of your own goes in the list as it is.
"""
import os

import ivoryos_plugin.edge
from ivoryos_plugin.tools.demo_deck import balance, hotplate, pump  # noqa: F401  (the instruments)

if __name__ == "__main__":
    ivoryos_plugin.edge.run(__name__, port=int(os.environ.get("PORT", "8080")),
                            plugins=[ivoryos_plugin.edge.hello, ivoryos_plugin.edge.balance])
