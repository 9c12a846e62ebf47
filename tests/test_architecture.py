"""The package's shape: layers that only point down (import-linter), a lazy top-level import, per-app
state (one Plugin on two apps has two runtimes), and the IvoryOS adapter failing closed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from pydantic import BaseModel

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import LiveClient, login_client, make_deck
from support import PY, ROOT, ivoryos_login, launch, wait_until

LINT = str(Path(sys.executable).with_name("lint-imports"))
PLUGINS = ROOT / "tests" / "plugins"


def lint(where: Path, pythonpath: str = "") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath}
    return subprocess.run([LINT, "--config", str(where / ".importlinter")], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ layers
def test_the_import_contracts_hold() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 8 kept, 0 broken." in result.stdout, result.stdout


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package (without its vendored browser files) and its contract, to break."""
    shutil.copytree(ROOT / "ivoryos_plugin", tmp_path / "ivoryos_plugin",
                    ignore=shutil.ignore_patterns("vendor", "__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


@pytest.mark.parametrize("module, line, broken", [
    ("core/names.py", "from ..runtime import replies  # an upward import\n", "Layers only point down"),
    ("hardware/locks.py", "def _sneak() -> None:\n    from ..hosts import ivoryos  # upward, inside a function\n",
     "Layers only point down"),
    ("runtime/tokens.py", "def _sneak() -> None:\n    from .attach import attach  # a cycle, inside a function\n",
     "No import cycle"),
    ("hosts/hardening/install.py", "def _sneak() -> None:\n    from ivoryos.utils import global_state  # not the adapter\n",
     "Only the IvoryOS adapter imports IvoryOS"),
    ("tools/demo.py", "import ivoryos  # a module no contract lists by name\n", "Only the IvoryOS adapter imports IvoryOS"),
    ("runtime/actions.py", "def _sneak() -> None:\n    import starlette.responses  # only the edge host may\n",
     "Only the edge host imports ivoryos-edge"),
    ("edge.py", "def _sneak() -> None:\n    from ivoryos_edge.plugins import Plugin  # the public module stays lazy\n",
     "Only the edge host imports ivoryos-edge"),
    ("runtime/sessions.py", "from flask_socketio import emit  # the transport is the host's\n",
     "The transport belongs to the host"),
    ("runtime/live/hub.py", "def _sneak() -> None:\n    import socketio  # python-socketio, inside a function\n",
     "The transport belongs to the host"),
    ("hardware/locks.py", "import engineio  # the transport under Socket.IO\n", "The transport belongs to the host"),
    ("core/binding.py", "def _find(name: str) -> None:\n    import importlib  # a host found by a string\n",
     "nothing in core imports importlib"),
    ("core/names.py", "from importlib import import_module  # a host found by a string\n",
     "nothing in core imports importlib"),
], ids=["upward-at-module-level", "upward-in-a-function", "cycle-in-a-function", "ivoryos-outside-the-adapter",
        "ivoryos-in-any-module", "starlette-outside-the-edge-host", "ivoryos-edge-in-the-public-module",
        "flask-socketio-in-the-runtime", "socketio-in-the-live-hub", "engineio-in-hardware",
        "importlib-in-core-in-a-function", "importlib-in-core-at-module-level"])
def test_a_wrong_import_breaks_the_contracts(package_copy: Path, module: str, line: str, broken: str) -> None:
    target = package_copy / "ivoryos_plugin" / module
    target.write_text(target.read_text() + "\n\n" + line)
    result = lint(package_copy, pythonpath=str(package_copy))
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def test_importing_the_package_loads_no_host_serial_redis_or_ivoryos() -> None:
    code = ("import sys, ivoryos_plugin\n"
            "from ivoryos_plugin import Plugin, PluginError, ActionError\n"
            "heavy = ['ivoryos', 'serial', 'redis', 'ivoryos_plugin.hosts.devhost', 'ivoryos_plugin.hosts',"
            " 'ivoryos_plugin.runtime', 'flask_socketio']\n"
            "print([m for m in heavy if m in sys.modules])\n")
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


# ------------------------------------------------------------------ per-app state
class Counter(BaseModel):
    label: str = "default"


def make_twin_plugin() -> Plugin:
    twin = Plugin("twin", __name__, settings=Counter, template_folder=None)

    @twin.route("/")
    def main() -> dict:
        return {"label": twin.settings.label, "data_dir": str(twin.data_dir)}

    @twin.action(hardware=False)
    def announce(text: str) -> dict:
        twin.publish("note", {"text": text, "label": twin.settings.label})
        return {"ok": True}

    @twin.worker(every=0.02)
    def tick() -> None:
        path = twin.data_dir / "ticks.txt"  # this app's folder: the worker runs for one app
        fresh = path.with_name("ticks.txt.new")  # replaced whole: the test never reads a half-written count
        fresh.write_text(str(int(path.read_text()) + 1) if path.exists() else "1")
        os.replace(fresh, path)

    @twin.stream("label", hz=50)
    def label() -> dict:
        return {"label": twin.settings.label}

    return twin


@pytest.fixture
def two_apps(tmp_path: Path) -> Iterator[List]:
    twin = make_twin_plugin()
    apps = [create_app([twin], deck=make_deck(), data_dir=tmp_path / name, testing=True) for name in ("a", "b")]
    try:
        yield [twin, *apps]
    finally:
        for app in apps:
            stop(app)


def ticks(app) -> int:
    path = Path(app.config["OUTPUT_FOLDER"]) / "plugins" / "twin" / "ticks.txt"
    return int(path.read_text()) if path.exists() else 0


def test_one_plugin_on_two_apps_has_two_runtimes(two_apps: List) -> None:
    twin, app_a, app_b = two_apps
    client_a, client_b = login_client(app_a), login_client(app_b)
    assert client_a.put("/ivoryos/twin/settings.json", json={"label": "from-a"}).status_code == 200
    page_a, page_b = client_a.get("/ivoryos/twin/").get_json(), client_b.get("/ivoryos/twin/").get_json()
    assert (page_a["label"], page_b["label"]) == ("from-a", "default")
    assert page_a["data_dir"] != page_b["data_dir"]
    settings_a = json.loads((Path(page_a["data_dir"]) / "settings.json").read_text())
    assert settings_a["values"]["label"] == "from-a"
    assert not (Path(page_b["data_dir"]) / "settings.json").exists()

    live_a = LiveClient(app_a, app_a.extensions["socketio"], "/ivoryos/twin", client_a)
    live_b = LiveClient(app_b, app_b.extensions["socketio"], "/ivoryos/twin", client_b)
    try:
        assert client_a.post("/ivoryos/twin/actions/announce", json={"text": "hi"}).status_code == 200
        assert live_a.wait_for("note") == [{"text": "hi", "label": "from-a"}]
        time.sleep(0.2)
        assert live_b.received("note") == []
        assert live_a.subscribe("label")["ok"] and live_b.subscribe("label")["ok"]
        assert live_a.wait_for("label", 3)[-1] == {"label": "from-a"}
        assert live_b.wait_for("label", 3)[-1] == {"label": "default"}

        assert wait_until(lambda: ticks(app_a) > 2 and ticks(app_b) > 2, 5)
        stop(app_a)
        stream_a = app_a.extensions["ivoryos_plugin"].runtimes["twin"].hub.streams["label"]
        assert wait_until(lambda: stream_a._thread is None, 3), "app A's stream still runs"
        stopped_at = ticks(app_a)
        before_b = ticks(app_b)
        time.sleep(0.3)
        assert ticks(app_a) == stopped_at, "app A's worker still runs after app A stopped"
        assert ticks(app_b) > before_b, "app B's worker stopped with app A"
        count_b = len(live_b.received("label"))
        assert wait_until(lambda: len(live_b.received("label")) > count_b + 3, 3), "app B's stream stopped"
    finally:
        for live in (live_a, live_b):
            if live.is_connected("/ivoryos/twin"):
                live.disconnect(namespace="/ivoryos/twin")


# ------------------------------------------------------------------ the adapter fails closed
UNVERIFIED_DECK = """
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor

sensor = Sensor()

if __name__ == "__main__":
    import ivoryos_plugin
    from ivoryos_plugin.hosts import ivoryos as adapter
    from probe_plugin import plugin

    adapter.RUNNER_LOCK_ATTR = "moved_runner_lock"  # as if IvoryOS moved its runner lock
    ivoryos_plugin.run(__name__, plugins=[plugin], port=int(os.environ["PORT"]))
"""


@pytest.mark.server
def test_an_unverifiable_deck_refuses_hardware_actions(start_server) -> None:
    server = start_server(UNVERIFIED_DECK.format(plugins=str(PLUGINS)), name="unverified_deck.py")
    session = ivoryos_login(server.base)
    base = f"{server.base}/ivoryos"
    reply = session.post(f"{base}/probe/actions/bump", json={"by": 5})
    assert reply.status_code == 503, reply.text
    assert "cannot verify the deck is idle (IvoryOS " in reply.json()["error"]
    assert "runner lock not found" in reply.json()["error"]
    assert session.post(f"{base}/probe/actions/total", json={}).json() == {"total": 0}, "the instrument was called"
    status = session.get(f"{base}/plugins/status.json").json()
    assert status["deck_guard"]["verified"] is False and "runner lock not found" in status["deck_guard"]["problem"]
    page = session.get(f"{base}/plugins/").text
    assert 'class="ivp-card ivp-failed ivp-deck-guard" data-verified="false"' in page
    assert "Hardware actions are refused" in page and "runner lock not found" in page
