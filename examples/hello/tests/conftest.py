import pytest

from hello_plugin import plugin as hello_plugin
from ivoryos_plugin.testing import make_deck


class Counter:
    """A stand-in instrument."""

    def bump(self, by: int = 1) -> int:
        """Count up."""
        return by


@pytest.fixture
def plugin():
    return hello_plugin


@pytest.fixture
def deck():
    return make_deck(counter=Counter())
