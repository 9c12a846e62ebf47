import pytest

from ivoryos_plugin.sim import BalanceSimulator, Balance
from ivoryos_plugin.testing import make_deck
from serial_console.plugin import plugin as console_plugin


@pytest.fixture
def plugin():
    return console_plugin


@pytest.fixture
def free_sim():
    """A simulated balance on a pty that no deck instrument holds."""
    sim = BalanceSimulator().start()
    yield sim
    sim.stop()


@pytest.fixture
def owned_sim():
    sim = BalanceSimulator().start()
    yield sim
    sim.stop()


@pytest.fixture
def deck(owned_sim):
    balance = Balance(owned_sim.port)
    yield make_deck(balance=balance)
    balance.close()
