"""The probe plugin's deck: a sensor that counts its own reads."""
import threading


class Sensor:
    """Counts reads, so tests can see what the stream costs the instrument."""

    def __init__(self) -> None:
        self.reads = 0
        self.total = 0
        self._lock = threading.Lock()

    def read(self) -> int:
        """One reading."""
        with self._lock:
            self.reads += 1
            return self.reads

    def bump(self, by: int = 1) -> int:
        """Add to a total."""
        self.total += by
        return self.total

    def fail(self, message: str = "jammed") -> None:
        """Raise, as a faulty instrument does."""
        raise RuntimeError(message)

    def slow(self, seconds: float = 1.0) -> float:
        """Hold the instrument for a while (a long workflow step)."""
        import time

        time.sleep(seconds)
        return seconds


sensor = Sensor()

if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    mode = os.environ.get("PROBE_HOST", "ivoryos")
    from probe_plugin import plugin

    if mode == "ivoryos":
        import ivoryos

        ivoryos.run(__name__, host="127.0.0.1", port=int(os.environ["PORT"]), blueprint_plugins=[plugin])
    else:
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        app = create_app([plugin], deck=sys.modules[__name__], token=os.environ.get("PROBE_TOKEN"))
        serve(app, port=int(os.environ["PORT"]))
