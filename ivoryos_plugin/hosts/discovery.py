"""Finding and loading plugins: the ``ivoryos.plugins`` entry point group, each plugin loaded in
isolation (one broken plugin never stops the others: neither at import nor while the host registers
it), and plain Blueprints accepted as they are."""
from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from flask import Blueprint, Flask, Response

from ..core import names
from ..core.names import PluginError
from ..core.plugin import Plugin
from ..core.versions import normalize, requirement_problem
from ..runtime.attach import attach
from ..runtime.extension import KEY
from ..runtime.plain import protect_plain as _protect_routes
from ..runtime.replies import error_response
from ..runtime.security import guard_request
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
        result.plugins.append(isolate_registration(obj, source))
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


# ------------------------------------------------------------------ isolation at registration
#: The app's per-blueprint hook tables (``{blueprint name or None: [functions]}``) a registration fills.
_HOOK_TABLES = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs", "url_value_preprocessors",
                "url_default_functions", "template_context_processors")


class _Snapshot:
    """What an app holds before a plugin registers: enough to take back what the plugin added
    if its registration raises (its hooks, its blueprints) and to find the URL rules it added."""

    def __init__(self, app: Flask) -> None:
        self.endpoints = set(app.view_functions)
        self.rules = {id(rule) for rule in app.url_map.iter_rules()}
        self.blueprints = dict(app.blueprints)
        self.attached = KEY in app.extensions
        self.hooks = {table: {key: list(funcs) for key, funcs in getattr(app, table).items()}
                      for table in _HOOK_TABLES}
        self.errors = {key: {code: dict(handlers) for code, handlers in by_code.items()}
                       for key, by_code in app.error_handler_spec.items()}

    def roll_back(self, app: Flask, unavailable: Callable[[], Any]) -> List[str]:
        """Take back the hooks and blueprints the failed registration added; point the endpoints it
        added at ``unavailable``. Returns those endpoints.

        :param app: the app.
        :param unavailable: the view that answers 503 in their place."""
        for table in _HOOK_TABLES:
            current = getattr(app, table)
            for key in list(current):
                if key is None and not self.attached:
                    continue  # the framework attached itself meanwhile: its app-wide hooks stay
                before = self.hooks[table].get(key)
                if before is None:
                    del current[key]
                else:
                    current[key][:] = before
        for key in list(app.error_handler_spec):
            if key in self.errors:
                app.error_handler_spec[key].clear()
                app.error_handler_spec[key].update({c: dict(h) for c, h in self.errors[key].items()})
            else:
                del app.error_handler_spec[key]
        for name in [n for n in app.blueprints if n not in self.blueprints]:
            del app.blueprints[name]
        added = sorted({rule.endpoint for rule in app.url_map.iter_rules()
                        if id(rule) not in self.rules and rule.endpoint not in self.endpoints}
                       | (set(app.view_functions) - self.endpoints))
        for endpoint in added:
            app.view_functions[endpoint] = unavailable
        return added


def _unavailable_view(name: str, failure: Failure) -> Callable[..., Response]:
    """The view that answers, in place of each route of a plugin whose registration failed: the
    request guards first (login), then 503 with the reason."""
    message = (f"Plugin {name!r} failed to load at its {failure.stage} stage ({failure.error}), so it is not "
               "served; the health page /ivoryos/plugins/ shows the traceback. Fix the plugin or uninstall it.")

    def unavailable(**_: Any) -> Response:
        refused = guard_request(name, public=False)
        return refused if refused is not None else error_response(503, message, failed=failure.stage)

    unavailable.__name__ = f"{name}_unavailable"
    return unavailable


