"""``ivoryos-plugin migrate`` on eight packages written in the styles of real public template-style
IvoryOS plugins (tests/fixtures/real_style: their patterns, not their code): each is migrated by
the real CLI, passes ``ivoryos-plugin check``, passes its generated tests (pytest in a process of
its own), and is served by one real IvoryOS subprocess (``ivoryos_plugin.run``, the packages
pip-installed): its pages and static files answer 200 and a real python-socketio client gets
answers from the handlers that were ``@socketio.on(...)`` / ``@_socketio.on(...)``. The report
says what changed and what could not be converted; nothing changes behaviour without a line.

The styles: the official plugin template (``static_folder=``, ``url_for('plugin.static')``),
its README snippets (a left panel, ``init_socketio(_socketio)``), an older template (setup.py,
module-form entry point, ``GlobalConfig``), ivoryos-demo (``URL_PREFIX``, ``try: base_exists``,
a docs plugin serving a raw static page), colour-match-sdl 0.1.9 (three plugins, ``_socketio``, a
plotly 3.2 page), a barista demo (``global socketio; socketio = _socketio``,
``getattr(global_state.deck, "__name__", "deck")``), a PyLabRobot deck's plugin (a ``/plr``
namespace, ``on_event``, acks, plotly 2.31.1) and a real lab deck's plugin (a deck alias,
``@socketio.event``, ``emit(..., broadcast=True)``, dead imports)."""
from __future__ import annotations

import ast
import filecmp
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from installing import child_venv, copy_projects, pip, pip_args
from support import ROOT, Server, Viewer, cookie_header, ivoryos_login, start_process

FIXTURES = ROOT / "tests" / "fixtures" / "real_style"


@dataclass
class Live:
    """One live exchange: ``event`` sent with ``data`` to ``plugin``'s namespace; the answer is the
    event ``answer`` (or, when None, the ack), and must contain ``expect``."""

    plugin: str
    event: str
    data: Any
    answer: Optional[str]
    expect: Dict[str, Any]


@dataclass
class Style:
    """A package style: the fixture folder, the new name, what is served and said."""

    folder: str
    name: str
    #: page path after /ivoryos/ -> a marker the page holds (each plugin's page, and others)
    pages: Dict[str, str]
    #: (static file URL after /ivoryos/, text the file holds)
    static: Tuple[str, str]
    live: List[Live]
    #: what the report must say (each a substring of one line)
    said: List[str] = field(default_factory=list)

    @property
    def plugins(self) -> int:
        """How many plugins the package has (one per live namespace or page of its own)."""
        return len({path.split("/")[0] for path in self.pages})


