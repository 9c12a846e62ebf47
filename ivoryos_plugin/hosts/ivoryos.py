"""The IvoryOS adapter: the ONE module that touches IvoryOS's internals (and other libraries' private
names). Every touch says which IvoryOS versions it was verified on; the ones hardware safety needs are
probed once when the framework attaches to IvoryOS, and a failed probe fails closed: hardware actions
answer 503 "cannot verify the deck is idle", and the health page shows why in red.

What happens when IvoryOS loads a plugin, in order (``ivoryos.run`` -> ``load_plugins`` -> Flask):
1. ``ivoryos.run`` builds its module-level app and Socket.IO server, then ``load_plugins`` calls
   ``blueprint.init_socketio(socketio)`` and ``app.register_blueprint(bp, url_prefix=...)`` per plugin.
2. Flask runs the plugin's deferred setup: the framework attaches to the app (once), :func:`adopt`
   probes IvoryOS for the runner lock and queue, and the plugin gets its runtime and namespace.
3. ``ivoryos.run`` sets ``global_state.deck = sys.modules[module]``; a starter thread
   (:func:`start_when_deck_is_set`) sees it and runs every plugin's ``on_start(deck)``.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from flask import Blueprint, Flask

from ..core.names import PluginError
from ..hardware.deck import Gate

log = logging.getLogger("ivoryos_plugin.ivoryos")

#: The IvoryOS releases this adapter was run against (the CI runs the suite on them).
VERIFIED_ON = "1.7.2"

#: ``global_state`` attribute names (verified on 1.7.2): the runner's lock and the running deck.
RUNNER_LOCK_ATTR = "runner_lock"
DECK_ATTR = "deck"

#: IvoryOS 1.7.2's ``Config.SECRET_KEY`` when env ``SECRET_KEY`` is unset: a public constant.
PUBLIC_DEFAULT_KEY = "default_secret_key"

#: Each CDN URL in IvoryOS's templates (verified on 1.7.2's ``base.html`` and pages) -> its local
#: copy under ``static/vendor/`` (scripts/vendor.js).
CDN_ASSETS: Dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js": "bootstrap/bootstrap.bundle.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap-icons@1.11.3/font/bootstrap-icons.css":
        "bootstrap-icons/bootstrap-icons.css",
    "https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.9.0/highlight.min.js": "highlight.js/highlight.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.9.0/styles/default.min.css":
        "highlight.js/default.min.css",
    "https://cdn.plot.ly/plotly-2.31.1.min.js": "plotly/plotly.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://code.jquery.com/ui/1.13.3/jquery-ui.min.js": "jquery-ui/jquery-ui.min.js",
    # socket.io 4.4.1 on the CDN; the framework's socket.io-client 4.8 speaks the same protocol
    "https://cdnjs.cloudflare.com/ajax/libs/socket.io/4.4.1/socket.io.js": "socket.io.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/codemirror.min.css": "codemirror/codemirror.css",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/codemirror.min.js": "codemirror/codemirror.js",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/mode/python/python.min.js":
        "codemirror/mode/python/python.js",
    "https://cdn.jsdelivr.net/npm/sortablejs@1.15.7/Sortable.min.js": "sortablejs/Sortable.min.js",
    "https://unpkg.com/vis-timeline@8.5.4/standalone/umd/vis-timeline-graph2d.min.js":
        "vis-timeline/vis-timeline-graph2d.min.js",
    "https://unpkg.com/vis-timeline@8.5.4/styles/vis-timeline-graph2d.min.css":
        "vis-timeline/vis-timeline-graph2d.min.css",
}


# ------------------------------------------------------------------ what IvoryOS is here
def installed_version() -> Optional[str]:
    """The installed IvoryOS distribution's version (read from its metadata, IvoryOS not imported)."""
    try:
        from importlib.metadata import version

        return version("ivoryos")
    except Exception:
        return None