def _fail_registration(app: Flask, blueprint: Blueprint, options: Dict[str, Any], failure: Failure,
                       snapshot: Optional[_Snapshot]) -> None:
    """Take a plugin that failed while the host registered it out of service: what it added is
    taken back, its routes (and the endpoint IvoryOS's nav links to) answer 503, and the health page
    lists it as failed, with the stage, the reason and the traceback."""
    name = blueprint.name
    unavailable = _unavailable_view(name, failure)
    snapshot = snapshot or _Snapshot(app)
    owner = snapshot.blueprints.get(name)
    ext = attach(app)
    if owner is blueprint:  # registered twice on one app: the first registration serves it
        log.warning("plugin %r is registered twice; the second registration was ignored: %s", name, failure.error)
        return
    snapshot.roll_back(app, unavailable)
    if owner is None:  # the name is the plugin's, not another blueprint's: IvoryOS's nav link must work
        prefix = (options.get("url_prefix") or f"{app.config.get('URL_PREFIX', '/ivoryos')}/{name}").rstrip("/")
        needed = names.required_endpoint(getattr(blueprint, "plugin_type", "tab"))
        if f"{name}.{needed}" not in app.view_functions:
            rule = "/" if needed == "main" else "/widget"
            app.add_url_rule(prefix + rule, endpoint=f"{name}.{needed}", view_func=unavailable)
    if ext.plain.get(name) is blueprint:
        del ext.plain[name]
    runtime = ext.runtimes.get(name)
    if runtime is not None and runtime.plugin is blueprint:
        del ext.runtimes[name]
        runtime.suspend(f"failed to register: {failure.error}", "failed", failure.traceback)
        runtime.stop()
    ext.failures.append(failure.as_dict())
    log.error("plugin %r failed at %s and is not served: %s", name, failure.stage, failure.error)
    print(f" * plugin {name!r} not loaded ({failure.stage}): {failure.error}; the others are served; its traceback: "
          "the health page /ivoryos/plugins/", file=sys.stderr, flush=True)


def isolate_registration(blueprint: Blueprint, source: str = "") -> Blueprint:
    """Make a plugin's failures while the host registers it (an ``init_socketio`` that raises, a
    deferred setup function that raises, an endpoint collision) its own: the exception never
    reaches IvoryOS's ``load_plugins`` loop, the plugin is listed as failed on the health page
    (stage ``"init_socketio"`` or ``"register"``, the reason, the traceback) exactly as a plugin
    that fails to import, what it half-registered is taken back or answers 503, and the other
    plugins are served. Wraps ``register`` and ``init_socketio`` on the instance; idempotent.

    :param blueprint: a plugin (a :class:`Plugin` or a plain Blueprint).
    :param source: where it comes from (``module:attribute (distribution version)``), for the report.
    :returns: the same blueprint."""
    if getattr(blueprint, "_ivoryos_plugin_isolated", False):
        return blueprint
    name = blueprint.name
    register = blueprint.register
    init = getattr(blueprint, "init_socketio", None)
    failed: List[Failure] = []

    if callable(init):
        def init_socketio(socketio: Any) -> None:
            handlers = adapter.default_namespace_handlers(socketio)
            before = dict(handlers)
            try:
                init(socketio)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                handlers.clear()  # the handlers it added before raising are taken back
                handlers.update(before)
                failed.append(_fail(name, "init_socketio", exc, source))

        setattr(blueprint, "init_socketio", init_socketio)

    def isolated(app: Any, options: Dict[str, Any]) -> None:
        if options.get("name_prefix") or options.get("name", name) != name or not isinstance(app, Flask):
            register(app, options)  # nested in another blueprint, or a scratch app's probe: not isolated
            return
        if failed:  # its init_socketio raised: nothing of it is registered
            _fail_registration(app, blueprint, options, failed.pop(), None)
            return
        snapshot = _Snapshot(app)
        try:
            register(app, options)
        except BaseException as exc:  # a setup function may even call sys.exit
            if isinstance(exc, KeyboardInterrupt):
                raise
            _fail_registration(app, blueprint, options, _fail(name, "register", exc, source), snapshot)

    setattr(blueprint, "register", isolated)
    setattr(blueprint, "_ivoryos_plugin_isolated", True)
    return blueprint
