"""A plugin's life in one app: start (settings, on_start, workers), run, stop (workers, on_stop)."""
from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass, replace
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Optional

from ..hardware.deck import deck_instruments, get_instrument, guard_instrument, observe
from . import registry
from .cameras import CameraSet
from .history import Retention
from .live import LiveHub, NullTransport, start_thread
from .settings import SettingsStore
from .workers import WorkerRunner

if TYPE_CHECKING:
    from ..core.plugin import Plugin
    from .extension import Extension

__all__ = ["PluginRuntime"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Recent(logging.Handler):
    """Keeps the last lines of a plugin's log for the health page."""

    def __init__(self, size: int = 50) -> None:
        super().__init__()
        self.lines: Deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@dataclass
class _Settings:
    store: Any = None


class PluginRuntime:
    """One plugin registered in one app.

    :param plugin: the plugin.
    :param ext: the app's framework state.
    :param namespace: the plugin's URL prefix, also its Socket.IO namespace."""

    def __init__(self, plugin: "Plugin", ext: "Extension", namespace: str) -> None:
        self.plugin = plugin
        self.ext = ext
        self.app_id = ext.app_id
        #: ``time.monotonic_ns()`` when it was made (the newest running runtime answers calls from outside an app)
        self.made_ns = time.monotonic_ns()
        self.namespace = namespace
        self.state = "registered"
        self.reason = ""
        self.traceback = ""
        #: ``time.monotonic()`` when the start began (None before), and the hook that is running
        self.started_at: Optional[float] = None
        self._running_hook = ""
        live, declared = ext.live, plugin.declarations
        #: the plugin's live events (streams, publish, handlers) on the host's transport
        self.hub = LiveHub(
            plugin=plugin.name, namespace=namespace, streams=declared.streams, handlers=declared.handlers,
            transport=live.transport(namespace) if live is not None else NullTransport(),
            start_task=live.start_task if live is not None else start_thread,
            acting=lambda: registry.acting_for(self), recorder=self.recorder, connections=ext.connections,
            ensure_started=ext.ensure_started, logger=plugin.logger,
            published=registry.published_before_registration(plugin), clock=ext.clock)
        self.cameras = CameraSet(self, clock=ext.clock)
        self.workers: Dict[str, WorkerRunner] = {}
        self._settings = _Settings()
        self.recent = _Recent()
        self._file_handler: Optional[logging.Handler] = None
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._ran = False  # reached "running": on_start succeeded, so on_stop owes it a cleanup
        self._observers: List[Callable[[], None]] = []
        registry.add(self)

    @property
    def stopped(self) -> bool:
        """Whether the runtime was stopped (its app shut down its plugins)."""
        return self._stopped

    # ------------------------------------------------------------ plumbing
    def serve_live(self) -> None:
        """Let the host's live transport (the app's Socket.IO server, if it has one) route the
        plugin's clients to its hub."""
        if self.ext.live is not None:
            self.ext.live.serve(self.hub)

    def ensure_data_dir(self) -> Path:
        """The plugin's data folder, created on demand."""
        path = self.ext.data_root / self.plugin.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _setup_logging(self) -> None:
        logger = self.plugin.logger
        for handler in list(logger.handlers):
            if getattr(handler, "_ivoryos_plugin", False):
                logger.removeHandler(handler)
                handler.close()
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        self.recent._ivoryos_plugin = True  # type: ignore[attr-defined]
        logger.addHandler(self.recent)
        if not logging.getLogger().handlers:  # nobody configured logging: warnings and errors to the console
            console = logging.StreamHandler()
            console.setLevel(logging.WARNING)
            console.setFormatter(logging.Formatter(LOG_FORMAT))
            console._ivoryos_plugin = True  # type: ignore[attr-defined]
            logger.addHandler(console)
        try:
            handler = RotatingFileHandler(self.ensure_data_dir() / "plugin.log", maxBytes=1 << 20,
                                          backupCount=3, encoding="utf-8", delay=True)
        except OSError as exc:  # a read-only data folder must not stop the plugin
            logger.warning("cannot write the log file: %s", exc)
            return
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._ivoryos_plugin = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        self._file_handler = handler

    # ------------------------------------------------------------ settings
    @property
    def settings_store(self) -> Any:
        """The plugin's :class:`~ivoryos_plugin.settings.SettingsStore` (None without a model)."""
        model = self.plugin.settings_model
        if self._settings.store is None and model is not None:
            plugin = self.plugin
            self._settings.store = SettingsStore(
                model, self.ensure_data_dir() / "settings.json",
                version=plugin.settings_version, migrations=plugin.migrations, plugin_name=plugin.name,
                on_change=self._settings_changed)
        return self._settings.store

    def settings_current(self) -> Any:
        """The validated current settings, loading them on first use."""
        store = self.settings_store
        if store is None:
            return None
        return store.current

    def _settings_changed(self, old: Any, new: Any) -> None:
        if old == new:
            return  # a save that changed nothing is not a change
        for hook in self.plugin.declarations.on_settings_change:
            try:
                with registry.acting_for(self):
                    hook(old, new)
            except Exception:
                self.plugin.logger.exception("on_settings_change hook %s failed", getattr(hook, "__name__", hook))

    # ---------------------------------------------------------- lifecycle
    def suspend(self, reason: str, state: str = "suspended", tb: str = "") -> None:
        """Take the plugin out of service: its routes answer 503 with ``reason``.

        :param reason: why, for the health page and the 503 reply.
        :param state: ``"suspended"`` or ``"failed"``.
        :param tb: a traceback, for ``"failed"``."""
        self.state, self.reason, self.traceback = state, reason, tb
        if tb:
            self.plugin.logger.error("plugin %s: %s\n%s", state, reason, tb.rstrip())
        else:
            self.plugin.logger.error("plugin %s: %s", state, reason)

    def mark_starting(self) -> None:
        """Enter ``starting`` (the clock the 503 replies and the health page count from starts now)."""
        if self.state == "registered":
            self.state, self.reason = "starting", ""
        if self.started_at is None:
            self.started_at = time.monotonic()

    def current_reason(self) -> str:
        """Why the plugin is not running, as the 503 replies and the health page say it, or ``""``.

        A plugin still starting says for how long and which hook has not returned yet."""
        if self.state == "registered":
            return "waiting for the app to start its plugins (the deck is not loaded yet)"
        if self.state == "starting":
            since = int(time.monotonic() - (self.started_at or time.monotonic()))
            hook = self._running_hook or "loading its settings"
            return (f"starting for {since} s: {hook} has not returned yet; its routes answer once it has "
                    "(other plugins are not held up)")
        return self.reason

    def start(self, deck: Any) -> None:
        """Load settings, run ``on_start(deck)`` hooks, then start workers; once.

        :param deck: the deck module (None without one)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self.mark_starting()
        self._setup_logging()
        if self.plugin.settings_model is not None:
            try:
                self.settings_store.load()
            except Exception as exc:
                self.suspend(str(exc))
                return
        for hook in self.plugin.declarations.on_start:
            self._running_hook = f"on_start {getattr(hook, '__name__', 'hook')}"
            try:
                with registry.acting_for(self):
                    result = hook(deck)
            except Exception as exc:
                tb = traceback.format_exc()
                self.suspend(f"on_start {getattr(hook, '__name__', 'hook')} raised {type(exc).__name__}: {exc}",
                             "failed", tb)
                self.ext.record_failure(self.plugin.name, "start", exc)
                return
            if result is False or isinstance(result, str):
                self.suspend(result if isinstance(result, str) else
                             f"on_start {getattr(hook, '__name__', 'hook')} returned False")
                return
        self._running_hook = ""
        if self._stopped:  # the app shut down while on_start ran: start nothing more
            return
        self.state, self.reason, self._ran = "running", "", True
        for stream in self.hub.streams.values():
            if stream.spec.record:  # recorded streams sample with no viewer, at their own rate
                self.ext.history().retain(self.plugin.name, stream.spec.name,
                                          Retention(keep_s=stream.spec.keep_s, keep_rows=stream.spec.keep_rows))
                stream.record_always()
        for spec in self.plugin.declarations.workers.values():
            runner = WorkerRunner(replace(spec, func=self._acting(spec.func)), self.plugin.logger, clock=self.ext.clock)
            self.workers[spec.name] = runner
            runner.start()
        self.cameras.start()  # the photos' bounds, applied in the background
        self.plugin.logger.info("started")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop streams and workers (bounded by ``timeout``), then run ``on_stop`` hooks; once.

        ``on_stop`` runs only for a plugin that started (its ``on_start`` hooks all succeeded): a
        plugin refused or failed at start, or never started, has nothing to clean up. The log file
        is closed at the end (the last lines stay on the health page).

        :param timeout: seconds to wait for all workers together."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        self.hub.stop_all()
        self.cameras.stop()
        observers, self._observers = self._observers, []
        for unobserve in observers:
            unobserve()
        deadline = time.monotonic() + timeout
        for runner in self.workers.values():
            runner.request_stop()
        for runner in self.workers.values():
            runner.join(max(0.0, deadline - time.monotonic()))
        for hook in self.plugin.declarations.on_stop if self._ran else ():
            try:
                hook()
            except Exception:
                self.plugin.logger.exception("on_stop hook %s failed", getattr(hook, "__name__", hook))
        if self.state == "running":
            self.state, self.reason = "stopped", "the server is shutting down"
        self.plugin.logger.info("stopped")
        handler, self._file_handler = self._file_handler, None
        if handler is not None:
            self.plugin.logger.removeHandler(handler)
            handler.close()

    # ---------------------------------------------------------------- deck
    def instruments(self) -> Dict[str, Any]:
        """The deck's instruments, each guarded by its per-instrument lock."""
        found = deck_instruments(self.ext.deck_getter())
        for obj in found.values():
            guard_instrument(obj)
        return found

    def instrument(self, name: str) -> Any:
        """The deck's own object ``name``, guarded by its per-instrument lock.

        :param name: the deck global's name."""
        obj = get_instrument(self.ext.deck_getter(), name, plugin=self.plugin.name)
        guard_instrument(obj)
        return obj

    def observe(self, instrument: str, callback: Callable[[Dict[str, Any]], Any], *,
                methods: Optional[Iterable[str]] = None, starts: bool = False) -> Callable[[], None]:
        """See :meth:`Plugin.observe`.

        :param instrument: the deck global's name.
        :param callback: receives each call's record.
        :param methods: only these methods.
        :param starts: also report starts."""
        obj = self.instrument(instrument)
        unobserve = observe(obj, self._acting(callback), instrument=instrument, methods=methods, starts=starts)
        self._observers.append(unobserve)

        def stop_observing() -> None:
            if unobserve in self._observers:
                self._observers.remove(unobserve)
            unobserve()

        return stop_observing

    def deck_busy(self) -> bool:
        """Whether a workflow or single step holds the deck (or it cannot be verified idle)."""
        return self.ext.deck_busy()

    def record(self, name: str, value: Any, field_name: Optional[str] = None) -> None:
        """Keep ``value`` in the app's history database (with the time and the current run).

        :param name: the series (a stream's name, or any name given to ``plugin.record``).
        :param value: a JSON-serialisable value.
        :param field_name: the key of a dict value to downsample (default ``"value"``)."""
        self.ext.history().record(self.plugin.name, name, value, run=self.current_run(), field_name=field_name)

    def recorder(self, name: str, field_name: Optional[str]) -> Callable[[Any, str], None]:
        """What the recorded stream ``name`` calls for each value and its JSON (see
        ``HistoryStore.recorder``).

        :param name: the stream.
        :param field_name: the key of a dict value to downsample (default ``"value"``)."""
        return self.ext.history().recorder(self.plugin.name, name, field_name, self.current_run)

    def snapshot(self, camera: str, label: str) -> Dict[str, Any]:
        """Take a photo with ``camera`` and keep it under the current run (the snapshot step).

        :param camera: the camera's name.
        :param label: what the photo shows."""
        return self.cameras.snapshot(camera, label)

    def current_run(self) -> Optional[Dict[str, Any]]:
        """The host's workflow run in progress (IvoryOS's run id, phase and step), or None."""
        return self.ext.run_context()

    def publish(self, event: str, data: Any) -> None:
        """Remember ``data`` for replay and send it to the plugin's pages in this app.

        :param event: the event's name.
        :param data: a JSON-serialisable value (NaN and Infinity are sent as null)."""
        self.hub.publish(event, data)

    def _acting(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` wrapped so that plugin calls inside it mean this runtime (for framework threads).

        :param func: a worker, observer or hook."""
        def acting(*args: Any, **kwargs: Any) -> Any:
            with registry.acting_for(self):
                return func(*args, **kwargs)

        acting.__name__ = getattr(func, "__name__", "hook")
        acting.__wrapped__ = func  # type: ignore[attr-defined]
        return acting

    # ------------------------------------------------------------- status
    def status(self) -> Dict[str, Any]:
        """A JSON-able snapshot for the health page."""
        plugin = self.plugin
        return {
            "name": plugin.name, "title": plugin.title, "version": plugin.version,
            "description": plugin.description, "placement": plugin.placement,
            "state": self.state, "reason": self.current_reason(), "traceback": self.traceback,
            "url": self.namespace + "/",
            "settings_url": self.namespace + "/settings" if plugin.settings_model is not None else None,
            "workers": {name: runner.status() for name, runner in self.workers.items()},
            "streams": self.hub.status(),
            "cameras": self.cameras.status(),
            "history": self.ext.history().status(plugin.name) if self.ext.history_open else None,
            "recorded": sorted(n for n, s in self.hub.streams.items() if s.spec.record),
            "actions": sorted(plugin.declarations.actions),
            "log": list(self.recent.lines)[-20:],
        }

