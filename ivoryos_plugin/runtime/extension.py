"""The framework's per-app state, ``app.extensions["ivoryos_plugin"]`` (see :mod:`.attach` for how
it is created). Nothing per app is ever stored on a :class:`~ivoryos_plugin.Plugin`."""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple, cast

from flask import Blueprint, Flask, Response, current_app
from flask.sansio.blueprints import Blueprint as SansioBlueprint
from jinja2 import TemplateNotFound

from ..core.clock import SYSTEM_CLOCK, Clock, start_thread
from ..hardware.deck import Gate, LockLike, claim_deck_ports, hardware_guard, is_deck_busy
from .history import HistoryStore, default_url
from .connections import Connections
from .inbound import HostHeaderVerdicts
from .sessions import SessionRegistry
from .tokens import TokenStore

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime
    from .live import LiveServer

SHELL_TEMPLATE = "ivoryos_plugin/shell.html"
KEY = "ivoryos_plugin"
#: the app config key a test sets to a :class:`~ivoryos_plugin.core.clock.ManualClock` before attaching
CLOCK_CONFIG = "IVORYOS_PLUGIN_CLOCK"
#: seconds :meth:`Extension.ensure_started` waits for the plugins it starts (each in its own thread)
START_WAIT = 5.0


def _no_deck() -> Any:
    return None


#: the code of Flask's ``Blueprint.register`` (every blueprint's registration runs it)
_REGISTER_CODE = SansioBlueprint.register.__code__


