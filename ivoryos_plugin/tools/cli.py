"""``ivoryos-plugin``: run a plugin in the dev host, start the demo, scaffold, check, list, tokens."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

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


def _plugins_in(module: Any) -> List[Tuple[str, Any]]:
    """The Plugins and Blueprints a module defines at module level, as ``(attribute, object)``."""
    from flask import Blueprint

    found: Dict[int, Tuple[str, Any]] = {}
    for key, value in vars(module).items():
        if isinstance(value, Blueprint) and not key.startswith("_") and id(value) not in found:
            found[id(value)] = (key, value)
    return list(found.values())


def _described(obj: Any) -> str:
    """``the class Plugin``, ``the function main``, ``None``, ``a dict``: what a target named."""
    import inspect

    if obj is None:
        return "None"
    if inspect.isclass(obj):
        return f"the class {obj.__name__}"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"the function {obj.__name__}"
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}"
    return f"a {type(obj).__name__}"


def _what_it_defines(module_name: str, module: Any) -> str:
    """The fix that names the module's plugins: ``use pkg.plugin:plugin`` (or how to make one)."""
    found = _plugins_in(module)
    if found:
        return "use " + " or ".join(f"{module_name}:{attr}" for attr, _ in found[:3])
    return (f"{module_name} defines no Plugin or flask.Blueprint at module level; create one there: "
            "plugin = Plugin(\"name\", __name__)")


def _import(module_name: str, target: str) -> Any:
    """Import the module a TARGET names; a missing module or a plugin module that raises is a short
    usage error naming the fix (the plugin's own frames only, never the framework's)."""
    from .demo import code_failure

    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _not_importable(target, module_name, exc) from None
    except (ImportError, ValueError, TypeError) as exc:  # "a/b" or "./x" as a module name, a relative import
        if "/" in module_name or module_name.endswith(".py") or module_name.startswith("."):
            raise _not_importable(target, module_name, ModuleNotFoundError(str(exc), name=module_name)) from None
        raise click.ClickException(code_failure(f"importing {module_name} for {target!r}", exc,
                                                "Fix the plugin module.")) from None
    except Exception as exc:
        raise click.ClickException(code_failure(f"importing {module_name} for {target!r}", exc,
                                                "Fix the plugin module.")) from None


def _plugin_of(module_name: str, module: Any, attr: str, target: str) -> Any:
    """The plugin ``module:attr`` names (no attr: ``plugin``, a package's ``plugin`` submodule, or
    the one Blueprint the module defines); anything else is a one-line error with the fix."""
    from flask import Blueprint

    if not attr and not hasattr(module, "plugin"):
        if hasattr(module, "__path__") and importlib.util.find_spec(f"{module_name}.plugin") is not None:
            module_name = f"{module_name}.plugin"
            module = _import(module_name, target)
        found = _plugins_in(module)
        if len(found) == 1:
            return found[0][1]
    name = attr or "plugin"
    if not hasattr(module, name):
        raise click.BadParameter(f"{module_name} has no attribute {name!r}; {_what_it_defines(module_name, module)}.",
                                 param_hint="TARGET")
    obj = getattr(module, name)
    if not isinstance(obj, Blueprint):
        raise click.BadParameter(f"{module_name}:{name} is {_described(obj)}, not a Plugin or flask.Blueprint; "
                                 f"{_what_it_defines(module_name, module)}.", param_hint="TARGET")
    return obj


def _is_folder_target(module_name: str, attr: str) -> bool:
    """Whether TARGET is a folder (``./balance_log``, ``balance_log/`` or a bare folder name)."""
    if not module_name or not Path(module_name).is_dir():
        return False
    return "/" in module_name or "\\" in module_name or module_name.startswith(".") or not attr


def _load_folder(folder: Path, attr: str, target: str) -> List[Any]:
    """The plugins of a project or package folder, found as ``ivoryos-plugin check`` finds them: the
    project's ``ivoryos.plugins`` entry points, else the package's plugin module."""
    from ..hosts.discovery import resolve_entry_point
    from .checks_source import read_project

    project = read_project(folder.resolve())
    if project.kind == "project" and not project.entry_points:
        problem = project.problems[0][1] if project.problems else (
            f"{target!r} declares no entry point in the group 'ivoryos.plugins'; give its plugin module instead "
            f"(e.g. {folder.name}.plugin:plugin), or add the entry point (ivoryos-plugin check {target} says how)")
        raise click.BadParameter(problem.rstrip(".") + ".", param_hint="TARGET")
    roots = [project.root / "src", project.root] if project.kind == "project" else [project.root]
    sys.path[:0] = [str(root) for root in roots if root.is_dir()]  # kept: the plugin is served from here
    if project.kind == "module":
        return [_plugin_of(project.module, _import(project.module, target), attr, target)]
    plugins = []
    for entry_name, value in project.entry_points:
        module_name, _, entry_attr = value.partition(":")
        module = _import(module_name.strip(), target)
        if not entry_attr.strip():
            plugins.append(resolve_entry_point(module, entry_name))
        else:
            plugins.append(_plugin_of(module_name.strip(), module, attr or entry_attr.strip(), target))
    return plugins


