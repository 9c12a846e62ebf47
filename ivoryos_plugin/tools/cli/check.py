"""``ivoryos-plugin list`` (the installed plugins and whether they load) and ``ivoryos-plugin check``
(a plugin package, or the installed plugins, checked for mistakes before users hit them)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click


@click.command("list")
def list_plugins() -> None:
    """List the installed plugins (entry point group ivoryos.plugins) and whether they load."""
    from ...hosts.discovery import discover

    found = discover()
    if not found.plugins and not found.failures:
        click.echo("No plugins installed (entry point group 'ivoryos.plugins').")
    for plugin in found.plugins:
        version = getattr(plugin, "version", "") or "-"
        click.echo(f"ok      {plugin.name:<20} {version:<10} {found.sources.get(plugin.name, '')}")
    for failure in found.failures:
        click.echo(f"FAILED  {failure.name:<20} {'-':<10} {failure.source}: {failure.stage}: {failure.error}")
    if found.failures:
        sys.exit(1)


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option("--installed", is_flag=True, help="Check every installed plugin instead.")
def check(path: Optional[str], installed: bool) -> None:
    """Check a plugin package (PATH) or the installed plugins for mistakes before users hit them."""
    from ..checks import check_installed, check_path

    if installed == bool(path):
        raise click.UsageError("give a PATH or --installed (not both).")
    report = check_installed() if installed else check_path(Path(path or "."))
    for line in report.lines():
        click.echo(line)
    sys.exit(1 if report.errors else 0)
