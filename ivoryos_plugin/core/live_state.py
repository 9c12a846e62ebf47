"""What a plugin reaches at run time, in the app it runs in now: its settings, data folder and
instruments, ``observe``, and the values it sends (``publish``) or keeps (``record_value``). Each asks
the host installed in :mod:`.binding`; nothing here is stored on the plugin."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, overload


from . import binding
from .base import PluginBase
from .names import PluginError

if TYPE_CHECKING:
    from flask.sansio.blueprints import DeferredSetupFunction

__all__ = ["LiveStateMixin"]

_NO_VALUE: Any = object()  # a marker: record(name) without a value is Flask's own record(func)


class LiveStateMixin(PluginBase):
    """The run-time side of :class:`~ivoryos_plugin.core.plugin.Plugin`: live state, publish, record."""

    @property
    def settings(self) -> Any:
        """The validated current settings (an instance of the ``settings`` model)."""
        return self.runtime.settings_current()

    @property
    def data_dir(self) -> Path:
        """This plugin's data folder (``<IvoryOS OUTPUT_FOLDER>/plugins/<name>``), created on demand."""
        return self.runtime.ensure_data_dir()

    @property
    def instruments(self) -> Dict[str, Any]:
        """The running deck's instruments, name -> the live object (guarded by per-instrument locks)."""
        return self.runtime.instruments()

    def instrument(self, name: str) -> Any:
        """The deck's own instrument object ``name`` (calls serialised with the workflow's).

        :param name: the deck global's name.
        :raises InstrumentUnavailable: no deck, or no such instrument (503 in a request)."""
        return self.runtime.instrument(name)

    def deck_busy(self) -> bool:
        """Whether a workflow or single step holds the deck now (hardware actions would get 409)."""
        return self.runtime.deck_busy()

    def observe(self, instrument: str, callback: Callable[[Dict[str, Any]], Any], *,
                methods: Optional[Iterable[str]] = None, starts: bool = False) -> Callable[[], None]:
        """Call ``callback(call)`` after each call of the instrument's methods, whoever calls.

        Observers are removed when the plugin stops in that app.

        :param instrument: the deck global's name.
        :param callback: receives ``{instrument, method, args, kwargs, result|error, started, finished}``.
        :param methods: only these methods (default: all public methods).
        :param starts: also call back when a call starts (``phase == "start"``).
        :returns: a function that stops observing."""
        return self.runtime.observe(instrument, callback, methods=methods, starts=starts)

    def publish(self, event: str, data: Any = None) -> None:
        """Send ``data`` as ``event`` to every page of this plugin; safe from any thread.

        The last value of each event is replayed to a page that connects later. Before the plugin
        is registered (or with no Socket.IO server) the value is only remembered.

        :param event: the event's name.
        :param data: a JSON-serialisable value."""
        binding.host().publish(self._as_plugin(), event, data)

    def record_value(self, name: str, value: Any) -> None:
        """Keep ``value`` in the history database under ``name`` (with the time and the IvoryOS run),
        for values that do not come from a stream. Safe from any thread; returns at once. Call it
        where the plugin runs in an app (an action, a step, a worker, a hook), not at import time.

        :param name: the series' name (read at ``/ivoryos/<plugin>/history/<name>``).
        :param value: a JSON-serialisable value (a number, or a dict whose ``"value"`` is downsampled).
        :raises PluginError: a bad name, or the plugin is not registered in an app yet.

        Example::

            @plugin.step
            def weigh_product() -> float:
                grams = plugin.instrument("balance").weigh()
                plugin.record_value("yield_mg", grams * 1000)
                return grams
        """
        if not isinstance(name, str) or not name or len(name) > 128:
            raise PluginError(self.name, f"record_value(name, value): the name must be a string of 1 to 128 "
                                         f"characters, not {name!r}.")
        self.runtime.record(name, value)

    @overload
    def record(self, name: "DeferredSetupFunction") -> None: ...

    @overload
    def record(self, name: str, value: Any) -> None: ...

    def record(self, name: Any, value: Any = _NO_VALUE) -> None:
        """Flask's ``Blueprint.record`` (a deferred setup function, which Flask itself calls).

        The old spelling ``plugin.record(name, value)`` of :meth:`record_value` still works in this
        release, with a :class:`DeprecationWarning`; it goes in the next one.

        :param name: a deferred setup function (or, deprecated, the series' name).
        :param value: deprecated: the value to keep."""
        if value is _NO_VALUE and callable(name):
            super().record(name)  # Flask's deferred setup
            return
        import warnings

        warnings.warn(f"Plugin {self.name!r}: plugin.record(name, value) is now plugin.record_value(name, value) "
                      "(Blueprint.record keeps its Flask meaning); the old spelling goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        self.record_value(name, value)

