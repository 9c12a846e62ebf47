"""``ivoryos-plugin``: run a plugin in the dev host, start the demo, scaffold, check, list, tokens."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import click


def _module_for_path(path: Path) -> Optional[str]:
    """The dotted module a ``.py`` file (or a package folder) is importable as from the current
    directory or from ``sys.path``, or None."""
    path = path.resolve()
    parts = [path.stem] if path.suffix == ".py" else [path.name]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or None


def _not_importable(target: str, module_name: str, exc: ModuleNotFoundError) -> click.BadParameter:
    """The one-line error for a TARGET whose module cannot be found, with the fix."""
    example = "e.g. balance_log.plugin:plugin"
    looks_like_path = "/" in module_name or "\\" in module_name or module_name.endswith(".py")
    if looks_like_path:
        path = Path(module_name)
        if path.exists():
            dotted = _module_for_path(path)
            hint = f"use the module path instead: {dotted}:plugin" if dotted else f"use module:attribute, {example}"
            return click.BadParameter(f"{target!r} is a file path, not a module; {hint}.", param_hint="TARGET")
        return click.BadParameter(f"{target!r} is not a module (and no such file exists); use module:attribute, "
                                  f"{example}.", param_hint="TARGET")
    missing = exc.name or module_name
    if missing != module_name and not module_name.startswith(missing + "."):
        # the module exists but something it imports does not: that is the plugin's own bug
        return click.BadParameter(f"importing {module_name!r} failed: {exc} (a dependency of the plugin is not "
                                  f"installed: pip install {missing.split('.')[0]}).", param_hint="TARGET")
    top = module_name.split(".")[0]
    venv_pip = _venv_command("pip")
    hint = (f"is the package installed ({venv_pip} install -e ./{top}) and is the name spelt right? "
            f"Use module:attribute, {example}")
    return click.BadParameter(f"no module named {missing!r}; {hint}.", param_hint="TARGET")


def load_target(target: str) -> Any:
    """Import ``module:attribute`` (``pkg.plugin:plugin``); ``module`` alone means ``module:plugin``.

    A module that cannot be found, or a file path given instead of a module, is a one-line usage
    error that names the fix (not a traceback).

    :param target: the import path.
    :raises click.BadParameter: the module or the attribute does not exist."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise click.BadParameter(f"{target!r} names no module; use module:attribute, e.g. balance_log.plugin:plugin.",
                                 param_hint="TARGET")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _not_importable(target, module_name, exc) from None
    except (ImportError, ValueError) as exc:  # "a/b" or "./x" as a module name, a relative import
        if "/" in module_name or module_name.endswith(".py") or module_name.startswith("."):
            raise _not_importable(target, module_name, ModuleNotFoundError(str(exc), name=module_name)) from None
        raise
    finally:
        sys.path.pop(0)
    try:
        return getattr(module, attr or "plugin")
    except AttributeError:
        raise click.BadParameter(f"{module_name} has no attribute {attr or 'plugin'!r}; "
                                 "use module:attribute, e.g. balance_dashboard.plugin:plugin") from None


def _venv_command(name: str) -> str:
    """How to call ``name`` (``pip``, ``python``, ``ivoryos-plugin``) of this interpreter's
    environment without activating it: ``.venv/bin/pip`` when that is below the current
    directory, else its absolute path (the bare name when this environment has no such file).

    :param name: the executable."""
    import shlex

    exe = Path(sys.executable).parent / name
    if not exe.exists():
        return name
    try:
        relative = str(exe.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(exe))
    return shlex.quote(relative if "/" in relative else f"./{relative}")


@click.group()
@click.version_option(package_name="ivoryos-plugin-framework")
def main() -> None:
    """Build, run and check IvoryOS plugins."""


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), help="A deck script (its globals are the instruments).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--token", default=None, help="The login token (random by default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data folder (./ivoryos_data).")
def run(targets: Tuple[str, ...], deck: Optional[str], host: str, port: int, token: Optional[str],
        data_dir: Optional[str]) -> None:
    """Serve TARGETS (module:attribute) in the standalone dev host, protected by a login token
    printed at start (valid until the host stops)."""
    from ..hosts.devhost import create_app, serve
    from ..runtime.quiet import quiet_access_log

    plugins = [load_target(t) for t in targets]
    app = create_app(plugins, deck=deck, token=token, data_dir=data_dir)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"WARNING: the dev host listens on {host}: anyone with the token on the network can use it.",
                   err=True)
    quiet_access_log(transport=True)  # no Werkzeug production warnings, no Socket.IO polling lines
    serve(app, host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The deck script (default: the bundled simulated deck).")
def demo(host: str, port: int, no_browser: bool, deck: Optional[str]) -> None:
    """Start real IvoryOS with the example plugins (and every installed one) on a simulated deck
    (balance, pump, hotplate)."""
    from .demo import DemoError, run_demo

    try:
        run_demo(host=host, port=port, open_browser=not no_browser, deck=deck)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None


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


@main.command()
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
    from ..core.names import PluginError
    from .migrate import MigrateError, migrate_html, migrate_project

    if bool(path) == bool(page):
        raise click.UsageError("give a PATH or --from-html PAGE (not both).")
    try:
        done = migrate_html(Path(page), name, Path(directory), placement) if page else migrate_project(
            Path(path or "."), name, Path(directory))
    except (MigrateError, PluginError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in done.lines():
        click.echo(line)


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
