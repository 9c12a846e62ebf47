"""``Plugin``: a :class:`flask.Blueprint` that knows how to live inside IvoryOS.

A plugin declares pages, actions, streams, handlers, workers and settings at import time. It holds
declarations only: no app, no Socket.IO server, no IvoryOS. Each app that registers it gets its own
runtime through Flask's deferred setup (``record_once``), handed to the host installed in
:mod:`ivoryos_plugin.core.binding`; live state (``settings``, ``publish``...) is looked up in the
app it is asked from, so one plugin on two apps has two independent runtimes.

This module holds the class, its pages and routes, its table (``declarations``) and its
registration; the decorators are split by concern: :mod:`.interface` (actions, streams, handlers),
:mod:`.workflow` (steps, cameras), :mod:`.hooks` (start, stop, settings change, workers) and
:mod:`.live_state` (settings, instruments, publish, record_value), over :mod:`.base`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Type

from . import binding, names
from .declarations import Builtin, Declarations, Policy, RouteRow
from .hooks import HooksMixin
from .interface import InterfaceMixin
from .live_state import LiveStateMixin
from .names import PluginError
from .workflow import WorkflowMixin

if TYPE_CHECKING:
    from flask import Response
    from flask.blueprints import BlueprintSetupState
    from flask.sansio.app import App
    from pydantic import BaseModel

__all__ = ["Plugin"]


class Plugin(InterfaceMixin, WorkflowMixin, HooksMixin, LiveStateMixin):
    """An IvoryOS plugin page: a Blueprint plus metadata, live events, safe hardware and settings.

    :param name: the plugin's name: a Python identifier, not an IvoryOS page name. It becomes the
        URL (``/ivoryos/<name>/``), the endpoint prefix and the Socket.IO namespace.
    :param import_name: the plugin module's ``__name__`` (templates/, static/ and public/ are found
        beside it).
    :param title: the human title (defaults to the name, capitalised).
    :param version: the plugin's numeric dotted version.
    :param placement: ``"tab"`` (a page in IvoryOS's nav, needs a ``main`` endpoint),
        ``"left_panel"`` (an iframe on every IvoryOS page, needs a ``widget`` endpoint) or
        ``"right_panel"`` (ivoryos-edge's right panel; IvoryOS 1.x has none, so there it is a section
        of the left panel, with a warning at registration; needs a ``widget`` endpoint).
    :param settings: a pydantic v2 model of the plugin's settings, or None.
    :param settings_version: the current version of the settings layout (see ``migrations``).
    :param migrations: ``{target_version: function(values) -> values}`` run in order on load.
    :param description: one sentence for the health page and ``ivoryos-plugin list``.
    :param author: who maintains it.
    :param url: where to read more.
    :param min_ivoryos: the oldest IvoryOS version the plugin works with (checked at registration).
    :param max_body: the largest request body an action or a settings write accepts, in bytes.
    :param steps_as: the deck instrument name of the plugin's ``@plugin.step`` functions in IvoryOS
        (defaults to the plugin's name; set it when the deck already has an instrument of that name).

    Example::

        plugin = Plugin("balance", __name__, title="Balance", version="1.0.0")

        @plugin.route("/")
        def main():
            return plugin.render("balance.html")
    """

    def __init__(
        self,
        name: str,
        import_name: str,
        *,
        title: Optional[str] = None,
        version: str = "0.1.0",
        placement: str = "tab",
        settings: Optional[Type["BaseModel"]] = None,
        settings_version: int = 0,
        migrations: Optional[Mapping[int, Callable[[Dict[str, Any]], Dict[str, Any]]]] = None,
        description: str = "",
        author: str = "",
        url: str = "",
        min_ivoryos: Optional[str] = None,
        max_body: int = 1 << 20,
        steps_as: Optional[str] = None,
        template_folder: Optional[str] = "templates",
        **blueprint_options: Any,
    ) -> None:
        names.check_name(name)
        self.plugin_type = names.check_placement(name, placement)
        self.placement = placement
        self.title = title or name.replace("_", " ").capitalize()
        self.version = names.check_version(name, "version", version) or "0.1.0"
        self.min_ivoryos = names.check_version(name, "min_ivoryos", min_ivoryos)
        self.description = description
        self.author = author
        self.url = url
        self.max_body = int(max_body)
        #: the deck instrument name of the plugin's steps in IvoryOS (checked when a step is declared)
        self.steps_instrument = names.check_instrument_name(name, steps_as) if steps_as is not None else name
        if settings is not None and not (isinstance(settings, type) and hasattr(settings, "model_fields")):
            raise PluginError(name, f"settings={settings!r} is not a pydantic v2 model class; "
                                    "pass a class that subclasses pydantic.BaseModel.")
        self.settings_model = settings
        self.settings_version = int(settings_version)
        self.migrations = dict(migrations or {})
        blueprint_options.setdefault("static_folder", None)
        super().__init__(name, import_name, template_folder=template_folder, **blueprint_options)
        self.logger = logging.getLogger(f"ivoryos_plugin.{name}")
        self._endpoints = set()
        self._public = set()
        self._actions = {}
        self._streams = {}
        self._handlers = {}
        self._on_start = []
        self._on_stop = []
        self._on_settings_change = []
        self._workers = {}
        self._steps = {}
        self._cameras = {}
        self._rows = {}
        self._views = {}
        self._declarations = None
        self.registered_once = False
        self.record_once(self._registered)
        self._declare_builtin_routes()

    def _declare_builtin_routes(self) -> None:
        """The routes every plugin has (actions, static/ and public/ files, history, steps, settings)
        and its request guards; the host serves each (:meth:`ivoryos_plugin.core.binding.Host.serve`)."""
        self._builtin(Builtin.ACTION, "/actions/<name>", ("POST",), Policy(body_limited=True))
        self._builtin(Builtin.STATIC, "/static/<path:filename>")
        self._builtin(Builtin.PUBLIC, "/public/<path:filename>", policy=Policy(public=True))
        self._builtin(Builtin.HISTORY, "/history/<name>")
        self._builtin(Builtin.STEPS, "/steps")
        self._builtin(Builtin.RUN_STEP, "/steps/<name>", ("POST",), Policy(body_limited=True))
        if self.settings_model is not None:
            self._builtin(Builtin.SETTINGS, "/settings", ("GET", "POST"), Policy(body_limited=True))
            self._builtin(Builtin.SETTINGS_JSON, "/settings.json", ("GET", "PUT", "PATCH"), Policy(body_limited=True))

        def guard() -> Optional["Response"]:
            return binding.host().guard(self)

        def harden(response: "Response") -> "Response":
            return binding.host().harden(self, response)

        self.before_request(guard)
        self.after_request(harden)

    # ------------------------------------------------------------------ pages
    def add_url_rule(self, rule: str, endpoint: Optional[str] = None,
                     view_func: Optional[Callable[..., Any]] = None,
                     provide_automatic_options: Optional[bool] = None, **options: Any) -> None:
        """Flask's ``add_url_rule``, also recording the endpoint (for the nav check) and ``public``.

        :param rule: the URL rule, relative to the plugin's prefix.
        :param endpoint: the endpoint name (defaults to the view function's name).
        :param view_func: the view.
        :param provide_automatic_options: as in Flask.
        :param options: as in Flask, plus ``public=True`` to serve without login and
            ``limit_body=True`` to refuse a request body over ``max_body`` (413) before the view reads it."""
        public = bool(options.pop("public", False))
        limit_body = bool(options.pop("limit_body", False))
        endpoint = endpoint or (view_func.__name__ if view_func is not None else None)
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
        if endpoint:
            self._endpoints.add(endpoint)
            if public:
                self._public.add(endpoint)
            methods = options.get("methods") or getattr(view_func, "methods", None) or ("GET",)
            self._rows[endpoint] = RouteRow(endpoint=endpoint, rule=rule, methods=tuple(sorted(set(methods))),
                                            policy=Policy(public=endpoint in self._public,
                                                          body_limited=limit_body), view=view_func)
            self._declarations = None

    def render(self, template: str, **context: Any) -> str:
        """Render ``template`` with ``plugin_base`` (the base to extend) and ``plugin`` in context.

        ``plugin_base`` is IvoryOS's ``base.html`` inside IvoryOS and the framework's shell in the
        standalone host; both have the ``title`` and ``body`` blocks.

        :param template: the template's name in the plugin's templates/ folder.
        :param context: more template variables.

        Example::

            return plugin.render("balance.html", unit="g")
        """
        return binding.host().render(self, template, context)

    def is_public(self, endpoint: str, view_args: Optional[Mapping[str, Any]] = None) -> bool:
        """Whether a request to ``endpoint`` may be served without login.

        :param endpoint: the blueprint-local endpoint name.
        :param view_args: the request's view arguments (actions are public one by one)."""
        row = self.declarations.route(endpoint)
        return row is not None and row.policy.allows_anonymous(view_args)

    @property
    def declarations(self) -> Declarations:
        """Everything this plugin declares, as one read-only table (rebuilt after a declaration):
        each route with its security policy, the actions, streams, handlers, steps, cameras,
        workers, hooks and settings model. Hosts serve this table; nothing else of the plugin.

        Example::

            for row in plugin.declarations.routes:
                print(row.endpoint, row.rule, row.methods, row.policy)
        """
        table = self._declarations
        if table is None:
            public_actions = tuple(sorted(name for name, spec in self._actions.items() if spec.public))
            rows = tuple(RouteRow(endpoint=row.endpoint, rule=row.rule, methods=row.methods, builtin=row.builtin,
                                  view=row.view, policy=Policy(public=row.policy.public, public_actions=public_actions,
                                                               body_limited=row.policy.body_limited))
                         if row.builtin is Builtin.ACTION else row for row in self._rows.values())
            table = Declarations(
                name=self.name, title=self.title, version=self.version, placement=self.placement,
                max_body=self.max_body, routes=rows, actions=self._actions, streams=self._streams,
                handlers=self._handlers, steps=self._steps, cameras=self._cameras, workers=self._workers,
                on_start=tuple(self._on_start), on_stop=tuple(self._on_stop),
                on_settings_change=tuple(self._on_settings_change), settings_model=self.settings_model,
                steps_instrument=self.steps_instrument)
            self._declarations = table
        return table

    # ----------------------------------------------------------- registration
    def init_socketio(self, socketio: Any) -> None:
        """Called by ``ivoryos.run`` with its Socket.IO server. Nothing to do here: the namespace is
        set up at registration, from the server the app already holds (``app.extensions``); the
        method exists because IvoryOS looks for it.

        :param socketio: the app's ``flask_socketio.SocketIO``."""

    def register(self, app: "App", options: Dict[str, Any]) -> None:
        """Flask's hook when an app registers the plugin: the host first puts on the Blueprint what
        Flask copies into the app now (the framework's error replies:
        :meth:`~ivoryos_plugin.core.binding.Host.prepare`), then Flask registers it.

        :param app: the app.
        :param options: the registration's options (``url_prefix``...)."""
        binding.host().prepare(self)
        super().register(app, options)

    def _registered(self, state: "BlueprintSetupState") -> None:
        """Flask's deferred setup, once per app: check the plugin, then give it a runtime there.

        :param state: the app, URL prefix and options of this registration."""
        self.registered_once = True
        needed = names.required_endpoint(self.placement)
        if needed not in self._endpoints:
            where = "a page at '/'" if needed == "main" else "a page for the left-panel iframe"
            raise PluginError(
                self.name,
                f"has no '{needed}' endpoint, which IvoryOS's nav links to ({self.name}.{needed}); "
                f"add {where}: @plugin.route('{'/' if needed == 'main' else '/widget'}') "
                f"def {needed}(): ...",
            )
        binding.host().registered(self, state)
