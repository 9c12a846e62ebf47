"""The tutorial's deck (README.md): one instrument, ``sensor``, the one a plugin made by
``ivoryos-plugin new`` reads. Its globals are the deck's instruments; run it to start IvoryOS
with every installed plugin (entry point group ``ivoryos.plugins``)."""


class CountingSensor:
    """A stand-in sensor: each reading counts up by one."""

    def __init__(self) -> None:
        self.count = 0

    def read(self) -> int:
        """The next reading."""
        self.count += 1
        return self.count

    def reset(self, to: int = 0) -> int:
        """Count on from ``to``."""
        self.count = to
        return self.count


sensor = CountingSensor()

if __name__ == "__main__":
    import ivoryos_plugin

    ivoryos_plugin.run(__name__)  # http://127.0.0.1:8000/ivoryos/ (or $PORT), admin / admin
