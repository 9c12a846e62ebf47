"""``Plugin``: a :class:`flask.Blueprint` that knows how to live inside IvoryOS.

A plugin declares pages, actions, streams, handlers, workers and settings at import time. It holds
declarations only: no app, no Socket.IO server, no IvoryOS. Each app that registers it gets its own
runtime through Flask's deferred setup (``record_once``), handed to the host installed in
:mod:`ivoryos_plugin.core.binding`; live state (``settings``, ``publish``...) is looked up in the
app it is asked from, so one plugin on two apps has two independent runtimes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Type,
                    TypeVar, Union, overload)

from flask import Blueprint

from . import binding, names
from .declarations import Builtin, Declarations, Policy, RouteRow
from .names import PluginError
from .setup import setupmethod
from .specs import (DEFAULT_STEP_TIMEOUT, PHOTO_KEEP_BYTES, PHOTO_KEEP_S, STEP_CANCELLED, ActionSpec, CameraSpec,
                    StepSpec, StreamSpec, WorkerSpec, make_action, make_camera, make_step)

if TYPE_CHECKING:
    from flask import Response
    from flask.blueprints import BlueprintSetupState
    from flask.sansio.blueprints import DeferredSetupFunction
    from flask.typing import ResponseReturnValue
    from pydantic import BaseModel

    from .binding import RuntimeView

F = TypeVar("F", bound=Callable[..., Any])
_NO_VALUE: Any = object()


class Plugin(Blueprint):
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
        self._endpoints: Set[str] = set()
        self._public: Set[str] = set()
        self._actions: Dict[str, ActionSpec] = {}
        self._streams: Dict[str, "StreamSpec"] = {}
        self._handlers: Dict[str, Callable[..., Any]] = {}
        self._on_start: List[Callable[[Any], Any]] = []
        self._on_stop: List[Callable[[], Any]] = []
        self._on_settings_change: List[Callable[[Any, Any], Any]] = []
        self._workers: Dict[str, WorkerSpec] = {}
        self._steps: Dict[str, StepSpec] = {}
        self._cameras: Dict[str, CameraSpec] = {}
        self._rows: Dict[str, RouteRow] = {}
        self._declarations: Optional[Declarations] = None
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

    def _builtin(self, kind: Builtin, rule: str, methods: Tuple[str, ...] = ("GET",),
                 policy: Policy = Policy()) -> None:
        """Declare one of the framework's routes: a row of the table, served by the host.

        :param kind: which route.
        :param rule: its URL rule.
        :param methods: its HTTP methods.
        :param policy: how it is guarded."""
        def view(**args: Any) -> "ResponseReturnValue":
            return binding.host().serve(self, kind, **args)

        view.__name__ = kind.value
        super().add_url_rule(rule, kind.value, view, methods=list(methods))
        self._endpoints.add(kind.value)
        if policy.public:
            self._public.add(kind.value)
        self._rows[kind.value] = RouteRow(endpoint=kind.value, rule=rule, methods=tuple(methods), policy=policy,
                                          builtin=kind)
        self._declarations = None

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

    # ---------------------------------------------------------------- actions
    @overload
    def action(self, func: F) -> F: ...

    @overload
    def action(self, *, hardware: bool = True, public: bool = False,
               name: Optional[str] = None) -> Callable[[F], F]: ...

    @setupmethod
    def action(self, func: Optional[F] = None, *, hardware: bool = True, public: bool = False,
               name: Optional[str] = None) -> Union[F, Callable[[F], F]]:
        """Expose ``func`` as ``POST /ivoryos/<plugin>/actions/<name>`` (JSON in, JSON out).

        Arguments are validated from the signature's annotations (bad input: 400 with per-field
        errors; the function does not run). A hardware action runs only while IvoryOS's runner is
        free (409 otherwise). Runs in the request's thread: keep it short.

        :param func: the function (when used without parentheses).
        :param hardware: refuse with 409 while a workflow or single step holds the deck.
        :param public: serve without login (a caller logged in with a session still sends the CSRF token).
        :param name: the URL name (defaults to the function's name).

        Example::

            @plugin.action
            def tare(settle_s: float = 0.0):
                plugin.instrument("balance").tare()
                return {"ok": True}
        """
        def decorate(f: F) -> F:
            spec = make_action(self.name, f, hardware=hardware, public=public, name=name)
            if spec.name in self._actions:
                raise PluginError(self.name, f"action {spec.name!r} is registered twice; "
                                             "pass name= to tell them apart.")
            self._actions[spec.name] = spec
            self._declarations = None
            return f

        return decorate(func) if func is not None else decorate

    # ------------------------------------------------------------------- live
    @setupmethod
    def stream(self, name: str, *, hz: Union[float, Callable[[], float]] = 1.0, record: Union[bool, str] = False,
               keep_s: Optional[float] = 7 * 86400.0, keep_rows: Optional[int] = 1_000_000) -> Callable[[F], F]:
        """Declare a live stream: one producer for all viewers, run only while someone watches.

        The producer is called ``hz`` times a second (a number, or a callable read every tick) in a
        background thread while at least one client is subscribed; its return value (JSON) is sent
        to every subscriber as the event ``name``. A producer that raises sends ``stream_error`` and
        backs off. It must not block for long: a slow producer lowers the rate, never piles up.

        With ``record`` the stream samples even with no viewer, at its own rate (the instrument is
        read ``hz`` times a second all the time; the health page says so), and every value is kept in
        the history database with its time and the IvoryOS run and step it was taken in, readable at
        ``/ivoryos/<plugin>/history/<name>`` (JSON, ``.csv``) and by ``live.history(name)`` on a page.

        :param name: the stream's (and the client event's) name.
        :param hz: ticks per second, or a callable returning it.
        :param record: True to record, or the key of a dict value to downsample (``"grams"``).
        :param keep_s: recorded values older than this many seconds are deleted (None: no limit).
        :param keep_rows: at most this many recorded values are kept, the newest (None: no limit).

        Example::

            @plugin.stream("weight", hz=5, record=True)
            def weight():
                return {"value": plugin.instrument("balance").weigh()}
        """
        def decorate(f: F) -> F:
            if name in self._streams:
                raise PluginError(self.name, f"stream {name!r} is registered twice; "
                                             "pass name= to tell them apart.")
            if not callable(hz) and not (isinstance(hz, (int, float)) and 0 < hz <= 1000):
                raise PluginError(self.name, f"stream {name!r}: hz={hz!r} must be a number in (0, 1000] "
                                             "or a callable returning one.")
            if not isinstance(record, (bool, str)) or (isinstance(record, str) and not record):
                raise PluginError(self.name, f"stream {name!r}: record={record!r} must be True, False or the key "
                                             "of the value to downsample, e.g. record='grams'.")
            for label, limit in (("keep_s", keep_s), ("keep_rows", keep_rows)):
                if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
                    raise PluginError(self.name, f"stream {name!r}: {label}={limit!r} must be a positive number or None.")
            self._streams[name] = StreamSpec(name=name, func=f, hz=hz, record=record, keep_s=keep_s,
                                             keep_rows=int(keep_rows) if keep_rows is not None else None)
            self._declarations = None
            return f

        return decorate

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

    @setupmethod
    def on(self, event: str) -> Callable[[F], F]:
        """Handle the Socket.IO ``event`` in the plugin's own namespace (authenticated clients only).

        The handler receives the payload; its return value is the ack. It runs in the server's
        thread for that client: keep it short.

        :param event: the event's name (``connect``/``disconnect``/``subscribe`` are the framework's).

        Example::

            @plugin.on("ping")
            def ping(data):
                return {"pong": data}
        """
        def decorate(f: F) -> F:
            if event in ("connect", "disconnect", "subscribe", "unsubscribe"):
                raise PluginError(self.name, f"event {event!r} is handled by the framework; "
                                             "use @plugin.on_start or another event name.")
            if event in self._handlers:
                raise PluginError(self.name, f"event {event!r} has two handlers; keep one.")
            self._handlers[event] = f
            self._declarations = None
            return f

        return decorate

    def publish(self, event: str, data: Any = None) -> None:
        """Send ``data`` as ``event`` to every page of this plugin; safe from any thread.

        The last value of each event is replayed to a page that connects later. Before the plugin
        is registered (or with no Socket.IO server) the value is only remembered.

        :param event: the event's name.
        :param data: a JSON-serialisable value."""
        binding.host().publish(self, event, data)

    # ------------------------------------------------------------- workflow steps
    @overload
    def step(self, func: F) -> F: ...

    @overload
    def step(self, *, name: Optional[str] = None, timeout: float = DEFAULT_STEP_TIMEOUT) -> Callable[[F], F]: ...

    @setupmethod
    def step(self, func: Optional[F] = None, *, name: Optional[str] = None,
             timeout: float = DEFAULT_STEP_TIMEOUT) -> Union[F, Callable[[F], F]]:
        """Offer ``func`` as a workflow step: a method of the instrument named after the plugin in
        IvoryOS's designer, Instruments page and API schema, with its type hints and docstring.

        It runs like a deck instrument's method: inside IvoryOS's runner (hardware actions get 409
        meanwhile), seen by ``observe``, its return value kept in the run's records, an exception
        pausing the run for IvoryOS's retry. ``plugin.current_run()`` tells it which run and step it is
        in. In the dev host the steps are listed at ``/ivoryos/<plugin>/steps`` and callable there.

        Every call, whoever makes it (IvoryOS's runner, its single-step API, a deck script, the
        steps route), is validated against the signature first, as an action's JSON is (lax: the
        text ``"5"`` is taken for an ``int``, ``"abc"`` is not; NaN and Infinity are refused): a bad
        argument fails the call with an error naming the plugin, the step and the field, and the
        step does not run. The step then runs in a thread of its own; a call that has waited
        ``timeout`` seconds fails with :class:`TimeoutError` and frees the deck. Python cannot stop
        a thread: the step keeps running until it returns (``plugin.step_cancelled()`` turns true
        in it, so a loop can stop early), and its result is dropped; until then a new call of that
        step is refused.

        :param func: the function (when used without parentheses).
        :param name: the method's name (defaults to the function's name).
        :param timeout: the most seconds a call waits for the step: positive and finite, at most
            seven days; one hour when not given. Checked here: a bad value raises
            :class:`PluginError`.

        Example::

            @plugin.step(timeout=90)
            def wait_until_stable(timeout_s: float = 30.0, tolerance_g: float = 0.002) -> float:
                '''Wait until the balance reading is stable; returns the stable weight.'''
                ...
        """
        def decorate(f: F) -> F:
            names.check_instrument_name(self.name, self.steps_instrument)
            spec = make_step(self.name, f, name, timeout)
            if spec.name in self._steps:
                raise PluginError(self.name, f"step {spec.name!r} is registered twice; pass name= to tell them apart.")
            self._steps[spec.name] = spec
            self._declarations = None
            return f

        return decorate(func) if func is not None else decorate

    def step_cancelled(self) -> bool:
        """Whether the call running this step has given up (its ``timeout`` passed): the step's
        result will be dropped, so a loop in a step can check it and return early. False outside a
        step, and in a step whose call still waits.

        Example::

            while not plugin.step_cancelled():
                if balance.read()["stable"]:
                    return balance.read()["grams"]
                time.sleep(0.05)
        """
        event = STEP_CANCELLED.get()
        return event is not None and event.is_set()

    @setupmethod
    def camera(self, name: str, source: Union[int, str, Callable[[], Any]], *, fps: float = 15.0,
               width: Optional[int] = None, quality: int = 80, keep_s: Optional[float] = PHOTO_KEEP_S,
               keep_bytes: Optional[int] = PHOTO_KEEP_BYTES) -> None:
        """Declare a camera: live video for every viewer from one capture, and snapshots as a step.

        One capture thread per camera (per app), shared by all viewers and running only while
        someone watches; each frame is JPEG-encoded once. Served at
        ``/ivoryos/<plugin>/cameras/<name>/stream.mjpg`` (an ``<img>`` shows it; the page helper
        ``IvoryPlugin.camera(img, url)`` adds reconnect, a "no signal" placeholder and the fps) and
        ``.../snapshot.jpg``, with the same login as every plugin route. The plugin gains the workflow
        step ``snapshot(label)``: its photos are kept under the run in the plugin's data folder and
        listed on ``/ivoryos/<plugin>/gallery``, each camera's for ``keep_s`` seconds and up to
        ``keep_bytes`` bytes (the oldest are removed first, after each snapshot and every minute in
        the background; the newest photo is always kept). Needs OpenCV (``opencv-python-headless``).

        :param name: the camera's name (a Python identifier).
        :param source: a device index (0), a device path, an RTSP/HTTP URL or a video file, or a
            function returning a frame (numpy BGR array, PIL image or JPEG bytes); it runs in the
            capture thread, so it must not block for long.
        :param fps: frames per second while someone watches, up to 60.
        :param width: scale frames to this width (None keeps the source's).
        :param quality: JPEG quality, 1-100.
        :param keep_s: photos older than this many seconds are removed (default 30 days; None: no
            age limit).
        :param keep_bytes: at most this many bytes of photos are kept (default 2 GiB; None: no size
            limit).

        Example::

            plugin.camera("deck", 0, fps=10, width=640, keep_s=7 * 86400, keep_bytes=500 * 1024 ** 2)
        """
        spec = make_camera(self.name, name, source, fps=fps, width=width, quality=quality, keep_s=keep_s,
                           keep_bytes=keep_bytes)
        if name in self._cameras:
            raise PluginError(self.name, f"camera {name!r} is registered twice; give each camera its own name.")
        first = not self._cameras
        self._cameras[name] = spec
        self._declarations = None
        if not first:
            return

        self._builtin(Builtin.CAMERA_STREAM, "/cameras/<camera>/stream.mjpg")
        self._builtin(Builtin.CAMERA_SNAPSHOT, "/cameras/<camera>/snapshot.jpg")
        self._builtin(Builtin.GALLERY, "/gallery")
        self._builtin(Builtin.GALLERY_FILE, "/gallery/<path:filename>")

        def snapshot(label: str = "snapshot", camera: str = name) -> Dict[str, Any]:
            """Take a photo with the camera and keep it under the current workflow run; returns the
            file's name and URL on the plugin's gallery page."""
            return self.runtime.snapshot(camera, label)

        self.step(snapshot)

    def current_run(self) -> Optional[Dict[str, Any]]:
        """The IvoryOS workflow run in progress: ``{"run_id", "run_name", "phase", "step", "iteration"}``,
        or None outside a run (and in the dev host). A step files what it makes under ``run_id``."""
        return self.runtime.current_run()

    # -------------------------------------------------------------- lifecycle
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

    # --------------------------------------------------------------- runtime
    @property
    def runtime(self) -> "RuntimeView":
        """The plugin's state in the current app (or the only app that registered it).

        :raises PluginError: no app has registered the plugin yet."""
        return binding.host().runtime(self)

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

    # ----------------------------------------------------------- registration
    def init_socketio(self, socketio: Any) -> None:
        """Called by ``ivoryos.run`` with its Socket.IO server. Nothing to do here: the namespace is
        set up at registration, from the server the app already holds (``app.extensions``); the
        method exists because IvoryOS looks for it.

        :param socketio: the app's ``flask_socketio.SocketIO``."""

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
