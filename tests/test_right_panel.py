"""``placement="right_panel"`` (issue 26): ivoryos-edge's right panel; on IvoryOS 1.x, which has none, a
section of the framework's combined left panel, with a warning at registration naming the plugin."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from ivoryos_plugin import Plugin, PluginError, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import make_deck
from support import Server, ivoryos_login, launch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WARNING = "placement='right_panel' is ivoryos-edge's right panel; IvoryOS 1.x has no right panel"

sidebar = Plugin("rp_sidebar", __name__, title="Sidebar", placement="right_panel", template_folder=None)


@sidebar.route("/widget")
def widget() -> str:
    return "<p id='w'>sidebar widget</p>"


@pytest.fixture
def plugin() -> Plugin:
    return sidebar


def test_a_right_panel_is_a_left_panel_on_1x_and_needs_a_widget() -> None:
    assert sidebar.plugin_type == "left_panel"  # what IvoryOS 1.x reads
    lonely = Plugin("rp_lonely", __name__, placement="right_panel", template_folder=None)

    @lonely.route("/")
    def main() -> str:
        return "a page, but no widget"

    with pytest.raises(PluginError, match=r"Plugin 'rp_lonely': has no 'widget' endpoint.*@plugin.route\('/widget'\)"):
        create_app([lonely], deck=make_deck(), testing=True)


def test_registering_it_on_1x_warns_naming_the_plugin(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ivoryos_plugin"):
        app = create_app([sidebar], deck=make_deck(), data_dir=tmp_path, testing=True)
    try:
        said = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("Plugin 'rp_sidebar': ") and "left-panel section" in said[0]
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {app.config['IVORYOS_PLUGIN_TOKEN']}"
        shown = client.get("/ivoryos/plugins/status.json").get_json()["warnings"]
        assert [w["name"] for w in shown if WARNING in w["message"]] == ["rp_sidebar"]  # on the health page too
    finally:
        stop(app)


def test_on_each_host_it_is_the_panel_that_host_has(plugin_host: Any) -> None:
    client = plugin_host.client
    widget = client.get(plugin_host.url("widget"))
    assert widget.status_code == 200 and "sidebar widget" in widget.get_data(as_text=True)
    warned = [w for w in client.get(plugin_host.health_url()).get_json()["warnings"] if WARNING in w["message"]]
    if plugin_host.name == "edge":
        listed = {p["id"]: p for p in client.get("/api/plugins").get_json()["plugins"]}  # the edge's own list
        assert listed["rp_sidebar"]["placement"] == "panel-right"
        assert listed["rp_sidebar"]["url"] == plugin_host.url("widget")
        assert warned == [], "the edge has a right panel: nothing to warn about"
    else:
        assert [w["name"] for w in warned] == ["rp_sidebar"]


RIGHT_PANEL_DECK = '''
import os

import ivoryos_plugin
from ivoryos_plugin import Plugin

sidebar = Plugin("sidebar", __name__, title="Sidebar", placement="right_panel", template_folder=None)


@sidebar.route("/widget")
def widget():
    return "<p id='w'>sidebar widget</p>"


if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]), blueprint_plugins=[sidebar], discover=False)
'''


@pytest.fixture(scope="module")
def ivoryos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = launch(RIGHT_PANEL_DECK, tmp_path_factory.mktemp("right_panel"), name="deck.py")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_ivoryos_plugin_run_shows_it_as_a_section_of_the_left_panel(ivoryos: Server) -> None:
    session = ivoryos_login(ivoryos.base)
    home = session.get(f"{ivoryos.base}/ivoryos/", timeout=30).text
    assert "/ivoryos/plugin_panels/widget" in home  # IvoryOS's left panel is the framework's combined one
    combined = session.get(f"{ivoryos.base}/ivoryos/plugin_panels/widget", timeout=30)
    assert combined.status_code == 200, combined.text[:300]
    section = re.search(r'<details class="ivp-panel" data-plugin="sidebar" data-placement="right_panel"[^>]*>\s*'
                        r'<summary>Sidebar <small[^>]*>\(right panel on ivoryos-edge\)</small></summary>\s*'
                        r'<iframe src="([^"]+)"', combined.text)
    assert section is not None, combined.text
    widget = session.get(ivoryos.base + section.group(1), timeout=30)
    assert widget.status_code == 200 and "sidebar widget" in widget.text
    output = ivoryos.output()
    assert f"Plugin 'sidebar': {WARNING}" in output  # at registration, naming it
    assert "Right-panel plugin(s) sidebar are sections of it: IvoryOS 1.x has no right panel" in output
