"""The migrated upstream-template plugin of docs/migration.md serves the same page, behind login,
in both bases, and its Socket.IO handler lives in its own namespace."""
from __future__ import annotations

import sys

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from migrated_plugin import plugin as migrated  # noqa: E402


@pytest.fixture
def plugin():
    return migrated


def test_the_migrated_page_is_the_same_page_behind_login(client, anon_client) -> None:
    page = client.get("/ivoryos/upstream_demo/")
    assert page.status_code == 200
    assert b"I am a plain upstream-template plugin page" in page.data and b"ivp-shell" in page.data
    assert anon_client.get("/ivoryos/upstream_demo/").status_code == 302


def test_the_handler_answers_in_the_plugin_namespace(live) -> None:
    assert live.call("ping", 1) == {"pong": 1}


def test_inside_ivoryos_it_extends_ivoryos_base(ivoryos_client) -> None:
    page = ivoryos_client.get("/ivoryos/upstream_demo/")
    assert page.status_code == 200 and b"navbar" in page.data
    assert b"I am a plain upstream-template plugin page" in page.data
