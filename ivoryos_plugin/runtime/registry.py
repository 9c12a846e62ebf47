"""Which runtime a plugin call means: one ``Plugin`` may run in several apps of one process (tests,
the pytest kit, a dev host beside IvoryOS), each with its own :class:`PluginRuntime`.

``plugin.settings`` (and every other live property) resolves, in order, to: the runtime whose
framework thread is asking (a worker, a stream producer, an observer, ``on_start``), the runtime in
the current Flask app (a request or Socket.IO event), else the most recent runtime still running.

Each app keeps its own runtimes in its extension (``Extension.runtimes``; ``Extension.made`` in the
order they were made). This module keeps the only process-wide tables of the runtime layer, and says
why each cannot live in an app:

- the apps the framework is attached to (weakly: a dropped app is forgotten), because a call may
  come from a thread with no app context and no framework runtime (a user's own thread, a deck
  script, a test), and because interpreter exit (``atexit``, SIGTERM) stops every app's plugins
  with no app current;
- what a plugin published before any app registered it, because there is no app yet to keep it in
  (its first runtimes replay it).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from flask import current_app, has_app_context

if TYPE_CHECKING:
    from ..core.plugin import Plugin
    from .extension import Extension
    from .lifecycle import PluginRuntime

KEY = "ivoryos_plugin"
#: The runtime a framework thread works for (set in workers, streams, observers, hooks).
CURRENT: contextvars.ContextVar[Optional["PluginRuntime"]] = contextvars.ContextVar(
    "ivoryos_plugin_runtime", default=None)
_lock = threading.Lock()
#: every app's framework state, in the order the apps were attached (see the module's docstring)
_apps: "weakref.WeakValueDictionary[int, Extension]" = weakref.WeakValueDictionary()
#: values published before any app registered the plugin (see the module's docstring)
_pending: "weakref.WeakKeyDictionary[Plugin, Dict[str, Any]]" = weakref.WeakKeyDictionary()


def remember_app(ext: "Extension") -> None:
    """Remember an app the framework was just attached to (weakly: a dropped app frees it).

    :param ext: its framework state."""
    with _lock:
        _apps[id(ext)] = ext


def apps() -> List["Extension"]:
    """The framework state of every app still alive in this process, oldest first."""
    with _lock:
        return [ext for _, ext in sorted(_apps.items(), key=lambda item: item[1].attached_ns)]


def add(runtime: "PluginRuntime") -> None:
    """Remember a new runtime in its app (its extension's ``made``, weakly: a runtime its app no
    longer holds is freed, as a test's replaced runtime is).

    :param runtime: the runtime just created."""
    with _lock:
        made = runtime.ext.made
        made[:] = [ref for ref in made if ref() is not None]
        made.append(weakref.ref(runtime))


def _made(plugin: "Plugin") -> List["PluginRuntime"]:
    """Every runtime of ``plugin`` in every app alive, in the order they were made."""
    found = [rt for ext in apps() for rt in (ref() for ref in list(ext.made)) if rt is not None and rt.plugin is plugin]
    return sorted(found, key=lambda rt: rt.made_ns)


def runtimes(plugin: "Plugin") -> List["PluginRuntime"]:
    """The plugin's runtimes that are not stopped, oldest first.

    :param plugin: the plugin."""
    return [rt for rt in _made(plugin) if not rt.stopped]


def _in_context(plugin: "Plugin") -> Optional["PluginRuntime"]:
    """The runtime of the framework thread asking, else of the current app, else None."""
    current = CURRENT.get()
    if current is not None and current.plugin is plugin:
        return current
    if has_app_context():
        ext = current_app.extensions.get(KEY)
        runtime = ext.runtimes.get(plugin.name) if ext is not None else None
        if runtime is not None and runtime.plugin is plugin:
            return runtime  # type: ignore[no-any-return]
    return None


def resolve(plugin: "Plugin") -> Optional["PluginRuntime"]:
    """The runtime a call on ``plugin`` means now, or None when no app registered it.

    :param plugin: the plugin."""
    here = _in_context(plugin)
    if here is not None:
        return here
    made = _made(plugin)
    live = [rt for rt in made if not rt.stopped]
    if live:
        return live[-1]
    return made[-1] if made else None


def targets(plugin: "Plugin") -> List["PluginRuntime"]:
    """Where ``plugin.publish`` sends: the runtime of the current context, else every running one.

    :param plugin: the plugin."""
    here = _in_context(plugin)
    return [here] if here is not None else runtimes(plugin)


def remember_unregistered(plugin: "Plugin", event: str, data: Any) -> None:
    """Keep a value published before any app registered ``plugin``; its first runtimes replay it.

    :param plugin: the plugin.
    :param event: the event's name.
    :param data: the value."""
    with _lock:
        _pending.setdefault(plugin, {})[event] = data


def published_before_registration(plugin: "Plugin") -> Dict[str, Any]:
    """What ``plugin`` published before it was registered anywhere.

    :param plugin: the plugin."""
    with _lock:
        return dict(_pending.get(plugin, {}))


@contextlib.contextmanager
def acting_for(runtime: "PluginRuntime") -> Iterator[None]:
    """Make plugin calls inside the block mean ``runtime`` (this thread or task only).

    :param runtime: the runtime."""
    token = CURRENT.set(runtime)
    try:
        yield
    finally:
        CURRENT.reset(token)
