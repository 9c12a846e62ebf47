"""The balance dashboard against the kit's simulated deck (docs/testing.md shows this file whole).

The repository's top-level conftest.py opts in to the kit: pytest_plugins = ["ivoryos_plugin.testing"].
Each test takes ``plugin_host``, so it runs twice: on IvoryOS 1.x's stack ([ivoryos]) and on
ivoryos-edge ([edge], skipped without the [edge] extra), with URLs built from the host.
"""
import time

import pytest

from balance_dashboard.plugin import plugin as balance_plugin


@pytest.fixture
def plugin():
    """The plugin under test: the kit's fixtures build the hosts around it."""
    return balance_plugin


def settle(sim_deck, grams, timeout=5.0):
    """Put ``grams`` on the simulated pan and wait until the deck's balance reads it as stable."""
    sim_deck.simulators["balance"].load(grams)     # the simulator behind the deck's balance
    deadline = time.monotonic() + timeout
    while not sim_deck.balance.read()["stable"]:
        assert time.monotonic() < deadline, f"the balance did not settle within {timeout} s"
        time.sleep(0.02)


def test_tare_zeroes_the_simulated_balance(sim_deck, plugin_host):
    settle(sim_deck, 12.5)
    assert abs(sim_deck.balance.weigh() - 12.5) < 0.01   # the deck's own driver
    reply = plugin_host.client.post(plugin_host.url("actions/tare"), json={})  # as the page's Tare button does
    assert reply.status_code == 200, reply.get_json()
    assert abs(sim_deck.balance.weigh()) < 0.01


def test_the_weight_stream_shows_what_is_on_the_pan(sim_deck, plugin_host):
    settle(sim_deck, 3.0)
    live = plugin_host.live                            # the page's live connection (Socket.IO, or the edge's WebSocket)
    assert live.subscribe("weight")["ok"]              # what the page's live.subscribe("weight", fn) sends
    readings = live.wait_for("weight", count=2, timeout=10)
    assert abs(readings[-1]["grams"] - 3.0) < 0.01 and readings[-1]["unit"] == "g"


def test_bad_input_names_the_field(sim_deck, plugin_host):
    reply = plugin_host.client.post(plugin_host.url("actions/set_unit"), json={"unit": "lb"})
    assert reply.status_code == 400
    assert list(reply.get_json()["errors"]) == ["unit"]  # IvoryPlugin.showErrors puts it under name="unit"


def test_a_running_workflow_gets_tare_refused(sim_deck, plugin_host):
    client, tare, deck_state = plugin_host.client, plugin_host.url("actions/tare"), plugin_host.deck_url()
    with plugin_host.deck_busy():                      # held as a run holds it (IvoryOS's runner lock; an edge call)
        assert client.get(deck_state).get_json()["busy"] is True
        assert client.post(tare, json={}).status_code == 409
    assert client.get(deck_state).get_json()["busy"] is False
    assert client.post(tare, json={}).status_code == 200
