"""The kit's URLs for the tests only IvoryOS 1.x runs (issue 26): ``plugin_url``, ``login_url`` and
``ivoryos_url`` build them from the app the test talks to (its ``URL_PREFIX``, IvoryOS's endpoints),
as ``plugin_host.url`` does for the tests run on both hosts; docs/testing.md documents them."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import ivoryos_plugin.testing as kit
from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import ivoryos_url, login_client, login_url, make_deck, plugin_url
from support import ROOT

urls = Plugin("kit_urls", __name__, template_folder=None)


@urls.route("/")
def main() -> str:
    return "kit urls"


@urls.action
def ping() -> dict:
    return {"pong": True}


@pytest.fixture
def plugin() -> Plugin:
    """The plugin the kit's hosts serve in this module."""
    return urls


def test_the_urls_follow_the_prefix_of_the_app(tmp_path: Path) -> None:
    app = create_app([urls], deck=make_deck(), data_dir=tmp_path, testing=True, url_prefix="/lab")
    try:
        anonymous = app.test_client()
        assert (plugin_url(anonymous, urls), login_url(anonymous), ivoryos_url(app)) == ("/lab/kit_urls/",
                                                                                        "/lab/auth/login", "/lab/")
        sent = anonymous.get(plugin_url(anonymous, urls))
        assert sent.status_code == 302 and sent.headers["Location"].startswith(login_url(app) + "?next=")
        assert anonymous.get(login_url(anonymous)).status_code == 200
        client = login_client(app, prefix="/lab")
        assert client.get(plugin_url(client, "kit_urls")).get_data(as_text=True) == "kit urls"
        assert client.post(plugin_url(client, urls, "/actions/ping"), json={}).get_json() == {"pong": True}
        health = client.get(ivoryos_url(client, "plugins/status.json")).get_json()
        assert [p["name"] for p in health["plugins"]] == ["kit_urls"]
    finally:
        stop(app)


def test_inside_ivoryos_they_are_ivoryos_own_pages(ivoryos_client: Any) -> None:
    login = ivoryos_client.get(login_url(ivoryos_client))
    assert login.status_code == 200 and 'name="password"' in login.get_data(as_text=True)  # IvoryOS's own form
    assert ivoryos_client.get(ivoryos_url(ivoryos_client)).status_code == 200  # its home, logged in
    assert ivoryos_client.post(plugin_url(ivoryos_client, urls, "actions/ping"), json={}).get_json() == {"pong": True}


def test_an_app_without_a_login_page_is_named() -> None:
    with pytest.raises(LookupError, match=r"login_url: the app 'bare' has no 'auth.login' endpoint; give it "):
        login_url(Flask("bare"))


def test_the_docs_show_each_of_them() -> None:
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for name in ("plugin_url", "login_url", "ivoryos_url"):
        assert name in kit.__all__
        assert re.search(rf"\| `{name}\(", doc), f"docs/testing.md has no row showing {name}(...)"
