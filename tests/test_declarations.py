"""The one typed table between what a plugin declares and the hosts that serve it."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, List

import pytest

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.core.declarations import Builtin, Policy
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import login_client, make_deck


def make_plugin(calls: List[str]) -> Plugin:
    plugin = Plugin("table", __name__, template_folder=None, max_body=200)

    @plugin.route("/")
    def main() -> str:
        return "main"

    @plugin.route("/upload", methods=["POST"], limit_body=True)  # a row the security code never names
    def upload() -> dict:
        calls.append("upload")
        return {"ok": True}

    @plugin.route("/open", public=True)
    def open_page() -> str:
        return "open"

    @plugin.action(hardware=False, public=True)
    def ping() -> dict:
        return {"pong": True}

    @plugin.action(hardware=False)
    def secret() -> dict:
        return {"secret": True}

    return plugin


def test_the_table_lists_every_route_with_its_policy() -> None:
    table = make_plugin([]).declarations
    rows = {row.endpoint: row for row in table.routes}
    assert rows["upload"].policy == Policy(body_limited=True) and rows["upload"].builtin is None
    assert rows["open_page"].policy.public and rows["main"].methods == ("GET",)
    actions = table.builtin(Builtin.ACTION)
    assert actions is not None and actions.policy.body_limited and actions.policy.public_actions == ("ping",)
    assert actions.policy.allows_anonymous({"name": "ping"}) and not actions.policy.allows_anonymous({"name": "secret"})
    assert table.builtin(Builtin.SETTINGS) is None  # no settings model, no settings route
    assert sorted(table.actions) == ["ping", "secret"]
    with pytest.raises(TypeError):
        table.actions["evil"] = table.actions["ping"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.name = "other"  # type: ignore[misc]


def test_every_builtin_route_has_a_view_in_the_runtime() -> None:
    from ivoryos_plugin.runtime.host import VIEWS

    assert set(VIEWS) == set(Builtin)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple]:
    calls: List[str] = []
    app = create_app([make_plugin(calls)], deck=make_deck(), data_dir=tmp_path, testing=True)
    try:
        yield app, calls
    finally:
        stop(app)


def test_a_route_added_to_the_table_is_guarded_without_touching_the_security_module(served: tuple) -> None:
    app, calls = served
    anonymous = app.test_client()
    assert anonymous.post("/ivoryos/table/upload", json={}).status_code == 401
    assert anonymous.get("/ivoryos/table/open").status_code == 200
    assert anonymous.post("/ivoryos/table/actions/secret", json={}).status_code == 401
    client = login_client(app)
    assert client.post("/ivoryos/table/upload", json={}, headers={"X-CSRFToken": "forged"}).status_code == 400
    big = client.post("/ivoryos/table/upload", data=b"x" * 500, content_type="application/octet-stream")
    assert big.status_code == 413 and "max_body" in big.get_json()["error"]
    assert calls == [], "the view ran for a refused request"
    assert client.post("/ivoryos/table/upload", json={}).status_code == 200
    assert calls == ["upload"]
