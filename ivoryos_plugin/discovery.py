"""Finding and loading plugins: the ``ivoryos.plugins`` entry point group, each plugin loaded in
isolation (one broken plugin never stops the others), and plain Blueprints accepted as they are."""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from flask import Blueprint, Flask, Response, request

from . import names
from .names import PluginError

GROUP = "ivoryos.plugins"


@dataclass
class Failure:
    """A plugin that could not be loaded.

    :param name: the entry point (or plugin) name.
    :param stage: ``"import"``, ``"check"`` or ``"register"``.
    :param error: ``Type: message``.
    :param traceback: the formatted traceback.
    :param source: ``module:attribute`` and the distribution it came from."""

    name: str
    stage: str
    error: str
    traceback: str
    source: str = ""

    def as_dict(self) -> Dict[str, str]:
        """A JSON-able copy."""
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


def _entry_points(group: str) -> List[Any]:
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        return list(entry_points(group=group))
    return list(entry_points().get(group, []))  # pragma: no cover - Python 3.9


def _fail(name: str, stage: str, exc: BaseException, source: str = "") -> Failure:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(name=name, stage=stage, error=f"{type(exc).__name__}: {exc}", traceback=tb, source=source)


def plain_endpoints(blueprint: Blueprint) -> List[str]:
    """The endpoints of a plain Blueprint, found by registering it on a scratch app.

    :param blueprint: the Blueprint."""
    from .plugin import Plugin

    if isinstance(blueprint, Plugin):
        return sorted(blueprint._endpoints)
    probe = Flask("ivoryos_plugin.probe")
    probe.register_blueprint(blueprint, name=f"probe_{blueprint.name}", url_prefix="/probe")
    prefix = f"probe_{blueprint.name}."
    return sorted(e[len(prefix):] for e in probe.view_functions if e.startswith(prefix))


def check_plugin(obj: Any, installed_ivoryos: Optional[str] = None) -> Blueprint:
    """Return ``obj`` if it can be registered as a plugin, else raise :class:`PluginError`.

    :param obj: what the entry point loaded.
    :param installed_ivoryos: the installed IvoryOS version (for ``min_ivoryos``)."""
    from .plugin import Plugin, _installed_ivoryos

    if not isinstance(obj, Blueprint):
        raise PluginError(str(getattr(obj, "name", obj)), f"the entry point gives a {type(obj).__name__}, "
                          "not a Plugin or flask.Blueprint; point it at the module's plugin object.")
    names.check_name(obj.name)
    placement = "left_panel" if getattr(obj, "plugin_type", "tab") == "left_panel" else "tab"
    needed = names.required_endpoint(placement)
    if needed not in plain_endpoints(obj):
        raise PluginError(obj.name, f"has no '{needed}' endpoint, which IvoryOS's nav links to; "
                                    f"add a route for {obj.name}.{needed}.")
    if isinstance(obj, Plugin):
        names.check_ivoryos_compatible(obj.name, obj.min_ivoryos, installed_ivoryos or _installed_ivoryos())
    return obj


def discover(group: str = GROUP, *, exclude: Optional[List[str]] = None) -> Discovery:
    """Load every plugin installed under the entry point ``group``, each in isolation.

    An import error, an exception at construction, a duplicate or reserved name, a missing nav
    endpoint or a too-old IvoryOS puts that one plugin in ``failures``; the others load.

    :param group: the entry point group.
    :param exclude: plugin names to skip.

    Example::

        found = ivoryos_plugin.discover()
        for failure in found.failures:
            print(failure.name, failure.error)
    """
    result = Discovery()
    skip = set(exclude or [])
    for ep in sorted(_entry_points(group), key=lambda e: e.name):
        if ep.name in skip:
            continue
        dist = getattr(ep, "dist", None)
        source = f"{ep.value} ({dist.metadata['Name']} {dist.version})" if dist is not None else ep.value
        try:
            obj = ep.load()
        except BaseException as exc:  # a plugin may even call sys.exit at import
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.failures.append(_fail(ep.name, "import", exc, source))
            continue
        try:
            check_plugin(obj)
            if obj.name in result.sources:
                raise PluginError(obj.name, f"is installed twice ({result.sources[obj.name]} and {source}); "
                                            "uninstall one.")
        except Exception as exc:
            result.failures.append(_fail(ep.name, "check", exc, source))
            continue
        result.plugins.append(obj)
        result.sources[obj.name] = source
    return result


def register_plugin(app: Flask, blueprint: Blueprint, socketio: Any, url_prefix: str = "/ivoryos") -> None:
    """Register a Plugin, or a plain Blueprint with the framework's safety baseline, on ``app``.

    :param app: the app.
    :param blueprint: the plugin.
    :param socketio: the app's Socket.IO server (given to ``init_socketio``).
    :param url_prefix: the app's URL prefix."""
    from .extension import attach
    from .plugin import Plugin

    if hasattr(blueprint, "init_socketio"):
        blueprint.init_socketio(socketio)
    if not isinstance(blueprint, Plugin):
        protect_plain(app, blueprint)
    app.register_blueprint(blueprint, url_prefix=f"{url_prefix}/{blueprint.name}")
    attach(app)


def protect_plain(app: Flask, blueprint: Blueprint) -> None:
    """Give a plain Blueprint plugin the framework's baseline: login, CSRF, headers, scripts.

    :param app: the app it is registered on.
    :param blueprint: the plain Blueprint."""
    from .extension import attach
    from .security import guard_request, harden_response

    ext = attach(app)
    if blueprint.name in ext.plain:
        return
    ext.plain[blueprint.name] = blueprint
    name = blueprint.name

    @app.before_request
    def _guard_plain() -> Optional[Response]:
        if request.blueprint != name:
            return None
        return guard_request(name, public=False)

    @app.after_request
    def _harden_plain(response: Response) -> Response:
        if request.blueprint != name:
            return response
        return harden_response(response, name)
