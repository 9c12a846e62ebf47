"""The health page ``/ivoryos/plugins/`` and ``status.json``, inside a real IvoryOS (through
``ivoryos_plugin.run``, so it is a nav tab) and in the standalone host: a suspended plugin's reason,
a failed start's traceback, a crashed worker's traceback, streams, the log file and its last lines."""
from __future__ import annotations

import html
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest
import requests
import socketio

from support import ROOT, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))

from life_plugin import BAD_V1_SETTINGS, make_broken, make_crashy, make_life, make_migrating, make_refusing  # noqa: E402
from life_plugin.life_deck import Scale  # noqa: E402

from ivoryos_plugin import create_app  # noqa: E402
from ivoryos_plugin.hosts.devhost import stop  # noqa: E402
from ivoryos_plugin.testing import login_client, make_deck  # noqa: E402

NAMES = ["life", "crashy", "refusing", "broken", "migrating"]
NS = "/ivoryos/life"


class Host:
    """One running host with the five test plugins, seen by a logged-in user and by anyone."""

    def __init__(self, kind: str, data_root: Path, *, client: Any = None, session: Any = None,
                 base: str = "", app: Any = None) -> None:
        self.kind, self.data_root, self.client, self.session, self.base, self.app = (
            kind, data_root, client, session, base, app)

    def get(self, path: str, anonymous: bool = False, **headers: str) -> Any:
        """``(status, text, location)`` of a GET."""
        if self.kind == "standalone":
            client = self.app.test_client() if anonymous else self.client
            reply = client.get(path, headers=headers)
            return reply.status_code, reply.get_data(as_text=True), reply.headers.get("Location", "")
        getter = requests.get if anonymous else self.session.get
        reply = getter(self.base + path, headers=headers, allow_redirects=False)
        return reply.status_code, reply.text, reply.headers.get("Location", "")

    def post(self, path: str, anonymous: bool = False) -> int:
        if self.kind == "standalone":
            client = self.app.test_client() if anonymous else self.client
            return int(client.post(path, json={}).status_code)
        poster = requests.post if anonymous else self.session.post
        return int(poster(self.base + path, json={}).status_code)

    def status(self) -> Dict[str, Any]:
        code, text, _ = self.get("/ivoryos/plugins/status.json")
        assert code == 200, text
        import json

        return json.loads(text)  # type: ignore[no-any-return]

    def plugin(self, name: str) -> Dict[str, Any]:
        (found,) = [p for p in self.status()["plugins"] if p["name"] == name]
        return found  # type: ignore[no-any-return]

    def action(self, name: str, **args: Any) -> Any:
        if self.kind == "standalone":
            return self.client.post(f"{NS}/actions/{name}", json=args).get_json()
        return self.session.post(f"{self.base}{NS}/actions/{name}", json=args).json()

    def viewer(self) -> Any:
        """A Socket.IO client in the life plugin's namespace, logged in; has ``subscribe`` and ``close``."""
        if self.kind == "standalone":
            sio = self.app.extensions["socketio"].test_client(self.app, namespace=NS, flask_test_client=self.client)
            return _Viewer(lambda data: sio.emit("subscribe", data, namespace=NS, callback=True),
                           lambda: sio.disconnect(namespace=NS))
        cookie = "; ".join(f"{k}={v}" for k, v in self.session.cookies.items())
        client = socketio.Client(reconnection=False)
        client.connect(self.base, socketio_path="/ivoryos/socket.io", namespaces=[NS], headers={"Cookie": cookie},
                       transports=["websocket"], wait_timeout=10)
        return _Viewer(lambda data: client.call("subscribe", data, namespace=NS, timeout=10), client.disconnect)


class _Viewer:
    def __init__(self, subscribe: Callable[[Any], Any], close: Callable[[], Any]) -> None:
        self.subscribe, self.close = subscribe, close


def seed_migrating(data_root: Path) -> None:
    folder = data_root / "migrating"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_bytes(BAD_V1_SETTINGS)


