"""What a TARGET of ``ivoryos-plugin run`` names: ``module:attribute`` or a project or package folder,
imported into the plugins it holds; each mistake (a missing module, a file path given for a module,
an attribute that is not a plugin, a plugin module that raises) is a one-line usage error naming the
fix. Also how to call this environment's executables without activating it (:func:`_venv_command`)."""
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
    from ..demo import code_failure

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
    from ...hosts.discovery import resolve_entry_point
    from ..checks.project import read_project

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
