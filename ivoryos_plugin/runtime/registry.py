"""Which runtime a plugin call means: one ``Plugin`` may run in several apps of one process (tests,
the pytest kit, a dev host beside IvoryOS), each with its own :class:`PluginRuntime`.

``plugin.settings`` (and every other live property) resolves, in order, to: the runtime whose
framework thread is asking (a worker, a stream producer, an observer, ``on_start``), the runtime in
the current Flask app (a request or Socket.IO event), else the most recent runtime still running.
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
    from .lifecycle import PluginRuntime

KEY = "ivoryos_plugin"
#: The runtime a framework thread works for (set in workers, streams, observers, hooks).
CURRENT: contextvars.ContextVar[Optional["PluginRuntime"]] = contextvars.ContextVar(
    "ivoryos_plugin_runtime", default=None)
_lock = threading.Lock()
_by_plugin: "weakref.WeakKeyDictionary[Plugin, List[weakref.ref[PluginRuntime]]]" = weakref.WeakKeyDictionary()
_pending: "weakref.WeakKeyDictionary[Plugin, Dict[str, Any]]" = weakref.WeakKeyDictionary()


def add(runtime: "PluginRuntime") -> None:
    """Remember a new runtime of ``runtime.plugin`` (weakly: a dropped app frees it).

    :param runtime: the runtime just created."""
    with _lock:
        refs = [ref for ref in _by_plugin.get(runtime.plugin, []) if ref() is not None]
        refs.append(weakref.ref(runtime))
        _by_plugin[runtime.plugin] = refs


def runtimes(plugin: "Plugin") -> List["PluginRuntime"]:
    """The plugin's runtimes that are not stopped, oldest first.

    :param plugin: the plugin."""
    with _lock:
        found = [ref() for ref in _by_plugin.get(plugin, [])]
    return [rt for rt in found if rt is not None and not rt.stopped]


def resolve(plugin: "Plugin") -> Optional["PluginRuntime"]:
    """The runtime a call on ``plugin`` means now, or None when no app registered it.

    :param plugin: the plugin."""
    current = CURRENT.get()
    if current is not None and current.plugin is plugin:
        return current
    if has_app_context():
        ext = current_app.extensions.get(KEY)
        runtime = ext.runtimes.get(plugin.name) if ext is not None else None
        if runtime is not None and runtime.plugin is plugin:
            return runtime  # type: ignore[no-any-return]
    live = runtimes(plugin)
    if live:
        return live[-1]
    with _lock:
        refs = list(_by_plugin.get(plugin, []))
    stopped = [rt for rt in (ref() for ref in refs) if rt is not None]
    return stopped[-1] if stopped else None


def targets(plugin: "Plugin") -> List["PluginRuntime"]:
    """Where ``plugin.publish`` sends: the runtime of the current context, else every running one.

    :param plugin: the plugin."""
    current = CURRENT.get()
    if current is not None and current.plugin is plugin:
        return [current]
    if has_app_context():
        ext = current_app.extensions.get(KEY)
        runtime = ext.runtimes.get(plugin.name) if ext is not None else None
        if runtime is not None and runtime.plugin is plugin:
            return [runtime]
    return runtimes(plugin)


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
