"""A plugin that raises while IvoryOS *registers* it (not while it is imported) fails alone, exactly
as one that fails to import: listed failed on the health page with its stage and traceback, what it
half-registered taken back or answering 503, and the other plugins served.

The plugins are real pip-installed packages found through the ``ivoryos.plugins`` entry points, in the
styles plugins are written in public: a plain Blueprint with ``init_socketio`` as the official IvoryOS
plugin template writes it, and a framework ``Plugin``. One more is given to ``ivoryos_plugin.run``
(``blueprint_plugins=``) by the deck script. IvoryOS runs as a real subprocess.

The same server shows what a hardware action refused during a run says (the 409 names the reason and
``@plugin.action(hardware=False)``)."""
from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests
import socketio

from installing import install_target
from support import Server, cookie_header, ivoryos_login, launch

#: package -> {file: source}; each is a project with one entry point named after its plugin
PACKAGES: Dict[str, Dict[str, str]] = {
    # good, as the official IvoryOS plugin template writes plugins: a plain Blueprint, init_socketio
    "rc3_template": {"plugin.py": '''
        from flask import Blueprint

        plugin = Blueprint("rc3_template", __name__)
        plugin.plugin_type = "tab"
        socketio = None


        def init_socketio(sio):
            global socketio
            socketio = sio

            @socketio.on("rc3_template_ping")
            def ping(data=None):
                return {"pong": True}


        plugin.init_socketio = init_socketio


        @plugin.route("/")
        def main():
            return "template-style page served"
    '''},
    # good, a framework Plugin
    "rc3_framework": {"plugin.py": '''
        from ivoryos_plugin import Plugin

        plugin = Plugin("rc3_framework", __name__, title="RC3 framework", version="1.0.0")


        @plugin.route("/")
        def main():
            return "framework page served"


        @plugin.action(hardware=False)
        def echo(text: str = "") -> dict:
            return {"echo": text}


        @plugin.action
        def tare() -> dict:
            return {"bumped": plugin.instrument("counter").bump()}
    '''},
    # registers a route and an app-wide hook, then its deferred setup raises
    "rc3_half": {"plugin.py": '''
        import os

        from flask import Blueprint

        plugin = Blueprint("rc3_half", __name__)


        @plugin.route("/")
        def main():
            return "half-registered page (must not be served)"


        @plugin.before_app_request
        def hijack():
            from flask import request
            if request.path.startswith("/ivoryos/rc3_"):
                return "hijacked by rc3_half", 500
            return None


        @plugin.record_once
        def load_calibration(state):
            folder = state.app.config.get("OUTPUT_FOLDER")  # IvoryOS's data folder (a scratch app has none)
            if folder:
                with open(os.path.join(folder, "rc3_calibration.csv")) as table:
                    state.app.config["RC3_CALIBRATION"] = table.read()
    '''},
    # the official template's init_socketio, but the broker it connects to is down
    "rc3_socket": {"plugin.py": '''
        from flask import Blueprint

        plugin = Blueprint("rc3_socket", __name__)
        plugin.plugin_type = "tab"


        def init_socketio(sio):
            @sio.on("rc3_socket_event")
            def on_event(data=None):
                return {"handled": True}
            raise ConnectionError("message broker at 127.0.0.1:1 refused the connection")


        plugin.init_socketio = init_socketio


        @plugin.route("/")
        def main():
            return "socket page (must not be served)"
    '''},
    # a framework Plugin whose setup adds an app route under an endpoint IvoryOS already has
    "rc3_collide": {"plugin.py": '''
        from ivoryos_plugin import Plugin

        plugin = Plugin("rc3_collide", __name__, title="RC3 collide")


        @plugin.route("/")
        def main():
            return "collide page (must not be served)"


        @plugin.record_once
        def add_home_shortcut(state):
            state.app.add_url_rule("/ivoryos/rc3_home", "main.index", lambda: "mine")
    '''},
}

DECK = '''
import os

from ivoryos_plugin import Plugin, run


class Counter:
    """A stand-in instrument."""

    def bump(self, by: int = 1) -> int:
        self.n = getattr(self, "n", 0) + by
        return self.n

    def slow(self, seconds: float = 1.0) -> float:
        import time
        time.sleep(seconds)
        return seconds


counter = Counter()

given = Plugin("rc3_given", __name__)


@given.route("/")
def main():
    return "given page (must not be served)"


@given.record_once
def open_database(state):
    raise PermissionError("cannot open the run database rc3.sqlite")


if __name__ == "__main__":
    run(__name__, port=int(os.environ["PORT"]), blueprint_plugins=[given])
'''

GOOD = {"rc3_template": "template-style page served", "rc3_framework": "framework page served"}
FAILED = {"rc3_half": ("register", "FileNotFoundError: [Errno 2] No such file or directory"),
          "rc3_socket": ("init_socketio", "ConnectionError: message broker at 127.0.0.1:1 refused"),
          "rc3_collide": ("register", "AssertionError: View function mapping is overwriting"),
          "rc3_given": ("register", "PermissionError: cannot open the run database rc3.sqlite")}


