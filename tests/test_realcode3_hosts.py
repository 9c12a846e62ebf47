"""Real code, round three (issue 24): the hosts, tried against decks and plugins in the styles public
IvoryOS users write them (the official plugin template's checkout with a deck script beside its
package ``ivoryos_plugin``, template-style plain Blueprints, decks that make instruments under
``if __name__ == "__main__":``), each against what really runs: real pip installs in child
virtualenvs, real IvoryOS and dev host subprocesses, python-socketio and raw Engine.IO clients,
headless Chromium.

1. A deck in the template's checkout: ``python deck.py`` fails with one line naming the folder that
   shadows the framework and the fix; ``ivoryos-plugin run`` there names the folder and a command that
   leaves the framework alone, and following it serves the plugin.
2. ``check --installed``: a default-namespace ``connect`` handler is a WARNING, as ``ivoryos_plugin.run``
   has it; an installed template is an ERROR only when it replaced or shadows the framework (decided
   by what a fresh ``import ivoryos_plugin`` gives); the printed repair works with no package index.
3. The dev host's default Socket.IO namespace refuses clients without its token; their events never
   reach a plain plugin's handler.
4. The dev host's ``base.html`` has the libraries IvoryOS's own gives pages; the deck's ``__main__``
   block's instruments exist in the dev host.
5. IvoryOS's demo mode: the start-up lines say every visitor counts as logged in; hardware actions 503.
6. The combined left panel loads each widget at ``url_for(name + '.widget')``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import socketio

from browsing import EXE, Watch, chromium, offline_context
from installing import child_venv, copy_projects, install_target, pip, pip_args
from support import ROOT, Server, free_port, ivoryos_login, launch, start_process, wait_until

TEMPLATE = ROOT / "tests" / "fixtures" / "real_style" / "official_template"
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream_plain"
IVORYOS = Path(__import__("ivoryos").__file__).parent
#: the official template's README deck, with step 1 of docs/migration.md done (the call renamed)
TEMPLATE_DECK = '''\
from ivoryos_plugin.plugin import plugin

import ivoryos_plugin

ivoryos_plugin.run(__name__, blueprint_plugins=plugin)
'''
TOKEN = "rc3-hosts-token"


def run_cmd(argv: List[str], cwd: Path, env: Optional[Dict[str, str]] = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command as a user would (no pytest or IvoryOS variables leaking in)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)


def template_checkout(folder: Path) -> Path:
    """A checkout of the official plugin template (package and distribution ``ivoryos_plugin``) with
    the deck script its README gives, the call renamed to ``ivoryos_plugin.run``."""
    checkout = folder / "ivoryos-plugin-template"
    shutil.copytree(TEMPLATE, checkout, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    (checkout / "deck.py").write_text(TEMPLATE_DECK)
    return checkout


# ------------------------------------------------------------------ the framework and the template, built
@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """A copy of the framework's source (as a lab gets it), its wheel, and the template's wheel."""
    root = tmp_path_factory.mktemp("builds")
    source = root / "framework"
    shutil.copytree(ROOT / "ivoryos_plugin", source / "ivoryos_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    for name in ("setup.py", "README.md", "requirements.txt", "_ivoryos_plugin_shadow.py"):
        shutil.copy(ROOT / name, source / name)
    template = copy_projects([TEMPLATE], root / "template")[0]
    pip(sys.executable, ["wheel", *pip_args(), "--wheel-dir", str(root / "dist"), str(source), str(template)])
    return {"source": source, "template": template,
            "framework_wheel": next((root / "dist").glob("ivoryos_plugin_framework-*.whl")),
            "template_wheel": next((root / "dist").glob("ivoryos_plugin-0.0.1-*.whl"))}


def venv_with(folder: Path, builds: Dict[str, Path], framework: str, template: Optional[str] = None) -> Path:
    """A child virtualenv with the framework (``wheel`` or ``editable``) and optionally the template.

    :returns: its python."""
    python = child_venv(folder)
    pip(str(python), ["install", *pip_args(), *(["-e", str(builds["source"])] if framework == "editable"
                                                else [str(builds["framework_wheel"])])])
    if template == "wheel":
        pip(str(python), ["install", *pip_args(), str(builds["template_wheel"])])
    elif template == "editable":
        pip(str(python), ["install", *pip_args(), "-e", str(builds["template"])])
    return python


# ------------------------------------------------------------------ 1. a deck in the template's checkout
@pytest.mark.server
@pytest.mark.parametrize("framework", ["wheel", "editable"], ids=["framework-wheel", "framework-editable"])
def test_a_deck_in_the_template_checkout_fails_in_one_line_naming_the_folder(
        tmp_path: Path, builds: Dict[str, Path], framework: str) -> None:
    python = venv_with(tmp_path / "venv", builds, framework)
    checkout = template_checkout(tmp_path)
    result = run_cmd([str(python), "deck.py"], cwd=checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    package = checkout / "ivoryos_plugin"
    assert last.startswith(f"AttributeError: module 'ivoryos_plugin' has no attribute 'run': the package in {package} "), last
    assert "shadows the framework ivoryos_plugin" in last and "the folder this script was started from" in last, last
    assert "Fix: start the deck from another folder" in last, last
    assert f"ivoryos-plugin migrate {checkout} --name my_plugin --dir {tmp_path}" in last, last
    # nothing else changes: the template still imports in its checkout, the framework elsewhere
    template = run_cmd([str(python), "-c", "from ivoryos_plugin.plugin import plugin; print(plugin.name)"], cwd=checkout)
    assert template.stdout.strip() == "plugin", template.stderr
    elsewhere = run_cmd([str(python), "-c", "import ivoryos_plugin; print(ivoryos_plugin.run.__module__)"], cwd=tmp_path)
    assert elsewhere.stdout.strip() == "ivoryos_plugin.hosts.launcher", elsewhere.stderr


#: what a lab types in the checkout: the template's plugin by module, by folder, by package folder,
#: or another plugin with the checkout's deck
DEV_HOST_COMMANDS = {
    "module-target": ["ivoryos_plugin.plugin:plugin", "--deck", "deck.py"],
    "project-folder": [".", "--deck", "deck.py"],
    "package-folder": ["./ivoryos_plugin"],
    "deck-importing-the-template": ["hello_plugin.plugin:plugin", "--deck", "deck.py"],
}


@pytest.mark.parametrize("args", list(DEV_HOST_COMMANDS.values()), ids=list(DEV_HOST_COMMANDS))
def test_the_dev_host_in_the_template_checkout_names_the_folder_and_a_safe_command(tmp_path: Path,
                                                                                    args: List[str]) -> None:
    checkout = template_checkout(tmp_path)
    result = run_cmd([str(EXE), "run", *args, "--port", str(free_port())], cwd=checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    message = lines[0]
    assert str(checkout / "ivoryos_plugin") in message and "shadow" in message, message
    assert f"ivoryos-plugin migrate {checkout} --name my_plugin --dir {tmp_path}" in message, message
    assert "pip install -e ./ivoryos_plugin" not in message and "Fix: pip install" not in message, message


@pytest.mark.server
def test_following_the_dev_host_s_fix_serves_the_template_s_plugin(tmp_path: Path) -> None:
    checkout = template_checkout(tmp_path)
    hint = run_cmd([str(EXE), "run", "ivoryos_plugin.plugin:plugin", "--deck", "deck.py"], cwd=checkout).stderr
    command = re.search(r"Fix: (ivoryos-plugin migrate .+?) \(a copy", hint)
    assert command, hint
    migrated = run_cmd([str(EXE), *command.group(1).split()[1:]], cwd=checkout)  # exactly as printed
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    deck = checkout / "deck.py"
    deck.write_text(deck.read_text().replace("from ivoryos_plugin.plugin import", "from my_plugin.plugin import"))
    serve = re.search(r"then (ivoryos-plugin run \S+)", hint)
    assert serve and serve.group(1) == f"ivoryos-plugin run {tmp_path / 'my_plugin'}", hint
    server = start_process([str(EXE), "run", str(tmp_path / "my_plugin"), "--deck", "deck.py", "--token", TOKEN],
                           checkout, "devhost.log")
    try:
        page = requests.get(f"{server.base}/ivoryos/my_plugin/?token={TOKEN}", timeout=30)
        assert page.status_code == 200 and "Hello from the plugin template" in page.text, page.text[:300]
        assert "returns at once here" in server.output()  # the deck's own ivoryos_plugin.run(...) did not start IvoryOS
    finally:
        server.stop()


# ------------------------------------------------------------------ 2. check --installed
def check_installed(python: Path, cwd: Path, env: Optional[Dict[str, str]] = None) -> Tuple[int, List[str]]:
    """``ivoryos-plugin check --installed`` of ``python``'s environment: exit code and its lines."""
    result = run_cmd([str(python), "-m", "ivoryos_plugin.tools.cli", "check", "--installed"], cwd=cwd, env=env)
    return result.returncode, result.stdout.splitlines() + [f"stderr: {l}" for l in result.stderr.splitlines()]


