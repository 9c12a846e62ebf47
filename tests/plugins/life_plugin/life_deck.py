"""The deck of the lifecycle tests, and the server they run (copied into a temp dir by ``launch``).

Env: ``LIFE_HOST`` = ``ivoryos`` (plain ``ivoryos.run``), ``ivoryos_plugin`` (``ivoryos_plugin.run``)
or ``cli`` (``ivoryos-plugin run``); ``LIFE_PLUGINS`` = names in ``life_plugin.servers``;
``LIFE_TOKEN`` = the dev host's token. ``PYTHONPATH`` must hold tests/plugins."""


class Scale:
    """A stand-in balance."""

    def weigh(self) -> float:
        """One reading in grams."""
        return 1.0


scale = Scale()

if __name__ == "__main__":
    import os
    import signal
    import sys

    # A terminal's Ctrl-C, even when the test runner was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host = os.environ.get("LIFE_HOST", "ivoryos")
    names = [n for n in os.environ.get("LIFE_PLUGINS", "life").split(",") if n]
    port = os.environ["PORT"]
    if host == "cli":
        from ivoryos_plugin.tools.cli import main

        targets = [f"life_plugin.servers:{n}" for n in names]
        main(["run", *targets, "--deck", os.path.abspath(__file__), "--port", port,
              "--token", os.environ.get("LIFE_TOKEN", "life-token")], prog_name="ivoryos-plugin")
    else:
        from life_plugin import servers

        plugins = [getattr(servers, n) for n in names]
        if host == "ivoryos":
            import ivoryos

            import ivoryos_plugin

            ivoryos_plugin.stop_on_sigterm()  # plain ivoryos.run: the deck asks for on_stop at SIGTERM
            ivoryos.run(__name__, host="127.0.0.1", port=int(port), blueprint_plugins=plugins)
        else:
            import ivoryos_plugin

            ivoryos_plugin.run(__name__, plugins=plugins, port=int(port))
    print("server script returned", flush=True)
    sys.exit(0)
