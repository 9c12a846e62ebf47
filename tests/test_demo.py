"""``ivoryos-plugin demo``: real IvoryOS with the installed example plugins on the simulated deck,
started as a user does (the console script, in an empty folder), used over HTTP and Socket.IO, then
stopped with SIGTERM."""
from __future__ import annotations

import os
import re
import signal
import stat
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import requests

from browsing import start_demo  # the pages in a real browser: test_e2e.py
from support import Server, cookie_header, ivoryos_login
from support import Viewer

EXAMPLES = ("balance", "plate_map")  # this repository's example plugins the demo is built around


def installed_plugins() -> Dict[str, str]:
    """What the demo discovers: the installed ``ivoryos.plugins`` entry points and the examples
    (``ivoryos_plugin.examples``): name -> placement."""
    from ivoryos_plugin.tools.demo import EXAMPLES_GROUP

    return {ep.name: getattr(ep.load(), "plugin_type", "tab")
            for group in ("ivoryos.plugins", EXAMPLES_GROUP) for ep in entry_points(group=group)}


def fake_browser(folder: Path) -> Dict[str, str]:
    """Env making Python's ``webbrowser`` run a script that records the URL it was asked to open."""
    script = folder / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{folder / "opened.txt"}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"BROWSER": str(script), "DISPLAY": "", "WAYLAND_DISPLAY": ""}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One demo for the module, started with --no-browser (a fake browser records any attempt)."""
    folder = tmp_path_factory.mktemp("demo")
    server = start_demo(folder, "--no-browser", env={**fake_browser(folder), "CI": ""})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def session(demo: Server) -> requests.Session:
    """Logged in as admin / admin, as the demo's banner says."""
    return ivoryos_login(demo.base)


def demo_viewer(demo: Server, session: requests.Session, plugin: str) -> Viewer:
    """A python-socketio client in one plugin's namespace, with the logged-in session's cookie."""
    return Viewer(demo.base, f"/ivoryos/{plugin}", cookie=cookie_header(session), timeout=10.0)


@pytest.mark.server
def test_demo_prints_the_url_and_the_login_and_uses_a_local_data_folder(demo: Server) -> None:
    out = demo.output()
    assert f"http://127.0.0.1:{demo.port}/ivoryos/" in out
    assert "admin / admin" in out
    assert (demo.cwd / "ivoryos_data").is_dir(), "IvoryOS's data folder is not ./ivoryos_data"
    assert not (demo.cwd / "opened.txt").exists(), "--no-browser opened a browser"


@pytest.mark.server
def test_admin_sees_every_installed_example_in_the_nav_and_each_page_answers(demo: Server,
                                                                             session: requests.Session) -> None:
    installed = installed_plugins()
    assert set(EXAMPLES) <= set(installed), f"install the examples: pip install -e examples/... ({installed})"
    home = session.get(f"{demo.base}/ivoryos/")
    assert home.status_code == 200
    for name, placement in sorted(installed.items()):
        if placement == "left_panel":  # IvoryOS shows it as an iframe on every page (the first one only)
            page = session.get(f"{demo.base}/ivoryos/{name}/widget")
            assert page.status_code == 200, f"{name}: {page.status_code}\n{demo.output()[-3000:]}"
            continue
        assert f'href="/ivoryos/{name}/"' in home.text, f"{name} is missing from IvoryOS's nav"
        page = session.get(f"{demo.base}/ivoryos/{name}/")
        assert page.status_code == 200, f"{name}: {page.status_code}\n{demo.output()[-3000:]}"
        assert "navbar" in page.text, f"{name} does not extend IvoryOS's base.html"
    panels = sorted(name for name, placement in installed.items() if placement == "left_panel")
    if panels:
        assert re.search(r'<iframe src="/ivoryos/\w+/widget"', home.text), "the left-panel plugin is not shown"
    health = session.get(f"{demo.base}/ivoryos/plugins/status.json")
    assert health.status_code == 200
    assert not health.json().get("failures"), health.json()["failures"]


@pytest.mark.server
def test_the_deck_has_the_simulated_instruments(demo: Server, session: requests.Session) -> None:
    page = session.get(f"{demo.base}/ivoryos/instruments/deck.balance")
    assert page.status_code == 200
    out = demo.output()
    for name in ("balance", "pump", "hotplate"):
        assert re.search(rf"deck\.{name}: \w+", out), f"IvoryOS did not load deck.{name}"
    assert "deck.annotations" not in out and "deck.shutdown" not in out