def finding(lines: List[str], subject: str, check: str) -> List[Tuple[str, str]]:
    """``(level, message)`` of the report lines about ``subject``'s ``check``."""
    found = []
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[1] == subject and parts[2] == check:
            found.append((parts[0], parts[3]))
    return found


@pytest.mark.server
def test_check_installed_and_run_agree_on_a_default_namespace_connect_handler(tmp_path: Path) -> None:
    site = install_target([UPSTREAM], tmp_path / "site")
    env = {"PYTHONPATH": str(site)}
    code, lines = check_installed(Path(sys.executable), tmp_path, env)
    socket = finding(lines, "upstream_demo", "socketio")
    assert [level for level, _ in socket] == ["WARNING"], "\n".join(lines)
    assert "handles Socket.IO event 'connect'" in socket[0][1] and "ivoryos_plugin.run" in socket[0][1], socket
    assert not [line for line in lines if line.lstrip().startswith("ERROR")] and code == 0, "\n".join(lines)
    # ivoryos_plugin.run loads it, with a warning (not a failure): the same verdict
    server = launch('''
        import os
        import ivoryos_plugin
        ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]))
    ''', tmp_path, name="deck.py", env=env)
    try:
        session = ivoryos_login(server.base)
        status = session.get(f"{server.base}/ivoryos/plugins/status.json").json()
        assert "upstream_demo" in [p["name"] for p in status["plugins"]], status
        assert not [f for f in status["failures"] if f["name"] == "upstream_demo"], status["failures"]
        warned = [w["message"] for w in status["warnings"] if w["name"] == "upstream_demo"]
        assert any("'connect'" in w and "IvoryOS's keeps answering" in w for w in warned), status["warnings"]
        assert session.get(f"{server.base}/ivoryos/upstream_demo/").status_code == 200
    finally:
        server.stop()