def is_ivoryos_app(app: Flask) -> bool:
    """Whether ``app`` is IvoryOS's own (its ``create_app`` names it ``ivoryos.app``; verified on 1.7.2).

    :param app: a Flask app."""
    return app.import_name == "ivoryos.app"


def _global_state() -> Any:
    """IvoryOS's ``global_state`` (``ivoryos.runtime.state``; verified on 1.7.2), imported on demand."""
    from ivoryos.runtime.state import global_state

    return global_state


def deck() -> Any:
    """The running deck module (``global_state.deck``; verified on 1.7.2), or None before
    ``ivoryos.run`` sets it or when IvoryOS is not imported (never imports IvoryOS)."""
    if "ivoryos" not in sys.modules:
        return None
    try:
        return getattr(_global_state(), DECK_ATTR, None)
    except Exception:
        return None


def set_deck(module: Any) -> bool:
    """Make ``module`` IvoryOS's ``global_state.deck`` when IvoryOS is installed (the dev host's
    ``--deck``, so plugins that read ``global_state.deck`` see it). IvoryOS refuses a second deck.

    :param module: the deck module.
    :returns: whether ``global_state.deck`` is now ``module``."""
    try:
        state = _global_state()
        if getattr(state, DECK_ATTR, None) is not module:
            setattr(state, DECK_ATTR, module)
        return getattr(state, DECK_ATTR, None) is module
    except Exception as exc:
        log.info("IvoryOS's global_state.deck was not set (%s: %s)", type(exc).__name__, exc)
        return False


# ------------------------------------------------------------------ the runner: the probe
def _runner() -> Any:
    """IvoryOS's ``ScriptRunner`` (``ivoryos.socket_handlers.runner``; verified on 1.7.2)."""
    from ivoryos.socket_handlers import runner

    return runner


def probe() -> Gate:
    """Find IvoryOS's runner lock and queue; the :class:`Gate` hardware actions go through.

    Verified on 1.7.2: ``global_state.runner_lock`` (a ``threading.Lock`` held while a workflow or a
    single step runs), ``runner.execution_queue`` (a list), ``runner._process_queue()`` (starts the
    next queued workflow), ``runner.paused`` / ``runner.queue_paused``. Anything missing gives a gate
    that refuses hardware actions and says why."""
    version = installed_version() or "unknown version"
    try:
        lock = getattr(_global_state(), RUNNER_LOCK_ATTR)
        if not all(callable(getattr(lock, name, None)) for name in ("acquire", "release", "locked")):
            raise TypeError(f"{RUNNER_LOCK_ATTR} is a {type(lock).__name__}, not a lock")
    except Exception as exc:
        return Gate.unverified(f"IvoryOS {version}: runner lock not found ({type(exc).__name__}: {exc})")
    try:
        runner = _runner()
        len(runner.execution_queue)
        if not callable(getattr(runner, "_process_queue", None)):
            raise AttributeError("ScriptRunner has no _process_queue")
    except Exception as exc:
        return Gate.unverified(f"IvoryOS {version}: workflow queue not found ({type(exc).__name__}: {exc})")

    def queued() -> int:
        return len(runner.execution_queue)

    def after_release() -> None:
        # IvoryOS only starts a queued workflow when one of its own runs ends: one queued while a
        # plugin held the lock would strand unless started here (unless its queue is paused).
        if queued() and not (getattr(runner, "paused", False) or getattr(runner, "queue_paused", False)):
            runner._process_queue()

    return Gate(lock=lock, queued=queued, after_release=after_release)


