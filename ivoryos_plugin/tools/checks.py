"""``ivoryos-plugin check``: find the mistakes users would otherwise meet at runtime, before they do.

Checks, each reported with the fix: the plugin's name (valid, not IvoryOS's, not taken twice), the
endpoint IvoryOS's nav links to, that a ``Plugin``'s routes register (on a scratch app), templates
that are rendered, extended or included, the entry point,
the package metadata, the IvoryOS version, Socket.IO handlers on the default namespace (which
replace IvoryOS's own), and, with the ``[edge]`` extra installed, what ivoryos-edge cannot serve.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from flask import Blueprint

from ..core import names
from .checks_source import (PEP440, Project, host_templates, module_sources, project_problems, read_project,
                            socketio_problems, template_problems)
from ..core.versions import requirement_problem
from ..hosts.discovery import GROUP, _entry_points, check_endpoint, check_plugin, resolve_entry_point
from ..core.names import PluginError
from . import collision

ERROR, WARNING, OK = "ERROR", "WARNING", "ok"


@dataclass
class Finding:
    """One check's result.

    :param level: ``"ERROR"``, ``"WARNING"`` or ``"ok"``.
    :param subject: the plugin (or ``project``) it is about.
    :param check: the check: name, endpoint, register, templates, entry-point, metadata, ivoryos-version,
        socketio, edge.
    :param message: what is wrong and the fix (empty for ``ok``)."""

    level: str
    subject: str
    check: str
    message: str = ""


@dataclass
class Report:
    """What ``ivoryos-plugin check`` found.

    :param target: what was checked (a path, or ``installed plugins``).
    :param findings: every check's result, in order."""

    target: str
    findings: List[Finding] = field(default_factory=list)

    @property
    def errors(self) -> List[Finding]:
        """The failed checks (the CLI exits 1 when there is one)."""
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> List[Finding]:
        """The checks that found something to look at, not blocking."""
        return [f for f in self.findings if f.level == WARNING]

    def add(self, level: str, subject: str, check: str, message: str = "") -> None:
        """Record a result.

        :param level: ``ERROR``, ``WARNING`` or ``ok``.
        :param subject: the plugin or ``project``.
        :param check: the check's name.
        :param message: the problem and its fix."""
        self.findings.append(Finding(level, subject, check, message))

    def lines(self) -> List[str]:
        """The report as printed by the CLI: one line per check, then a summary."""
        out = [f"Checking {self.target}"]
        for f in self.findings:
            text = f"  {f.level:<8} {f.subject:<18} {f.check:<16}"
            out.append(f"{text} {f.message}".rstrip())
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "FAILED" if n_err else "passed"
        out.append(f"{verdict}: {n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}.")
        return out


def _installed_ivoryos() -> Optional[str]:
    from ..hosts.ivoryos import installed_version as installed

    return installed()


# ------------------------------------------------------------------ checks on one plugin object
def check_object(report: Report, subject: str, obj: Any, *, entry_name: Optional[str] = None,
                 requirements: Optional[List[str]] = None, ivoryos_version: Optional[str] = None,
                 hosts: Optional[Set[str]] = None, loaded_by_run: bool = False) -> None:
    """Run the per-plugin checks on a loaded plugin object and add the results to ``report``.

    :param report: the report.
    :param subject: how to name it in the report.
    :param obj: the object the entry point gives.
    :param entry_name: the entry point's name (it should equal the plugin's name).
    :param requirements: the distribution's requirements (``Requires-Dist`` or pyproject dependencies).
    :param ivoryos_version: the installed IvoryOS version.
    :param hosts: the template names IvoryOS and the framework provide.
    :param loaded_by_run: an installed plugin, which ``ivoryos_plugin.run`` loads: its default-namespace
        Socket.IO handlers are warnings, as ``run`` accepts them with one (:func:`as_run_loads_it`)."""
    from ..core.plugin import Plugin

    if not isinstance(obj, Blueprint):
        try:
            check_plugin(obj, ivoryos_version)
        except PluginError as exc:
            report.add(ERROR, subject, "entry-point", str(exc))
        return
    try:
        names.check_name(obj.name)
        report.add(OK, obj.name, "name", repr(obj.name))
    except PluginError as exc:
        report.add(ERROR, obj.name, "name", str(exc))
    if entry_name is not None and entry_name != obj.name:
        report.add(WARNING, obj.name, "name", f"the entry point is called {entry_name!r} but the plugin {obj.name!r}; "
                                              f"rename the entry point to {obj.name!r} (ivoryos-plugin list and "
                                              "exclude= use the plugin's name).")
    try:
        report.add(OK, obj.name, "endpoint", check_endpoint(obj))
    except PluginError as exc:
        report.add(ERROR, obj.name, "endpoint", str(exc))
    except Exception as exc:
        report.add(ERROR, obj.name, "endpoint", f"Plugin {obj.name!r}: registering it on a test app raised "
                                                f"{type(exc).__name__}: {exc}; fix the blueprint's routes.")
    if isinstance(obj, Plugin):
        problem = registration_problem(obj)
        if problem is not None:
            report.add(ERROR, obj.name, "register", problem)
        else:
            report.add(OK, obj.name, "register")
    _version_checks(report, obj, requirements or [], ivoryos_version)
    sources = module_sources(obj)
    problems = template_problems(obj, sources, hosts if hosts is not None else host_templates())
    for problem in problems:
        report.add(ERROR, obj.name, "templates", problem)
    if not problems:
        report.add(OK, obj.name, "templates")
    socket_errors, socket_warnings = socketio_problems(obj, sources, is_plugin=isinstance(obj, Plugin))
    if loaded_by_run:
        socket_warnings = [as_run_loads_it(obj.name, m) for m in socket_errors] + socket_warnings
        socket_errors = []
    for problem in socket_errors:
        report.add(ERROR, obj.name, "socketio", problem)
    for problem in socket_warnings:
        report.add(WARNING, obj.name, "socketio", problem)
    if not socket_errors:
        report.add(OK, obj.name, "socketio")
    edge_checks(report, obj)


