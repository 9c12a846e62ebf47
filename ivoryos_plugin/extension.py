"""The framework's per-app state, ``app.extensions["ivoryos_plugin"]``, and how it attaches to an app.

Attaching happens the first time a plugin is registered (``Plugin.register``), inside IvoryOS or
the standalone host alike: it registers the framework's ``plugins`` blueprint (health page and
browser assets), the start-up hook and the shutdown hooks.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from flask import Blueprint, Flask, current_app
from jinja2 import TemplateNotFound

from .tokens import TokenStore

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime
    from .plugin import Plugin

SHELL_TEMPLATE = "ivoryos_plugin/shell.html"
_EXTENSIONS: "weakref.WeakSet[Extension]" = weakref.WeakSet()
_HOOKS_INSTALLED = False


def _ivoryos_deck() -> Any:
    module = sys.modules.get("ivoryos")
    state = getattr(module, "global_state", None)
    return getattr(state, "deck", None)


class Extension:
    """What the framework knows about one app. Found with :func:`current_extension`.

    :param app: the Flask app (IvoryOS's or the standalone host's); not stored."""

    def __init__(self, app: Flask) -> None:
        prefix = str(app.config.get("URL_PREFIX", "/ivoryos") or "").rstrip("/")
        self.url_prefix = prefix
        self.socketio_path = f"{prefix}/socket.io"
        self.socketio: Any = app.extensions.get("socketio")
        self.is_ivoryos = app.import_name == "ivoryos.app"
        self.base_template = SHELL_TEMPLATE
        if app.jinja_loader is not None:
            try:
                app.jinja_loader.get_source(app.jinja_env, "base.html")
                self.base_template = "base.html"
            except TemplateNotFound:
                pass
        output = app.config.get("OUTPUT_FOLDER") or os.path.join(os.path.abspath(os.curdir), "ivoryos_data")
        self.data_root = Path(os.environ.get("IVORYOS_PLUGIN_DATA") or Path(output) / "plugins")
        self.tokens = TokenStore(self.data_root / "tokens.json")
        self.runtimes: Dict[str, "PluginRuntime"] = {}
        self.plain: Dict[str, Blueprint] = {}
        self.failures: List[Dict[str, str]] = []
        self.deck_getter: Callable[[], Any] = _ivoryos_deck
        self.runner_lock: Optional[threading.Lock] = None
        self.host_token: Optional[str] = None
        self.app_id = id(app)
        self._start_lock = threading.RLock()
        self.started = False
        self.stopped = False

    # ------------------------------------------------------------- plugins
    def add_plugin(self, plugin: "Plugin", prefix: str) -> None:
        """Create the plugin's runtime in this app (called by ``Plugin.register``).

        :param plugin: the plugin.
        :param prefix: its URL prefix, which is also its Socket.IO namespace."""
        from .lifecycle import PluginRuntime

        runtime = PluginRuntime(plugin, self, namespace=prefix)
        self.runtimes[plugin.name] = runtime
        plugin._runtime = runtime
        runtime.attach_socketio(self.socketio)
        if self.started:
            runtime.start(self.deck_getter())

    def record_failure(self, name: str, stage: str, error: BaseException) -> None:
        """Remember a plugin that failed to load or start, for the health page.

        :param name: the plugin (or entry point) name.
        :param stage: ``"import"``, ``"register"``, ``"start"``...
        :param error: the exception."""
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.failures.append({"name": name, "stage": stage, "error": f"{type(error).__name__}: {error}",
                              "traceback": tb})

    # ----------------------------------------------------------- hardware
    @contextmanager
    def hardware_guard(self, plugin: str) -> Iterator[None]:
        """Hold IvoryOS's runner lock (or the standalone host's) for a hardware action.

        :param plugin: the plugin asking, for the busy message."""
        from .deck import hardware_guard

        with hardware_guard(self.runner_lock, plugin=plugin):
            yield

    def deck_busy(self) -> bool:
        """Whether a workflow or single step holds the deck (or workflows wait in IvoryOS's queue)."""
        from .deck import is_deck_busy

        return is_deck_busy(self.runner_lock)

    # ---------------------------------------------------------- lifecycle
    def ensure_started(self) -> None:
        """Start every plugin once (on_start, workers): at the first request, or when the deck is known."""
        if self.started:
            return
        with self._start_lock:
            if self.started:
                return
            deck = self.deck_getter()
            self.started = True
            for runtime in list(self.runtimes.values()):
                runtime.start(deck)

    def stop_all(self) -> None:
        """Stop every plugin once: streams and workers first, then ``on_stop`` hooks."""
        with self._start_lock:
            if self.stopped:
                return
            self.stopped = True
        for runtime in list(self.runtimes.values()):
            runtime.stop()

    def wait_for_deck_then_start(self, timeout: float = 10.0) -> None:
        """Inside IvoryOS: start as soon as ``ivoryos.run`` has set the deck (or after ``timeout``).

        :param timeout: seconds to wait for a deck before starting without one."""
        deadline = time.monotonic() + timeout
        while not self.started and self.deck_getter() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.ensure_started()


def current_extension() -> Extension:
    """The framework state of the current app (inside a request or app context)."""
    ext = current_app.extensions.get("ivoryos_plugin")
    if ext is None:
        raise RuntimeError("ivoryos_plugin is not attached to this app; register a Plugin first.")
    return ext  # type: ignore[no-any-return]


def attach(app: Flask) -> Extension:
    """Attach the framework to ``app`` once and return its state.

    :param app: the app registering its first plugin."""
    ext = app.extensions.get("ivoryos_plugin")
    if ext is not None:
        return ext  # type: ignore[no-any-return]
    ext = Extension(app)
    app.extensions["ivoryos_plugin"] = ext
    from flask_wtf.csrf import generate_csrf

    app.jinja_env.globals.setdefault("csrf_token", generate_csrf)
    from .health import framework_blueprint

    if "plugins" not in app.blueprints:
        app.register_blueprint(framework_blueprint, url_prefix=f"{ext.url_prefix}/plugins")
    from .offline import install as install_offline_assets

    install_offline_assets(app)  # IvoryOS's CDN libraries from static/vendor/ (offline lab networks)

    @app.before_request
    def _start_plugins() -> None:
        ext.ensure_started()

    @app.context_processor
    def _nav() -> Dict[str, Any]:
        def nav() -> List[Dict[str, str]]:
            items = [{"name": rt.plugin.name, "title": rt.plugin.title, "url": rt.namespace + "/"}
                     for rt in ext.runtimes.values() if rt.plugin.placement == "tab"]
            return items + [{"name": name, "title": name.capitalize(), "url": f"{ext.url_prefix}/{name}/"}
                            for name in ext.plain]
        return {"ivoryos_plugin_nav": nav}

    if ext.socketio is not None:
        from .live import QUEUE_ENV, check_async_mode, join_message_queue

        check_async_mode(ext.socketio)
        queue = os.environ.get(QUEUE_ENV)
        if queue and ext.is_ivoryos:
            join_message_queue(ext.socketio, queue)
    _EXTENSIONS.add(ext)
    _install_shutdown_hooks()
    if ext.is_ivoryos:
        threading.Thread(target=ext.wait_for_deck_then_start, name="ivoryos_plugin-starter",
                         daemon=True).start()
    return ext


def stop_all_apps() -> None:
    """Stop the plugins of every app in this process (atexit, SIGTERM)."""
    for ext in list(_EXTENSIONS):
        ext.stop_all()


def _install_shutdown_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(stop_all_apps)
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    stop_all_apps()
    raise SystemExit(128 + signum)
