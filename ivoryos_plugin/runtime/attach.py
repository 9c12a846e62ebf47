"""How the framework attaches to an app: once per app, the first time a plugin (or the framework's
``plugins`` blueprint) is registered, inside IvoryOS or the standalone host alike.

Attaching creates ``app.extensions["ivoryos_plugin"]``, registers the ``plugins`` blueprint (health
page, browser assets), the start-up and shutdown hooks, then lets the host adopt the app
(:meth:`ivoryos_plugin.core.binding.Host.adopt`: its live transport, IvoryOS's probe, or the dev host's
own lock).
"""
from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from flask import Blueprint, Flask, Response, request, session
from flask.sansio.app import App

from ..core import binding
from ..core.plugin import Plugin
from .extension import KEY, Extension
from .health import add_health_routes
from .libraries import close_dropped_connections
from .lifecycle import PluginRuntime
from .security import guard_request, harden_response, security_headers
from .sessions import SID_KEY, USER_KEY

Protect = Callable[[Flask, Blueprint], None]
AppHook = Callable[[Flask, Extension], None]
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXTENSIONS: "weakref.WeakSet[Extension]" = weakref.WeakSet()
_HOOKS_INSTALLED = False
_SESSION_HOOKS = False


class FrameworkBlueprint(Blueprint):
    """The ``plugins`` blueprint. Registered first (by ``ivoryos_plugin.run``, or by the first
    plugin), it attaches the framework to the app and protects plain Blueprint plugins."""

    plugin_type = "tab"  # IvoryOS's nav shows it as a tab: "Plugins"
    _app_hooks: List[AppHook] = []  # replaced per instance by on_register

    def configure(self, plugins: List[Blueprint], failures: List[Dict[str, str]],
                  protect: Optional[Protect] = None) -> None:
        """Tell the blueprint, before ``ivoryos.run`` registers it, what else is loaded.

        :param plugins: the plugins about to be registered (plain ones get the safety baseline).
        :param failures: the discovery report's failures, for the health page.
        :param protect: gives a plain Blueprint the safety baseline (the launcher's)."""
        self._pending: Tuple[List[Blueprint], List[Dict[str, str]], Optional[Protect]] = (
            list(plugins), list(failures), protect)

    def register(self, app: App, options: Dict[str, Any]) -> None:
        """Flask's hook: register, attach the framework, protect the pending plain Blueprints.

        :param app: the app.
        :param options: the registration options."""
        super().register(app, options)
        assert isinstance(app, Flask)
        ext = attach(app)
        plugins, failures, protect = getattr(self, "_pending", ([], [], None))
        self._pending = ([], [], None)
        ext.failures.extend(failures)
        for blueprint in plugins:
            if protect is not None and not _is_plugin(blueprint):
                protect(app, blueprint)
        hooks: List[AppHook] = list(getattr(self, "_app_hooks", []))
        self._app_hooks = []
        for hook in hooks:
            hook(app, ext)

    def on_register(self, hook: AppHook) -> None:
        """Run ``hook(app, ext)`` when the blueprint is next registered (once): the hosts layer's
        hardening of IvoryOS's app (``ivoryos_plugin.run``) gets the app this way.

        :param hook: called with the app and its framework state, after the plain plugins are protected."""
        self._app_hooks = [*getattr(self, "_app_hooks", []), hook]


framework_blueprint = FrameworkBlueprint("plugins", __name__, static_folder=os.path.join(PACKAGE, "static"),
                                         static_url_path="/static",
                                         template_folder=os.path.join(PACKAGE, "templates"))
add_health_routes(framework_blueprint)


def _is_plugin(blueprint: Blueprint) -> bool:
    return isinstance(blueprint, Plugin)


def attach(app: Flask) -> Extension:
    """Attach the framework to ``app`` once and return its state.

    :param app: the app registering its first plugin."""
    ext = app.extensions.get(KEY)
    if ext is not None:
        return ext  # type: ignore[no-any-return]
    ext = Extension(app)
    app.extensions[KEY] = ext
    from flask_wtf.csrf import generate_csrf

    app.jinja_env.globals.setdefault("csrf_token", generate_csrf)
    if "plugins" not in app.blueprints:
        app.register_blueprint(framework_blueprint, url_prefix=f"{ext.url_prefix}/plugins")
    _watch_registrations(app, ext)

    @app.before_request
    def _start_plugins() -> None:
        ext.ensure_started()

    @app.before_request
    def _guard_app_routes_of_plugins() -> Optional[Response]:
        # routes a plugin added to the app itself (record_once, its register): its guard, not its Blueprint's
        name = ext.registrations.owner(request.endpoint)
        return None if name is None else guard_request(name, public=False)

    @app.after_request
    def _harden_app_routes_of_plugins(response: Response) -> Response:
        name = ext.registrations.owner(request.endpoint)
        return response if name is None else harden_response(response, name)

    @app.after_request
    def _headers_under_plugin_prefixes(response: Response) -> Response:
        # 404s, 405s and errors under a plugin's prefix never reach its blueprint's hooks
        if ext.plugin_of_path(request.path) is not None:
            security_headers(response)
        return response

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
    _EXTENSIONS.add(ext)
    _install_shutdown_hooks()
    _install_session_hooks()
    binding.host().adopt(app, ext)
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
        if _is_plugin(blueprint) or ext.plain.get(blueprint.name) is blueprint:
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


def stop_all_apps() -> None:
    """Stop the plugins of every app in this process (atexit, SIGTERM)."""
    for ext in list(_EXTENSIONS):
        ext.stop_all()


def _install_shutdown_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(stop_all_apps)  # a library installs no signal handler: the programs do (stop_on_sigterm)


def stop_on_sigterm() -> bool:
    """Stop every app's plugins (workers, then ``on_stop``) when the process gets SIGTERM, then exit
    with 128 + 15, as a shell reports it. The framework's programs call it (``ivoryos_plugin.run``,
    the dev host, the demo); a deck started with plain ``ivoryos.run`` calls it before ``ivoryos.run``
    to get the same (without it, SIGTERM ends the process and ``on_stop`` does not run; SIGINT and
    a normal exit run it anyway). A handler someone else installed is left alone.

    :returns: whether the handler is installed (False off the main thread, or when SIGTERM is taken).

    Example::

        import ivoryos, ivoryos_plugin

        ivoryos_plugin.stop_on_sigterm()
        ivoryos.run(__name__, blueprint_plugins=[plugin])
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current not in (signal.SIG_DFL, None):
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _install_session_hooks() -> None:
    """Give every login a session id, and end it (and its sockets) at logout (Flask-Login's signals)."""
    global _SESSION_HOOKS
    if _SESSION_HOOKS:
        return
    _SESSION_HOOKS = True
    from flask_login import user_logged_in, user_logged_out

    user_logged_in.connect(_logged_in, weak=False)
    user_logged_out.connect(_logged_out, weak=False)


def _logged_in(app: Flask, **extra: Any) -> None:
    ext = app.extensions.get(KEY)
    if isinstance(ext, Extension):
        ext.sessions.begin(session)


def _logged_out(app: Flask, **extra: Any) -> None:
    ext = app.extensions.get(KEY)
    if not isinstance(ext, Extension):
        return
    sid, user = session.get(SID_KEY), session.get(USER_KEY)
    ext.sessions.end(sid, user)
    ext.connections.end_session(sid, user)


def _on_sigterm(signum: int, frame: Any) -> None:
    stop_all_apps()
    raise SystemExit(128 + signum)