def start_when_deck_is_set(start: Callable[[], None], timeout: float = 10.0) -> threading.Thread:
    """Run ``start()`` in a thread as soon as ``ivoryos.run`` has set the deck (or after ``timeout``):
    ``ivoryos.run`` registers plugins before it sets ``global_state.deck`` (verified on 1.7.2).

    :param start: starts every plugin of the app.
    :param timeout: seconds to wait for a deck before starting without one."""
    def wait_then_start() -> None:
        deadline = time.monotonic() + timeout
        while deck() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        start()

    thread = threading.Thread(target=wait_then_start, name="ivoryos_plugin-starter", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------ Socket.IO internals
def default_namespace_handlers(socketio: Any) -> Dict[str, Any]:
    """The live dict of the server's default-namespace handlers (python-socketio's
    ``Server.handlers['/']``; verified on python-socketio 5.x), or ``{}``.

    :param socketio: a ``flask_socketio.SocketIO``."""
    server = getattr(socketio, "server", None)
    handlers = getattr(server, "handlers", None) if server is not None else None
    if not isinstance(handlers, dict):
        return {}
    return handlers.setdefault("/", {})  # type: ignore[no-any-return]


def guard_init_socketio(blueprint: Blueprint, record: Callable[[str, str, BaseException], None]) -> None:
    """Wrap a plain Blueprint's ``init_socketio``: an exception is recorded, not raised, and a
    handler it puts over one of the host's default-namespace handlers is undone (and recorded).

    :param blueprint: the plain Blueprint.
    :param record: ``record(plugin, stage, error)``, the extension's failure recorder."""
    original = getattr(blueprint, "init_socketio", None)
    if original is None or getattr(original, "_ivoryos_plugin_guard", False):
        return
    name = blueprint.name

    def guarded(socketio: Any) -> None:
        handlers = default_namespace_handlers(socketio)
        before = dict(handlers)
        try:
            original(socketio)
        except Exception as exc:
            log.error("plugin %r: init_socketio raised %s: %s", name, type(exc).__name__, exc)
            record(name, "init_socketio", exc)
        replaced = sorted(e for e, h in before.items() if handlers.get(e) is not h)
        for event in replaced:
            handlers[event] = before[event]
        if replaced:
            error = PluginError(name, f"init_socketio replaced the host's Socket.IO handler(s) {replaced} on the "
                                      "default namespace; the host's were kept. Register the plugin's handlers "
                                      f"in its own namespace (namespace='/ivoryos/{name}'), or port it to "
                                      "ivoryos_plugin.Plugin and use @plugin.on(...).")
            log.error("%s", error)
            record(name, "init_socketio", error)

    guarded._ivoryos_plugin_guard = True  # type: ignore[attr-defined]
    setattr(blueprint, "init_socketio", guarded)


def join_message_queue(socketio: Any, url: str) -> bool:
    """Make IvoryOS's already-initialised Socket.IO server fan out through ``url``.

    Swaps python-socketio's client manager (``server.manager``, ``manager_initialized``; verified on
    python-socketio 5.x) for a Redis one on Flask-SocketIO's channel before any client connects, so
    events emitted by any process on the queue reach this server's clients. Returns False (and logs)
    when clients are already connected or the queue is unreachable.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param url: ``redis://host:port/db``."""
    import socketio as python_socketio

    server = getattr(socketio, "server", None)
    if server is None:
        return False
    if isinstance(server.manager, python_socketio.PubSubManager):
        return True
    if server.manager_initialized and any(server.manager.get_namespaces()):
        log.error("the message queue must be set before the server starts: clients are already connected")
        return False
    try:
        manager = python_socketio.RedisManager(url, channel="flask-socketio")  # Flask-SocketIO's channel
    except Exception as exc:
        log.error("cannot join the message queue %s: %s", url, exc)
        return False
    manager.set_server(server)
    server.manager = manager
    server.manager_initialized = False
    log.info("Socket.IO events fan out through %s", url)
    return True


def allow_late_blueprints(app: Flask) -> None:
    """Let a test register a blueprint on IvoryOS's process-wide app after it served a request
    (Flask's private ``_got_first_request``; verified on Flask 3.0-3.1).

    :param app: IvoryOS's app."""
    app._got_first_request = False


# ------------------------------------------------------------------ IvoryOS's database and config
def sqlite_path(config: Any) -> Optional[Path]:
    """The SQLite file of IvoryOS's database, or None when it is not a SQLite file.

    :param config: an IvoryOS ``Config`` instance (``SQLALCHEMY_DATABASE_URI``, ``OUTPUT_FOLDER``)."""
    uri = str(getattr(config, "SQLALCHEMY_DATABASE_URI", "") or "")
    if not uri:
        return Path(config.OUTPUT_FOLDER) / "ivoryos.db"
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):])


