"""How the framework attaches to an app, in Flask's extension style: :class:`IvoryOSPlugins`
(``IvoryOSPlugins(app)``, or ``IvoryOSPlugins()`` then ``init_app(app)``) is the explicit way; the
first plugin registered on an app that has not attached it (plain ``ivoryos.run(blueprint_plugins=
[...])``: IvoryOS gives no other hook) calls the same ``init_app``, through :func:`attach`.

Attaching creates ``app.extensions["ivoryos_plugin"]`` (every per-app state lives there), registers
the ``plugins`` blueprint (health page, browser assets), the start-up hooks, then lets the host adopt
the app (:meth:`ivoryos_plugin.core.binding.Host.adopt`: its live transport, IvoryOS's probe, or the
dev host's own lock). An :class:`IvoryOSPlugins` holds options only (the run's discovery failures,
how plain Blueprints are protected, hooks for the app): one object can attach several apps, each
keeping its own state. The process-wide part (stop at exit, login signals) is :mod:`.process`.

Per-run hooks belong to the run's :class:`IvoryOSPlugins` (``on_attach``: ``ivoryos_plugin.run``
gives the hardening's install to its own, the demo its discovery failures), never to module state,
so two apps built in one process (a test's app and a dev host, an edge plugin's app during a
launch, two launches) share nothing. Two module-level objects remain, both stateless:
:data:`IMPLICIT`, the extension of apps attached without one (no options, and its ``on_attach``
refuses), and its blueprint :data:`framework_blueprint`, which the edge's private app and the pytest
kit's IvoryOS register to attach that way, and whose static folder (:data:`STATIC_FOLDER`) serves
the browser assets. A Blueprint can be registered on any number of apps; this one is sealed once
its own routes are added (:meth:`FrameworkBlueprint.record` refuses), so nothing per run can ride
on it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional

from flask import Blueprint, Flask, Response, request
from flask.sansio.app import App

from ..core import binding
from ..core.plugin import Plugin
from . import process, registry
from .extension import KEY, Extension
from .health import add_health_routes
from .libraries import close_dropped_connections
from .lifecycle import PluginRuntime
from .plain import protect_plain
from .process import stop_all_apps, stop_on_sigterm
from .security import guard_request, harden_response, security_headers

if TYPE_CHECKING:
    from flask.sansio.blueprints import DeferredSetupFunction

__all__ = ["AppHook", "FrameworkBlueprint", "IvoryOSPlugins", "Protect", "STATIC_FOLDER", "add_plugin", "attach",
           "framework_blueprint", "stop_all_apps", "stop_on_sigterm"]

Protect = Callable[[Flask, Blueprint], Any]
AppHook = Callable[[Flask, Extension], None]
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the framework's browser assets (``ivoryos_plugin.js``, ``ivoryos_plugin_csrf.js``, ...): the blueprints' static folder
STATIC_FOLDER = os.path.join(PACKAGE, "static")


class IvoryOSPlugins:
    """The framework as a Flask extension: ``init_app`` attaches it to an app, once.

    Everything per app goes to ``app.extensions["ivoryos_plugin"]``; this object keeps only the
    options, so it may attach several apps (an app factory, tests), each with its own state.
    Attaching twice is harmless: the second ``init_app`` on an app returns its state unchanged.
    Registering a :class:`~ivoryos_plugin.Plugin` on an app that was not attached attaches it
    with no options (the way plain ``ivoryos.run(blueprint_plugins=[plugin])`` works).

    :param app: the app to attach now (or None: call :meth:`init_app` later).
    :param failures: plugins that failed to load, shown on the health page (``discover().failures``
        as dicts).
    :param plain: plain Blueprints (not :class:`~ivoryos_plugin.Plugin`) the app will serve as plugins:
        each gets ``protect`` when the app is attached.
    :param protect: gives a plain Blueprint the framework's safety baseline (login, CSRF, headers);
        by default the routes part of it (``ivoryos_plugin.run`` gives
        :func:`ivoryos_plugin.hosts.discovery.protect_plain`, which guards IvoryOS's ``init_socketio`` too).
    :param on_attach: hooks called with ``(app, state)`` once the app is attached, in order.

    Example::

        from flask import Flask
        from ivoryos_plugin import IvoryOSPlugins

        plugins = IvoryOSPlugins()

        def create_app():
            app = Flask(__name__)
            plugins.init_app(app)
            app.register_blueprint(plugin, url_prefix="/ivoryos/" + plugin.name)
            return app

    Inside IvoryOS, give ``ivoryos.run`` the extension's blueprint first; it attaches IvoryOS's
    app when IvoryOS registers it::

        ivoryos.run(__name__, blueprint_plugins=[IvoryOSPlugins().blueprint(), plugin])
    """

    def __init__(self, app: Optional[Flask] = None, *, failures: Iterable[Dict[str, str]] = (),
                 plain: Iterable[Blueprint] = (), protect: Optional[Protect] = None,
                 on_attach: Iterable[AppHook] = ()) -> None:
        self.failures: List[Dict[str, str]] = [dict(f) for f in failures]
        self.plain: List[Blueprint] = list(plain)
        self.protect = protect
        self.hooks: List[AppHook] = list(on_attach)
        self._blueprint: Optional[FrameworkBlueprint] = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Extension:
        """Attach the framework to ``app`` (once) and apply this object's options there (once).

        :param app: the app.
        :returns: its framework state, ``app.extensions["ivoryos_plugin"]``."""
        ext = app.extensions.get(KEY)
        if ext is None:
            ext = _create(app, self)
        if not isinstance(ext, Extension):
            raise RuntimeError(f"app.extensions[{KEY!r}] of app {app.import_name!r} is not the framework's state "
                               f"({type(ext).__name__}); remove whatever set it.")
        if not ext.ready or any(f is self for f in ext.frameworks):
            return ext  # attaching is under way (its init_app finishes), or this object attached it already
        ext.frameworks.append(self)
        ext.failures.extend(dict(f) for f in self.failures)
        protect = self.protect or _protect_routes
        for blueprint in self.plain:
            if not isinstance(blueprint, Plugin):
                protect(app, blueprint)
        for hook in list(self.hooks):
            hook(app, ext)
        return ext

    def on_attach(self, hook: AppHook) -> AppHook:
        """Call ``hook(app, state)`` on each app this object attaches from now on, after the app is
        adopted and its plain Blueprints are protected (``ivoryos_plugin.run`` hardens IvoryOS's app so).

        :param hook: the hook.
        :returns: the hook (usable as a decorator)."""
        self.hooks.append(hook)
        return hook

    def blueprint(self) -> "FrameworkBlueprint":
        """This extension's ``plugins`` blueprint (health page, browser assets): registered on an app
        (``ivoryos.run(blueprint_plugins=[it, ...])``), it calls :meth:`init_app` there."""
        if self._blueprint is None:
            self._blueprint = FrameworkBlueprint(self)
        return self._blueprint


class FrameworkBlueprint(Blueprint):
    """The ``plugins`` blueprint of one :class:`IvoryOSPlugins`: registered on an app, it attaches
    the framework there (its extension's ``init_app``).

    :param framework: the extension it belongs to (the one the implicit attach uses when None)."""

    plugin_type = "tab"  # IvoryOS's nav shows it as a tab: "Plugins"

    def __init__(self, framework: Optional[IvoryOSPlugins] = None) -> None:
        super().__init__("plugins", __name__, static_folder=STATIC_FOLDER,
                         static_url_path="/static", template_folder=os.path.join(PACKAGE, "templates"))
        self.framework = framework
        self._sealed = False
        add_health_routes(self)
        self._sealed = True  # its own routes only: nothing per run can ride on it

    def register(self, app: App, options: Dict[str, Any]) -> None:
        """Flask's hook: register, then attach the framework (its extension's ``init_app``).

        :param app: the app.
        :param options: the registration options."""
        super().register(app, options)
        assert isinstance(app, Flask)
        (self.framework or IMPLICIT).init_app(app)

    def record(self, func: "DeferredSetupFunction") -> None:
        """Flask's setup hook, closed once the blueprint has its own routes: code for one run goes to
        that run's :meth:`IvoryOSPlugins.on_attach`, never onto a blueprint (which may be shared).

        :param func: the function Flask would call at each registration.
        :raises RuntimeError: the blueprint is complete."""
        if self._sealed:
            raise RuntimeError("ivoryos_plugin: the framework's 'plugins' blueprint takes nothing after it is built (it may be shared "
                               "by every app of the process); give the run's IvoryOSPlugins the hook instead: "
                               "IvoryOSPlugins(on_attach=[hook]) or its on_attach(hook).")
        super().record(func)


def _protect_routes(app: Flask, blueprint: Blueprint) -> bool:
    """The default ``protect``: login, CSRF and headers on the plain Blueprint's routes.

    :param app: the attached app.
    :param blueprint: the plain Blueprint."""
    return protect_plain(app, blueprint, app.extensions[KEY])


class _Implicit(IvoryOSPlugins):
    """The extension every app attached without one shares: it has no options and takes none."""

    def on_attach(self, hook: AppHook) -> AppHook:
        """Refused: this extension attaches every app that registers a Plugin without one, so a hook
        here would run on all of them; make an :class:`IvoryOSPlugins` for the run and give it the hook.

        :param hook: the hook.
        :raises RuntimeError: always."""
        raise RuntimeError("ivoryos_plugin: the implicit extension is shared by every app of the process and takes "
                           "no hooks; attach the app with its own IvoryOSPlugins(on_attach=[hook]) instead.")


#: the extension the implicit attach uses (no options, and it takes none): what registering a Plugin on a
#: bare app calls
IMPLICIT: IvoryOSPlugins = _Implicit()
#: its ``plugins`` blueprint, registered by the implicit attach and by hosts that attach an app of their
#: own this way (the edge's private app, the pytest kit's IvoryOS); sealed, so stateless (module docstring)
framework_blueprint = IMPLICIT.blueprint()


def attach(app: Flask) -> Extension:
    """Attach the framework to ``app`` if nothing did yet (the implicit way: ``IvoryOSPlugins().init_app``
    with no options), and return its state.

    :param app: the app registering its first plugin."""
    ext = app.extensions.get(KEY)
    if isinstance(ext, Extension) and ext.ready:
        return ext  # every plugin call after the first: a dict lookup
    return IMPLICIT.init_app(app)


def _create(app: Flask, framework: IvoryOSPlugins) -> Extension:
    """Create the app's framework state and install what every attached app has.

    :param app: the app.
    :param framework: the extension attaching it (its blueprint is registered unless the app has one)."""
    ext = Extension(app)
    app.extensions[KEY] = ext
    from flask_wtf.csrf import generate_csrf

    app.jinja_env.globals.setdefault("csrf_token", generate_csrf)
    if "plugins" not in app.blueprints:
        app.register_blueprint(framework.blueprint(), url_prefix=f"{ext.url_prefix}/plugins")
    _watch_registrations(app, ext)

    # one hook before and one after each request (Flask looks each hook up and asks whether it is a
    # coroutine on every request)
    registrations = ext.registrations

    @app.before_request
    def _before_each_request() -> Optional[Response]:
        if not ext.started:
            ext.ensure_started()  # the plugins' on_start, at the first request
        if not registrations.owners and not registrations.watching:
            return None  # (no plugin added a route to the app itself: nothing else to look up)
        # routes a plugin added to the app itself (record_once, its register): its guard, not its Blueprint's
        name = registrations.owner(request.endpoint)
        return None if name is None else guard_request(name, public=False)

    @app.after_request
    def _after_each_request(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        # 404s, 405s and errors under a plugin's prefix never reach its blueprint's hooks
        if ext.plugin_of_path(req.path) is not None:
            security_headers(response)
        if not registrations.owners and not registrations.watching:
            return response
        name = registrations.owner(req.endpoint)
        return response if name is None else harden_response(response, name)

    #: the after hook, for a host that runs it from a hook of its own (the hardening's, one hook per request)
    ext.after_each_request = _after_each_request

    @app.context_processor
    def _nav() -> Dict[str, Any]:
        def nav() -> List[Dict[str, str]]:
            items = [{"name": rt.plugin.name, "title": rt.plugin.title, "url": rt.namespace + "/"}
                     for rt in ext.runtimes.values() if rt.plugin.placement == "tab"]
            return items + [{"name": name, "title": name.capitalize(), "url": f"{ext.url_prefix}/{name}/"}
                            for name in ext.plain]
        return {"ivoryos_plugin_nav": nav}

    if ext.socketio is not None:
        close_dropped_connections()  # a closed WebSocket is not read as a bad request
    registry.remember_app(ext)
    process.install()  # stop at exit, login signals: once per process, however many apps
    binding.host().adopt(app, ext)
    ext.ready = True
    return ext


def _watch_registrations(app: Flask, ext: Extension) -> None:
    """Watch every plugin registered on ``app`` from now on (``app.register_blueprint``, as IvoryOS's
    ``load_plugins`` and the dev host call it): what it adds to the app is its own
    (:class:`~ivoryos_plugin.runtime.extension.Registrations`).

    :param app: the app being attached.
    :param ext: its framework state."""
    original = app.register_blueprint

    def register_blueprint(blueprint: Blueprint, **options: Any) -> None:
        watched = False
        if isinstance(blueprint, Plugin) or ext.plain.get(blueprint.name) is blueprint:
            watched = ext.registrations.begin(blueprint.name, blueprint)
        elif ext.registrations.watching and not ext.registrations.inside():
            ext.registrations.settle()  # not a plugin's: the plugin watched before has finished
        try:
            original(blueprint, **options)
        finally:
            if watched:
                ext.registrations.settle()

    setattr(app, "register_blueprint", register_blueprint)  # this app only: Flask's own method underneath


def add_plugin(ext: Extension, plugin: "Plugin", prefix: str) -> PluginRuntime:
    """Create the plugin's runtime in the extension's app (at its registration), started at once
    when the app's plugins already started. The routes its registration adds to the app outside its
    Blueprint are its own from then on (a registration not watched since its start, as the first
    Plugin's when nothing attached the app before it, is watched from here).

    :param ext: the app's framework state.
    :param plugin: the plugin.
    :param prefix: its URL prefix, which is also its Socket.IO namespace."""
    ext.registrations.begin(plugin.name, plugin)
    runtime = PluginRuntime(plugin, ext, namespace=prefix)
    ext.runtimes[plugin.name] = runtime
    runtime.serve_live()  # the host's live transport routes its clients to its hub
    if ext.started:
        runtime.start(ext.deck_getter())
    return runtime
