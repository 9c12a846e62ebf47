"""The ways onto ivoryos-edge (issue 26): a deck file naming "ivoryos_plugin.edge:<entry point>",
ivoryos_plugin.edge.run (our plugins beside the deck's instruments, bound to 127.0.0.1, its
differences printed), `ivoryos-plugin run --host edge`, `ivoryos-plugin demo --host edge`; and the
package never importing the edge unless asked."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from edgehost import start_edge, url
from support import PY, ROOT, launch, start_process

EXE = str(Path(sys.executable).with_name("ivoryos-plugin"))


def test_importing_the_package_and_its_edge_module_imports_no_edge() -> None:
    code = ("import sys, ivoryos_plugin, ivoryos_plugin.edge\n"
            "from ivoryos_plugin import Plugin\n"
            "print([m for m in ('ivoryos_edge', 'fastapi', 'starlette', 'uvicorn') if m in sys.modules])\n"
            "print(sorted(ivoryos_plugin.edge.__all__))\n")
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "['EdgeNotInstalled', 'for_edge', 'run']"], result.stdout


def test_for_edge_refuses_what_is_not_our_plugin() -> None:
    from flask import Blueprint

    from ivoryos_plugin import PluginError
    from ivoryos_plugin.edge import for_edge

    with pytest.raises(PluginError, match="for_edge\\(\\) takes an ivoryos_plugin.Plugin, not Blueprint"):
        for_edge(Blueprint("plain", __name__))  # type: ignore[arg-type]


def test_a_deck_file_names_installed_plugins_by_entry_point(tmp_path: Path) -> None:
    (tmp_path / "counter_driver.py").write_text("class Counter:\n    def bump(self, by: int = 1) -> int:\n"
                                                "        return by\n")
    deck = {"format": "ivoryos-deck/1", "name": "test", "paths": ["."],
            "instruments": [{"name": "counter", "import": "counter_driver", "class": "Counter"}],
            "plugins": ["ivoryos_plugin.edge:hello", "ivoryos_plugin.edge:no_such_plugin"]}
    (tmp_path / "deck.json").write_text(json.dumps(deck))
    port_server = launch(
        "import os, sys\nsys.argv = ['ivoryos-edge', '--deck', 'deck.json', '--data-dir', 'data', '--host', '127.0.0.1',"
        " '--port', os.environ['PORT']]\nfrom ivoryos_edge.cli import main\nmain()\n", tmp_path, name="edge_cli.py",
        timeout=120)
    try:
        listed = requests.get(f"{port_server.base}/api/plugins").json()
        assert [p["id"] for p in listed["plugins"]] == ["hello"]
        error = listed["errors"][0]
        assert error["plugin"] == "ivoryos_plugin.edge:no_such_plugin" and "installed: " in error["error"]
        page = requests.get(url(port_server, "hello", ""))
        assert page.status_code == 200 and "counter" in page.text  # the deck file's instrument, in our page
    finally:
        port_server.stop()


def test_our_run_takes_the_edge_arguments_and_says_how_it_differs(tmp_path: Path) -> None:
    server = start_edge(tmp_path, plugins=["hello"], runner="ours")
    try:
        out = server.output()
        assert "binds 127.0.0.1 (ivoryos_edge.run binds 0.0.0.0)" in out
        assert "deck globals" not in out or "are plugins, not instruments" in out
        assert "Starting IvoryOS Edge Server on 127.0.0.1:" in out
        schema = requests.get(f"{server.base}/api/status").json()["instruments"]
        assert {"balance", "pump", "hotplate"} <= set(schema) and "hello" not in schema
        assert requests.get(url(server, "hello", "")).status_code == 200
    finally:
        server.stop()


def test_our_plugin_object_on_the_deck_is_not_an_instrument(tmp_path: Path) -> None:
    code = """\
        import os
        import ivoryos_plugin.edge
        from ivoryos_plugin.tools.demo_deck import balance
        from hello_plugin import plugin as hello

        if __name__ == "__main__":
            ivoryos_plugin.edge.run(__name__, port=int(os.environ["PORT"]), plugins=[hello], discover_plugins=False)
        """
    server = launch(code, tmp_path, name="deck_with_plugin.py", env={"IVORYOS_DATA_DIR": str(tmp_path / "d")},
                    timeout=120)
    try:
        assert "deck globals hello are plugins, not instruments" in server.output()
        schema = requests.get(f"{server.base}/api/status").json()["instruments"]
        assert set(schema) == {"balance"}
    finally:
        server.stop()


def test_the_cli_runs_a_plugin_on_the_edge(tmp_path: Path) -> None:
    server = start_process([EXE, "run", "hello_plugin.plugin:plugin", "--host", "edge", "--deck",
                            str(ROOT / "examples" / "demo_deck_min.py"), "--data-dir", str(tmp_path / "data")],
                           tmp_path, "run.log", timeout=120)
    try:
        page = requests.get(url(server, "hello", ""))
        assert page.status_code == 200 and "counter" in page.text
        assert "counter" in requests.get(f"{server.base}/api/status").json()["instruments"]
        assert (tmp_path / "data" / "ivoryos_edge.db").exists()
    finally:
        server.stop()


def test_the_demo_runs_on_the_edge(tmp_path: Path) -> None:
    server = start_process([EXE, "demo", "--host", "edge", "--no-browser", "--data", str(tmp_path / "data")],
                           tmp_path, "demo.log", timeout=120)
    try:
        ids = {p["id"] for p in requests.get(f"{server.base}/api/plugins").json()["plugins"]}
        assert {"hello", "balance", "plate_map", "run_monitor", "serial_console", "deck_camera"} <= ids
        assert requests.get(url(server, "balance", "")).status_code == 200
        assert "demo on ivoryos-edge" in server.output()
    finally:
        server.stop()


def test_the_documented_edge_deck_runs(tmp_path: Path) -> None:
    server = start_process([PY, str(ROOT / "examples" / "edge_deck.py")], tmp_path, "edge_deck.log",
                           env={"IVORYOS_DATA_DIR": str(tmp_path / "data")}, timeout=120)
    try:
        ids = [p["id"] for p in requests.get(f"{server.base}/api/plugins").json()["plugins"]]
        assert ids[:2] == ["hello", "balance"]
        tare = requests.post(url(server, "balance", "actions/tare"))
        assert tare.status_code == 200 and tare.json()["ok"] is True
    finally:
        server.stop()
