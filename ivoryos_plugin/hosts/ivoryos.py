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
import re
import sqlite3
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from flask import Blueprint, Flask
from markupsafe import escape

from ..hardware.deck import Gate

log = logging.getLogger("ivoryos_plugin.ivoryos")

#: The IvoryOS releases this adapter was run against: the CI runs the whole suite on 1.7.2, and the
#: host, busy-guard, discovery and demo tests on the newest 1.6.x (tests/test_dropin_floor.py); 1.6.4,
#: the floor in requirements.txt, passed them too. 1.6.0 does not: its Socket.IO path ignores URL_PREFIX.
VERIFIED_ON = "1.6.4, 1.6.14, 1.7.2"

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


class _DefaultNamespace:
    """What the framework knows of one Socket.IO server's default namespace: the handlers the host
    (IvoryOS) registered itself, snapshotted once before the first plain plugin's ``init_socketio``,
    and which plugin registered each other event last."""

    def __init__(self, handlers: Dict[str, Any]) -> None:
        self.host: Dict[str, Any] = dict(handlers)
        self.owners: Dict[str, str] = {}


_NAMESPACES: "weakref.WeakKeyDictionary[Any, _DefaultNamespace]" = weakref.WeakKeyDictionary()


def _host_first(host: Callable[..., Any], plugin: Callable[..., Any], name: str, event: str) -> Callable[..., Any]:
    """One handler for an event both the host and a plugin handle: the host's runs first and gives
    the answer, then the plugin's (an exception of the plugin's is logged, never raised)."""
    def both(*args: Any) -> Any:
        answer = host(*args)
        try:
            plugin(*args)
        except Exception as exc:
            log.error("plugin %r: its Socket.IO handler for %r raised %s: %s", name, event, type(exc).__name__, exc)
        return answer

    both._ivoryos_plugin_host = host  # type: ignore[attr-defined]
    return both


def guard_init_socketio(blueprint: Blueprint, warn: Callable[[str, str], None]) -> None:
    """Wrap a plain Blueprint's ``init_socketio`` so that it behaves as under plain IvoryOS, except
    that it can neither crash IvoryOS nor put IvoryOS's own default-namespace handlers out of action.

    The host's handlers (python-socketio's ``Server.handlers['/']``; verified on python-socketio
    5.x with IvoryOS 1.6.4, 1.6.14 and 1.7.2) are snapshotted once, before the first plugin's
    ``init_socketio``. A plugin handler for one of those events runs after the host's, which keeps
    answering. Between plugins nothing changes: as python-socketio does, the handler registered
    last is the one that runs. Each of these cases, and an ``init_socketio`` that raises, is a
    warning (the plugin runs), never a failure.

    :param blueprint: the plain Blueprint.
    :param warn: ``warn(plugin, message)``, the extension's warning recorder."""
    original = getattr(blueprint, "init_socketio", None)
    if original is None or getattr(original, "_ivoryos_plugin_guard", False):
        return
    name = blueprint.name
    fix = (f"register the plugin's handlers in its own namespace (namespace='/ivoryos/{name}'), or port it to "
           "ivoryos_plugin.Plugin and use @plugin.on(...)")

    def guarded(socketio: Any) -> None:
        handlers = default_namespace_handlers(socketio)
        server = getattr(socketio, "server", None)
        state = _NAMESPACES.get(server) if server is not None else None
        if state is None:
            state = _DefaultNamespace(handlers)
            if server is not None:
                _NAMESPACES[server] = state
        before = dict(handlers)
        try:
            original(socketio)
        except Exception as exc:
            log.error("plugin %r: init_socketio raised %s: %s", name, type(exc).__name__, exc)
            warn(name, f"init_socketio raised {type(exc).__name__}: {exc}; its pages are served, but some of its "
                       "Socket.IO handlers may be missing. Fix init_socketio.")
        for event in sorted(e for e, h in handlers.items() if before.get(e) is not h):
            if event in state.host:
                handlers[event] = _host_first(state.host[event], handlers[event], name, event)
                warn(name, f"init_socketio handles Socket.IO event {event!r} on the default namespace, where IvoryOS "
                           f"has its own handler: IvoryOS's keeps answering and the plugin's runs after it; {fix}.")
            previous = state.owners.get(event)
            if previous is not None and previous != name:
                warn(name, f"plugins {previous!r} and {name!r} both handle Socket.IO event {event!r} on the default "
                           f"namespace: {name!r}'s handler, registered last, is the only one that runs (as under plain "
                           f"IvoryOS); {fix}.")
            state.owners[event] = name

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