STYLES: Dict[str, Style] = {s.folder: s for s in [
    Style("official_template", "rs_template", {"rs_template/": 'id="plugin-template"'},
          ("rs_template/static/style.css", "#6f42c1"),
          [Live("rs_template", "plugin_ping", {}, "plugin_pong", {"message": "pong from the plugin template"})],
          ['static_folder=os.path.join(os.path.dirname(__file__), "static") dropped',
           "url_for('plugin.…') -> url_for('rs_template.…')",
           "imports the new code no longer uses removed: Blueprint, current_app, render_template"]),
    Style("readme_snippets", "rs_notes", {"rs_notes/widget": "Bench notes"},
          ("rs_notes/static/notes.js", "IvoryPlugin.connect().socket"),
          [Live("rs_notes", "note_add", {"text": "stir overnight"}, "notes",
                {"notes": ["Calibrate the balance on Mondays.", "stir overnight"]}),
           Live("rs_notes", "notes_get", {}, None, {"notes": ["Calibrate the balance on Mondays.", "stir overnight"]})],
          ["Socket.IO handlers ['note_add', 'notes_get'] are in the plugin's namespace",
           'static_folder="static" and static_url_path="/static" dropped',
           "rs_notes/static/notes.js: io(...) -> IvoryPlugin.connect().socket"]),
    Style("module_entry", "rs_logbook", {"rs_logbook/": 'id="logbook"'},
          ("rs_logbook/static/logbook.css", "monospace"),
          [Live("rs_logbook", "logbook_add", {"text": "started"}, "logbook_saved", {"count": 1, "reading": 21.5})],
          ["entry point rs_logbook = rs_logbook.logbook:logbook", "GlobalConfig",
           "jquery from the CDN -> the framework's local copy 3.7.1 (the page asked for 3.6.0: same major version)"]),
    Style("ivoryos_demo", "rs_demo", {"rs_demo/": 'id="dashboard"', "docs/": "{{ name }}"},
          ("docs/static/docs/docs.css", "#b02a37"),
          [Live("rs_demo", "dashboard_refresh", None, "dashboard_state",
                {"instruments": ["coffee_machine", "colour_sensor", "hotplate", "lh", "thermometer"]})],
          ["URLs /ivoryos/dashboard/… -> /ivoryos/rs_demo/…", "docs.send_static_file(...) -> send_from_directory",
           "rs_demo/static/docs/index.html: not a template (it is served as a file), so left as it was",
           "vars(global_state.deck) -> dashboard.instruments: it now lists or finds only the deck's instruments"]),
    Style("colour_match", "rs_colour", {"rs_colour/": 'id="mixer"', "colour_plot/": 'id="plot3d"',
                                        "colour_status/widget": "colours tried"},
          ("colour_plot/static/plot3d.js", "IvoryPlugin.connect().socket"),
          [Live("rs_colour", "mix", {"r": 120, "g": 80, "b": 200}, "mixed",
                {"measured": {"r": 118, "g": 82, "b": 199}}),
           Live("colour_plot", "request_points", None, "points", {"points": [
               {"r": 200, "g": 40, "b": 40}, {"r": 30, "g": 180, "b": 90}, {"r": 118, "g": 82, "b": 199}]}),
           Live("colour_status", "status_get", None, None, {"tried": 3})],
          ["the Blueprint 'colour_plot' (plugins/plot3d.py) is the plugin 'colour_plot'",
           "https://cdn.plot.ly/plotly-3.2.0.min.js was kept", "the framework's local copy is 2.31.1",
           "url_for('colour_plot.static', filename='...')"]),
    Style("barista", "rs_barista", {"rs_barista/": 'id="barista"'},
          ("rs_barista/static/barista.css", "#6f4e37"),
          [Live("rs_barista", "brew", {"drink": "latte"}, "brewed", {"cup": "one latte", "deck": "__main__"})],
          ["getattr(deck, '__name__') is the deck module's own, not an instrument",
           "Socket.IO handlers ['brew'] are in the plugin's namespace"]),
    Style("pylabrobot", "rs_plr", {"rs_plr/": 'id="plr-deck"', "rs_plr/visualizer": 'id="visualizer"'},
          ("rs_plr/static/plr.css", "sans-serif"),
          [Live("rs_plr", "deck_state", {}, None, {"resources": ["tip_rack", "plate"]}),
           Live("rs_plr", "aspirate", {"volume": 5}, None, {"aspirated": 5.0})],
          ["the event 'deck_state' was handled in the namespace '/plr'",
           "plotly.js from the CDN -> the framework's local copy 2.31.1",
           "rs_plr/static/visualizer.html: served as a file, not a template, so it was left as it was; its io(...)"]),
    Style("lab_deck", "rs_lab", {"rs_lab/": 'id="lab-monitor"'},
          ("rs_lab/static/monitor.css", "tabular-nums"),
          [Live("rs_lab", "hotplate_set", {"celsius": 60}, "hotplate_target", {"celsius": 60.0}),
           Live("rs_lab", "hotplate_status", None, "hotplate", {"celsius": 60.0})],
          ["emit(..., broadcast=True) -> monitor.publish(...)",
           "imports the new code no longer uses removed: Blueprint, current_app, render_template, request",
           "`print(\"lab monitor: Socket.IO ready\")`: a statement of init_socketio that is not a @socketio.on handler"
           " was left out"]),
]}
IDS = list(STYLES)

