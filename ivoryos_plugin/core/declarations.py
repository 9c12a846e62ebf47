"""What one plugin declares, as one typed, read-only table: every route with its security policy
beside it, and the actions, streams, handlers, steps, cameras, workers, hooks and settings model.

Hosts read this table and nothing else: the Flask hosts (IvoryOS 1.x, the dev host) serve it through
the runtime, and a second host (ivoryos-edge) builds its own routes from the same rows. The request
guard derives its policy (login, CSRF, the body limit) from the rows, so a route added here is
guarded without touching the security code. Pure data: no Flask, no I/O.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple, Type

from .specs import ActionSpec, CameraSpec, StepSpec, StreamSpec, WorkerSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Builtin", "Policy", "RouteRow", "Declarations"]


class Builtin(enum.Enum):
    """The routes the framework serves for every plugin (the value is the endpoint's local name)."""

    ACTION = "actions"
    STATIC = "static"
    PUBLIC = "public"
    HISTORY = "history"
    STEPS = "steps"
    RUN_STEP = "run_step"
    SETTINGS = "settings"
    SETTINGS_JSON = "settings_json"
    CAMERA_STREAM = "camera_stream"
    CAMERA_SNAPSHOT = "camera_snapshot"
    GALLERY = "gallery"
    GALLERY_FILE = "gallery_file"


@dataclass(frozen=True)
class Policy:
    """How a route is guarded.

    :param public: served without login (``public=True``); a session caller still sends CSRF.
    :param public_actions: for the actions route: the actions that are public one by one.
    :param body_limited: its request body is refused over ``Plugin(max_body=...)`` before it is read.
    """

    public: bool = False
    public_actions: Tuple[str, ...] = ()
    body_limited: bool = False

    def allows_anonymous(self, view_args: Optional[Mapping[str, Any]] = None) -> bool:
        """Whether a request with these view arguments may be served without login.

        :param view_args: the request's view arguments (an action's ``name``)."""
        if self.public:
            return True
        return bool(self.public_actions and view_args and str(view_args.get("name")) in self.public_actions)


@dataclass(frozen=True)
class RouteRow:
    """One route of the plugin, relative to its URL prefix.

    :param endpoint: the endpoint's local name (``main``, ``actions``...).
    :param rule: the URL rule in Werkzeug's syntax (``/actions/<name>``).
    :param methods: the HTTP methods.
    :param policy: how it is guarded.
    :param builtin: which framework route it is, or None for the author's own page.
    :param view: the author's view function (None for a built-in route: the host serves those).
    """

    endpoint: str
    rule: str
    methods: Tuple[str, ...]
    policy: Policy
    builtin: Optional[Builtin] = None
    view: Optional[Callable[..., Any]] = None


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Declarations:
    """Everything one plugin declares, read-only (``plugin.declarations``; a new table after each
    declaration).

    :param name: the plugin's name.
    :param title: its title.
    :param version: its version.
    :param placement: ``tab``, ``left_panel`` or ``right_panel``.
    :param max_body: the request body limit of the body-limited routes, in bytes.
    :param routes: every route, in declaration order.
    :param actions: name -> spec.
    :param streams: name -> spec.
    :param handlers: Socket.IO (or edge WebSocket) event -> handler.
    :param steps: name -> spec.
    :param cameras: name -> spec.
    :param workers: name -> spec.
    :param on_start: the start hooks.
    :param on_stop: the stop hooks.
    :param on_settings_change: the settings hooks.
    :param settings_model: the pydantic settings model, or None.
    :param steps_instrument: the deck instrument name of the steps.
    """

    name: str
    title: str
    version: str
    placement: str
    max_body: int
    routes: Tuple[RouteRow, ...]
    actions: Mapping[str, ActionSpec] = field(default_factory=dict)
    streams: Mapping[str, StreamSpec] = field(default_factory=dict)
    handlers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    steps: Mapping[str, StepSpec] = field(default_factory=dict)
    cameras: Mapping[str, CameraSpec] = field(default_factory=dict)
    workers: Mapping[str, WorkerSpec] = field(default_factory=dict)
    on_start: Tuple[Callable[[Any], Any], ...] = ()
    on_stop: Tuple[Callable[[], Any], ...] = ()
    on_settings_change: Tuple[Callable[[Any, Any], Any], ...] = ()
    settings_model: Optional[Type["BaseModel"]] = None
    steps_instrument: str = ""

    def __post_init__(self) -> None:
        for name in ("actions", "streams", "handlers", "steps", "cameras", "workers"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "_by_endpoint", {row.endpoint: row for row in self.routes})
        object.__setattr__(self, "_by_app_endpoint", {f"{self.name}.{row.endpoint}": row for row in self.routes})

    def route(self, endpoint: str) -> Optional[RouteRow]:
        """The row of a local endpoint name, or None (not the plugin's, or a nested blueprint's).

        :param endpoint: e.g. ``actions``."""
        found: Dict[str, RouteRow] = getattr(self, "_by_endpoint")
        return found.get(endpoint)

    def app_route(self, endpoint: Optional[str]) -> Optional[RouteRow]:
        """The row of an endpoint as the app names it (``request.endpoint``: ``"<plugin>.<local>"``), or
        None: another blueprint's, or a nested blueprint's (``"<plugin>.child.page"``), never one of the
        plugin's own routes (Flask allows no dot in a local endpoint name).

        :param endpoint: e.g. ``balance.actions``."""
        found: Dict[str, RouteRow] = getattr(self, "_by_app_endpoint")
        return found.get(endpoint) if endpoint is not None else None

    def builtin(self, kind: Builtin) -> Optional[RouteRow]:
        """The row of a built-in route, or None when this plugin does not have it.

        :param kind: the route."""
        return self.route(kind.value)

    def endpoints(self) -> Tuple[str, ...]:
        """Every local endpoint name."""
        return tuple(row.endpoint for row in self.routes)
