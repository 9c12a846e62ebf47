"""A deck with one pure-Python instrument, for quick runs of the dev host:

    ivoryos-plugin run hello_plugin.plugin:plugin --deck examples/demo_deck_min.py
"""


class Counter:
    """A tiny instrument that counts."""

    def __init__(self) -> None:
        self.n = 0

    def bump(self, by: int = 1) -> int:
        """Add ``by`` and return the total."""
        self.n += by
        return self.n


counter = Counter()