DECK = '''
"""One lab deck with the instruments the eight migrated plugins read."""
import os

import ivoryos_plugin


class Thermometer:
    def read(self):
        return 21.5


class ColourSensor:
    def read_rgb(self):
        return {"r": 118, "g": 82, "b": 199}


class CoffeeMachine:
    def brew(self, drink="espresso"):
        return f"one {drink}"


class LiquidHandler:
    def summary(self):
        return ["tip_rack", "plate"]

    def aspirate(self, volume=10.0):
        return float(volume)


class Hotplate:
    def __init__(self):
        self.temperature = 25.0

    def set_temperature(self, celsius):
        self.temperature = float(celsius)


thermometer = Thermometer()
colour_sensor = ColourSensor()
coffee_machine = CoffeeMachine()
lh = LiquidHandler()
hotplate = Hotplate()

if __name__ == "__main__":
    ivoryos_plugin.run(__name__, port=int(os.environ["PORT"]))
'''


def clean_env() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_"))}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "ivoryos_plugin.tools.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=clean_env(), stdin=subprocess.DEVNULL)


@dataclass
class Migrated:
    root: Path
    sources: Dict[str, Path]
    reports: Dict[str, subprocess.CompletedProcess]
    #: the generated tests, running: style -> (process, its output file)
    runs: Dict[str, Tuple[subprocess.Popen, Path]]

    def project(self, style: str) -> Path:
        return self.root / STYLES[style].name

    def report(self, style: str) -> str:
        return self.reports[style].stdout


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migrated]:
    """The eight styles copied and migrated by the real CLI; their generated tests started at once
    (each pytest in a process of its own, with its own temp folder), collected by the test."""
    root = tmp_path_factory.mktemp("realstyle")
    sources = dict(zip(IDS, copy_projects([FIXTURES / s for s in IDS], root / "sources")))
    (root / "out").mkdir()
    reports = {s: cli("migrate", str(sources[s]), "--name", STYLES[s].name, "--dir", str(root), cwd=root / "out")
               for s in IDS}
    runs: Dict[str, Tuple[subprocess.Popen, Path]] = {}
    for style, report in reports.items():
        if report.returncode != 0:
            continue
        log = root / f"{style}.pytest.log"
        with open(log, "wb") as handle:
            runs[style] = (subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                 str(root / f"{style}.basetemp")], cwd=root / STYLES[style].name, env=clean_env(), stdout=handle,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log)
    yield Migrated(root, sources, reports, runs)
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# ------------------------------------------------------------------ what the source had, what the output has
def handled_events(package: Path, on_plugin: bool = False) -> Dict[str, List[str]]:
    """Module file name -> the Socket.IO events its code handles: ``@x.on("e")``, ``@x.event``,
    ``x.on_event("e", f)`` (the connection events left out: the framework handles those);
    ``on_plugin``: only those handled by the module's ``Plugin``."""
    found: Dict[str, List[str]] = {}
    for file in sorted(package.rglob("*.py")):
        events = []
        tree = ast.parse(file.read_text())
        plugins = {t.id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                   and getattr(n.value.func, "id", "") == "Plugin" for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if on_plugin and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.attr in ("on", "event", "on_event") and node.value.id not in plugins:
                return {"(a handler on another object than the Plugin)": [ast.unparse(node)]}
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Attribute) and deco.attr == "event":
                        events.append(node.name)
                    elif (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "on"
                          and deco.args and isinstance(deco.args[0], ast.Constant)):
                        events.append(deco.args[0].value)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "on_event"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                events.append(node.args[0].value)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and isinstance(node.func.func, ast.Attribute)
                  and node.func.func.attr == "on" and node.func.args and isinstance(node.func.args[0], ast.Constant)):
                events.append(node.func.args[0].value)
        events = sorted(e for e in events if e not in ("connect", "disconnect"))
        if events:
            found[file.name] = events
    return found