@pytest.fixture(scope="module")
def ivoryos_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("ivoryos_health")
    seed_migrating(root / "ivoryos_data" / "plugins")
    code = (PLUGINS / "life_plugin" / "life_deck.py").read_text()
    server = launch(code, root, name="life_deck.py", env={"PYTHONPATH": str(PLUGINS), "LIFE_HOST": "ivoryos_plugin",
                                                          "LIFE_PLUGINS": ",".join(NAMES)})
    try:
        yield Host("ivoryos", root / "ivoryos_data" / "plugins", session=ivoryos_login(server.base),
                   base=server.base)
    finally:
        server.stop()


@pytest.fixture(params=["standalone", "ivoryos"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """The five test plugins in the standalone host (fresh) or in the module's real IvoryOS."""
    if request.param == "ivoryos":
        yield request.getfixturevalue("ivoryos_host")
        return
    seed_migrating(tmp_path / "plugins")
    plugins = [make_life(), make_crashy(backoff=0.1, max_crashes=3), make_refusing(), make_broken(),
               make_migrating()]
    app = create_app(plugins, deck=make_deck("health_deck", scale=Scale()), data_dir=tmp_path, testing=True)
    try:
        yield Host("standalone", tmp_path / "plugins", client=login_client(app), app=app)
    finally:
        stop(app)


def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def cards(page: str) -> Dict[str, str]:
    """Each plugin's card on the health page (unescaped), by plugin name."""
    found: Dict[str, str] = {}
    for chunk in page.split('<div class="ivp-card ivp-state-')[1:]:
        match = re.search(r'data-plugin="(\w+)"', chunk)
        assert match, chunk[:200]
        found[match.group(1)] = html.unescape(chunk)
    return found


def crash_suspended(host: Host) -> bool:
    return bool(host.plugin("crashy")["workers"]["flaky"]["state"] == "suspended")


def test_the_health_page_shows_why_each_plugin_is_not_running(host: Host) -> None:
    wait_for(lambda: crash_suspended(host), what="the crashing worker's suspension")
    code, page, _ = host.get("/ivoryos/plugins/")
    assert code == 200
    if host.kind == "ivoryos":
        assert "ivoryos_logo.png" in page and "ivp-shell" not in page, "not inside IvoryOS's base.html"
        assert re.search(r'href="/ivoryos/plugins/">\s*Plugins\s*</a>', page), "no Plugins tab in IvoryOS's nav"
    else:
        assert 'class="ivp-shell"' in page and '<a class="ivp-link active" href="/ivoryos/plugins/">Health</a>' in page
    found = cards(page)
    assert sorted(found) == sorted(NAMES)
    life = found["life"]
    assert '<a href="/ivoryos/life/">Life</a> <small>1.2.3</small>' in life and 'data-state="running"' in life
    assert '<a href="/ivoryos/life/settings">Settings</a>' in life
    assert re.search(r'<tr data-worker="tick"><td>tick</td><td>running</td><td>0</td>', life)
    assert "INFO ivoryos_plugin.life: life started on deck" in life, "no last log lines"
    assert 'data-state="suspended"' in found["refusing"]
    assert "<strong>Why:</strong> no balance on this deck" in found["refusing"]
    broken = found["broken"]
    assert 'data-state="failed"' in broken
    assert "on_start load_calibration raised FileNotFoundError: calibration.csv is missing" in broken
    assert 'in load_calibration\n    raise FileNotFoundError("calibration.csv is missing")' in broken
    crashy = found["crashy"]
    assert 'data-state="running"' in crashy
    assert re.search(r'<tr data-worker="flaky"><td>flaky</td><td>suspended</td><td>3</td>', crashy)
    assert "Traceback (most recent call last)" in crashy and "RuntimeError: sensor unplugged (call 4)" in crashy
    assert "Restart</button>" in crashy
    migrating = found["migrating"]
    assert 'data-state="suspended"' in migrating
    assert "migrating settings file" in migrating and "failed: KeyError: 'speed'" in migrating
    failures = html.unescape(page.split('<div class="ivp-card ivp-state-')[0])
    assert "Failed to load or start" in failures
    assert "broken</strong> — start: FileNotFoundError: calibration.csv is missing" in failures


def test_status_json_has_the_documented_fields(host: Host) -> None:
    wait_for(lambda: crash_suspended(host), what="the crashing worker's suspension")
    status = host.status()
    assert status["started"] is True
    plugins = {p["name"]: p for p in status["plugins"]}
    assert sorted(plugins) == sorted(NAMES)
    for entry in plugins.values():
        assert {"name", "title", "version", "state", "reason", "traceback", "workers", "streams", "settings_url",
                "log", "url"} <= set(entry), entry
    assert {n: (p["state"], p["title"], p["version"]) for n, p in plugins.items()} == {
        "life": ("running", "Life", "1.2.3"), "crashy": ("running", "Crashy", "0.0.1"),
        "refusing": ("suspended", "Refusing", "0.2.0"), "broken": ("failed", "Broken", "0.3.0"),
        "migrating": ("suspended", "Migrating", "2.0.0")}
    assert plugins["refusing"]["reason"] == "no balance on this deck" and plugins["refusing"]["traceback"] == ""
    assert "FileNotFoundError: calibration.csv is missing" in plugins["broken"]["traceback"]
    assert (plugins["life"]["settings_url"], plugins["crashy"]["settings_url"]) == ("/ivoryos/life/settings", None)
    flaky = plugins["crashy"]["workers"]["flaky"]
    assert (flaky["state"], flaky["restarts"], flaky["crashes"]) == ("suspended", 3, 4)
    assert flaky["last_error"].startswith("Traceback (most recent call last)")
    assert set(plugins["life"]["workers"]) == {"tick", "loop"}
    assert all(w["state"] == "running" and w["last_error"] == "" for w in plugins["life"]["workers"].values())
    assert plugins["life"]["streams"]["weight"]["viewers"] == 0
    assert [(f["name"], f["stage"]) for f in status["failures"]] == [("broken", "start")]
    assert {"error", "traceback"} <= set(status["failures"][0])


def test_streams_show_their_viewers_and_rate(host: Host) -> None:
    viewer = host.viewer()
    try:
        assert viewer.subscribe({"stream": "weight"}) == {"ok": True, "hz": 5.0}
        wait_for(lambda: host.plugin("life")["streams"]["weight"]["viewers"] == 1, what="one viewer")
        weight = host.plugin("life")["streams"]["weight"]
        assert weight["hz"] == 5.0
        wait_for(lambda: host.plugin("life")["streams"]["weight"]["reads"] > 0, what="a read")
        _, page, _ = host.get("/ivoryos/plugins/")
        assert re.search(r"<tr><td>weight</td><td>1</td><td>5</td>", page), "the page does not show the stream"
    finally:
        viewer.close()
    wait_for(lambda: host.plugin("life")["streams"]["weight"]["viewers"] == 0, what="no viewer left")


def test_the_log_file_holds_the_plugin_lines_and_the_page_the_last_ones(host: Host) -> None:
    for n in range(30):
        assert host.action("note", text=f"health-{host.kind}-{n}") == {"logged": f"health-{host.kind}-{n}"}
    log = (host.data_root / "life" / "plugin.log").read_text()
    assert "INFO ivoryos_plugin.life: life started on deck" in log
    assert all(f"INFO ivoryos_plugin.life: note: health-{host.kind}-{n}\n" in log for n in range(30))
    assert "ivoryos_plugin.crashy" not in log
    life = cards(host.get("/ivoryos/plugins/")[1])["life"]
    assert f"note: health-{host.kind}-29" in life
    assert f"note: health-{host.kind}-5\n" not in life, "the page shows more than the last lines"
    assert host.plugin("life")["log"][-1].endswith(f"note: health-{host.kind}-29")


@pytest.mark.parametrize("path, accept", [("/ivoryos/plugins/", None), ("/ivoryos/plugins/status.json", None),
                                          ("/ivoryos/plugins/", "application/json")],
                         ids=["page", "status.json", "page-as-json"])
def test_anonymous_visitors_are_refused(host: Host, path: str, accept: Optional[str]) -> None:
    code, text, location = host.get(path, anonymous=True, **({"Accept": accept} if accept else {}))
    if path.endswith("/") and accept is None:
        assert code == 302 and "/ivoryos/auth/login" in location
    else:
        assert code == 401 and "login required" in text
    assert "sensor unplugged" not in text
    assert host.post("/ivoryos/plugins/crashy/workers/flaky/restart", anonymous=True) == 401
