"""The hello example: a page that lists the deck, and an action that greets and publishes.

The tests that take ``plugin_host`` run on both IvoryOS generations: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra). The tests of what only
IvoryOS 1.x has (login, IvoryOS's own page) build their URLs from the app they talk to."""
from ivoryos_plugin.testing import login_url, plugin_url


def test_page_lists_the_deck(plugin_host):
    page = plugin_host.client.get(plugin_host.url())
    assert page.status_code == 200
    assert b'id="instruments">counter<' in page.data


def test_greet_replies_and_publishes(plugin_host):
    reply = plugin_host.client.post(plugin_host.url("actions/greet"), json={"name": "Ada"})
    assert reply.get_json() == {"message": "Hello, Ada!"}
    assert plugin_host.live.wait_for("greeted")[-1] == {"name": "Ada"}


def test_greet_validates_its_argument(plugin_host):
    reply = plugin_host.client.post(plugin_host.url("actions/greet"), json={"name": 42})
    assert reply.status_code == 400 and "name" in reply.get_json()["errors"]


def test_anonymous_visitors_are_sent_to_login(anon_client, plugin):  # IvoryOS 1.x only: the edge has no login
    page = anon_client.get(plugin_url(anon_client, plugin))
    assert page.status_code == 302 and page.headers["Location"].startswith(login_url(anon_client))
    assert anon_client.post(plugin_url(anon_client, plugin, "actions/greet"), json={}).status_code == 401


def test_inside_ivoryos(ivoryos_client, plugin):
    page = ivoryos_client.get(plugin_url(ivoryos_client, plugin))
    assert page.status_code == 200 and b"navbar" in page.data