@pytest.mark.parametrize("style", IDS)
def test_migrate_converts_the_package_and_says_what_it_did(migrated: Migrated, style: str) -> None:
    report = migrated.reports[style]
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stdout + report.stderr
    assert not filecmp.dircmp(FIXTURES / style, migrated.sources[style]).diff_files, "migrate changed the source"
    project, name = migrated.project(style), STYLES[style].name
    source_package = next(p.parent for p in migrated.sources[style].glob("*/__init__.py"))
    # every handler of the original answers in the new package: none dropped
    assert handled_events(project / name, on_plugin=True) == handled_events(source_package), report.stdout
    for file in (project / name).rglob("*.py"):
        code = file.read_text()
        tree = ast.parse(code)  # it parses (no IndentationError)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Plugin"]
        assert all(k.arg not in ("static_folder", "static_url_path") for c in calls for k in c.keywords), file
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not names & {"Blueprint", "init_socketio", "base_exists", "plugin_type"}, (file, code)
        if not calls:
            continue
        # no import the new plugin module does not use
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        imported = {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                    and getattr(n, "module", "") != "__future__" for a in n.names}
        assert imported <= used, (file, imported - used)
    # each template's socket is the plugin's connection (io() would reach IvoryOS's default namespace)
    io_call = re.compile(r"(?<![\w.$])io(?:\.connect)?\s*\(")
    for page in source_package.rglob("templates/*.html"):
        new_page = (project / name / page.relative_to(source_package)).read_text()
        assert not io_call.search(new_page), page
        assert new_page.count("IvoryPlugin.connect().socket") == len(io_call.findall(page.read_text())), page
    lines = report.stdout.splitlines()
    for said in STYLES[style].said:
        assert any(said in line for line in lines), (said, report.stdout)
    notes = report.stdout.partition("To do or check by hand:")[2]
    assert "left out; put it in an @plugin.on_start" not in notes or style == "lab_deck", notes


def test_the_conversions_the_styles_needed(migrated: Migrated) -> None:
    """One assertion per failure seen on the real packages."""
    def text(style: str, *parts: str) -> str:
        return migrated.project(style).joinpath(STYLES[style].name, *parts).read_text()

    # url_for('<old name>.static') follows the new name
    assert "url_for('rs_template.static', filename='style.css')" in text("official_template", "templates",
                                                                          "example.html")
    # the docs plugin's try/except base_exists went, as a whole
    assert not [n for n in ast.walk(ast.parse(text("ivoryos_demo", "dashboard.py"))) if isinstance(n, ast.Try)]
    # a raw page served as a file is left byte for byte (no Jinja written into it)
    for style, raw in (("ivoryos_demo", ("static", "docs", "index.html")),
                       ("pylabrobot", ("static", "visualizer.html"))):
        original = next(migrated.sources[style].glob("*/__init__.py")).parent.joinpath(*raw).read_bytes()
        assert migrated.project(style).joinpath(STYLES[style].name, *raw).read_bytes() == original
    # a plotly of another version is kept; the same version is served locally
    plot = text("colour_match", "plugins", "templates", "plot3d.html")
    assert '<script src="https://cdn.plot.ly/plotly-3.2.0.min.js" charset="utf-8"></script>' in plot
    assert "vendor/plotly" not in plot
    assert "{{ url_for('plugins.static', filename='vendor/plotly/plotly.min.js') }}" in text(
        "pylabrobot", "templates", "plr_deck.html")
    # the deck module's own name is still read from the deck, with a note
    assert 'getattr(global_state.deck, "__name__", "deck")' in text("barista", "plugin.py")
    # a handler's emit still answers the sender; a broadcast is a publish
    lab = text("lab_deck", "plugin.py")
    assert 'emit("hotplate", {"celsius": monitor.instrument(\'hotplate\').temperature' in lab
    assert 'monitor.publish("hotplate_target", {"celsius": celsius})' in lab
    assert "@monitor.on('hotplate_status')" in lab and "import request" not in lab and "import time" in lab
    # several plugins: one entry point each, the first under --name, the others keep their names
    pyproject = migrated.project("colour_match").joinpath("pyproject.toml").read_text()
    assert ('rs_colour = "rs_colour.plugins.mixer:mixer_bp"\ncolour_plot = "rs_colour.plugins.plot3d:plot_bp"\n'
            'colour_status = "rs_colour.plugins.status:status_bp"') in pyproject
    assert '"plugins/static/**/*"' in pyproject and '"plugins/templates/**/*"' in pyproject


