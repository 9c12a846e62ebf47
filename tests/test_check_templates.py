"""``ivoryos-plugin check`` knows the framework's own templates: a plugin page that includes one
passes, a misspelt one is named (the check reads them from the package's templates/ folder)."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from test_check import GOOD_PLUGIN, error_lines, make_project, run_check

from ivoryos_plugin.tools.cli import main


def page_including(name: str) -> str:
    return "{% extends plugin_base %}{% block body %}{% include '" + name + "' %}{% endblock %}"


def test_a_page_including_a_framework_template_passes(tmp_path: Path) -> None:
    project = make_project(tmp_path, "chk_framework", GOOD_PLUGIN.format(name="chk_framework", extra=""),
                           templates={"chk_framework.html": page_including("ivoryos_plugin/steps.html")})
    result = CliRunner().invoke(main, ["check", str(project)])
    assert result.exit_code == 0, result.output
    assert any(line.split()[:1] == ["ok"] and " templates" in line for line in result.output.splitlines())


def test_a_misspelt_framework_template_is_named(tmp_path: Path) -> None:
    project = make_project(tmp_path, "chk_misspelt", GOOD_PLUGIN.format(name="chk_misspelt", extra=""),
                           templates={"chk_misspelt.html": page_including("ivoryos_plugin/stepz.html")})
    assert "ivoryos_plugin/stepz.html" in error_lines(run_check(project), "templates")
