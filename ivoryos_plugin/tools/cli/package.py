"""``ivoryos-plugin new`` (scaffold a pip-installable plugin package, and the commands that install,
test and serve it) and ``ivoryos-plugin migrate`` (a template-style package or one HTML page made a
framework plugin)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import click

from .targets import _venv_command


@click.command()
@click.argument("name")
@click.option("--placement", type=click.Choice(["tab", "left_panel"]), default="tab", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the package folder.")
def new(name: str, placement: str, directory: str) -> None:
    """Create a pip-installable plugin package NAME (page, action, stream, template, tests)."""
    from ...core.names import PluginError
    from ..scaffold import render_package

    try:
        path = render_package(name, Path(directory), placement=placement)
    except (PluginError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # a --dir that cannot be written, a full disk: one line, nothing left behind
        raise click.ClickException(f"cannot create {Path(directory) / name}: {exc.strerror or exc} "
                                   f"({exc.filename or directory}); pass a --dir you can write to.") from None
    click.echo(f"Created {path}\nNext:")
    for line in next_steps(path, name):
        click.echo(f"  {line}")


def next_steps(path: Path, name: str) -> List[str]:
    """The commands that install, test and serve a new package, runnable as printed (this
    environment's executables, no activated virtualenv needed).

    :param path: the new package folder.
    :param name: the plugin's name."""
    import shlex

    shown = str(path) if path.is_absolute() or str(path).startswith(".") else f"./{path}"
    python = _venv_command(Path(sys.executable).name)  # python, python3.11...
    pip = _venv_command("pip") if (Path(sys.executable).parent / "pip").exists() else f"{python} -m pip"
    cli = (_venv_command("ivoryos-plugin") if (Path(sys.executable).parent / "ivoryos-plugin").exists()
           else f"{python} -m ivoryos_plugin.tools.cli")
    return [f"{pip} install -e {shlex.quote(shown + '[test]')}",
            f"{python} -m pytest {shlex.quote(shown)}",
            f"{cli} run {name}.plugin:plugin"]


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="The new plugin (and package) name, e.g. balance_page.")
@click.option("--from-html", "page", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Make the plugin from this one HTML page instead of a package.")
@click.option("--placement", type=click.Choice(["tab", "left_panel"]), default="tab", show_default=True,
              help="With --from-html: a tab, or a left-panel widget.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the new package folder.")
def migrate(path: Optional[str], name: str, page: Optional[str], placement: str, directory: str) -> None:
    """Convert a template-style plugin package (PATH) or one HTML page into a framework plugin NAME."""
    from ...core.names import PluginError
    from ..migrate import MigrateError, migrate_html, migrate_project

    if bool(path) == bool(page):
        raise click.UsageError("give a PATH or --from-html PAGE (not both).")
    try:
        done = migrate_html(Path(page), name, Path(directory), placement) if page else migrate_project(
            Path(path or "."), name, Path(directory))
    except (MigrateError, PluginError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in done.lines():
        click.echo(line)
