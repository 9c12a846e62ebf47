"""Other libraries' private names, touched from runtime/libraries.py only: each probed, each failing
safe when the library differs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime import libraries
from ivoryos_plugin.testing import make_deck

PACKAGE = Path(libraries.__file__).resolve().parents[1]


def test_only_the_touch_modules_name_other_libraries_private_hooks() -> None:
    """Flask's hook tables, Werkzeug's socket key and Flask-WTF's salt appear in the runtime's touch
    module only; simple-websocket's and python-engineio's private names in the host's WebSocket
    module only (the transport belongs to the host)."""
    pattern = re.compile(r"\.(before|after)_request_funcs|[\"']werkzeug\.socket|wtf-csrf-token|_HOOK_TABLES"
                         r"|_handle_events|SimpleWebSocketWSGI|_websocket_wsgi")
    allowed = {PACKAGE / "runtime" / "libraries.py", PACKAGE / "hosts" / "websockets.py"}
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path not in allowed
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line) and not line.lstrip().startswith("#")]
    assert found == [], found


def test_flasks_hook_tables_are_read_live_and_refused_when_flask_differs() -> None:
    app = Flask("touch_hooks")
    app.before_request(lambda: None)

    def first() -> None:
        return None

    libraries.before_request_first(app, first)
    assert libraries.app_hooks(app, "before_request_funcs")[0] is first
    app.before_request_funcs = []  # type: ignore[assignment]  # as if Flask kept its hooks another way
    with pytest.raises(RuntimeError, match="verified on Flask"):
        libraries.before_request_first(app, first)


def test_a_plain_environ_gives_no_raw_socket() -> None:
    assert libraries.raw_socket({"wsgi.multithread": True, "SERVER_SOFTWARE": "gunicorn/22"}) is None
    assert libraries.raw_socket({}) is None


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    plugin = Plugin("touchy", __name__, template_folder=None)

    @plugin.route("/")
    def main() -> str:
        return "<html><head></head><body>page</body></html>"  # the framework adds its csrf-token meta

    @plugin.action(hardware=False)
    def ping() -> dict:
        return {"pong": True}

    made = create_app([plugin], deck=make_deck(), data_dir=tmp_path, testing=True)
    try:
        yield made
    finally:
        stop(made)


@pytest.mark.parametrize("salt, cached", [("wtf-csrf-token", "on"), ("another-salt", "not installed")],
                         ids=["flask-wtf-as-verified", "flask-wtf-signing-differently"])
def test_the_csrf_token_cache_is_used_only_when_flask_wtf_signs_as_verified(
        app: Flask, monkeypatch: pytest.MonkeyPatch, salt: str, cached: str) -> None:
    monkeypatch.setattr(libraries, "FLASK_WTF_SALT", salt)
    monkeypatch.delitem(libraries._state, "flask_wtf_token_cache", raising=False)  # probed afresh
    client = app.test_client()
    client.get(f"/ivoryos/?token={app.config['IVORYOS_PLUGIN_TOKEN']}")
    tokens = []
    for _ in range(2):
        page = client.get("/ivoryos/touchy/").get_data(as_text=True)
        tokens.append(re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1))
    assert libraries.touches()["flask_wtf_token_cache"].startswith(cached)
    for token in tokens:  # either way, every token a page carries is one the server accepts
        reply = client.post("/ivoryos/touchy/actions/ping", json={}, headers={"X-CSRFToken": token})
        assert reply.status_code == 200, reply.get_data(as_text=True)
