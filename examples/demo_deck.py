"""The demo's deck: a simulated balance, syringe pump and hotplate, each on a real pty.

Its logic ships inside the framework (``ivoryos_plugin/tools/demo_deck.py``, so a pip-installed
``ivoryos-plugin demo`` has it too); this file makes the same instruments the globals of a deck
script of your own. Start IvoryOS with every installed plugin (examples included) on it::

    python examples/demo_deck.py          # then http://127.0.0.1:8000/ivoryos/, admin / admin

or with the demo's banner and browser: ``ivoryos-plugin demo --deck examples/demo_deck.py``.
The simulators stop when the process exits.
"""
from ivoryos_plugin.tools.demo_deck import balance, hotplate, pump, shutdown  # noqa: F401  (the instruments)

if __name__ == "__main__":
    import ivoryos_plugin

    ivoryos_plugin.run(__name__)