@pytest.mark.parametrize("style", IDS)
def test_the_migrated_package_passes_check(migrated: Migrated, style: str) -> None:
    result = cli("check", str(migrated.project(style)), cwd=migrated.root / "out")
    assert result.returncode == 0 and "passed: 0 errors" in result.stdout, result.stdout + result.stderr
    # each plugin registered on a scratch app
    assert len(re.findall(r"^  ok +\w+ +register$", result.stdout, re.M)) == STYLES[style].plugins, result.stdout


@pytest.mark.parametrize("style", IDS)
def test_the_generated_tests_pass(migrated: Migrated, style: str) -> None:
    proc, log = migrated.runs[style]
    proc.wait(timeout=300)
    output = log.read_text(errors="replace")
    assert proc.returncode == 0 and f"{4 * STYLES[style].plugins + 1} passed" in output, output[-4000:]


# ------------------------------------------------------------------ one real IvoryOS for all eight
@pytest.fixture(scope="module")
def served(migrated: Migrated) -> Iterator[Server]:
    """The eight migrated packages pip-installed (editable) in a child virtualenv, discovered and
    served by one ``ivoryos_plugin.run`` deck (a real IvoryOS subprocess)."""
    python = child_venv(migrated.root / "venv")
    projects = [str(migrated.project(s)) for s in IDS]
    pip(str(python), ["install", *pip_args(), *[arg for p in projects for arg in ("-e", p)]])
    folder = migrated.root / "ivoryos"
    folder.mkdir()
    (folder / "lab_deck.py").write_text(DECK)
    server = start_process([str(python), "lab_deck.py"], folder, "lab_deck.log")
    yield server
    server.stop()


def contains(got: Any, expect: Any) -> bool:
    if isinstance(expect, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v) for k, v in expect.items())
    return bool(got == expect)


@pytest.mark.server
@pytest.mark.parametrize("style", IDS)
def test_a_real_ivoryos_serves_the_pages_files_and_live_events(served: Server, migrated: Migrated,
                                                               style: str) -> None:
    spec = STYLES[style]
    session = ivoryos_login(served.base)
    for path, marker in spec.pages.items():
        page = session.get(f"{served.base}/ivoryos/{path}")
        assert page.status_code == 200 and marker in page.text, (path, page.status_code, page.text[-1500:])
    url, holds = spec.static
    asset = session.get(f"{served.base}/ivoryos/{url}")
    assert asset.status_code == 200 and holds in asset.text, (url, asset.status_code)
    viewers: Dict[str, Viewer] = {}
    try:
        for live in spec.live:
            if live.plugin not in viewers:
                viewers[live.plugin] = Viewer(served.base, f"/ivoryos/{live.plugin}", cookie=cookie_header(session),
                                              timeout=10)
            viewer = viewers[live.plugin]
            if live.answer is None:
                got = viewer.sio.call(live.event, live.data, namespace=viewer.namespace, timeout=10)
            else:
                before = len(viewer.got(live.answer))
                viewer.sio.emit(live.event, live.data, namespace=viewer.namespace)
                got = viewer.wait_for(live.answer, count=before + 1)[-1]
            assert contains(got, live.expect) and not (isinstance(got, dict) and got.get("ok") is False), (
                live.event, got)
    finally:
        for viewer in viewers.values():
            viewer.close()