def users_database(app: Flask) -> Optional[Path]:
    """The SQLite file holding IvoryOS's users (the database of its Flask-SQLAlchemy engine, which
    ``load_user`` reads on each request; verified on 1.6.14 and 1.7.2), or None when it is not a
    SQLite file or cannot be found. Call inside an app context.

    :param app: IvoryOS's app."""
    try:
        engine = app.extensions["sqlalchemy"].engine
        if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
            return None
        database = str(engine.url.database)
        if database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).resolve()
    except Exception as exc:
        log.info("IvoryOS's users database was not found (%s: %s): each login is checked in full", type(exc).__name__,
                 exc)
        return None


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


def run_parameters() -> List[str]:
    """The names of the installed ``ivoryos.run``'s parameters, read from its signature (1.6.4,
    1.6.14 and 1.7.2 take the same fifteen: module, host, port, debug, llm_server, model, config,
    logger, logger_output_name, enable_design, blueprint_plugins, exclude_names,
    notification_handler, optimizer_registry, templates_dir)."""
    import inspect

    import ivoryos

    return list(inspect.signature(ivoryos.run).parameters)


def run(module: Optional[str], blueprint_plugins: List[Blueprint], **kwargs: Any) -> None:
    """Call ``ivoryos.run`` (its arguments as :func:`run_parameters` lists them).

    :param module: the deck script's ``__name__``.
    :param blueprint_plugins: the blueprints to load, the framework's first.
    :param kwargs: the other ``ivoryos.run`` arguments, only those the installed IvoryOS takes."""
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