#: (framework, template) installs -> what ``check --installed`` must say of the template
INSTALLS = {
    "template-wheel-over-framework-wheel": ("wheel", "wheel", "ERROR", "over the framework's files (__init__.py"),
    "editable-template-beside-framework-wheel": ("wheel", "editable", "WARNING", "overwrites none of the framework's"),
    "editable-template-before-editable-framework": ("editable", "editable", "ERROR", "it shadows the framework"),
}


@pytest.mark.server
@pytest.mark.parametrize("case", list(INSTALLS), ids=list(INSTALLS))
def test_check_installed_errors_only_when_the_template_replaces_or_shadows_the_framework(
        tmp_path: Path, builds: Dict[str, Path], case: str) -> None:
    framework, template, level, says = INSTALLS[case]
    python = venv_with(tmp_path / "venv", builds, framework, template)
    # what really happens: does a fresh `import ivoryos_plugin` (outside any checkout) give the framework?
    fresh = run_cmd([str(python), "-c", "import ivoryos_plugin; print('_EXPORTS' in vars(ivoryos_plugin))"], cwd=tmp_path)
    assert fresh.stdout.strip() == ("False" if level == "ERROR" else "True"), fresh.stdout + fresh.stderr
    code, lines = check_installed(python, tmp_path)
    about = [(lvl, msg) for lvl, msg in finding(lines, "environment", "install") if msg.startswith("the distribution ")]
    assert [lvl for lvl, _ in about] == [level], "\n".join(lines)
    assert says in about[0][1], about[0][1]
    assert (code == 1) == (level == "ERROR"), "\n".join(lines)


