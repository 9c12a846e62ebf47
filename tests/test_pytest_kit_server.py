"""The pytest kit's ``plugin_server`` and ``serve_app``: the plugin's app on a real port (a browser's
test, the scaffold's generated one included), in one of the framework's threads, gone after the test."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from ivoryos_plugin import Plugin
from ivoryos_plugin.testing import serve_app

served = Plugin("kit_served", __name__, template_folder=None)


@served.route("/")
def main() -> str:
    return "<html><head></head><body>served for real</body></html>"


@pytest.fixture
def plugin() -> Plugin:
    return served


def test_plugin_server_serves_the_plugin_app_over_http(plugin_server: str, plugin_app: Flask) -> None:
    assert plugin_server.startswith("http://127.0.0.1:")
    anonymous = requests.get(f"{plugin_server}/ivoryos/kit_served/", headers={"Accept": "application/json"}, timeout=10)
    assert anonymous.status_code == 401  # the real dev host: deny by default
    browser = requests.Session()
    page = browser.get(f"{plugin_server}/ivoryos/kit_served/?token={plugin_app.config['IVORYOS_PLUGIN_TOKEN']}",
                       timeout=10)
    assert page.status_code == 200 and "served for real" in page.text
    browser.close()


def test_serve_app_stops_its_thread_and_frees_its_port(plugin_app: Flask) -> None:
    with serve_app(plugin_app) as base:
        serving = [t for t in threading.enumerate() if t.name == "ivoryos_plugin-test-http"]
        assert len(serving) == 1 and serving[0].daemon  # started by the framework's one helper
        assert requests.get(f"{base}/ivoryos/plugins/csrf.json", timeout=10).status_code == 401  # not logged in
    assert not serving[0].is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/ivoryos/plugins/csrf.json", timeout=5)


def test_serve_app_uses_the_request_handler_given(plugin_app: Flask) -> None:
    """``request_handler=`` is the server's handler class: here one that keeps its log lines instead of
    printing them (what the suite's busy servers pass to keep quiet)."""
    logged: List[str] = []

    class Kept(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            logged.append(message % args)

    with serve_app(plugin_app, request_handler=Kept) as base:
        assert requests.get(f"{base}/ivoryos/plugins/csrf.json", timeout=10).status_code == 401
    assert len(logged) == 1 and "GET /ivoryos/plugins/csrf.json" in logged[0] and "401" in logged[0], logged
