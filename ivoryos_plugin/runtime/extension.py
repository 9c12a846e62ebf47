"""The framework's per-app state, ``app.extensions["ivoryos_plugin"]`` (see :mod:`.attach` for how
it is created). Nothing per app is ever stored on a :class:`~ivoryos_plugin.Plugin`."""
from __future__ import annotations

import os
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from flask import Blueprint, Flask, current_app
from jinja2 import TemplateNotFound

from ..hardware.deck import Gate, LockLike, hardware_guard, is_deck_busy
from .tokens import TokenStore

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime

SHELL_TEMPLATE = "ivoryos_plugin/shell.html"
KEY = "ivoryos_plugin"


def _no_deck() -> Any:
    return None


class Extension:
    """What the framework knows about one app. Found with :func:`current_extension`.

    :param app: the Flask app (IvoryOS's or the standalone host's); not stored."""

    def __init__(self, app: Flask) -> None:
        prefix = str(app.config.get("URL_PREFIX", "/ivoryos") or "").rstrip("/")
        self.url_prefix = prefix
        self.socketio_path = f"{prefix}/socket.io"
        self.socketio: Any = app.extensions.get("socketio")
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
        #: the running deck module; set by the host that adopts the app
        self.deck_getter: Callable[[], Any] = _no_deck
        #: how hardware actions know the deck is idle; closed until a host proves otherwise
        self.gate: Gate = Gate.unverified(f"app {app.import_name!r} is neither IvoryOS nor the dev host")
        self.host_name = "unknown"
        self.host_token: Optional[str] = None
        self.app_id = id(app)
        self._start_lock = threading.RLock()
        self.started = False
        self.stopped = False

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


def current_extension() -> Extension:
    """The framework state of the current app (inside a request or app context)."""
    ext = current_app.extensions.get(KEY)
    if ext is None:
        raise RuntimeError("ivoryos_plugin is not attached to this app; register a Plugin first.")
    return ext  # type: ignore[no-any-return]