def default_admin_active(config: Any) -> bool:
    """Whether IvoryOS still accepts admin/admin (or will create it on first start).

    Reads IvoryOS's ``user`` table and its ``hashPassword`` column (bcrypt; verified on 1.7.2). A
    database that cannot be read (or is not SQLite) counts as active: the warning errs loud.

    :param config: an IvoryOS ``Config`` instance."""
    db = sqlite_path(config)
    if db is None or not db.exists():
        return True
    try:
        import bcrypt

        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute('SELECT "hashPassword" FROM "user" WHERE username = ?', ("admin",)).fetchone()
    except Exception:
        return True
    if row is None or row[0] is None:
        return True  # IvoryOS creates admin/admin again at start when it is missing
    stored = row[0].encode() if isinstance(row[0], str) else row[0]
    try:
        return bool(bcrypt.checkpw(b"admin", stored))
    except ValueError:
        return False


def get_config(name: Optional[str] = None) -> Any:
    """IvoryOS's ``Config`` instance (``ivoryos.config.get_config``; verified on 1.7.2).

    :param name: ``"testing"`` for its test config, None for the default."""
    from ivoryos.config import get_config as ivoryos_get_config

    return ivoryos_get_config(name) if name else ivoryos_get_config()


def run(module: Optional[str], blueprint_plugins: List[Blueprint], **kwargs: Any) -> None:
    """Call ``ivoryos.run`` (verified on 1.7.2: ``module``, ``host``, ``port``, ``debug``, ``config``,
    ``blueprint_plugins`` and more keywords).

    :param module: the deck script's ``__name__``.
    :param blueprint_plugins: the blueprints to load, the framework's first.
    :param kwargs: the other ``ivoryos.run`` arguments."""
    import ivoryos

    ivoryos.run(module, blueprint_plugins=blueprint_plugins, **kwargs)


def in_process_app(root: Path, make_deck: Callable[[str], Any]) -> Dict[str, Any]:
    """IvoryOS's module-level app for tests, created once per process with its data under ``root``.

    ``import ivoryos`` fixes its data paths from the current directory, so it is imported from
    ``root``; the testing config gets a database there and CSRF on (verified on 1.7.2).

    :param root: the folder for IvoryOS's data.
    :param make_deck: builds an empty deck module when IvoryOS has none.
    :returns: ``{"app", "deck", "plugins", "load_plugins", "socketio"}``."""
    root.mkdir(parents=True, exist_ok=True)
    if "ivoryos" not in sys.modules:
        cwd = os.getcwd()
        os.chdir(root)
        try:
            import ivoryos  # noqa: F401
        finally:
            os.chdir(cwd)
    from ivoryos.app import create_app
    from ivoryos.server import load_plugins
    from ivoryos.socket_handlers import socketio

    config = get_config("testing")
    config.OUTPUT_FOLDER = str(root / "ivoryos_data")
    config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{root / 'ivoryos_data' / 'ivoryos.db'}"
    config.WTF_CSRF_ENABLED = True
    app = create_app(config_class=config)
    state = _global_state()
    deck_module = state.deck if state.deck is not None else make_deck("ivoryos_plugin_test_deck")
    state.deck = deck_module
    plugins: List[Blueprint] = []
    app.context_processor(lambda: {"plugins": plugins, "enable_design": True})
    return {"app": app, "deck": deck_module, "plugins": plugins, "load_plugins": load_plugins,
            "socketio": socketio}
