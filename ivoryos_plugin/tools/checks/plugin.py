"""The checks on one loaded plugin object (:func:`check_object`): its name, the endpoint IvoryOS's
nav links to, that its routes register on a scratch app (:func:`registration_problem`), the IvoryOS
version, its templates, its Socket.IO handlers and, with the ``[edge]`` extra, what ivoryos-edge
cannot serve."""
from __future__ import annotations

from typing import Any, List, Optional, Set

from flask import Blueprint

from ...core import names
from ...core.names import PluginError
from ...core.versions import requirement_problem
from ...hosts.discovery import check_endpoint, check_plugin
from .handlers import as_run_loads_it, socketio_problems
from .report import ERROR, OK, WARNING, Report
from .sources import host_templates, module_sources, template_problems


def _installed_ivoryos() -> Optional[str]:
    from ...hosts.ivoryos import installed_version as installed

    return installed()


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
    from ...core.plugin import Plugin

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
    first use, and never without the extra (an ``ok`` line then says how to install it).

    :param report: the report.
    :param obj: the plugin (a ``Plugin`` or a plain Blueprint)."""
    from ...hosts.extras import EDGE_INSTALL, edge_missing

    missing = edge_missing()  # looks, without importing it
    if missing is not None:
        report.add(OK, obj.name, "edge", f"not checked: {missing} is not installed ({EDGE_INSTALL} to check what "
                                         "ivoryos-edge cannot serve)")
        return
    from ...core.plugin import Plugin
    from ...hosts import edge

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
    from ...core.plugin import Plugin

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