@pytest.mark.server
def test_the_printed_repair_works_where_the_framework_is_on_no_package_index(tmp_path: Path,
                                                                               builds: Dict[str, Path]) -> None:
    python = venv_with(tmp_path / "venv", builds, "wheel", "wheel")
    code, lines = check_installed(python, tmp_path)
    errors = [msg for lvl, msg in finding(lines, "environment", "install") if lvl == "ERROR"]
    assert code == 1 and errors, "\n".join(lines)
    repair = re.search(r"Fix: (.+? && .+?) \(where ivoryos-plugin-framework was installed from", errors[0])
    assert repair and str(builds["framework_wheel"]) in repair.group(1), errors[0]
    followed = run_cmd(["bash", "-c", repair.group(1)], cwd=tmp_path, env={"PIP_NO_INDEX": "1"})
    assert followed.returncode == 0, followed.stdout + followed.stderr
    code, lines = check_installed(python, tmp_path)
    assert code == 0 and not [l for l in lines if l.lstrip().startswith("ERROR")], "\n".join(lines)
    fresh = run_cmd([str(python), "-c", "import ivoryos_plugin; print(ivoryos_plugin.run.__module__)"], cwd=tmp_path)
    assert fresh.stdout.strip() == "ivoryos_plugin.hosts.launcher", fresh.stderr


# ------------------------------------------------------------------ 3. and 4.: the dev host, a template-style lab
#: the official template's plugin, filled in by a lab under a package name of its own: a plain
#: Blueprint, the base_exists switch, handlers on the default namespace, the deck read through global_state
LAB_PLUGIN = '''
import json
import os

from flask import Blueprint, current_app, jsonify, render_template
from flask_socketio import emit

from ivoryos import global_state

# blueprint name Blueprint('plugin', ...) needs to be unique
plugin = Blueprint("lab_page", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))
plugin.plugin_type = "tab"
JOURNAL = os.environ["LAB_JOURNAL"]
socketio = None


def init_socketio(sio):
    """Attach SocketIO to this plugin."""
    global socketio
    socketio = sio

    @socketio.on("connect")
    def handle_connect():
        pass

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        with open(JOURNAL, "a") as journal:
            journal.write(json.dumps({"ping": data}) + "\\n")
        emit("plugin_pong", {"message": "pong from the lab page"})


plugin.init_socketio = init_socketio


@plugin.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    return render_template("lab.html", base_exists=base_exists)


@plugin.route("/instruments")
def instruments():
    deck = global_state.deck
    return jsonify({"deck": getattr(deck, "__name__", None), "balance": hasattr(deck, "balance"),
                    "pump": hasattr(deck, "pump"), "ivoryos_active": os.environ.get("IVORYOS_ACTIVE")})
'''
LAB_TEMPLATE = '''
{% if base_exists %}
    {% extends 'base.html' %}
    {% block title %}IvoryOS | Lab page{% endblock %}
{% else %}
    <html lang="en"><head><meta charset="UTF-8"></head>
{% endif %}

{% block body %}
    <div class="container mt-4"><div class="h1" id="lab">Lab page</div><pre><code class="python">x = 1</code></pre></div>
    <script>
        var socket = io({path: '/ivoryos/socket.io'});  // as IvoryOS's own socket_handler.js connects
        socket.on('plugin_pong', function (data) { document.getElementById('lab').dataset.pong = data.message; });
    </script>
{% endblock %}
'''
#: a lab's deck: one instrument at the top, one under `if __name__ == "__main__":`, then the call
#: that starts IvoryOS (each way labs end it)
LAB_DECK = '''
class Balance:
    def weigh(self) -> float:
        return 1.5


class Pump:
    def dose(self, ml: float = 1.0) -> float:
        return ml


balance = Balance()

if __name__ == "__main__":
    pump = Pump()
{ending}
'''
DECK_ENDINGS = {
    "ivoryos_plugin.run": "    import ivoryos_plugin\n    from lab_page.plugin import plugin\n\n"
                          "    ivoryos_plugin.run(__name__, blueprint_plugins=plugin)",
    "ivoryos.run": "    import ivoryos\n    from lab_page.plugin import plugin\n\n"
                   "    ivoryos.run(__name__, blueprint_plugins=plugin)",
    "sys.exit(0)": "    import sys\n    print('deck ready')\n    sys.exit(0)",
}


def lab_folder(folder: Path, ending: str = "ivoryos_plugin.run") -> Path:
    lab = folder / "lab"
    (lab / "lab_page" / "templates").mkdir(parents=True)
    (lab / "lab_page" / "__init__.py").write_text("")
    (lab / "lab_page" / "plugin.py").write_text(LAB_PLUGIN)
    (lab / "lab_page" / "templates" / "lab.html").write_text(LAB_TEMPLATE)
    (lab / "deck.py").write_text(LAB_DECK.format(ending=DECK_ENDINGS[ending]))
    return lab