@pytest.mark.server
def test_the_balance_page_streams_weights_to_a_socketio_client(demo: Server, session: requests.Session) -> None:
    viewer = demo_viewer(demo, session, "balance")
    try:
        ack = viewer.sio.call("subscribe", {"stream": "weight"}, namespace=viewer.namespace, timeout=10)
        assert ack["ok"] is True
        weights = viewer.wait_for("weight", count=3)
        assert all(w["unit"] == "g" and isinstance(w["value"], float) for w in weights)
    finally:
        viewer.close()


@pytest.mark.server
def test_a_workflow_dispense_colours_the_plate_and_fills_the_vial(demo: Server, session: requests.Session) -> None:
    plate = demo_viewer(demo, session, "plate_map")
    scale = demo_viewer(demo, session, "balance")
    try:
        before_wells = len(plate.got("well"))
        scale.sio.call("subscribe", {"stream": "weight"}, namespace=scale.namespace, timeout=10)
        start = scale.wait_for("weight")[-1]["grams"]
        script = "def workflow():\n    deck.pump.dispense(volume_ml=0.4)\n    deck.pump.dispense(volume_ml=0.6)\n"
        reply = session.post(f"{demo.base}/ivoryos/draft/submit_python", json={
            "workflow_name": "demo_fill", "script": script, "prep": "", "cleanup": ""})
        assert reply.status_code == 200, reply.text
        run = session.post(f"{demo.base}/ivoryos/executions/config", json={"repeat": 1},
                           headers={"Accept": "application/json"}, timeout=60)
        assert run.status_code == 200, run.text
        wells = plate.wait_for("well", count=before_wells + 2, timeout=20)[before_wells:]
        assert [(w["source"], w["volume_ml"]) for w in wells] == [("pump", 0.4), ("pump", 0.6)]
        deadline = time.monotonic() + 10
        while scale.got("weight")[-1]["grams"] < start + 0.99 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scale.got("weight")[-1]["grams"] == pytest.approx(start + 1.0, abs=0.05)
    finally:
        plate.close()
        scale.close()


@pytest.mark.server
def test_ci_implies_no_browser_and_the_examples_deck_script_works(tmp_path: Path) -> None:
    deck = Path(__file__).resolve().parents[1] / "examples" / "demo_deck.py"
    server = start_demo(tmp_path, "--deck", str(deck), env={**fake_browser(tmp_path), "CI": "true"})
    ports = re.findall(r"simulated (\w+) on (\S+)", server.output())
    try:
        assert sorted(name for name, _ in ports) == ["balance", "hotplate", "pump"]
        session = ivoryos_login(server.base)
        assert session.get(f"{server.base}/ivoryos/instruments/deck.pump").status_code == 200
        assert re.search(r"deck\.pump: DemoPump", server.output())
        time.sleep(1.0)  # the browser would be opened once the port answers: give it the chance
        assert not (tmp_path / "opened.txt").exists(), "CI=true opened a browser"
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert not [port for _, port in ports if os.path.exists(port)], "a simulator outlived the demo"


def test_the_browser_opens_on_the_url_once_the_server_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import webbrowser

    from ivoryos_plugin.tools.demo import demo_url, in_ci, open_browser_when_up

    opened: List[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = demo_url("0.0.0.0", port)
        open_browser_when_up(url, "0.0.0.0", port, timeout=10).join(10)
    assert opened == [f"http://127.0.0.1:{port}/ivoryos/"]
    for value, expected in (("true", True), ("1", True), ("", False), ("false", False), ("0", False)):
        monkeypatch.setenv("CI", value)
        assert in_ci() is expected, value


@pytest.mark.server
def test_sigterm_stops_the_demo_and_its_simulators(demo: Server) -> None:
    ports = re.findall(r"simulated (\w+) on (\S+)", demo.output())
    assert sorted(name for name, _ in ports) == ["balance", "hotplate", "pump"]
    assert all(os.path.exists(port) for _, port in ports)
    started = time.monotonic()
    code = demo.stop(signal.SIGTERM, timeout=15)
    assert time.monotonic() - started < 15
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{demo.output()[-3000:]}"
    assert "demo stopped" in demo.output()
    for name, port in ports:
        assert not os.path.exists(port), f"the {name} simulator's port {port} is left behind"
        assert not os.path.exists(os.path.dirname(port)), f"the {name} simulator's folder is left behind"
