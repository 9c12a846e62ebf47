"""What every part of :class:`~ivoryos_plugin.core.plugin.Plugin` shares: the tables its decorators
fill, the one way a built-in route is declared, and the way to the plugin's runtime in the app it
runs in now. The decorators live by concern beside this module (:mod:`.interface`, :mod:`.workflow`,
:mod:`.hooks`, :mod:`.live_state`); ``Plugin`` composes them."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar, cast

from flask import Blueprint

from . import binding
from .declarations import Builtin, Declarations, Policy, RouteRow
from .specs import ActionSpec, CameraSpec, StepSpec, StreamSpec, WorkerSpec

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from .binding import RuntimeView
    from .plugin import Plugin

__all__ = ["F", "PluginBase"]

F = TypeVar("F", bound=Callable[..., Any])


class PluginBase(Blueprint):
    """The state a plugin's declarations fill (set by ``Plugin.__init__``), shared by its parts.

    Not used on its own: :class:`~ivoryos_plugin.core.plugin.Plugin` is the class to subclass or
    instantiate."""

    logger: logging.Logger
    title: str
    version: str
    placement: str
    max_body: int
    steps_instrument: str
    registered_once: bool
    _endpoints: Set[str]
    _public: Set[str]
    _actions: Dict[str, ActionSpec]
    _streams: Dict[str, StreamSpec]
    _handlers: Dict[str, Callable[..., Any]]
    _on_start: List[Callable[[Any], Any]]
    _on_stop: List[Callable[[], Any]]
    _on_settings_change: List[Callable[[Any, Any], Any]]
    _workers: Dict[str, WorkerSpec]
    _steps: Dict[str, StepSpec]
    _cameras: Dict[str, CameraSpec]
    _rows: Dict[str, RouteRow]
    _views: Dict[Builtin, Callable[..., Any]]
    _declarations: Optional[Declarations]

    def _builtin(self, kind: Builtin, rule: str, methods: Tuple[str, ...] = ("GET",),
                 policy: Policy = Policy()) -> None:
        """Declare one of the framework's routes: a row of the table, served by the host.

        :param kind: which route.
        :param rule: its URL rule.
        :param methods: its HTTP methods.
        :param policy: how it is guarded."""
        plugin = self._as_plugin()

        def view(**args: Any) -> "ResponseReturnValue":
            return binding.host().serve(plugin, kind, **args)

        view.__name__ = kind.value
        Blueprint.add_url_rule(self, rule, kind.value, view, methods=list(methods))
        self._views[kind] = view
        self._endpoints.add(kind.value)
        if policy.public:
            self._public.add(kind.value)
        self._rows[kind.value] = RouteRow(endpoint=kind.value, rule=rule, methods=tuple(methods), policy=policy,
                                          builtin=kind)
        self._declarations = None

    def _builtin_fixed(self, kind: Builtin, rule: str, variable: str, value: str) -> None:
        """One more URL rule for a built-in route, with its one variable fixed to ``value``: the very URL
        ``url_for`` builds for that value (the same endpoint, view, methods and ``view_args``), found by
        Werkzeug with a dict lookup instead of the variable part's pattern (an action's call, e.g.
        ``/actions/tare`` beside ``/actions/<name>``, which still serves the rest with its 404).
        Not a row of the table: the route's row, its rule and its policy stay the one declared.

        :param kind: the built-in route (declared already).
        :param rule: the fixed URL rule, e.g. ``/actions/tare``.
        :param variable: the variable it fixes, e.g. ``name``.
        :param value: its value."""
        methods = self._rows[kind.value].methods  # (the row's: declared once)
        Blueprint.add_url_rule(self, rule, kind.value, self._views[kind], methods=list(methods),
                               defaults={variable: value})

    def _as_plugin(self) -> "Plugin":
        """This object as the :class:`~ivoryos_plugin.core.plugin.Plugin` it is part of (for the host)."""
        return cast("Plugin", self)

    @property
    def runtime(self) -> "RuntimeView":
        """The plugin's state in the current app (or the only app that registered it).

        :raises PluginError: no app has registered the plugin yet."""
        return binding.host().runtime(self._as_plugin())
