"""What runs in the background of a plugin's life: ``@plugin.on_start``, ``@plugin.on_stop``,
``@plugin.on_settings_change`` and ``@plugin.worker``, declared at import time."""
from __future__ import annotations

from typing import Callable, Optional, Union, overload

from .base import F, PluginBase
from .names import PluginError
from .setup import setupmethod
from .specs import WorkerSpec

__all__ = ["HooksMixin"]


class HooksMixin(PluginBase):
    """The lifecycle decorators of :class:`~ivoryos_plugin.core.plugin.Plugin`."""

    @setupmethod
    def on_start(self, func: F) -> F:
        """Run ``func(deck)`` once the app and deck are ready, before the first request.

        Returning ``False`` or a string refuses to start: the plugin is suspended with that reason
        and its routes answer 503. It runs once per app, in a starter thread: do not block.

        :param func: the hook.

        Example::

            @plugin.on_start
            def start(deck):
                plugin.observe("balance", lambda call: plugin.publish("calls", call))
        """
        self._on_start.append(func)
        self._declarations = None
        return func

    @setupmethod
    def on_stop(self, func: F) -> F:
        """Run ``func()`` once at shutdown (SIGINT, SIGTERM, interpreter exit), after the workers stop.

        Only a plugin that started runs it: one whose ``on_start`` refused or raised does not.

        :param func: the hook.

        Example::

            @plugin.on_stop
            def stop():
                plugin.logger.info("bye")
        """
        self._on_stop.append(func)
        self._declarations = None
        return func

    @setupmethod
    def on_settings_change(self, func: F) -> F:
        """Run ``func(old, new)`` after a save changed the settings (validated models).

        A save of the same values does not call it.

        :param func: the hook; an exception is logged and never undoes the save.

        Example::

            @plugin.on_settings_change
            def changed(old, new):
                plugin.logger.info("rate %s -> %s", old.rate_hz, new.rate_hz)
        """
        self._on_settings_change.append(func)
        self._declarations = None
        return func

    @overload
    def worker(self, func: F) -> F: ...

    @overload
    def worker(self, *, every: Optional[float] = None, name: Optional[str] = None, backoff: float = 0.5,
               max_backoff: float = 30.0, max_crashes: int = 5, window: float = 60.0) -> Callable[[F], F]: ...

    @setupmethod
    def worker(self, func: Optional[F] = None, *, every: Optional[float] = None,
               name: Optional[str] = None, backoff: float = 0.5, max_backoff: float = 30.0,
               max_crashes: int = 5, window: float = 60.0) -> Union[F, Callable[[F], F]]:
        """Run a background worker from start to shutdown, restarted with backoff when it crashes.

        With ``every=seconds`` the function is called periodically with no argument. Without it,
        it is a long-running loop called with a ``stop`` object: ``while stop.sleep(1): ...``
        (``stop.sleep`` returns False once the plugin is stopping). After too many crashes in a
        short window the worker is suspended until restarted from the health page.

        :param func: the function (when used without parentheses).
        :param every: the period in seconds, or None for a loop given ``stop``.
        :param name: the worker's name (defaults to the function's name).
        :param backoff: the first restart delay after a crash (doubles each crash).
        :param max_backoff: the longest restart delay.
        :param max_crashes: more crashes than this within ``window`` seconds suspend the worker.
        :param window: the crash-counting window, in seconds.

        Example::

            @plugin.worker(every=60)
            def log_weight():
                plugin.logger.info("weight %s", plugin.instrument("balance").weigh())
        """
        def decorate(f: F) -> F:
            key = name or f.__name__
            if key in self._workers:
                raise PluginError(self.name, f"worker {key!r} is registered twice; pass name= to tell them apart.")
            if every is not None and not (isinstance(every, (int, float)) and every > 0):
                raise PluginError(self.name, f"worker {key!r}: every={every!r} must be a positive number of seconds.")
            self._workers[key] = WorkerSpec(name=key, func=f, every=every, backoff=backoff,
                                            max_backoff=max_backoff, max_crashes=max_crashes, window=window)
            self._declarations = None
            return f

        return decorate(func) if func is not None else decorate

