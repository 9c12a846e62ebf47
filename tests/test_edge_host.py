"""Every example, its code unchanged, served by a real ivoryos-edge subprocess (issue 26): pages
inside the edge (and inside its UI in real Chromium, each live channel connected), typed actions with
the same error bodies as on 1.x, settings (JSON and form), static and public files, history CSV,
cameras, the security of our routes on the edge."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from browsing import Watch, chromium
from edgehost import EXAMPLES, start_edge, url
from ivoryos_plugin import create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import make_deck, plugin_url
from support import Server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_edge(tmp_path_factory.mktemp("edge"))
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_page_is_served_inside_the_edge(edge: Server, name: str) -> None:
    listed = {p["id"]: p for p in requests.get(f"{edge.base}/api/plugins").json()["plugins"]}
    assert listed[name]["kind"] == "python" and listed[name]["framework"] == "ivoryos_plugin"
    page = requests.get(f"{edge.base}{listed[name]['url']}")
    assert page.status_code == 200, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in page.headers[
        "content-security-policy"]
    assert '"transport": "websocket"' in page.text.replace("&#34;", '"')
    script = re.search(r'<script src="([^"]*ivoryos_plugin\.js)"', page.text).group(1)
    assert script.startswith(f"/plugins/{name}/")  # url_for builds the edge's own URLs
    assert requests.get(f"{edge.base}{script}").status_code == 200
    assert "cdn" not in page.text.lower()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


#: the edge's own Next.js pages prefetch its other pages with HEAD requests that navigating cuts short
EDGE_PREFETCH = r"request failed: HEAD http://127\.0\.0\.1:\d+/(?!plugins/)\S* \(net::ERR_ABORTED\)"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_opens_inside_the_edge_ui_in_chromium(edge: Server, browser: Any, name: str) -> None:
    """Each example's page in the edge's own UI (its plugin page, our page in its iframe), in real
    Chromium: loaded from the edge's plugin URL, its live channel connected, the left panel's widget
    beside it, and nothing of ours failing to load or throwing."""
    listed = {p["id"]: p for p in requests.get(f"{edge.base}/api/plugins").json()["plugins"]}
    page = browser.new_page()
    watch = Watch(page)
    try:
        page.goto(f"{edge.base}/plugin?id={name}")
        ours = f"iframe[src$='{listed[name]['url']}']"
        page.wait_for_selector(ours, timeout=15000)
        frame = page.frame_locator(ours).first
        frame.locator("body").wait_for(timeout=15000)
        live = frame.locator("[data-ivoryos-live-state]")
        if live.count():  # a page that shows its live channel's state: connected over the edge's WebSocket
            frame.locator("[data-ivoryos-live-state][data-state=connected]").first.wait_for(timeout=15000)
        assert page.frame_locator(f"iframe[src$='{listed['run_monitor']['url']}']").locator("body").count() == 1
        page.wait_for_timeout(500)
        watch.assert_clean(f"{name} inside the edge's UI", allowed=[EDGE_PREFETCH])
    finally:
        page.close()


def test_a_panel_opens_its_widget_and_placements_map(edge: Server) -> None:
    listed = {p["id"]: p for p in requests.get(f"{edge.base}/api/plugins").json()["plugins"]}
    assert listed["run_monitor"]["placement"] == "panel-left"
    assert listed["run_monitor"]["url"] == "/plugins/run_monitor/widget"
    assert requests.get(f"{edge.base}{listed['run_monitor']['url']}").status_code == 200
    assert listed["balance"]["placement"] == "tab"


@pytest.fixture(scope="module")
def devhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The same examples on the 1.x dev host (in process), to compare error bodies."""
    import importlib

    plugins = [importlib.import_module(module).plugin for module in EXAMPLES.values()]
    app = create_app(plugins, deck=make_deck(), data_dir=tmp_path_factory.mktemp("dev"), testing=True)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {app.config['IVORYOS_PLUGIN_TOKEN']}"
    try:
        yield client
    finally:
        stop(app)


@pytest.mark.parametrize("plugin, action, body, status", [
    ("hello", "greet", b'{"name": 5}', 400),
    ("hello", "greet", b'[1, 2]', 400),
    ("hello", "greet", b'{"name": "NaN"', 400),
    ("plate_map", "set_well", b'{"well": "Z99", "value": 2}', 400),
    ("hello", "nothing", b'{}', 404),
    ("hello", "greet", b'{"name": "' + b"x" * (1 << 20) + b'"}', 413),
], ids=["wrong-type", "not-an-object", "not-json", "two-fields", "unknown-action", "too-large"])
def test_actions_answer_as_on_1x(edge: Server, devhost, plugin: str, action: str, body: bytes, status: int) -> None:
    on_edge = requests.post(url(edge, plugin, f"actions/{action}"), data=body,
                            headers={"Content-Type": "application/json"})
    on_1x = devhost.post(plugin_url(devhost, plugin, f"actions/{action}"), data=body, content_type="application/json")
    assert on_edge.status_code == status == on_1x.status_code, on_edge.text
    assert on_edge.json() == on_1x.get_json()
    assert on_edge.headers["cache-control"] == "no-store"


