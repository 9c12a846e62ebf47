"""The two things ``ivoryos-plugin check`` checks: a path (:func:`check_path`: a project folder, a
package folder or a module file, its plugins imported in isolation and forgotten afterwards,
:func:`isolated_import`) and the installed plugins (:func:`check_installed`)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Set, Tuple

from flask import Blueprint

from ...core.names import PluginError
from ...hosts.discovery import GROUP, _entry_points, resolve_entry_point
from . import collision
from .plugin import _installed_ivoryos, check_object
from .project import PEP440, Project, project_problems, read_project
from .report import ERROR, OK, WARNING, Report
from .sources import host_templates, module_sources


@contextmanager
def isolated_import(root: Path, top: str) -> Iterator[None]:
    """Import from ``root`` (and ``root/src``) as if nothing else were loaded under the name ``top``;
    afterwards forget those modules and put back what was there, so checks never leak into the process.

    :param root: the project folder.
    :param top: the top-level package or module name to import fresh."""
    saved = {k: v for k, v in sys.modules.items() if k == top or k.startswith(top + ".")}
    for key in saved:
        del sys.modules[key]
    saved_path = list(sys.path)
    for folder in (root / "src", root):
        if folder.is_dir():
            sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[key]
        sys.modules.update(saved)
        importlib.invalidate_caches()


def _resolve(value: str) -> Any:
    module_name, _, attr = value.partition(":")
    module = importlib.import_module(module_name.strip())
    obj: Any = module
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _resolve_failure(value: str, exc: BaseException) -> str:
    if isinstance(exc, PluginError):
        return str(exc)
    if isinstance(exc, AttributeError):
        return (f"'{value}' does not resolve: {exc}; point the entry point at the plugin object "
                "('package.module:plugin').")
    if isinstance(exc, ModuleNotFoundError):
        return (f"'{value}' does not resolve: {exc}; check the module path (and that the package is in "
                "[tool.setuptools] packages).")
    return f"'{value}' raised at import: {type(exc).__name__}: {exc}; fix the plugin module."


def check_path(path: Path) -> Report:
    """Check a plugin project folder (pyproject.toml, setup.cfg or setup.py), a package folder or a
    module file. The plugin is imported from ``path`` in isolation and forgotten afterwards.

    :param path: the folder or file."""
    path = Path(path).resolve()
    report = Report(str(path))
    context = (_installed_ivoryos(), host_templates())
    project = read_project(path)
    for level, message in project.problems:
        report.add(level, "project", "metadata", message)
    if project.metadata_ok:
        report.add(OK, "project", "metadata")
    collisions = collision.project_problems(project.root if project.kind == "project" else path.parent, project.name)
    for message in collisions:
        report.add(ERROR, "project", "name", message)
    if project.kind == "module":
        if project.module == collision.PACKAGE:
            return report  # importing it would replace the framework in this process
        _check_module(report, project, context)
        return report
    if not project.entry_points and not project.problems:
        report.add(ERROR, "project", "entry-point",
                   f"no entry point in the group '{GROUP}', so ivoryos_plugin.run will not find the plugin; "
                   f"add to pyproject.toml: [project.entry-points.\"{GROUP}\"] "
                   "my_plugin = \"my_package.plugin:plugin\"")
    seen: Dict[str, str] = {}
    for entry_name, value in project.entry_points:
        top = value.partition(":")[0].strip().split(".")[0]
        if top == collision.PACKAGE:
            report.add(ERROR, entry_name, "entry-point", f"'{value}' is not imported: its package is named "
                                                         f"{collision.PACKAGE!r}, like the framework (see the name error).")
            continue
        with isolated_import(project.root, top):
            try:
                obj = resolve_entry_point(_resolve(value), entry_name)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                report.add(ERROR, entry_name, "entry-point", _resolve_failure(value, exc))
                continue
            if isinstance(obj, Blueprint):
                report.add(OK, entry_name, "entry-point", value)
                if obj.name in seen:
                    report.add(ERROR, obj.name, "name", f"Plugin {obj.name!r}: entry points {seen[obj.name]!r} and "
                                                        f"{entry_name!r} give the same name; rename one plugin.")
                seen[obj.name] = entry_name
                for level, message in project_problems(project, obj, module_sources(obj)):
                    report.add(level, obj.name, "metadata", message)
            check_object(report, entry_name, obj, entry_name=entry_name, requirements=project.requirements,
                         ivoryos_version=context[0], hosts=context[1])
    return report


def _check_module(report: Report, project: Project, context: Tuple[Optional[str], Set[str]]) -> None:
    """A bare module or package: check every Blueprint it defines at module level."""
    with isolated_import(project.root, project.module):
        try:
            module = importlib.import_module(project.module)
            if hasattr(module, "__path__") and importlib.util.find_spec(f"{project.module}.plugin"):
                module = importlib.import_module(f"{project.module}.plugin")
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            report.add(ERROR, project.module, "entry-point", _resolve_failure(project.module, exc))
            return
        found = {id(v): v for v in vars(module).values() if isinstance(v, Blueprint)}
        if not found:
            report.add(ERROR, project.module, "entry-point", f"{module.__name__} defines no Plugin or flask.Blueprint "
                                                             "at module level; create one: plugin = Plugin(\"name\", "
                                                             "__name__).")
        for obj in found.values():
            check_object(report, obj.name, obj, requirements=None, ivoryos_version=context[0], hosts=context[1])
        report.add(WARNING, project.module, "metadata", "not a pip-installable project (no pyproject.toml beside it), "
                                                        "so ivoryos_plugin.run cannot discover it; create one with "
                                                        "ivoryos-plugin new NAME and move the code in.")


def check_installed() -> Report:
    """Check every installed plugin (the ``ivoryos.plugins`` entry points of this environment)."""
    report = Report("installed plugins (entry point group 'ivoryos.plugins')")
    ivoryos_version = _installed_ivoryos()
    hosts = host_templates()
    for level, message in collision.installed_problems():
        report.add(level, "environment", "install", message)
    pairs = sorted(_entry_points(GROUP), key=lambda pair: pair[0].name)
    if not pairs:
        report.add(WARNING, "environment", "entry-point", f"no plugin is installed (entry point group '{GROUP}'); "
                                                          "pip install one, or create one: ivoryos-plugin new NAME.")
    seen: Dict[str, str] = {}
    for ep, dist in pairs:
        label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value
        try:
            obj = resolve_entry_point(ep.load(), ep.name)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            report.add(ERROR, ep.name, "entry-point", f"{label}: {_resolve_failure(ep.value, exc)}")
            continue
        if isinstance(obj, Blueprint):
            report.add(OK, ep.name, "entry-point", f"{ep.value} ({label})")
        if dist is not None:
            version = str(dist.version or "")
            if not dist.metadata["Name"] or not PEP440.match(version):
                report.add(ERROR, ep.name, "metadata", f"{label}: the distribution's name or version "
                                                       f"({version!r}) is invalid; fix [project] in pyproject.toml.")
        if isinstance(obj, Blueprint):
            if obj.name in seen:
                report.add(ERROR, obj.name, "name", f"Plugin {obj.name!r}: installed twice ({seen[obj.name]} and "
                                                    f"{label}); pip uninstall one, or rename one plugin.")
            seen[obj.name] = label
        requirements = list(dist.requires or []) if dist is not None else []
        check_object(report, ep.name, obj, entry_name=ep.name, requirements=requirements,
                     ivoryos_version=ivoryos_version, hosts=hosts, loaded_by_run=True)
    return report