def start_lab(folder: Path, ending: str = "ivoryos_plugin.run") -> Server:
    lab = lab_folder(folder, ending)
    return start_process([str(EXE), "run", "lab_page.plugin:plugin", "--deck", "deck.py", "--token", TOKEN], lab,
                         "devhost.log", env={"LAB_JOURNAL": str(lab / "journal.jsonl")})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dev host serving the lab's template-style plugin on its deck."""
    server = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()


def journal(server: Server) -> List[Any]:
    path = server.cwd / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def session_cookie(server: Server) -> str:
    session = requests.Session()
    assert session.get(f"{server.base}/ivoryos/?token={TOKEN}", timeout=30).status_code == 200
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


def raw_default_namespace(server: Server, connect: str) -> List[str]:
    """A raw Engine.IO websocket client: connect to ``/`` with ``connect`` (a Socket.IO CONNECT
    packet), then send ``plugin_ping`` whatever the answer; the packets it got back."""
    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ivoryos/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    try:
        got = [ws.recv()]  # the Engine.IO open packet
        ws.send(connect)
        got.append(ws.recv())
        ws.send('42["plugin_ping",{"from":"raw"}]')
        ws.settimeout(1.0)
        try:
            got.append(ws.recv())
        except websocket.WebSocketTimeoutException:
            pass
        return got
    finally:
        ws.close()


#: how a client comes to the default namespace -> whether it gets in
CLIENTS = {"no-credential": False, "wrong-token": False, "raw-packets-without-a-token": False,
           "token": True, "logged-in-session": True}


@pytest.mark.server
@pytest.mark.parametrize("client", list(CLIENTS), ids=list(CLIENTS))
def test_the_dev_host_s_default_namespace_asks_for_its_token(lab: Server, client: str) -> None:
    before = len(journal(lab))
    if client == "raw-packets-without-a-token":
        packets = raw_default_namespace(lab, "40")
        assert packets[1].startswith("44") and "unauthorized" in packets[1], packets
        time.sleep(0.5)
        assert len(journal(lab)) == before, "an event of a refused client reached the plugin's handler"
        return
    errors: List[Any] = []
    pongs: List[Any] = []
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", errors.append)
    sio.on("plugin_pong", pongs.append)
    auth = {"token": TOKEN} if client == "token" else {"token": "not-the-token"} if client == "wrong-token" else None
    headers = {"Cookie": session_cookie(lab)} if client == "logged-in-session" else {}
    if not CLIENTS[client]:
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(lab.base, socketio_path="/ivoryos/socket.io", auth=auth, headers=headers,
                        transports=["websocket"], wait_timeout=10)
        assert errors and "unauthorized" in str(errors[0]), errors
        assert len(journal(lab)) == before
        return
    sio.connect(lab.base, socketio_path="/ivoryos/socket.io", auth=auth, headers=headers, transports=["websocket"],
                wait_timeout=10)
    try:
        sio.emit("plugin_ping", {"from": client})
        assert wait_until(lambda: bool(pongs), 5), "no pong for a client with the token"
        assert pongs[0] == {"message": "pong from the lab page"}
        assert journal(lab)[before:] == [{"ping": {"from": client}}]
    finally:
        sio.disconnect()


def ivoryos_base_libraries() -> List[str]:
    """What IvoryOS's own ``base.html`` loads from CDNs, as the framework's local copies (``vendor/...``)."""
    from ivoryos_plugin.hosts.ivoryos import CDN_ASSETS

    html = (IVORYOS / "templates" / "base.html").read_text()
    return [CDN_ASSETS[url] for url in re.findall(r"""(?:src|href)=["'](https://[^"']+)["']""", html)]