def load_targets(target: str) -> List[Any]:
    """The plugins a TARGET names: ``module:attribute`` (``pkg.plugin:plugin``; ``module`` alone means
    its ``plugin``), or a project or package folder (``./balance_log``: its plugins, found as
    ``ivoryos-plugin check`` finds them).

    A module that cannot be found, a file path given instead of a module, an attribute that is not a
    plugin, a plugin module that raises: a short usage error that names the fix (not a traceback).

    :param target: the import path or folder.
    :raises click.BadParameter: the module or the attribute does not exist, or is not a plugin."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise click.BadParameter(f"{target!r} names no module; use module:attribute, e.g. balance_log.plugin:plugin.",
                                 param_hint="TARGET")
    if _is_folder_target(module_name, attr):
        return _load_folder(Path(module_name), attr, target)
    sys.path.insert(0, os.getcwd())
    try:
        module = _import(module_name, target)
    finally:
        sys.path.pop(0)
    return [_plugin_of(module_name, module, attr, target)]


def load_target(target: str) -> Any:
    """Import ``module:attribute`` (``pkg.plugin:plugin``); ``module`` alone means ``module:plugin``.

    :param target: the import path (or a folder: its first plugin).
    :raises click.BadParameter: the module or the attribute does not exist, or is not a plugin."""
    return load_targets(target)[0]


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
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind, or 'edge': serve on ivoryos-edge at 127.0.0.1 (the [edge] extra).")
@click.option("--port", default=8765, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--token", default=None, help="The login token (random by default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data folder (./ivoryos_data).")
def run(targets: Tuple[str, ...], deck: Optional[str], host: str, port: int, token: Optional[str],
        data_dir: Optional[str]) -> None:
    """Serve TARGETS (module:attribute, or a project or package folder such as ./balance_log) in
    the standalone dev host, protected by a login token printed at start (valid until the host stops)."""
    import shlex

    from ..core.names import PluginError
    from ..hosts.devhost import create_app, serve
    from ..runtime.quiet import quiet_access_log
    from .collision import command_problem
    from .demo import DemoError, code_failure, load_deck_or_explain, port_problem

    shadowed = command_problem(targets, deck)  # a checkout of the official template: its package is ours by name
    if shadowed:
        raise click.ClickException(shadowed)
    plugins = [plugin for t in targets for plugin in load_targets(t)]
    bind = "127.0.0.1" if host == "edge" else host  # the edge host always binds loopback
    problem = port_problem(bind, port, "ivoryos-plugin run " + " ".join(shlex.quote(t) for t in targets))
    if problem:  # before the login URL: it must not say the host is up
        raise click.ClickException(problem)
    try:
        deck_module = load_deck_or_explain(Path(deck), "the dev host") if deck else None
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if host == "edge":  # the next IvoryOS generation (docs/edge.md): the same plugins, the same deck
        from ..hosts.edge.launcher import serve as serve_on_edge

        serve_on_edge(plugins, deck_module, port=port, data_dir=data_dir)
        return
    try:
        app = create_app(plugins, deck=deck_module, token=token, data_dir=data_dir)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        names = ", ".join(repr(getattr(p, "name", p)) for p in plugins)
        raise click.ClickException(code_failure(f"registering plugin {names} in the dev host", exc,
                                                "Fix the plugin; ivoryos-plugin check PATH finds common mistakes.")) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"WARNING: the dev host listens on {host}: anyone with the token on the network can use it.",
                   err=True)
    quiet_access_log(transport=True)  # no Werkzeug production warnings, no Socket.IO polling lines
    serve(app, host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind, or 'edge': the demo on ivoryos-edge at 127.0.0.1 (the [edge] extra).")
@click.option("--port", default=8000, show_default=True, type=int, envvar="PORT", help="TCP port (or $PORT).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--deck", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The deck script (default: the bundled simulated deck).")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="This demo's data folder: IvoryOS's database, the plugins' settings and history "
                   "(default: ./ivoryos_data/demo-PORT, one per port).")
def demo(host: str, port: int, no_browser: bool, deck: Optional[str], data: Optional[str]) -> None:
    """Start real IvoryOS with the example plugins (and every installed one) on a simulated deck
    (balance, pump, hotplate). Each port keeps its own data: two demos never share values."""
    from .demo import DemoError, run_demo

    try:
        run_demo(host=host, port=port, open_browser=not no_browser, deck=deck, data=data)
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
