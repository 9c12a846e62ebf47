"""What an entry point gives, checked before a host registers it: the plugin it names
(:func:`resolve_entry_point`, a module entry point included), and whether it can be registered
(:func:`check_plugin`: its name, the endpoint IvoryOS's nav links to, ``min_ivoryos``)."""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any, List, Optional

from flask import Blueprint, Flask

from ...core import names
from ...core.names import PluginError
from ...core.plugin import Plugin
from .. import ivoryos as adapter

_UNSET: Any = object()


def plain_endpoints(blueprint: Blueprint) -> List[str]:
    """The endpoints of a plain Blueprint, found by registering it on a scratch app.

    :param blueprint: the Blueprint."""
    if isinstance(blueprint, Plugin):
        return sorted(row.endpoint for row in blueprint.declarations.routes)
    probe = Flask("ivoryos_plugin.probe")
    probe.register_blueprint(blueprint, name=f"probe_{blueprint.name}", url_prefix="/probe")
    prefix = f"probe_{blueprint.name}."
    return sorted(e[len(prefix):] for e in probe.view_functions if e.startswith(prefix))


def _not_a_blueprint(obj: Any) -> PluginError:
    found = type(obj).__name__
    hint = "point the entry point at the plugin object, e.g. 'my_plugin.plugin:plugin'"
    if isinstance(obj, type(sys)):
        candidates = [k for k, v in vars(obj).items() if isinstance(v, Blueprint)]
        if candidates:
            hint = f"point it at '{obj.__name__}:{candidates[0]}'"
    label = getattr(obj, "name", None) if isinstance(getattr(obj, "name", None), str) else getattr(obj, "__name__", found)
    return PluginError(str(label), f"the entry point gives a {found}, not a Plugin or flask.Blueprint; {hint}.")


def resolve_entry_point(obj: Any, entry_name: str) -> Any:
    """What an entry point names as the plugin: the object itself, or for a module (the form the
    official template documents, ``plugin = "my_pkg.plugin"``) the attribute named after the entry
    point, as IvoryOS 0.1.x did (``getattr(module, entry_point.name)``). A module-level
    ``init_socketio(socketio)`` becomes the Blueprint's, so it is called as IvoryOS 0.1.x called it.

    :param obj: what ``entry_point.load()`` gave.
    :param entry_name: the entry point's name."""
    if not isinstance(obj, ModuleType):
        return obj
    blueprint = getattr(obj, entry_name, None)
    if not isinstance(blueprint, Blueprint):
        candidates = [k for k, v in vars(obj).items() if isinstance(v, Blueprint)]
        hint = f"point it at '{obj.__name__}:{candidates[0]}'" if candidates else "define the Blueprint in it"
        raise PluginError(entry_name, f"the entry point names the module {obj.__name__!r}, which has no Blueprint "
                                      f"called {entry_name!r} (a module entry point gives the attribute named after "
                                      f"the entry point); {hint}.")
    init = getattr(obj, "init_socketio", None)
    if callable(init) and getattr(blueprint, "init_socketio", None) is None:
        setattr(blueprint, "init_socketio", init)
    return blueprint


def check_endpoint(blueprint: Blueprint) -> str:
    """Return the endpoint IvoryOS's nav links to (``main``, or ``widget`` for a left-panel plugin)
    if the plugin has it, else raise :class:`PluginError` (IvoryOS would answer 500 on every page).

    :param blueprint: the plugin."""
    plugin_type = getattr(blueprint, "plugin_type", "tab")
    if plugin_type not in names.IVORYOS_PLUGIN_TYPES:
        raise PluginError(blueprint.name, f"plugin_type={plugin_type!r} is unknown to IvoryOS; "
                                          "use 'tab' or 'left_panel'.")
    needed = names.required_endpoint(plugin_type)
    if needed not in plain_endpoints(blueprint):
        rule = "/" if needed == "main" else "/widget"
        var = "plugin" if isinstance(blueprint, Plugin) else "bp"
        raise PluginError(blueprint.name, f"has no '{needed}' endpoint, which IvoryOS's nav links to "
                                          f"({blueprint.name}.{needed}); add @{var}.route('{rule}') "
                                          f"def {needed}(): ...")
    return f"{blueprint.name}.{needed}"


def check_plugin(obj: Any, installed_ivoryos: Optional[str] = _UNSET) -> Blueprint:
    """Return ``obj`` if it can be registered as a plugin, else raise :class:`PluginError`.

    Checks the name (valid, not IvoryOS's), the endpoint IvoryOS's nav links to, and ``min_ivoryos``
    (a ``Plugin`` argument, or a ``min_ivoryos`` attribute on a plain Blueprint).

    :param obj: what the entry point loaded.
    :param installed_ivoryos: the installed IvoryOS version (looked up when not given)."""
    if not isinstance(obj, Blueprint):
        raise _not_a_blueprint(obj)
    names.check_name(obj.name)
    check_endpoint(obj)
    minimum = obj.min_ivoryos if isinstance(obj, Plugin) else getattr(obj, "min_ivoryos", None)
    installed = adapter.installed_version() if installed_ivoryos is _UNSET else installed_ivoryos
    names.check_ivoryos_compatible(obj.name, minimum, installed)
    return obj
