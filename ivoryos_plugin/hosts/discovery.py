"""Finding and loading plugins: the ``ivoryos.plugins`` entry point group, each plugin loaded in
isolation (one broken plugin never stops the others), and plain Blueprints accepted as they are."""
from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Dict, Iterable, List, Optional, Tuple

from flask import Blueprint, Flask

from ..core import names
from ..core.names import PluginError
from ..core.plugin import Plugin
from ..core.versions import normalize, requirement_problem
from ..runtime.attach import attach
from ..runtime.plain import protect_plain as _protect_routes
from . import ivoryos as adapter

GROUP = names.ENTRY_POINT_GROUP
log = logging.getLogger("ivoryos_plugin")
_UNSET: Any = object()


@dataclass
class Failure:
    """A plugin that could not be loaded.

    :param name: the entry point (or plugin) name.
    :param stage: ``"import"``, ``"check"``, ``"init_socketio"`` or ``"register"``.
    :param error: ``Type: message``.
    :param traceback: the formatted traceback.
    :param source: ``module:attribute (distribution version)``."""

    name: str
    stage: str
    error: str
    traceback: str
    source: str = ""

    def as_dict(self) -> Dict[str, str]:
        """A JSON-able copy (the shape the health page shows)."""
        return {"name": self.name, "stage": self.stage, "error": self.error,
                "traceback": self.traceback, "source": self.source}


@dataclass
class Discovery:
    """The result of :func:`discover`: loaded plugins and the report of those that failed.

    :param plugins: the loaded plugin Blueprints, in discovery order.
    :param failures: one entry per plugin that failed.
    :param sources: plugin name -> ``module:attribute (distribution version)``."""

    plugins: List[Blueprint] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    sources: Dict[str, str] = field(default_factory=dict)

    def report(self) -> List[str]:
        """One line per plugin: ``ok name version source`` or ``FAILED name (stage): error``."""
        lines = [f"ok      {p.name:<20} {getattr(p, 'version', '') or '-':<10} {self.sources.get(p.name, '')}"
                 for p in self.plugins]
        return lines + [f"FAILED  {f.name:<20} {'-':<10} {f.source}: {f.stage}: {f.error}" for f in self.failures]


# ------------------------------------------------------------------ checks on loaded objects
def _fail(name: str, stage: str, exc: BaseException, source: str = "") -> Failure:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(name=name, stage=stage, error=f"{type(exc).__name__}: {exc}", traceback=tb, source=source)


def plain_endpoints(blueprint: Blueprint) -> List[str]:
    """The endpoints of a plain Blueprint, found by registering it on a scratch app.

    :param blueprint: the Blueprint."""
    if isinstance(blueprint, Plugin):
        return sorted(blueprint._endpoints)
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
    if plugin_type not in names.PLACEMENTS:
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


def _entry_points(group: str) -> List[Tuple[Any, Any]]:
    """``(entry point, distribution)`` pairs of ``group``, one distribution per name (first on sys.path)."""
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return [(ep, ep.dist) for ep in metadata.entry_points(group=group)]
    seen, found = set(), []  # pragma: no cover - Python 3.9
    for dist in metadata.distributions():  # pragma: no cover
        key = normalize(dist.metadata["Name"] or "")
        if key in seen:
            continue
        seen.add(key)
        found.extend((ep, dist) for ep in dist.entry_points if ep.group == group)
    return found


def discover(group: str = GROUP, *, exclude: Optional[Iterable[str]] = None) -> Discovery:
    """Load every plugin installed under the entry point ``group``, each in isolation.

    An import error, an exception at construction, a duplicate or reserved name, a missing nav
    endpoint or an incompatible IvoryOS (``min_ivoryos`` or the distribution's ``ivoryos``
    requirement) puts that one plugin in ``failures`` with its traceback; the others load.

    :param group: the entry point group.
    :param exclude: plugin names to skip (not even imported).

    Example::

        found = ivoryos_plugin.discover()
        for failure in found.failures:
            print(failure.name, failure.error)
    """
    result = Discovery()
    skip = set(exclude or [])
    installed = adapter.installed_version()
    for ep, dist in sorted(_entry_points(group), key=lambda pair: pair[0].name):
        if ep.name in skip:
            continue
        source: str = ep.value
        requires: List[str] = []
        if dist is not None:
            meta = dist.metadata  # parsed once: name, version and requirements
            source = f"{ep.value} ({meta['Name']} {meta['Version']})"
            requires = list(meta.get_all("Requires-Dist") or [])
        try:
            obj = ep.load()
        except BaseException as exc:  # a plugin may even call sys.exit at import
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.failures.append(_fail(ep.name, "import", exc, source))
            continue
        try:
            obj = resolve_entry_point(obj, ep.name)
        except PluginError as exc:
            result.failures.append(_fail(ep.name, "check", exc, source))
            continue
        if isinstance(obj, Blueprint) and obj.name in skip:
            continue
        try:
            check_plugin(obj, installed)
            problem = requirement_problem(requires, installed)
            if problem:
                raise PluginError(obj.name, problem)
            if obj.name in result.sources:
                raise PluginError(obj.name, f"is installed twice ({result.sources[obj.name]} and {source}); "
                                            "uninstall one, or rename one of the plugins.")
        except Exception as exc:
            result.failures.append(_fail(ep.name, "check", exc, source))
            continue
        result.plugins.append(obj)
        result.sources[obj.name] = source
    return result


# ------------------------------------------------------------------ registration
def register_plugin(app: Flask, blueprint: Blueprint, socketio: Any, url_prefix: str = "/ivoryos") -> None:
    """Register a Plugin, or a plain Blueprint with the framework's safety baseline, on ``app``
    (as IvoryOS's ``load_plugins`` does: ``init_socketio`` first, then the blueprint).

    :param app: the app.
    :param blueprint: the plugin.
    :param socketio: the app's Socket.IO server (given to ``init_socketio``).
    :param url_prefix: the app's URL prefix."""
    if not isinstance(blueprint, Plugin):
        protect_plain(app, blueprint)
    if hasattr(blueprint, "init_socketio"):
        blueprint.init_socketio(socketio)
    app.register_blueprint(blueprint, url_prefix=f"{url_prefix}/{blueprint.name}")
    attach(app)


def protect_plain(app: Flask, blueprint: Blueprint) -> None:
    """Give a plain Blueprint plugin the framework's baseline: login, CSRF, headers, scripts, and
    an ``init_socketio`` that can neither crash IvoryOS nor put its default-namespace handlers out
    of action (what it does there otherwise is as under plain IvoryOS, with a warning).

    :param app: the app it is registered on.
    :param blueprint: the plain Blueprint."""
    if _protect_routes(app, blueprint):
        adapter.guard_init_socketio(blueprint, attach(app).record_warning)