# ------------------------------------------------------------------ workflow steps
def deck_being_loaded() -> Any:
    """The deck module that ``ivoryos.run(module)`` is starting with, while it loads plugins.

    ``ivoryos.run`` registers plugins before it sets ``global_state.deck = sys.modules[module]``
    and builds the designer's schema from the deck's globals (verified on 1.7.2), so a plugin's step
    instrument put on the deck now shows up in the designer. The module name is read from the
    ``module`` argument of the running ``ivoryos.server.run`` frame (verified on 1.7.2)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run" and frame.f_globals.get("__name__") == "ivoryos.server":
            module = frame.f_locals.get("module")
            return sys.modules.get(module) if isinstance(module, str) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def current_run() -> Optional[Dict[str, Any]]:
    """The workflow run IvoryOS's runner is executing, or None: ``ScriptRunner.run_id`` (set while
    a workflow runs, None after) and its ``progress`` (run name, phase, step, iteration); verified
    on 1.7.2. Never imports IvoryOS."""
    if "ivoryos.socket_handlers" not in sys.modules:
        return None
    try:
        runner = _runner()
        run_id = getattr(runner, "run_id", None)
        if run_id is None:
            return None
        progress = getattr(runner, "progress", None)
        return {"run_id": int(run_id), "run_name": getattr(progress, "run_name", None),
                "phase": getattr(progress, "phase", None), "step": getattr(progress, "step", None),
                "iteration": getattr(progress, "iteration", None)}
    except Exception as exc:
        log.warning("cannot read IvoryOS's current run (%s: %s)", type(exc).__name__, exc)
        return None


# ------------------------------------------------------------------ the nav's plugin labels
class _TitledName(str):
    """A plugin name that IvoryOS's nav capitalises into the plugin's title (it stays the name
    everywhere else: ``url_for(name + '.main')``, ``request.blueprint == name``)."""

    title_text = ""

    def capitalize(self) -> str:
        """The plugin's title (IvoryOS's base.html labels a plugin tab ``plugin.name.capitalize()``)."""
        return self.title_text or str.capitalize(self)


def _titled(name: str, title: str) -> _TitledName:
    named = _TitledName(name)
    named.title_text = title
    return named


def show_plugin_titles(app: Flask, titles: Callable[[], Dict[str, str]]) -> None:
    """Make IvoryOS's nav (its tabs and its "Plugins" menu) show each plugin's title, not
    ``Plate_map``.

    IvoryOS 1.7.2's ``run`` adds a context processor giving templates ``plugins``, a list of
    ``{"name", "type"}`` dicts, and its ``base.html`` labels each tab ``plugin.name.capitalize()``
    (verified on 1.7.2). The app's ``update_template_context`` is wrapped so that, after every
    context processor ran (IvoryOS's is registered after the plugins), each entry is replaced by a
    copy whose name capitalises into the title. IvoryOS's own list is not changed.

    :param app: IvoryOS's app.
    :param titles: plugin name -> title, asked at each render (plugins register late)."""
    if getattr(app.update_template_context, "_ivoryos_plugin_titles", False):
        return
    original = app.update_template_context

    def update_template_context(context: Dict[str, Any]) -> None:
        original(context)
        entries = context.get("plugins")
        if not isinstance(entries, list):
            return
        known = titles()
        relabelled: List[Any] = []
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and known.get(name):
                entry = {**entry, "name": _titled(name, known[name])}
            relabelled.append(entry)
        context["plugins"] = relabelled

    update_template_context._ivoryos_plugin_titles = True  # type: ignore[attr-defined]
    app.update_template_context = update_template_context  # type: ignore[method-assign]


# ------------------------------------------------------------------ hardening (ivoryos_plugin.run)
#: IvoryOS's endpoints the hardening treats specially (verified on 1.7.2: ``routes/auth/auth.py`` and
#: the app's own static route ``{URL_PREFIX}/static``)
LOGIN_ENDPOINT = "auth.login"
LOGOUT_ENDPOINT = "auth.logout"
SIGNUP_ENDPOINT = "auth.signup"
STATIC_ENDPOINT = "static"
#: IvoryOS 1.7.2's login form (``routes/auth/templates/login.html``) and the signup link under it
_LOGIN_FORM = re.compile(r'(<form\b[^>]*\bname="login"[^>]*>)', re.IGNORECASE)
_SIGNUP_LINK = re.compile(r'<p class="message">\s*Not registered\?.*?</a>\s*(?:</p>)?', re.IGNORECASE | re.DOTALL)


def login_form_with_token(html: str, token: str) -> str:
    """IvoryOS's login page with a hidden ``csrf_token`` field in its form (the form has none;
    verified on 1.7.2's ``login.html``: ``<form ... name="login" ...>``).

    :param html: the login page.
    :param token: the session's CSRF token (Flask-WTF's ``generate_csrf()``)."""
    field = f'<input type="hidden" name="csrf_token" value="{escape(token)}">'
    return _LOGIN_FORM.sub(lambda m: m.group(1) + field, html, count=1)


def without_signup_link(html: str) -> str:
    """IvoryOS's login page without its "Not registered? Create a new account" line (verified on 1.7.2).

    :param html: the login page."""
    return _SIGNUP_LINK.sub("", html, count=1)


def guard_default_namespace(socketio: Any, check: Callable[[str, Any, Any], Optional[str]],
                            gone: Callable[[str], None]) -> bool:
    """Put ``check`` in front of the default namespace's ``connect`` handler (IvoryOS's own, which
    sends the run's state), and call ``gone(sid)`` when a default-namespace client leaves.

    Uses python-socketio's handler table ``server.handlers['/']`` (verified on python-socketio 5.18,
    Flask-SocketIO 5.7, IvoryOS 1.6.14 and 1.7.2, whose handlers are registered there with
    ``@socketio.on``; probed at start by :func:`default_namespace_refusal`). A client ``check``
    refuses is never in the namespace, so its events reach no handler.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param check: ``check(sid, environ, auth)`` -> a refusal message, or None to let the client in.
    :param gone: called with the sid of a client that disconnected.
    :returns: whether IvoryOS's ``connect`` handler is now behind ``check``: False when there is no
        Socket.IO server, or no ``connect`` handler where IvoryOS 1.7.2 puts it (a renamed table or
        a class-based namespace: the guard would guard nothing of IvoryOS's)."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    if getattr(socketio, "server", None) is None:
        return False
    handlers = default_namespace_handlers(socketio)
    original, left = handlers.get("connect"), handlers.get("disconnect")
    if original is None:
        return False
    if getattr(original, "_ivoryos_plugin_guard", False):
        return True

    def connect(sid: str, environ: Any, *rest: Any) -> Any:
        why = check(sid, environ, rest[0] if rest else None)
        if why is not None:
            raise Refused(why)
        if original is None:
            return None
        try:
            return original(sid, environ, *rest)
        except BaseException:
            gone(sid)
            raise

    def disconnect(sid: str, *rest: Any) -> Any:
        gone(sid)
        return left(sid, *rest) if left is not None else None

    connect._ivoryos_plugin_guard = True  # type: ignore[attr-defined]
    handlers["connect"], handlers["disconnect"] = connect, disconnect
    return True


def default_namespace_guarded(socketio: Any) -> bool:
    """Whether the default namespace's ``connect`` handler is still :func:`guard_default_namespace`'s
    (or a plain plugin's handler chained after it by :func:`guard_init_socketio`): what the health
    page re-checks. Reads python-socketio's ``server.handlers['/']`` (verified on python-socketio 5.x).

    :param socketio: the ``flask_socketio.SocketIO``."""
    handler = default_namespace_handlers(socketio).get("connect")
    while handler is not None:
        if getattr(handler, "_ivoryos_plugin_guard", False):
            return True
        handler = getattr(handler, "_ivoryos_plugin_host", None)
    return False


def default_namespace_refusal(socketio: Any, environ: Dict[str, Any]) -> Optional[str]:
    """Offer the default namespace's ``connect`` handler a client, as python-socketio does for a new
    one (``handler(sid, environ, auth)``; verified on python-socketio 5.x), and return its refusal,
    or None when it let the client in. The probe of the Socket.IO guard at start: called outside
    any request, with a made-up sid that no transport holds.

    :param socketio: the ``flask_socketio.SocketIO``.
    :param environ: the WSGI environ of the handshake (no cookie: an anonymous client)."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    connect = default_namespace_handlers(socketio).get("connect")
    if connect is None:
        return None
    try:
        answer = connect("ivoryos_plugin-probe", environ, None)
    except Refused as exc:
        return str((exc.error_args or {}).get("message") or "refused")
    except Exception as exc:  # a handler that fails is not a refusal: python-socketio lets the client in
        log.info("the default namespace's connect handler raised %s for the probe: %s", type(exc).__name__, exc)
        return None
    return "refused (the handler answered False)" if answer is False else None


# ------------------------------------------------------------------ uploads, pages, serving
#: IvoryOS's logo upload (verified on 1.6.14 and 1.7.2's ``routes/main/main.py``; probed at start):
#: ``POST {prefix}/customize-logo`` with the file in the form field ``logo``, saved under its own
#: name into the app's static folder ``user_logos/``, which serves it to anyone (the login page too)
LOGO_ENDPOINT = "main.customize_logo"
LOGO_FIELD = "logo"
LOGO_FOLDER = "user_logos"
#: IvoryOS's run controls (verified on 1.6.14 and 1.7.2's ``routes/execute/execute.py``): start,
#: pause/resume, abort, retry. The CSRF probe at start must find each and see it refused without a token.
RUN_CONTROL_ENDPOINTS = ("execute.experiment_run", "execute.api_pause", "execute.api_abort_current",
                         "execute.api_abort_pending", "execute.api_retry")
# (the patterns read IvoryOS's HTML as UTF-8 bytes: no decoding, no re-encoding, one copy of a page)
_FORM_TAG = re.compile(rb"<form\b[^>]*>", re.IGNORECASE)
_METHOD_POST = re.compile(rb"""\bmethod\s*=\s*["']?post\b""", re.IGNORECASE)
_TOKEN_FIELD = re.compile(rb"""\bname\s*=\s*["']?csrf_token\b""", re.IGNORECASE)  # (attribute name in any case)
_FORM_END = re.compile(rb"</form\s*>|<form\b", re.IGNORECASE)
_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
_SCRIPT_TAG = re.compile(rb"<script\b", re.IGNORECASE)


def logo_folder(app: Flask) -> Optional[str]:
    """The URL path under which IvoryOS serves uploaded logos (``{prefix}/static/user_logos/``: its
    app's own static route, public; verified on 1.6.14 and 1.7.2), or None without a static folder.

    :param app: IvoryOS's app."""
    if not app.static_folder or app.static_url_path is None:
        return None
    return f"{app.static_url_path.rstrip('/')}/{LOGO_FOLDER}/"


def form_token_points(html: bytes) -> List[int]:
    """Where a hidden ``csrf_token`` field goes in IvoryOS's HTML (a page, or a fragment its scripts
    fetch and insert): just after the opening tag of each POST form that has none. IvoryOS 1.6.14
    and 1.7.2 write their forms in the templates (``<form method="POST" ...>``, ``method='POST'``;
    the logo and deck forms of ``base.html``, the run configuration, the designer's action forms),
    most without the field.

    :param html: the HTML, UTF-8."""
    points: List[int] = []
    for form in _FORM_TAG.finditer(html):
        if not _METHOD_POST.search(form.group(0)):
            continue
        end = _FORM_END.search(html, form.end())
        stop = end.start() if end else len(html)
        # (the field's name as Flask-WTF reads it, case and all: a plain find first, as a pattern that
        # starts with \b is tried at every byte of the form)
        if html.find(b"csrf_token", form.end(), stop) != -1 and _TOKEN_FIELD.search(html, form.end(), stop):
            continue
        points.append(form.end())
    return points


def head_tags_point(html: bytes) -> Optional[int]:
    """Where tags go in a page's ``<head>``: before its first script (so they run before any of
    IvoryOS's own: ``base.html`` loads its libraries in ``<head>``; verified on 1.6.14 and 1.7.2),
    else before ``</head>``; None for a fragment without ``</head>``.

    :param html: the page, UTF-8."""
    end = _HEAD_END.search(html)
    if end is None:
        return None
    first = _SCRIPT_TAG.search(html, 0, end.start())
    return first.start() if first is not None else end.start()


def with_inserts(html: bytes, inserts: List[Tuple[int, bytes]]) -> bytes:
    """``html`` with each ``(position, text)`` inserted (at one position, in the order given), made in
    one copy.

    :param html: the HTML.
    :param inserts: where and what, positions into ``html``."""
    if not inserts:
        return html
    view, done = memoryview(html), 0
    pieces: List[Union[bytes, memoryview]] = []
    for at, text in sorted(inserts, key=lambda insert: insert[0]):
        pieces += [view[done:at], text]
        done = at
    pieces.append(view[done:])
    return b"".join(pieces)


def token_field(token: str) -> bytes:
    """The hidden ``csrf_token`` field :func:`form_token_points` places.

    :param token: the session's CSRF token."""
    return f'<input type="hidden" name="csrf_token" value="{escape(token)}">'.encode()


def forms_with_token(html: str, token: str) -> str:
    """IvoryOS's HTML with a hidden ``csrf_token`` field first in each POST form that has none
    (:func:`form_token_points`).

    :param html: the HTML.
    :param token: the session's CSRF token."""
    raw = html.encode("utf-8", "surrogatepass")
    field = token_field(token)
    return with_inserts(raw, [(at, field) for at in form_token_points(raw)]).decode("utf-8", "surrogatepass")


def page_with_head_tags(html: str, tags: str) -> str:
    """A page with ``tags`` in its ``<head>`` (:func:`head_tags_point`); a fragment without
    ``</head>`` is returned as it is.

    :param html: the page.
    :param tags: the HTML to insert."""
    raw = html.encode("utf-8", "surrogatepass")
    at = head_tags_point(raw)
    if at is None:
        return html
    return with_inserts(raw, [(at, (tags + "\n").encode("utf-8", "surrogatepass"))]).decode("utf-8", "surrogatepass")


def before_serving(gate: Callable[[], None]) -> bool:
    """Run ``gate()`` when ``ivoryos.run`` is about to serve: after it registered every plugin and set
    the deck, before it listens. ``ivoryos.server.run`` ends with ``socketio.run(app, ...)`` on the
    ``SocketIO`` of ``ivoryos.socket_handlers`` (verified on 1.6.14 and 1.7.2); that instance's
    ``run`` is wrapped once. A gate that raises stops ``ivoryos.run`` before anything listens.

    :param gate: the last check (raises to refuse).
    :returns: whether the gate is in place."""
    try:
        from ivoryos.socket_handlers import socketio
    except Exception as exc:
        log.error("cannot find IvoryOS's Socket.IO server (%s: %s)", type(exc).__name__, exc)
        return False
    original = getattr(socketio, "run", None)
    if not callable(original):
        return False

    def run(*args: Any, **kwargs: Any) -> Any:
        socketio.run = original  # once
        gate()
        return original(*args, **kwargs)

    socketio.run = run
    return True