class _Tags(HTMLParser):
    """The URLs of a page's scripts and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("rel") == "stylesheet" and found.get("href"):
            self.urls.append(str(found["href"]))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def lab_page(lab: Server, browser: Any) -> Iterator[Dict[str, Any]]:
    """The lab's template-style page (it extends base.html) in headless Chromium, offline; its
    socket (io() on the default namespace, as IvoryOS's pages connect) answered once."""
    context = offline_context(browser)
    page = context.new_page()
    watch = Watch(page)
    page.goto(f"{lab.base}/ivoryos/lab_page/?token={TOKEN}")
    page.wait_for_selector("#lab")
    page.evaluate("() => socket.emit('plugin_ping', {from: 'page'})")
    page.wait_for_function("() => document.getElementById('lab').dataset.pong !== undefined")
    yield {"page": page, "watch": watch, "html": page.content()}
    context.close()


#: a library IvoryOS's base.html gives -> (its files under vendor/, what a page sees of it)
LIBRARIES = {"jquery": ("jquery/", "typeof window.jQuery"), "jquery-ui": ("jquery-ui/", "typeof window.jQuery.ui"),
             "plotly": ("plotly/", "typeof window.Plotly"), "highlight.js": ("highlight.js/", "typeof window.hljs"),
             "socket.io": ("socket.io", "typeof window.io"), "bootstrap": ("bootstrap/", "typeof window.bootstrap"),
             "bootstrap-icons": ("bootstrap-icons/", None), "every-library-of-base.html": ("", None)}


@pytest.mark.server
@pytest.mark.parametrize("library", list(LIBRARIES), ids=list(LIBRARIES))
def test_the_dev_host_s_base_html_gives_ivoryos_s_libraries(lab: Server, lab_page: Dict[str, Any],
                                                           library: str) -> None:
    prefix, seen = LIBRARIES[library]
    if seen is not None:
        assert lab_page["page"].evaluate(seen) != "undefined", f"{library} is not on the page"
    loaded = _Tags()
    loaded.feed(lab_page["html"])
    wanted = [rel for rel in ivoryos_base_libraries() if rel.startswith(prefix)]
    assert wanted, f"IvoryOS's base.html loads no {library}"
    for rel in wanted:  # each file IvoryOS's base.html loads, from the framework's own copy
        url = f"/ivoryos/plugins/static/vendor/{rel}"
        assert url in loaded.urls, f"{url} is not loaded by the page: {loaded.urls}"
        assert requests.get(lab.base + url, timeout=30).status_code == 200, url
    lab_page["watch"].assert_clean("the lab's page in the dev host")


@pytest.mark.server
@pytest.mark.parametrize("ending", list(DECK_ENDINGS), ids=list(DECK_ENDINGS))
def test_the_deck_s_main_block_instruments_exist_in_the_dev_host(tmp_path: Path, ending: str) -> None:
    server = start_lab(tmp_path, ending)
    try:
        seen = requests.get(f"{server.base}/ivoryos/lab_page/instruments?token={TOKEN}", timeout=30).json()
        assert seen == {"deck": "deck", "balance": True, "pump": True, "ivoryos_active": None}, seen
        log = server.output()
        assert " * ivoryos_plugin dev host: " in log and "Serving Flask app 'ivoryos.app'" not in log, log  # no IvoryOS
        if ending == "ivoryos_plugin.run":
            assert "the deck's ivoryos_plugin.run(...) call returns at once here" in log, log
    finally:
        server.stop()


# ------------------------------------------------------------------ 5. IvoryOS's demo mode
DEMO_DECK = '''
import os

from flask import Blueprint

from ivoryos_plugin import Plugin


class Balance:
    def weigh(self) -> float:
        return 1.5


balance = Balance()

scale = Plugin("scale", __name__, title="Scale")


@scale.route("/")
def main():
    return "scale page"


@scale.action
def weigh() -> dict:
    return {{"grams": scale.instrument("balance").weigh()}}


counter = Blueprint("counter_page", __name__)


@counter.route("/", endpoint="main")
def counter_main():
    return "counter page"


def start():
    from ivoryos.config import get_config

    settings = get_config("{mode}")
    settings.SESSION_COOKIE_SECURE = False  # served over http here: the session must come back
    port = int(os.environ["PORT"])
    if "{host}" == "ivoryos_plugin.run":
        import ivoryos_plugin
        ivoryos_plugin.run(__name__, config=settings, port=port, blueprint_plugins=[scale, counter], discover=False)
    else:
        import ivoryos
        ivoryos.run(__name__, config=settings, port=port, host="127.0.0.1", debug=False,
                    blueprint_plugins=[scale, counter])


if __name__ == "__main__":
    start()
'''
#: id -> (host, IvoryOS config, demo mode on)
DEMO_CASES = {"ivoryos_plugin.run-demo": ("ivoryos_plugin.run", "demo", True),
              "ivoryos.run-demo": ("ivoryos.run", "demo", True),
              "ivoryos_plugin.run-without-demo": ("ivoryos_plugin.run", "dev", False)}


@pytest.mark.server
@pytest.mark.parametrize("case", list(DEMO_CASES), ids=list(DEMO_CASES))
def test_demo_mode_start_up_lines_tell_the_truth_and_hardware_actions_are_refused(tmp_path: Path,
                                                                                  case: str) -> None:
    host, mode, demo = DEMO_CASES[case]
    server = launch(DEMO_DECK.format(mode=mode, host=host), tmp_path, name="deck.py")
    try:
        visitor = requests.Session()
        pages = [visitor.get(f"{server.base}/ivoryos/{name}/", allow_redirects=False, timeout=30)
                 for name in ("scale", "counter_page")]
        # demo mode: open to whoever reaches the port (what the lines must say); else a login first
        assert [p.status_code for p in pages] == ([200, 200] if demo else [302, 302]), [p.status_code for p in pages]
        session = visitor if demo else ivoryos_login(server.base)
        token = session.get(f"{server.base}/ivoryos/plugins/csrf.json", timeout=30).json()["csrf_token"]
        action = session.post(f"{server.base}/ivoryos/scale/actions/weigh", json={},
                              headers={"X-CSRFToken": token}, timeout=30)
        if demo:
            assert action.status_code == 503 and "demo mode (DEMO_MODE)" in action.json()["error"], action.text
        else:
            assert action.status_code == 200 and action.json() == {"grams": 1.5}, action.text
        lines = [line for line in server.output().splitlines() if line.startswith(" * ivoryos_plugin:")]
        said = "\n".join(lines)
        if host == "ivoryos_plugin.run" and demo:
            assert "IvoryOS demo mode (DEMO_MODE): every visitor counts as logged in" in said, said
            assert "plain Blueprint plugin(s) counter_page: open to every visitor" in said, said
            assert "need an IvoryOS login" not in said, said
            logins = [line for line in lines if "a login on every IvoryOS page" in line or "refuses anonymous" in line]
            assert len(logins) == 2 and all(line.endswith("each counts as logged in.") for line in logins), logins
        elif host == "ivoryos_plugin.run":
            assert "demo mode" not in said and "counter_page: their routes need an IvoryOS login" in said, said
    finally:
        server.stop()


# ------------------------------------------------------------------ 6. several left panels
PANELS_DECK = '''
import os

from flask import Blueprint

import ivoryos_plugin

stirrer = Blueprint("stirrer", __name__)
stirrer.plugin_type = "left_panel"


@stirrer.route("/", endpoint="widget")  # the widget at the plugin's root, as some labs route it
def stirrer_widget():
    return "<p id='w'>stirrer widget</p>"


clock = Blueprint("clock", __name__)
clock.plugin_type = "left_panel"


@clock.route("/widget")
def widget():
    return "<p id='w'>clock widget</p>"


if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]), blueprint_plugins=[stirrer, clock], discover=False)
'''


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = launch(PANELS_DECK, tmp_path_factory.mktemp("panels"), name="deck.py")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.parametrize("name,url", [("stirrer", "/ivoryos/stirrer/"), ("clock", "/ivoryos/clock/widget")],
                         ids=["widget-routed-at-root", "widget-routed-at-widget"])
def test_the_combined_left_panel_loads_each_widget_at_its_endpoint(panels: Server, name: str, url: str) -> None:
    session = ivoryos_login(panels.base)
    combined = session.get(f"{panels.base}/ivoryos/plugin_panels/widget", timeout=30)
    assert combined.status_code == 200, combined.text[:300]
    frames = dict(re.findall(r'data-plugin="(\w+)"[^>]*>\s*<summary>[^<]*</summary>\s*<iframe src="([^"]+)"',
                             combined.text))
    assert frames.get(name) == url, frames  # url_for(name + '.widget'), as IvoryOS links it
    widget = session.get(panels.base + frames[name], timeout=30)
    assert widget.status_code == 200 and f"{name} widget" in widget.text, (widget.status_code, widget.text[:200])