def write_project(root: Path, name: str, files: Dict[str, str]) -> Path:
    """A pip-installable project ``root/name`` with the entry point ``name = name.plugin:plugin``."""
    project = root / name
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text("")
    for file, code in files.items():
        (project / name / file).write_text(textwrap.dedent(code))
    (project / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name.replace('_', '-')}"
        version = "0.3.0"
        requires-python = ">=3.9"

        [project.entry-points."ivoryos.plugins"]
        {name} = "{name}.plugin:plugin"

        [tool.setuptools]
        packages = ["{name}"]
    '''))
    return project


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """IvoryOS by ivoryos_plugin.run with the five packages installed (and one given plugin)."""
    sources = tmp_path_factory.mktemp("projects")
    projects = [write_project(sources, name, files) for name, files in PACKAGES.items()]
    site = install_target(projects, tmp_path_factory.mktemp("site") / "target")
    started = launch(DECK, tmp_path_factory.mktemp("ivoryos"), name="deck.py", env={"PYTHONPATH": str(site)})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> requests.Session:
    return ivoryos_login(server.base)


@pytest.mark.server
def test_the_good_plugins_serve_beside_plugins_that_fail_to_register(server: Server,
                                                                     admin: requests.Session) -> None:
    for name, text in GOOD.items():
        page = admin.get(f"{server.base}/ivoryos/{name}/")
        assert page.status_code == 200 and text in page.text, (
            f"{name}: {page.status_code} {page.text[:300]}\n{server.output()[-3000:]}")
        assert "hijacked" not in page.text, "the failed plugin's app-wide hook was not taken back"
    reply = admin.post(f"{server.base}/ivoryos/rc3_framework/actions/echo", json={"text": "hi"})
    assert reply.status_code == 200 and reply.json() == {"echo": "hi"}
    home = admin.get(f"{server.base}/ivoryos/")  # IvoryOS's nav links every plugin it was given
    assert home.status_code == 200, home.text[:2000]
    for name in [*GOOD, *FAILED]:
        assert f"/ivoryos/{name}/" in home.text


@pytest.mark.server
def test_the_health_page_names_each_registration_failure_with_its_stage_and_error(
        server: Server, admin: requests.Session) -> None:
    status = admin.get(f"{server.base}/ivoryos/plugins/status.json").json()
    failures = {f["name"]: f for f in status["failures"]}
    for name, (stage, error) in FAILED.items():
        assert name in failures, f"{name} is not listed as failed: {sorted(failures)}"
        assert failures[name]["stage"] == stage, failures[name]
        assert failures[name]["error"].startswith(error), failures[name]["error"]
        assert "Traceback (most recent call last)" in failures[name]["traceback"]
    assert "rc3-half 0.3.0" in failures["rc3_half"]["source"]  # where it was installed from
    running = {p["name"]: p["state"] for p in status["plugins"]}
    assert set(GOOD) <= set(running), running
    assert not set(FAILED) & set(running), f"a failed plugin is listed as loaded: {running}"
    health = admin.get(f"{server.base}/ivoryos/plugins/")
    assert health.status_code == 200
    for name, (stage, error) in FAILED.items():
        assert f'data-plugin="{name}"' in health.text and error.split(": ", 1)[1][:30] in health.text
    output = server.output()
    assert "plugin 'rc3_half' not loaded (register)" in output
    assert "plugin 'rc3_socket' not loaded (init_socketio)" in output


@pytest.mark.server
@pytest.mark.parametrize("name", sorted(FAILED))
def test_what_a_failed_plugin_registered_answers_503_not_a_crash(server: Server, admin: requests.Session,
                                                                 name: str) -> None:
    page = admin.get(f"{server.base}/ivoryos/{name}/", headers={"Accept": "application/json"})
    assert page.status_code == 503, f"{page.status_code} {page.text[:500]}"
    assert f"Plugin {name!r} failed to load" in page.json()["error"]
    assert "must not be served" not in page.text
    anonymous = requests.get(f"{server.base}/ivoryos/{name}/", allow_redirects=False)
    assert anonymous.status_code in (302, 401), anonymous.status_code  # still behind the login


@pytest.mark.server
def test_a_failed_init_socketio_leaves_no_handler_and_the_good_ones_answer(server: Server,
                                                                          admin: requests.Session) -> None:
    client = socketio.Client(reconnection=False)
    booted = threading.Event()
    client.on("server_boot_id", lambda data=None: booted.set())  # IvoryOS's own 'connect' handler
    client.connect(server.base, socketio_path="/ivoryos/socket.io", transports=["websocket"], wait_timeout=10,
                   headers={"Cookie": cookie_header(admin)})
    try:
        assert booted.wait(10), "IvoryOS's own connect handler did not run"
        assert client.call("rc3_template_ping", {}, timeout=10) == {"pong": True}
        with pytest.raises(socketio.exceptions.TimeoutError):
            client.call("rc3_socket_event", {}, timeout=2)  # taken back: nobody answers
    finally:
        client.disconnect()


@pytest.mark.server
def test_a_hardware_action_refused_during_a_run_says_why_and_how_to_declare_one_that_is_not(
        server: Server, admin: requests.Session) -> None:
    done: Dict[str, Any] = {}

    def single_step() -> None:  # IvoryOS's Instruments page runs one method, holding the runner lock
        done["reply"] = admin.post(f"{server.base}/ivoryos/instruments/deck.counter",
                                   json={"hidden_name": "slow", "seconds": 2.0}, timeout=30)

    stepper = threading.Thread(target=single_step)
    stepper.start()
    try:
        time.sleep(0.5)
        refused = admin.post(f"{server.base}/ivoryos/rc3_framework/actions/tare", json={})
        during = admin.post(f"{server.base}/ivoryos/rc3_framework/actions/echo", json={"text": "during"})
    finally:
        stepper.join(30)
    assert done["reply"].status_code == 200, done["reply"].text[:500]
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["busy"] is True and body["hardware"] is True
    assert "Action 'tare' is a hardware action (the default), refused while a workflow holds the deck" in body["error"]
    assert "@plugin.action(hardware=False)" in body["error"]
    assert during.status_code == 200 and during.json() == {"echo": "during"}  # hardware=False runs meanwhile
    assert admin.post(f"{server.base}/ivoryos/rc3_framework/actions/tare", json={}).status_code == 200