def test_a_typed_action_runs_and_publishes(edge: Server) -> None:
    reply = requests.post(url(edge, "hello", "actions/greet"), json={"name": "edge"})
    assert reply.status_code == 200 and reply.json() == {"message": "Hello, edge!"}
    tare = requests.post(url(edge, "balance", "actions/tare"))
    assert tare.status_code == 200 and tare.json()["ok"] is True


def test_settings_json_and_form(edge: Server) -> None:
    got = requests.get(url(edge, "balance", "settings.json")).json()
    assert got["values"]["rate_hz"] == 5.0 and "rate_hz" in got["schema"]["properties"]
    refused = requests.patch(url(edge, "balance", "settings.json"), json={"rate_hz": 100})
    assert refused.status_code == 400 and "rate_hz" in refused.json()["errors"]
    saved = requests.patch(url(edge, "balance", "settings.json"), json={"rate_hz": 8})
    assert saved.status_code == 200 and saved.json()["values"]["rate_hz"] == 8
    assert requests.get(url(edge, "balance", "settings.json")).json()["values"]["rate_hz"] == 8
    form = requests.get(url(edge, "balance", "settings"))
    assert form.status_code == 200 and 'name="rate_hz"' in form.text
    posted = requests.post(url(edge, "balance", "settings"),
                           data={"instrument": "balance", "rate_hz": "99", "unit": "g"})
    assert posted.status_code == 400 and "rate_hz" in posted.text
    posted = requests.post(url(edge, "balance", "settings"), data={"instrument": "balance", "rate_hz": "5", "unit": "g"})
    assert posted.status_code == 200
    assert requests.get(url(edge, "balance", "settings.json")).json()["values"]["rate_hz"] == 5


def test_static_and_public_files(edge: Server) -> None:
    css = requests.get(url(edge, "balance", "static/balance.css"))
    assert css.status_code == 200 and css.headers["cache-control"] == "no-cache"
    assert requests.get(url(edge, "balance", "static/../plugin.py")).status_code == 404
    assert requests.get(url(edge, "balance", "static/nothing.css")).status_code == 404


def test_history_json_and_csv(edge: Server) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the weight stream is recorded from the start, with no viewer
        values = requests.get(url(edge, "balance", "history/weight"), params={"since": -600}).json()
        if values.get("values") or values.get("points"):
            break
        time.sleep(0.2)
    csv = requests.get(url(edge, "balance", "history/weight.csv"), params={"since": -600})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("t,time,value") and len(lines) > 1
    assert "attachment" in csv.headers["content-disposition"]
    bad = requests.get(url(edge, "balance", "history/weight"), params={"since": "soon"})
    assert bad.status_code == 400 and "since" in bad.json()["errors"]


def test_camera_snapshot_stream_and_gallery(edge: Server) -> None:
    shot = requests.get(url(edge, "deck_camera", "cameras/deck/snapshot.jpg"))
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg" and shot.content[:2] == b"\xff\xd8"
    with requests.get(url(edge, "deck_camera", "cameras/deck/stream.mjpg"), stream=True, timeout=10) as stream:
        assert stream.status_code == 200 and "multipart/x-mixed-replace" in stream.headers["content-type"]
        seen = b""
        for chunk in stream.iter_content(4096):
            seen += chunk
            if seen.count(b"\xff\xd8") >= 2:
                break
        assert seen.count(b"--ivoryos-frame") >= 2
    assert requests.get(url(edge, "deck_camera", "cameras/nothing/stream.mjpg")).status_code == 404
    gallery = requests.get(url(edge, "deck_camera", "gallery"), headers={"Accept": "application/json"})
    assert gallery.status_code == 200 and gallery.json()["plugin"] == "deck_camera"


def test_no_route_of_ours_answers_a_foreign_site(edge: Server) -> None:
    foreign_post = requests.post(url(edge, "hello", "actions/greet"), json={}, headers={"Origin": "http://evil.example"})
    assert foreign_post.status_code == 403
    foreign_read = requests.get(url(edge, "balance", "settings.json"), headers={"Sec-Fetch-Site": "cross-site"})
    assert foreign_read.status_code == 403 and "another site" in foreign_read.json()["error"]
    local_dev_server = requests.get(url(edge, "balance", "settings.json"), headers={"Origin": "http://localhost:3000"})
    assert local_dev_server.status_code == 403  # the edge's CORS would let it read; our routes do not
    own_page = requests.get(url(edge, "balance", "settings.json"), headers={"Sec-Fetch-Site": "same-origin"})
    assert own_page.status_code == 200


def test_a_bearer_token_is_checked_when_sent(edge: Server) -> None:
    bad = requests.post(url(edge, "hello", "actions/greet"), json={}, headers={"Authorization": "Bearer ivp_nope"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.json()["error"]


def test_health_names_the_host_and_what_it_does_not_guard(edge: Server) -> None:
    health = requests.get(url(edge, "balance", "health.json")).json()
    assert health["host"].startswith("ivoryos-edge") and health["hardware"]["verified"] is True
    assert health["plugin"]["state"] == "running" and health["login"].startswith("none")
    assert any("/api/execute" in line for line in health["unguarded"])
    assert "ivoryos-edge runs its own manual calls" in edge.output()
