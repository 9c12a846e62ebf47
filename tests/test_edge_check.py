"""``ivoryos-plugin check`` warns about what ivoryos-edge cannot serve (issue 26), one WARNING line per
feature naming the plugin and the fix, and what it warns about is what the edge really does."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Blueprint, g

from ivoryos_plugin import Plugin
from ivoryos_plugin.tools.cli import main
from support import ROOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GAPS_PLUGIN = '''
from flask import Blueprint, g

from ivoryos_plugin import Plugin


class LegacyPlugin(Plugin):
    def init_socketio(self, socketio):
        socketio.on_event("legacy", lambda: "ok", namespace="/legacy")


plugin = LegacyPlugin("{name}", __name__)


@plugin.route("/")
def main():
    return plugin.render("{name}.html")


@plugin.before_request
def stamp():
    g.stamped = True


@plugin.before_app_request
def everywhere():
    g.everywhere = True


plugin.record_once(lambda state: state.app.add_url_rule("/outside", "outside", lambda: "outside"))

child = Blueprint("child", __name__)


@child.route("/child")
def child_page():
    return "child"


plugin.register_blueprint(child)
'''
BASE_PAGE = '{% extends "base.html" %}{% block body %}hi{% endblock %}'
GOOD_PLUGIN = '''
from ivoryos_plugin import Plugin

plugin = Plugin("{name}", __name__)


@plugin.route("/")
def main():
    return plugin.render("{name}.html")
'''
PLAIN_PLUGIN = '''
from flask import Blueprint

plugin = Blueprint("{name}", __name__)


@plugin.route("/")
def main():
    return "page"
'''


def project(root: Path, name: str, code: str, page: str = "{% extends plugin_base %}{% block body %}hi{% endblock %}") -> Path:
    """A pip-installable plugin project as ``ivoryos-plugin new`` makes one."""
    folder = root / name
    (folder / name / "templates").mkdir(parents=True)
    (folder / name / "__init__.py").write_text("")
    (folder / name / "plugin.py").write_text(textwrap.dedent(code.format(name=name)))
    (folder / name / "templates" / f"{name}.html").write_text(page)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f'''\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ivoryos-{name.replace("_", "-")}-plugin"
        version = "0.1.0"
        dependencies = ["ivoryos-plugin-framework"]

        [project.entry-points."ivoryos.plugins"]
        {name} = "{name}.plugin:plugin"

        [tool.setuptools]
        packages = ["{name}"]

        [tool.setuptools.package-data]
        {name} = ["templates/*.html"]
        '''))
    return folder


#: what check says of the edge, and what the edge does, can only be seen with the [edge] extra installed
# (without it, check says "not checked" and how to install it: tests/test_edge_absent.py)
needs_edge = pytest.mark.skipif(importlib.util.find_spec("ivoryos_edge") is None,
                                reason="ivoryos-edge is not installed: pip install 'ivoryos-plugin-framework[edge]'")


def edge_lines(output: str, level: str) -> list:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(level) and " edge " in line]


@needs_edge
def test_check_warns_once_per_feature_the_edge_cannot_serve(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(project(tmp_path, "chk_gaps", GAPS_PLUGIN, BASE_PAGE))])
    assert result.exit_code == 0, result.output  # warnings: IvoryOS 1.x serves all of it
    warnings = edge_lines(result.output, "WARNING")
    expected = [
        ("@plugin.before_request hook(s) stamp do not run on ivoryos-edge", "do that work in the view"),
        ("route(s) outside are added to the app itself (record/record_once)", "declare them with @plugin.route"),
        ("app-wide hook(s) everywhere (before_app_request/after_app_request) do not run", "in the plugin's views"),
        ("nested Blueprint(s) child are not served on ivoryos-edge", "declare their routes on the plugin itself"),
        ("its own init_socketio is never called on ivoryos-edge", "@plugin.on(...)"),
        ("template 'chk_gaps.html' uses base.html, IvoryOS 1.x's page", "{% extends plugin_base %}"),
    ]
    assert len(warnings) == len(expected), "\n".join(warnings)
    for (what, fix), line in zip(expected, warnings):
        assert line.startswith("WARNING  chk_gaps") and "Plugin 'chk_gaps': " in line, line
        assert what in line and fix in line and line.endswith("(on ivoryos-edge only; IvoryOS 1.x serves it)."), line
    assert result.output.rstrip().endswith(f"passed: 0 errors, {len(expected)} warnings.")


@needs_edge
def test_a_plugin_the_edge_serves_whole_gets_an_ok_edge_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(project(tmp_path, "chk_whole", GOOD_PLUGIN))])
    assert result.exit_code == 0, result.output
    assert edge_lines(result.output, "ok") == ["ok       chk_whole          edge             ivoryos-edge serves it too"]
    assert result.output.rstrip().endswith("passed: 0 errors, 0 warnings.")


@needs_edge
def test_a_plain_blueprint_is_not_served_on_the_edge(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(project(tmp_path, "chk_plain_edge", PLAIN_PLUGIN))])
    warnings = edge_lines(result.output, "WARNING")
    assert len(warnings) == 1 and "Plugin 'chk_plain_edge' is a plain Flask Blueprint, which ivoryos-edge refuses" \
        in warnings[0] and "ivoryos-plugin migrate" in warnings[0], result.output


# ------------------------------------------------------------------ the warnings are what the edge does
gaps = Plugin("edge_gaps", __name__, template_folder=str(ROOT / "tests" / "fixtures" / "edge_gaps" / "templates"))


@gaps.route("/", endpoint="main")
def gaps_main() -> str:
    return f"stamped={g.get('stamped')}"


@gaps.route("/page")
def gaps_page() -> str:
    return gaps.render("edge_gaps_page.html")


@gaps.before_request
def gaps_stamp() -> None:
    g.stamped = True


gaps.record_once(lambda state: state.app.add_url_rule(f"{state.url_prefix}-outside", "edge_gaps_outside",
                                                      lambda: "outside"))
gaps_child = Blueprint("gaps_child", __name__)


@gaps_child.route("/child")
def gaps_child_page() -> str:
    return "child"


gaps.register_blueprint(gaps_child)


@pytest.fixture
def plugin() -> Plugin:
    return gaps


@needs_edge
def test_what_check_warns_about_is_what_the_edge_does(plugin_host: Any) -> None:
    from ivoryos_plugin.hosts.edge import unsupported

    warned = unsupported(gaps)
    assert len(warned) == 4 and all(w.startswith("Plugin 'edge_gaps': ") for w in warned), warned
    client = plugin_host.client
    on_edge = plugin_host.name == "edge"
    page = client.get(plugin_host.url())
    assert page.status_code == 200
    assert page.get_data(as_text=True) == ("stamped=None" if on_edge else "stamped=True")  # the before_request hook
    outside = client.get(plugin_host.prefix + "-outside")  # the route the plugin adds to the app itself
    assert outside.status_code == (404 if on_edge else 200)
    child = client.get(plugin_host.url("child"))  # the nested Blueprint's route
    assert child.status_code == (404 if on_edge else 200)
    based = client.get(plugin_host.url("page"))  # a template on IvoryOS's base.html
    assert based.status_code == (500 if on_edge else 200)
