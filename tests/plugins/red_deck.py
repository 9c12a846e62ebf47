"""The red team's deck (tests/test_security2*.py): the ``red`` plugin, the plain ``redplain``
Blueprint and, with env ``RED_SLOW=1``, a ``slow`` plugin registered before them whose on_start
blocks. Env ``RED_HOST`` picks the host: ``ivoryos`` (plain ``ivoryos.run``), ``standalone`` (the
dev host, token ``$RED_TOKEN``) or ``run`` (``ivoryos_plugin.run``; ``$RED_RUN_KWARGS`` is a JSON
object of more keyword arguments). Listens on 127.0.0.1:$PORT."""
import threading


class Meter:
    """Counts its reads (what a stream costs it) and can be held like a slow workflow step."""

    def __init__(self) -> None:
        self.reads = 0
        self.total = 0
        self._lock = threading.Lock()

    def read(self) -> int:
        """One reading."""
        with self._lock:
            self.reads += 1
            return self.reads

    def tare(self) -> int:
        """Zero the meter."""
        self.total = 0
        return self.total

    def slow(self, seconds: float = 1.0) -> float:
        """Hold the instrument (a long workflow step)."""
        import time

        time.sleep(seconds)
        return seconds

    def bump(self, by: int = 1) -> int:
        """Add to a total."""
        self.total += by
        return self.total


meter = Meter()


def main() -> None:
    """Serve (a function: the deck's globals are its instruments)."""
    import json
    import os
    import sys

    mode = os.environ.get("RED_HOST", "ivoryos")
    port = int(os.environ["PORT"])
    from red_plain import plugin as plain
    from red_plugin import plugin as red

    plugins = [red, plain]
    if os.environ.get("RED_SLOW"):
        from slow_plugin import plugin as slow

        plugins = [slow, *plugins]
    if mode == "standalone":
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        app = create_app(plugins, deck=sys.modules[__name__], token=os.environ.get("RED_TOKEN"))
        serve(app, port=port)
        return
    if mode == "run":
        import ivoryos_plugin

        extra = json.loads(os.environ.get("RED_RUN_KWARGS") or "{}")
        ivoryos_plugin.run(__name__, plugins=plugins, port=port, **extra)
        return
    import ivoryos

    from ivoryos_plugin import IvoryOSPlugins
    from ivoryos_plugin.hosts.discovery import protect_plain

    framework = IvoryOSPlugins(plain=plugins, protect=protect_plain)
    ivoryos.run(__name__, host="127.0.0.1", port=port, debug=False, blueprint_plugins=[framework.blueprint(), *plugins])


if __name__ == "__main__":
    main()
