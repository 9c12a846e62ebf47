"""``ivoryos-plugin``: run a plugin in the dev host, start the demo, scaffold, check, list, tokens."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import click


def load_target(target: str) -> Any:
    """Import ``module:attribute`` (``pkg.plugin:plugin``); ``module`` alone means ``module:plugin``.

    :param target: the import path."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    finally:
        sys.path.pop(0)
    try:
        return getattr(module, attr or "plugin")
    except AttributeError:
        raise click.BadParameter(f"{module_name} has no attribute {attr or 'plugin'!r}; "
                                 "use module:attribute, e.g. balance_dashboard.plugin:plugin") from None


@click.group()
@click.version_option(package_name="ivoryos-plugin")
def main() -> None:
    """Build, run and check IvoryOS plugins."""


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), help="A deck script (its globals are the instruments).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port.")
@click.option("--token", default=None, help="The login token (random by default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data folder (./ivoryos_data).")
def run(targets: Tuple[str, ...], deck: Optional[str], host: str, port: int, token: Optional[str],
        data_dir: Optional[str]) -> None:
    """Serve TARGETS (module:attribute) in the standalone dev host, protected by a one-time token."""
    from ..hosts.devhost import create_app, serve

    plugins = [load_target(t) for t in targets]
    app = create_app(plugins, deck=deck, token=token, data_dir=data_dir)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"WARNING: the dev host listens on {host}: anyone with the token on the network can use it.",
                   err=True)
    serve(app, host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The deck script (default: the bundled simulated deck).")
def demo(host: str, port: int, no_browser: bool, deck: Optional[str]) -> None:
    """Start real IvoryOS with every installed plugin on a simulated deck (balance, pump, hotplate)."""
    from .demo import run_demo

    run_demo(host=host, port=port, open_browser=not no_browser, deck=deck)


@main.command("list")
def list_plugins() -> None:
    """List the installed plugins (entry point group ivoryos.plugins) and whether they load."""
    from ..hosts.discovery import discover

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


@main.command()
@click.argument("name")
@click.option("--placement", type=click.Choice(["tab", "left_panel"]), default="tab", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the package folder.")
def new(name: str, placement: str, directory: str) -> None:
    """Create a pip-installable plugin package NAME (page, action, stream, template, tests)."""
    from ..core.names import PluginError
    from .scaffold import render_package

    try:
        path = render_package(name, Path(directory), placement=placement)
    except (PluginError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {path}\nNext:\n  pip install -e {path}\n  pytest {path}\n"
               f"  ivoryos-plugin run {name}.plugin:plugin")


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option("--installed", is_flag=True, help="Check every installed plugin instead.")
def check(path: Optional[str], installed: bool) -> None:
    """Check a plugin package (PATH) or the installed plugins for mistakes before users hit them."""
    from .checks import check_installed, check_path

    if installed == bool(path):
        raise click.UsageError("give a PATH or --installed (not both).")
    report = check_installed() if installed else check_path(Path(path or "."))
    for line in report.lines():
        click.echo(line)
    sys.exit(1 if report.errors else 0)


@main.group()
def token() -> None:
    """API tokens for programs (Authorization: Bearer)."""


def _token_store(data_dir: Optional[str]) -> Any:
    from ..runtime.tokens import TokenStore

    root = Path(data_dir or os.environ.get("IVORYOS_PLUGIN_DATA") or Path("ivoryos_data") / "plugins")
    return TokenStore(root / "tokens.json")


_DATA_OPTION = click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                            help="The plugins' data folder (default: ./ivoryos_data/plugins or $IVORYOS_PLUGIN_DATA).")


@token.command("create")
@click.argument("name")
@click.option("--plugin", default=None, help="Scope the token to one plugin.")
@_DATA_OPTION
def token_create(name: str, plugin: Optional[str], data_dir: Optional[str]) -> None:
    """Create a token NAME and print it (shown once)."""
    from ..runtime.tokens import TokenError

    try:
        click.echo(_token_store(data_dir).create(name, plugin))
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None


@token.command("list")
@_DATA_OPTION
def token_list(data_dir: Optional[str]) -> None:
    """List the tokens (names and scopes, never the tokens)."""
    import time

    from ..runtime.tokens import TokenError

    try:
        records: List[Any] = _token_store(data_dir).list()
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    if not records:
        click.echo("No tokens.")
    for record in records:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created))
        click.echo(f"{record.name:<24} {record.plugin or '(all plugins)':<20} {created}")


@token.command("revoke")
@click.argument("name")
@_DATA_OPTION
def token_revoke(name: str, data_dir: Optional[str]) -> None:
    """Revoke the token NAME (refused from the next request on)."""
    from ..runtime.tokens import TokenError

    try:
        _token_store(data_dir).revoke(name)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Revoked {name}.")


if __name__ == "__main__":  # pragma: no cover
    main()
