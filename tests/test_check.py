"""``ivoryos-plugin check``: each mistake it looks for is caught, with a message that names the fix."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from click.testing import CliRunner

from support import ROOT
from ivoryos_plugin.tools.checks import check_path
from ivoryos_plugin.tools.cli import main

FIXTURES = ROOT / "tests" / "fixtures"
GOOD_PLUGIN = '''
from ivoryos_plugin import Plugin

plugin = Plugin("{name}", __name__{extra})


@plugin.route("/")
def main():
    return plugin.render("{name}.html")
'''
PAGE = "{% extends plugin_base %}{% block body %}hi{% endblock %}"


def make_project(root: Path, package: str, plugin_py: str, *, entry: Optional[Dict[str, str]] = None,
                 version: str = "0.1.0", dependencies: Optional[List[str]] = None, readme: Optional[str] = None,
                 templates: Optional[Dict[str, str]] = None) -> Path:
    """A plugin project folder as ``ivoryos-plugin new`` makes them, with one thing to get wrong."""
    project = root / package
    (project / package / "templates").mkdir(parents=True)
    (project / package / "__init__.py").write_text("")
    (project / package / "plugin.py").write_text(textwrap.dedent(plugin_py))
    for name, text in (templates if templates is not None else {f"{package}.html": PAGE}).items():
        (project / package / "templates" / name).write_text(text)
    entries = entry if entry is not None else {package: f"{package}.plugin:plugin"}
    deps = dependencies if dependencies is not None else ["ivoryos-plugin-framework"]
    lines = [
        "[build-system]", 'requires = ["setuptools>=61"]', 'build-backend = "setuptools.build_meta"', "",
        "[project]", f'name = "ivoryos-{package.replace("_", "-")}-plugin"', f'version = "{version}"',
        f"dependencies = {deps!r}".replace("'", '"'),
    ]
    if readme is not None:
        lines.append(f'readme = "{readme}"')
    lines += ["", '[project.entry-points."ivoryos.plugins"]']
    lines += [f'{key} = "{value}"' for key, value in entries.items()]
    lines += ["", "[tool.setuptools]", f'packages = ["{package}"]', "",
              "[tool.setuptools.package-data]", f'{package} = ["templates/*.html"]']
    (project / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return project


def run_check(path: Path) -> str:
    """Run ``ivoryos-plugin check PATH``; assert it fails (exit status 1) and return its report."""
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1, result.output
    assert "FAILED:" in result.output
    return result.output


def error_lines(output: str, check: str) -> str:
    """The ERROR lines of one check in a report."""
    lines = [line for line in output.splitlines() if line.strip().startswith("ERROR") and f" {check} " in line]
    assert lines, f"no {check} error in:\n{output}"
    return "\n".join(lines)


def test_a_correct_project_passes(tmp_path: Path) -> None:
    project = make_project(tmp_path, "chk_fine", GOOD_PLUGIN.format(name="chk_fine", extra=""))
    result = CliRunner().invoke(main, ["check", str(project)])
    assert result.exit_code == 0, result.output
    for check in ("metadata", "entry-point", "name", "endpoint", "ivoryos-version", "templates", "socketio"):
        assert any(line.split()[:1] == ["ok"] and f" {check} " in f"{line} " for line in result.output.splitlines()), check
    assert result.output.rstrip().endswith("passed: 0 errors, 0 warnings.")


@pytest.mark.parametrize("plugin_name, fix", [
    ("my-plugin", "use 'my_plugin'"),
    ("control", "choose another name, e.g. 'control_plugin'"),
    ("files", "choose another name, e.g. 'files_plugin'"),
], ids=["invalid-identifier", "reserved-ivoryos-page", "colliding-url"])
def test_bad_plugin_name(tmp_path: Path, plugin_name: str, fix: str) -> None:
    code = f'''
    from flask import Blueprint

    plugin = Blueprint("{plugin_name}", __name__)


    @plugin.route("/")
    def main():
        return "page"
    '''
    project = make_project(tmp_path, "chk_names", code, entry={plugin_name.replace("-", "_"): "chk_names.plugin:plugin"})
    assert fix in error_lines(run_check(project), "name")


def test_two_entry_points_with_the_same_plugin_name(tmp_path: Path) -> None:
    code = GOOD_PLUGIN.format(name="chk_dup", extra="") + "\nsame = plugin\n"
    project = make_project(tmp_path, "chk_dup", code, entry={"chk_dup": "chk_dup.plugin:plugin",
                                                              "chk_dup_again": "chk_dup.plugin:same"})
    assert "give the same name; rename one plugin" in error_lines(run_check(project), "name")


@pytest.mark.parametrize("placement, rule, fix", [
    ("tab", "/page", "add @plugin.route('/') def main()"),
    ("left_panel", "/", "add @plugin.route('/widget') def widget()"),
], ids=["tab-without-main", "left-panel-without-widget"])
def test_missing_nav_endpoint(tmp_path: Path, placement: str, rule: str, fix: str) -> None:
    code = f'''
    from ivoryos_plugin import Plugin

    plugin = Plugin("chk_endpoint", __name__, placement="{placement}")


    @plugin.route("{rule}")
    def page():
        return plugin.render("chk_endpoint.html")
    '''
    assert fix in error_lines(run_check(make_project(tmp_path, "chk_endpoint", code)), "endpoint")


@pytest.mark.parametrize("templates, fix", [
    ({"other.html": PAGE}, "create "),
    ({"chk_tmpl.html": "{% extends 'layout.html' %}"}, "use {% extends plugin_base %} for the page frame, or create layout.html"),
    ({"chk_tmpl.html": "{% block body %}"}, "fix the template"),
], ids=["rendered-template-missing", "extended-template-missing", "template-syntax-error"])
def test_templates_that_do_not_exist(tmp_path: Path, templates: Dict[str, str], fix: str) -> None:
    project = make_project(tmp_path, "chk_tmpl", GOOD_PLUGIN.format(name="chk_tmpl", extra=""), templates=templates)
    message = error_lines(run_check(project), "templates")
    assert fix in message
    if "create " == fix:
        assert "'chk_tmpl.html'" in message and "other.html" in message and "plugin.py:" in message


@pytest.mark.parametrize("value, fix", [
    ("chk_ep.plugn:plugin", "check the module path"),
    ("chk_ep.plugin:plugn", "point the entry point at the plugin object"),
    ("chk_ep.plugin", "point it at 'chk_ep.plugin:plugin'"),
], ids=["module-typo", "attribute-typo", "module-not-object"])
def test_entry_point_that_does_not_resolve(tmp_path: Path, value: str, fix: str) -> None:
    project = make_project(tmp_path, "chk_ep", GOOD_PLUGIN.format(name="chk_ep", extra=""), entry={"chk_ep": value})
    assert fix in error_lines(run_check(project), "entry-point")


def test_import_error_at_import_is_reported_not_raised(tmp_path: Path) -> None:
    output = run_check(FIXTURES / "broken_import")
    assert "simulated import failure" in error_lines(output, "entry-point")


@pytest.mark.parametrize("kwargs, fix", [
    ({"version": "one"}, 'use e.g. version = "0.1.0"'),
    ({"readme": "README.md"}, "create README.md or remove the readme line"),
    ({"dependencies": ["flask"]}, 'add "ivoryos-plugin-framework" to [project] dependencies'),
    ({"dependencies": ["ivoryos-plugin"]}, "the official IvoryOS plugin template's distribution name"),
], ids=["invalid-version", "readme-missing", "undeclared-dependency", "the-template's-name"])
def test_invalid_metadata(tmp_path: Path, kwargs: Dict[str, object], fix: str) -> None:
    project = make_project(tmp_path, "chk_meta", GOOD_PLUGIN.format(name="chk_meta", extra=""), **kwargs)  # type: ignore[arg-type]
    assert fix in error_lines(run_check(project), "metadata")


def test_templates_left_out_of_the_wheel_are_a_warning(tmp_path: Path) -> None:
    project = make_project(tmp_path, "chk_wheel", GOOD_PLUGIN.format(name="chk_wheel", extra=""))
    text = (project / "pyproject.toml").read_text().replace('[tool.setuptools.package-data]\nchk_wheel = ["templates/*.html"]\n', "")
    (project / "pyproject.toml").write_text(text)
    report = check_path(project)
    assert not report.errors
    assert [w.check for w in report.warnings] == ["metadata"]
    assert 'add [tool.setuptools.package-data] chk_wheel = ["templates/*.html"]' in report.warnings[0].message


@pytest.mark.parametrize("extra, dependencies, fix", [
    (', min_ivoryos="99.0"', ["ivoryos-plugin-framework"], "pip install 'ivoryos>=99.0'"),
    ("", ["ivoryos-plugin-framework", "ivoryos>=99,<100"], "pip install 'ivoryos>=99,<100'"),
], ids=["min_ivoryos", "package-requirement"])
def test_incompatible_ivoryos_version(tmp_path: Path, extra: str, dependencies: List[str], fix: str) -> None:
    project = make_project(tmp_path, "chk_version", GOOD_PLUGIN.format(name="chk_version", extra=extra),
                           dependencies=dependencies)
    assert fix in error_lines(run_check(project), "ivoryos-version")


@pytest.mark.parametrize("code", [
    '''
    from flask import Blueprint

    plugin = Blueprint("chk_sock", __name__)


    def init_socketio(socketio):
        @socketio.on("connect")
        def connected():
            pass


    plugin.init_socketio = init_socketio


    @plugin.route("/")
    def main():
        return "page"
    ''',
    '''
    from flask import Blueprint
    from flask_socketio import SocketIO

    plugin = Blueprint("chk_sock", __name__)
    socketio = SocketIO()


    @socketio.on("status")
    def status():
        return "ok"


    @plugin.route("/")
    def main():
        return "page"
    ''',
], ids=["init_socketio-handler", "module-level-handler"])
def test_default_namespace_socket_handlers(tmp_path: Path, code: str) -> None:
    message = error_lines(run_check(make_project(tmp_path, "chk_sock", code)), "socketio")
    assert "namespace='/ivoryos/chk_sock'" in message and "@plugin.on(...)" in message


def test_plugin_handlers_in_their_own_namespace_pass(tmp_path: Path) -> None:
    code = GOOD_PLUGIN.format(name="chk_own", extra="") + '''

@plugin.on("ping")
def ping(data):
    return data
'''
    report = check_path(make_project(tmp_path, "chk_own", code))
    assert report.errors == [] and report.warnings == []


def test_the_upstream_template_style_is_checked(tmp_path: Path) -> None:
    output = run_check(FIXTURES / "upstream_plain")
    assert "init_socketio handles 'connect' on the default namespace" in error_lines(output, "socketio")
    assert " ERROR " not in output.replace(error_lines(output, "socketio"), "")


def test_check_leaves_no_plugin_module_imported(tmp_path: Path) -> None:
    import sys

    check_path(make_project(tmp_path, "chk_clean", GOOD_PLUGIN.format(name="chk_clean", extra="")))
    assert not [name for name in sys.modules if name.startswith("chk_clean")]


def test_a_module_file_without_a_project(tmp_path: Path) -> None:
    module = tmp_path / "chk_loose.py"
    module.write_text(textwrap.dedent(GOOD_PLUGIN.format(name="chk_loose", extra="")))
    report = check_path(module)
    assert [e.check for e in report.errors] == ["templates"]
    assert any("ivoryos-plugin new NAME" in w.message for w in report.warnings)


def test_check_needs_a_path_or_installed() -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2 and "give a PATH or --installed" in result.output


def test_the_socketio_touch_reads_a_real_flask_socketio_and_says_when_it_cannot() -> None:
    from flask_socketio import SocketIO

    from ivoryos_plugin.runtime.libraries import pending_socketio_handlers

    server = SocketIO()
    server.on("connect")(lambda: None)
    server.on("tick", namespace="/ivoryos/x")(lambda: None)
    assert pending_socketio_handlers(server) == ([("connect", "/"), ("tick", "/ivoryos/x")], [])
    server.handlers = {}  # as if Flask-SocketIO kept them another way: no guess, the caller reads the sources
    assert pending_socketio_handlers(server) is None