def _registering(blueprint: Blueprint) -> bool:
    """Whether ``blueprint``'s ``register`` is running in this thread (on the call stack).

    :param blueprint: a plugin whose registration may be in progress."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _REGISTER_CODE and frame.f_locals.get("self") is blueprint:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class Registrations:
    """Which plugin brought each endpoint the app gained while plugins registered, outside their own
    Blueprint: the routes a plugin's deferred setup (``record_once``) or its Blueprint's ``register``
    adds to the app, and the blueprints it registers on the app. Each is guarded as that plugin's
    routes are (login or token, CSRF, headers), however it was added.

    A registration is watched from its start (:meth:`begin`) to its end (:meth:`settle`): the
    endpoints that appeared meanwhile, but for the plugin's own (``name.*``, guarded by its Blueprint)
    and the framework's (``plugins.*``), are the plugin's. A plugin whose start is seen only from
    inside its registration (a Plugin registered before the framework was attached) is settled at
    the next registration that is not inside it, or at the first request.

    :param app: the app (not kept alive by this object)."""

    def __init__(self, app: Flask) -> None:
        self._app = weakref.ref(app)
        #: endpoint -> the plugin that brought it
        self.owners: Dict[str, str] = {}
        self._open: Optional[Tuple[str, Blueprint, FrozenSet[str]]] = None

    @property
    def watching(self) -> bool:
        """Whether a registration is being watched (not yet settled)."""
        return self._open is not None

    def inside(self) -> bool:
        """Whether the registration being watched is still running (this call comes from within it)."""
        return self._open is not None and _registering(self._open[1])

    def begin(self, name: str, blueprint: Blueprint) -> bool:
        """Start watching the registration of plugin ``name`` (settling the previous one), unless it
        happens inside a registration being watched, whose plugin then owns what it adds.

        :param name: the plugin's name.
        :param blueprint: the plugin's Blueprint.
        :returns: whether a watch was started (the caller settles it)."""
        if self.inside():
            return False
        self.settle()
        app = self._app()
        if app is None:
            return False
        self._open = (name, blueprint, frozenset(app.view_functions))
        return True

    def settle(self) -> None:
        """End the watch: the endpoints that appeared since it began belong to its plugin."""
        watched, self._open = self._open, None
        app = self._app()
        if watched is None or app is None:
            return
        name, _, before = watched
        for endpoint in set(app.view_functions) - before:
            if not endpoint.startswith((f"{name}.", "plugins.")):
                self.owners.setdefault(endpoint, name)

    def owner(self, endpoint: Optional[str]) -> Optional[str]:
        """The plugin that brought ``endpoint`` outside its Blueprint, or None.

        :param endpoint: ``request.endpoint``."""
        if self._open is not None and not self.inside():
            self.settle()  # the first request after a registration seen only from inside
        return self.owners.get(endpoint or "")


def _no_run() -> Optional[Dict[str, Any]]:
    return None


def _configured_clock(value: Any) -> Clock:
    """The clock ``app.config["IVORYOS_PLUGIN_CLOCK"]`` names (the real one when unset).

    :param value: the config value.
    :raises TypeError: a value that is not a clock, named with the fix."""
    if value is None:
        return SYSTEM_CLOCK
    if not all(callable(getattr(value, name, None)) for name in ("monotonic", "time", "wait")):
        raise TypeError(f"app.config[{CLOCK_CONFIG!r}] is {value!r}, which is not a clock: give an object with "
                        "monotonic(), time() and wait(event, seconds), e.g. ivoryos_plugin.testing.ManualClock(), "
                        "or leave it unset for the real time.")
    return cast(Clock, value)


class Extension:
    """What the framework knows about one app. Found with :func:`current_extension`.

    :param app: the Flask app (IvoryOS's or the standalone host's); not stored."""

    def __init__(self, app: Flask) -> None:
        prefix = str(app.config.get("URL_PREFIX", "/ivoryos") or "").rstrip("/")
        self.url_prefix = prefix
        self.socketio_path = f"{prefix}/socket.io"
        self.socketio: Any = app.extensions.get("socketio")
        #: the host's live transport (Flask-SocketIO's, from :mod:`ivoryos_plugin.hosts.socketio_live`),
        #: installed when the host adopts the app; None: the plugins' pages get no live events
        self.live: Optional["LiveServer"] = None
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
        #: the time every worker, stream, camera, sweep and the history of this app wait on and read:
        #: ``app.config["IVORYOS_PLUGIN_CLOCK"]`` (a test's ManualClock) or the real one
        self.clock: Clock = _configured_clock(app.config.get(CLOCK_CONFIG))
        # A lab leaves IvoryOS's pages and the plugins' pages open for days: a page's CSRF token is
        # valid for the life of its session (ended at logout, see sessions.py), not Flask-WTF's default
        # hour, after which every button of a page open since would answer 400. An app that sets
        # WTF_CSRF_TIME_LIMIT itself keeps its limit.
        app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
        #: the Socket.IO clients let in, re-authorised while they live
        self.connections = Connections(self, self.disconnect_client, clock=self.clock)
        #: the Host header's verdicts, remembered for the few Hosts a server sees
        self.host_header_verdicts = HostHeaderVerdicts()
        #: the constant part of the tags injected into each plugin's pages (security.head_snippet)
        self.snippets: Dict[Any, str] = {}
        #: CSRF caches (runtime/security.py): (signed token, session's raw token, secret) -> expiry, and
        #: (raw token, secret) -> (a signed token, when it was signed)
        self.csrf_valid: Dict[Tuple[str, str, str], float] = {}
        self.csrf_signed: Dict[Tuple[str, str], Tuple[str, float]] = {}
        self._sessions: Optional[SessionRegistry] = None
        self._session_keep_s = float(app.permanent_session_lifetime.total_seconds())
        self.runtimes: Dict[str, "PluginRuntime"] = {}
        #: every runtime made in this app, oldest first, weakly (:mod:`.registry` resolves calls with it)
        self.made: List["weakref.ref[PluginRuntime]"] = []
        #: the :class:`~ivoryos_plugin.runtime.attach.IvoryOSPlugins` objects whose ``init_app`` ran here
        self.frameworks: List[Any] = []
        #: whether attaching finished (the framework's blueprint registered meanwhile waits for it)
        self.ready = False
        #: ``time.monotonic_ns()`` when the framework was attached to the app (orders the apps)
        self.attached_ns = time.monotonic_ns()
        self.plain: Dict[str, Blueprint] = {}
        #: the endpoints plugins added to the app outside their Blueprint (guarded as theirs)
        self.registrations = Registrations(app)
        #: the framework's hook after each request (:func:`~ivoryos_plugin.runtime.attach.attach` puts it
        #: on the app; a host may run it from a hook of its own instead, taking it out of Flask's table)
        self.after_each_request: Optional[Callable[[Response], Response]] = None
        self.failures: List[Dict[str, str]] = []
        #: problems of plugins that run anyway (a Socket.IO event two plugins handle...), for the health page
        self.warnings: List[Dict[str, str]] = []
        #: the running deck module; set by the host that adopts the app
        self.deck_getter: Callable[[], Any] = _no_deck
        #: the host's workflow run in progress (IvoryOS's run id and step), None outside one
        self.run_context: Callable[[], Optional[Dict[str, Any]]] = _no_run
        #: how hardware actions know the deck is idle; closed until a host proves otherwise
        self.gate: Gate = Gate.unverified(f"app {app.import_name!r} is neither IvoryOS nor the dev host")
        #: the name of the host serving this app, for the health page ("IvoryOS 1.7.2", "dev host")
        self.host_name = "unknown"
        #: the dev host's login token, printed at its start (None under any other host)
        self.dev_token: Optional[str] = None
        #: each hardening item of ``ivoryos_plugin.run`` and its state, for the health page (none elsewhere)
        self.hardening: Callable[[], List[Dict[str, str]]] = list
        self.app_id = id(app)
        self._start_lock = threading.RLock()
        self.started = False
        self._starters: Dict[str, threading.Thread] = {}  # each plugin's start, once begun
        self._start_deadline = 0.0  # until when a request waits for them (time.monotonic)
        self._start_settled = False  # every start returned, or the wait ran out: nothing to wait for
        self.stopped = False
        self._history: Optional["HistoryStore"] = None

    def plugin_of_path(self, path: str) -> Optional[str]:
        """The plugin whose URL prefix ``{URL_PREFIX}/{name}`` holds ``path`` (``"plugins"`` for the
        framework's own pages), or None: what every route under a prefix is guarded by, errors included.

        :param path: the request's path."""
        head = self.url_prefix + "/"
        if not path.startswith(head):
            return None
        name = path[len(head):].split("/", 1)[0]
        if name in self.runtimes or name in self.plain or name == "plugins":
            return name
        return None

    def disconnect_client(self, namespace: str, sid: str) -> None:
        """Close one live client through the host's transport (nothing to close without one).

        :param namespace: its namespace.
        :param sid: its id."""
        if self.live is not None:
            self.live.disconnect(namespace, sid)

    @property
    def sessions(self) -> SessionRegistry:
        """The sessions ended by a logout (``<data>/plugins/sessions.json``), opened on first use."""
        if self._sessions is None:
            self._sessions = SessionRegistry(self.data_root / "sessions.json", keep_s=self._session_keep_s)
        return self._sessions

    @property
    def runner_lock(self) -> Optional[LockLike]:
        """The lock a workflow holds while it runs (None when the deck cannot be verified idle)."""
        return self.gate.lock

    # ------------------------------------------------------------- plugins
    def record_failure(self, name: str, stage: str, error: BaseException) -> None:
        """Remember a plugin that failed to load or start, for the health page.

        :param name: the plugin (or entry point) name.
        :param stage: ``"import"``, ``"register"``, ``"start"``...
        :param error: the exception."""
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.failures.append({"name": name, "stage": stage, "error": f"{type(error).__name__}: {error}",
                              "traceback": tb})

    def record_warning(self, name: str, message: str) -> None:
        """Remember a problem of a plugin that runs anyway (never listed as failed), for the health page.

        :param name: the plugin's name.
        :param message: what is wrong and the fix."""
        entry = {"name": name, "message": message}
        if entry not in self.warnings:
            self.warnings.append(entry)

    # ----------------------------------------------------------- hardware
    @contextmanager
    def hardware_guard(self, plugin: str) -> Iterator[None]:
        """Hold the host's runner lock for a hardware action (refused when it cannot be verified).

        :param plugin: the plugin asking, for the busy message."""
        with hardware_guard(self.gate, plugin=plugin):
            yield

    def deck_busy(self) -> bool:
        """Whether a workflow or single step holds the deck, workflows wait in the host's queue, or
        the deck cannot be verified idle."""
        return is_deck_busy(self.gate)

    # ---------------------------------------------------------- lifecycle
    def ensure_started(self, wait: float = START_WAIT, plugin: Optional[str] = None) -> None:
        """Start every plugin once (on_start, workers): at the first request, or when the deck is known.

        Each plugin starts in its own thread, so one whose ``on_start`` blocks delays no other (past
        the wait below, it answers 503 "starting for N s"). The deck's serial ports are registered under
        their instruments' names first (:func:`~ivoryos_plugin.hardware.deck.claim_deck_ports`).
        The caller that begins the starts waits for them all; a request to one plugin whose start is
        under way (``plugin``) waits for that one, whoever began it (under ``ivoryos.run`` a starter
        thread does); both until the same deadline.

        :param wait: seconds from the starts' beginning to wait for them (a blocking ``on_start``
            makes callers wait this long, no longer).
        :param plugin: the plugin a request is for: wait for its start, even one begun by another caller."""
        if self._start_settled:
            return
        began = False
        with self._start_lock:
            if not self.started:
                deck = self.deck_getter()
                self.started = True
                claim_deck_ports(deck)
                deadline = time.monotonic() + wait
                self._starters = {name: self.start_runtime(runtime, deck)
                                  for name, runtime in list(self.runtimes.items())}
                self._start_deadline = deadline  # (0 until the starts have begun: a re-entrant call waits for none)
                began = True
            starters, deadline = self._starters, self._start_deadline
        if began or plugin is not None:
            for name, thread in starters.items():
                if (plugin is None or name == plugin) and thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))
        if deadline and (time.monotonic() >= deadline or not any(t.is_alive() for t in starters.values())):
            self._start_settled = True

    def start_runtime(self, runtime: "PluginRuntime", deck: Any) -> threading.Thread:
        """Start one plugin in its own thread (``ivoryos_plugin-starter-<name>``).

        :param runtime: the plugin's runtime.
        :param deck: the deck module (None without one).
        :returns: the thread, already started."""
        runtime.mark_starting()
        return start_thread(f"starter-{runtime.plugin.name}", runtime.start, deck)

    def stop_all(self) -> None:
        """Stop every plugin once: streams and workers first, then ``on_stop`` hooks."""
        with self._start_lock:
            if self.stopped:
                return
            self.stopped = True
        for runtime in list(self.runtimes.values()):
            runtime.stop()
        if self._history is not None:
            self._history.stop()  # the last batch is written

    def history(self) -> "HistoryStore":
        """The app's history database (SQLite in the data folder, or ``$IVORYOS_PLUGIN_HISTORY_URL``),
        opened on first use."""
        if self._history is not None:  # every recorded value asks: no lock once it exists
            return self._history
        with self._start_lock:
            if self._history is None:
                self._history = HistoryStore(default_url(self.data_root), clock=self.clock)
            return self._history

    @property
    def history_open(self) -> bool:
        """Whether anything was recorded in this app (the store exists)."""
        return self._history is not None


def current_extension() -> Extension:
    """The framework state of the current app (inside a request or app context)."""
    return extension_of(current_app)


def extension_of(app: Any) -> Extension:
    """The framework state of ``app`` (an app already at hand: no context lookup).

    :param app: the Flask app.
    :raises RuntimeError: the framework is not attached to it."""
    ext = app.extensions.get(KEY)
    if ext is None:
        raise RuntimeError("ivoryos_plugin is not attached to this app; register a Plugin first.")
    return ext  # type: ignore[no-any-return]