@pytest.mark.server
def test_inside_ivoryos_the_pages_are_what_the_originals_meant(served: Server) -> None:
    session = ivoryos_login(served.base)
    base = served.base
    template = session.get(f"{base}/ivoryos/rs_template/").text
    assert 'href="/ivoryos/rs_template/static/style.css"' in template and "navbar" in template
    demo = session.get(f"{base}/ivoryos/rs_demo/").text
    assert 'fetch("/ivoryos/rs_demo/status")' in demo
    assert session.get(f"{base}/ivoryos/rs_demo/status").json() == {"deck": True}
    docs = session.get(f"{base}/ivoryos/docs/").text
    assert "{{ name }}" in docs and "https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css" in docs
    plot = session.get(f"{base}/ivoryos/colour_plot/").text
    assert "https://cdn.plot.ly/plotly-3.2.0.min.js" in plot and "/ivoryos/colour_plot/static/plot3d.js" in plot
    plr = session.get(f"{base}/ivoryos/rs_plr/").text
    assert "/ivoryos/plugins/static/vendor/plotly/plotly.min.js" in plr and "cdn.plot.ly" not in plr
    assert session.get(f"{base}/ivoryos/plugins/static/vendor/plotly/plotly.min.js").status_code == 200
    barista = session.get(f"{base}/ivoryos/rs_barista/").text
    assert re.search(r'id="deck-name">__main__<', barista), barista[-2000:]
    mixer = session.get(f"{base}/ivoryos/rs_colour/").text
    assert 'href="/ivoryos/colour_plot/"' in mixer


# ------------------------------------------------------------------ check catches what cannot register
STATIC_PLUGIN = '''"""A Plugin given static_folder=, as migrate used to write it."""
import os

from ivoryos_plugin import Plugin

plugin = Plugin("static_twice", __name__, title="Static twice",
                static_folder=os.path.join(os.path.dirname(__file__), "static"))


@plugin.route("/")
def main():
    return "<p>hello</p>"
'''


def test_check_fails_a_plugin_whose_static_folder_cannot_register(tmp_path: Path) -> None:
    project = tmp_path / "static_twice_project"
    (project / "static_twice" / "static").mkdir(parents=True)
    (project / "static_twice" / "__init__.py").write_text("")
    (project / "static_twice" / "plugin.py").write_text(STATIC_PLUGIN)
    (project / "static_twice" / "static" / "a.css").write_text("p { }\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=62.3"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\n'
        'name = "static-twice"\nversion = "0.1.0"\ndependencies = ["ivoryos-plugin-framework"]\n\n'
        '[project.entry-points."ivoryos.plugins"]\nstatic_twice = "static_twice.plugin:plugin"\n')
    result = cli("check", str(project), cwd=tmp_path)
    errors = [line for line in result.stdout.splitlines() if line.strip().startswith("ERROR")]
    assert result.returncode == 1 and len(errors) == 1, result.stdout + result.stderr
    assert " register " in errors[0] and "second 'static_twice.static' endpoint" in errors[0]
    assert "remove static_folder=" in errors[0]
    # the same plugin registered for real fails as check said
    from flask import Flask

    sys.path.insert(0, str(project))
    try:
        from static_twice.plugin import plugin

        with pytest.raises(AssertionError, match="static_twice.static"):
            Flask("real").register_blueprint(plugin, url_prefix="/ivoryos/static_twice")
    finally:
        sys.path.remove(str(project))
        for key in [k for k in sys.modules if k.split(".")[0] == "static_twice"]:
            del sys.modules[key]


def test_the_local_library_versions_are_those_npm_installs() -> None:
    """migrate swaps a CDN URL for a local copy by version: the versions it knows must be the
    ones package.json installs."""
    from ivoryos_plugin.tools.migrate.pages import LIBRARIES

    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]
    npm = {"socket.io": "socket.io-client", "bootstrap": "bootstrap", "bootstrap-icons": "bootstrap-icons",
           "jquery-ui": "jquery-ui", "jquery": "jquery", "plotly.js": "plotly.js-dist-min",
           "highlight.js": "@highlightjs/cdn-assets", "sortablejs": "sortablejs"}
    assert {(lib.name, lib.version) for lib in LIBRARIES} == {(name, wanted[npm[name]]) for name in npm}
