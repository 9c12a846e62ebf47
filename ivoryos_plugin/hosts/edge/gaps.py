"""What of a plugin ivoryos-edge cannot serve, one sentence each with the fix: ``ivoryos-plugin check``
prints each as a WARNING (when the ``[edge]`` extra is installed) and ``for_edge`` logs them.

The edge host serves a plugin's declarations (``plugin.declarations``): its own routes, the framework's
built-in routes and its live channel. It runs a view with Flask's ``dispatch_request`` in the plugin's
private app, so what Flask would run around the view (``before_request``/``after_request`` hooks, URL
value preprocessors), what a Blueprint adds to the app itself (``record``/``record_once`` routes,
``before_app_request``...), nested Blueprints, an ``init_socketio`` of its own and IvoryOS's own
``base.html`` do not exist there. Pure Flask: no edge import here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List

from flask import Blueprint, Flask
from jinja2 import meta

from ...runtime.libraries import hook_table

if TYPE_CHECKING:
    from ...core.plugin import Plugin

#: our placements -> the edge's
EDGE_PLACEMENTS = {"tab": "tab", "left_panel": "panel-left", "right_panel": "panel-right"}
#: what the framework itself puts on every Plugin (its guard and headers): not the author's
_FRAMEWORK_HOOKS = "Plugin._declare_builtin_routes."
#: templates IvoryOS 1.x (and the dev host) provide that the edge does not
_HOST_TEMPLATES = ("base.html",)


def _authors(funcs: Dict[Any, List[Callable[..., Any]]]) -> List[str]:
    return [getattr(f, "__name__", repr(f)) for key, found in funcs.items() for f in found
            if not getattr(f, "__qualname__", "").startswith(_FRAMEWORK_HOOKS)]


def _hooks(plugin: "Plugin") -> List[str]:
    name = plugin.name
    found: List[str] = []
    for attr, what in (("before_request_funcs", "before_request"), ("after_request_funcs", "after_request"),
                       ("url_value_preprocessors", "url_value_preprocessor")):
        hooks = _authors(hook_table(plugin, attr))
        if hooks:
            found.append(f"Plugin {name!r}: @plugin.{what} hook(s) {', '.join(hooks)} do not run on ivoryos-edge (it "
                         "runs each view alone); do that work in the view, or in an @plugin.action")
    return found


def _outside(plugin: "Plugin") -> List[str]:
    """What the plugin's deferred setup adds to an app outside its own routes, found on a scratch app
    (as ``ivoryos-plugin check`` registers it, without starting it)."""
    name = plugin.name
    app = Flask("ivoryos_plugin.edge.gaps")
    before = set(app.view_functions)
    state = plugin.make_setup_state(app, {"url_prefix": f"/plugins/{name}"}, first_registration=True)
    for deferred in plugin.deferred_functions:
        if getattr(deferred, "__wrapped__", None) == plugin._registered:  # the runtime: not started here
            continue
        try:
            deferred(state)
        except Exception:  # check reports a setup that fails to register (the register check)
            continue
    found: List[str] = []
    own = set(plugin.declarations.endpoints())
    added = sorted(e for e in set(app.view_functions) - before if e.split(".", 1)[-1] not in own
                   or not e.startswith(f"{name}."))
    if added:
        found.append(f"Plugin {name!r}: route(s) {', '.join(added)} are added to the app itself (record/record_once), "
                     "not declared on the plugin: ivoryos-edge serves only the plugin's own routes; declare them with "
                     "@plugin.route")
    app_wide = _authors(hook_table(app, "before_request_funcs")) + _authors(hook_table(app, "after_request_funcs"))
    if app_wide:
        found.append(f"Plugin {name!r}: app-wide hook(s) {', '.join(app_wide)} (before_app_request/after_app_request) "
                     "do not run on ivoryos-edge; do that work in the plugin's views")
    return found


def _nested(plugin: "Plugin") -> List[str]:
    nested = [bp.name for bp, _ in getattr(plugin, "_blueprints", [])]
    if not nested:
        return []
    return [f"Plugin {plugin.name!r}: nested Blueprint(s) {', '.join(nested)} are not served on ivoryos-edge; "
            "declare their routes on the plugin itself"]


def _socketio(plugin: "Plugin") -> List[str]:
    from ...core.plugin import Plugin

    if type(plugin).init_socketio is Plugin.init_socketio:
        return []
    return [f"Plugin {plugin.name!r}: its own init_socketio is never called on ivoryos-edge (there is no Socket.IO "
            "there); handle live events with @plugin.on(...), which both hosts serve"]


def _templates(plugin: Blueprint) -> List[str]:
    loader = plugin.jinja_loader
    if loader is None:
        return []
    env = Flask("ivoryos_plugin.edge.templates").jinja_env
    found: List[str] = []
    try:
        names: Iterable[str] = loader.list_templates()
    except Exception:
        return []
    for template in sorted(names):
        try:
            source = loader.get_source(env, template)[0]
            referenced = meta.find_referenced_templates(env.parse(source))
        except Exception:  # check's templates check reports what does not parse
            continue
        host = sorted(set(r for r in referenced if r in _HOST_TEMPLATES))
        if host:
            found.append(f"Plugin {plugin.name!r}: template {template!r} uses {', '.join(host)}, IvoryOS 1.x's page, "
                         "which ivoryos-edge does not have (the page would be a 500 there); extend plugin_base: "
                         "{% extends plugin_base %}")
    return found


def unsupported(plugin: "Plugin") -> List[str]:
    """What of ``plugin`` ivoryos-edge cannot serve, one sentence each naming the plugin and the fix.

    :param plugin: one of our plugins."""
    found: List[str] = []
    placement = plugin.declarations.placement
    if placement not in EDGE_PLACEMENTS:
        found.append(f"Plugin {plugin.name!r}: placement {placement!r} has no ivoryos-edge equivalent; use 'tab', "
                     "'left_panel' or 'right_panel'")
    found += _hooks(plugin) + _outside(plugin) + _nested(plugin) + _socketio(plugin) + _templates(plugin)
    return found


def plain_blueprint(blueprint: Blueprint) -> str:
    """Why a plain Flask Blueprint is not served on ivoryos-edge.

    :param blueprint: the plugin."""
    return (f"Plugin {blueprint.name!r} is a plain Flask Blueprint, which ivoryos-edge refuses (\"a v1 plugin\"); "
            "port it to ivoryos_plugin.Plugin (ivoryos-plugin migrate) to serve it on both generations")