def edge_checks(report: Report, obj: Blueprint) -> None:
    """One WARNING per feature of ``obj`` that ivoryos-edge cannot serve (``hosts.edge.unsupported``),
    only when the ``[edge]`` extra is installed: the edge host (and ivoryos_edge) is imported then, on
    first use, and never without the extra.

    :param report: the report.
    :param obj: the plugin (a ``Plugin`` or a plain Blueprint)."""
    if importlib.util.find_spec("ivoryos_edge") is None:  # looks, without importing it
        return
    from ..core.plugin import Plugin
    from ..hosts import edge

    problems = edge.unsupported(obj) if isinstance(obj, Plugin) else [edge.gaps.plain_blueprint(obj)]
    for problem in problems:
        report.add(WARNING, obj.name, "edge", f"{problem} (on ivoryos-edge only; IvoryOS 1.x serves it).")
    if not problems:
        report.add(OK, obj.name, "edge", "ivoryos-edge serves it too")


def registration_problem(plugin: Any) -> Optional[str]:
    """What stops ``plugin`` (a ``Plugin``) registering on an app, found by registering its routes
    on a scratch Flask app as ``Flask.register_blueprint`` does (the Blueprint's own static route
    first, then the recorded setup), without starting the plugin; None when they register.

    :param plugin: the plugin."""
    from flask import Flask

    app = Flask("ivoryos_plugin.check")
    state = plugin.make_setup_state(app, {"url_prefix": f"/ivoryos/{plugin.name}"}, first_registration=True)
    try:
        if plugin.has_static_folder:
            state.add_url_rule(f"{plugin.static_url_path}/<path:filename>", view_func=plugin.send_static_file,
                               endpoint="static")
        for deferred in plugin.deferred_functions:
            if getattr(deferred, "__wrapped__", None) != plugin._registered:  # the runtime: not started here
                deferred(state)
    except Exception as exc:
        if plugin.has_static_folder and f"{plugin.name}.static" in str(exc):
            return (f"Plugin {plugin.name!r}: static_folder={plugin.static_folder!r} gives it a second "
                    f"'{plugin.name}.static' endpoint, so it cannot register (Flask: {exc}); remove static_folder= "
                    f"(and static_url_path=): a Plugin serves its package's static/ folder itself, at "
                    f"/ivoryos/{plugin.name}/static/.")
        return (f"Plugin {plugin.name!r}: registering it on a scratch app raised {type(exc).__name__}: {exc}; "
                "fix the route or endpoint it names.")
    return None


def _version_checks(report: Report, obj: Blueprint, requirements: List[str], installed: Optional[str]) -> None:
    from ..core.plugin import Plugin

    minimum = obj.min_ivoryos if isinstance(obj, Plugin) else getattr(obj, "min_ivoryos", None)
    found = False
    try:
        names.check_ivoryos_compatible(obj.name, minimum, installed)
    except PluginError as exc:
        report.add(ERROR, obj.name, "ivoryos-version", str(exc))
        found = True
    problem = requirement_problem(requirements, installed)
    if problem:
        report.add(ERROR, obj.name, "ivoryos-version", f"Plugin {obj.name!r}: the package {problem}")
        found = True
    if installed is None:
        report.add(WARNING, obj.name, "ivoryos-version", "IvoryOS is not installed here, so the version could not "
                                                         "be checked; pip install ivoryos.")
    elif not found:
        report.add(OK, obj.name, "ivoryos-version")


# ------------------------------------------------------------------ loading in isolation
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


# ------------------------------------------------------------------ the two entry points
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


_DEFAULT_NAMESPACE_EVENT = re.compile(r"handles (?:Socket\.IO event )?'([^']+)' on the default namespace")


def as_run_loads_it(name: str, message: str) -> str:
    """The warning for a default-namespace Socket.IO handler of an installed plugin, as
    ``ivoryos_plugin.run`` (which loads installed plugins) treats it: accepted, IvoryOS's own handler
    for the event (if any) keeps answering and the plugin's runs after it (``guard_init_socketio``).

    :param name: the plugin's name.
    :param message: the finding of :func:`~ivoryos_plugin.tools.checks_source.socketio_problems`."""
    found = _DEFAULT_NAMESPACE_EVENT.search(message)
    what = f"handles Socket.IO event {found.group(1)!r}" if found else "adds a class-based namespace"
    where = message.split(": ", 2)[1].split(" handles ")[0] if found and ".py:" in message else "init_socketio"
    return (f"Plugin {name!r}: {where} {what} on IvoryOS's default namespace '/'. ivoryos_plugin.run, which loads "
            "installed plugins, accepts it: IvoryOS's own handler for that event, if it has one, keeps answering and "
            "the plugin's runs after it (under plain ivoryos.run a 'connect' there replaces IvoryOS's). Move it to the "
            f"plugin's own namespace (namespace='/ivoryos/{name}'), or port the plugin to ivoryos_plugin.Plugin and "
            "use @plugin.on(...).")
