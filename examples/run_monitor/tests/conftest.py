import pytest

from ivoryos_plugin.testing import make_deck
from run_monitor.plugin import RECENT, plugin as run_monitor_plugin


class Counter:
    """A tiny instrument."""

    def bump(self, by: int = 1) -> int:
        """Count up."""
        self.n = getattr(self, "n", 0) + by
        return self.n

    def jam(self) -> None:
        """Fail."""
        raise RuntimeError("jammed")


@pytest.fixture
def plugin():
    RECENT.clear()
    return run_monitor_plugin


@pytest.fixture
def deck():
    return make_deck(counter=Counter())
