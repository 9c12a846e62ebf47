"""The runtime's side of :class:`ivoryos_plugin.core.binding.Host`: what a plugin asks of the app it
runs in (its runtime, publish, render, its built-in routes, the request guards, its error replies).
The hosts layer adds how an app is adopted (IvoryOS or the dev host) in :mod:`ivoryos_plugin.hosts.binding`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from flask import Flask, Response, render_template

from ..core.declarations import Builtin
from ..core.names import PluginError
from . import errors, registry
from .attach import add_plugin, attach
from .cameras import views as camera_views
from .extension import Extension, current_extension
from .history import views as history_views
from .lifecycle import PluginRuntime
from .routes import action_view, send_file
from .security import guard_route, harden_response
from .settings.views import settings_views
from .steps import run_step, steps_page

if TYPE_CHECKING:
    from flask.blueprints import BlueprintSetupState
    from flask.typing import ResponseReturnValue

    from ..core.plugin import Plugin


def _settings(endpoint: str) -> "View":
    return lambda plugin, args: settings_views(plugin)[endpoint]()


View = Callable[["Plugin", Dict[str, Any]], "ResponseReturnValue"]

#: Each built-in route of the declarations table -> the runtime's view for it (every member of
#: :class:`~ivoryos_plugin.core.declarations.Builtin` has one: tests/test_architecture.py checks it).
VIEWS: Dict[Builtin, View] = {
    Builtin.ACTION: lambda plugin, args: action_view(plugin, str(args["name"])),
    Builtin.STATIC: lambda plugin, args: send_file(plugin, "static", str(args["filename"])),
    Builtin.PUBLIC: lambda plugin, args: send_file(plugin, "public", str(args["filename"])),
    Builtin.HISTORY: lambda plugin, args: history_views.history(plugin, str(args["name"]), current_extension().history),
    Builtin.STEPS: lambda plugin, args: steps_page(plugin),
    Builtin.RUN_STEP: lambda plugin, args: run_step(plugin, str(args["name"])),
    Builtin.SETTINGS: _settings("settings"),
    Builtin.SETTINGS_JSON: _settings("settings_json"),
    Builtin.CAMERA_STREAM: lambda plugin, args: camera_views.stream(plugin.name, str(args["camera"])),
    Builtin.CAMERA_SNAPSHOT: lambda plugin, args: camera_views.snapshot(plugin.name, str(args["camera"])),
    Builtin.GALLERY: lambda plugin, args: camera_views.gallery(plugin.name),
    Builtin.GALLERY_FILE: lambda plugin, args: camera_views.gallery_file(plugin.name, str(args["filename"])),
}


class RuntimeHost:
    """Implements the plugin-facing half of the binding; subclassed by the hosts layer."""

    def adopt(self, app: Flask, ext: Extension) -> None:
        """A new app: configure how its deck is reached and guarded (the hosts layer's job).

        :param app: the app.
        :param ext: its fresh framework state (hardware actions stay refused until configured)."""

    def check_registration(self, plugin: "Plugin") -> None:
        """Raise :class:`PluginError` when the plugin cannot run in this process (the hosts layer
        checks the installed IvoryOS version).

        :param plugin: the plugin being registered."""

    def prepare(self, plugin: "Plugin") -> None:
        """Before an app registers ``plugin``: the framework's exceptions answered in JSON on every
        request it serves (:func:`.errors.install`; idempotent).

        :param plugin: the plugin."""
        errors.install(plugin)

    def registered(self, plugin: "Plugin", state: "BlueprintSetupState") -> None:
        """Give ``plugin`` its runtime in ``state.app``.

        :param plugin: the plugin.
        :param state: Flask's setup state of this registration."""
        self.check_registration(plugin)
        app = state.app
        assert isinstance(app, Flask)
        ext = attach(app)
        prefix = state.url_prefix or f"{ext.url_prefix}/{plugin.name}"
        add_plugin(ext, plugin, prefix)

    def runtime(self, plugin: "Plugin") -> PluginRuntime:
        """The plugin's runtime in the current context (see :mod:`.registry`).

        :param plugin: the plugin."""
        runtime = registry.resolve(plugin)
        if runtime is None:
            raise PluginError(plugin.name, "is not registered in an app yet; pass it to ivoryos.run("
                                           "blueprint_plugins=[...]), ivoryos_plugin.run or create_app.")
        return runtime

    def publish(self, plugin: "Plugin", event: str, data: Any) -> None:
        """Send to the plugin's pages in the current app (every app outside one), remembered for replay.

        :param plugin: the plugin.
        :param event: the event's name.
        :param data: a JSON-serialisable value."""
        targets = registry.targets(plugin)
        if not targets:
            registry.remember_unregistered(plugin, event, data)
        for runtime in targets:
            runtime.publish(event, data)

    def render(self, plugin: "Plugin", template: str, context: Dict[str, Any]) -> str:
        """Render with ``plugin_base`` (IvoryOS's ``base.html`` or the dev shell) and ``plugin``.

        :param plugin: the plugin.
        :param template: the template's name.
        :param context: more template variables."""
        return render_template(template, plugin_base=current_extension().base_template, plugin=plugin, **context)

    def serve(self, plugin: "Plugin", route: Builtin, **args: Any) -> "ResponseReturnValue":
        """Answer one of the plugin's built-in routes (:data:`VIEWS`).

        :param plugin: the plugin.
        :param route: which route.
        :param args: the view arguments."""
        return VIEWS[route](plugin, args)

    def guard(self, plugin: "Plugin") -> Optional[Response]:
        """Authenticate, refuse suspended plugins, check CSRF.

        :param plugin: the plugin."""
        return guard_route(plugin)

    def harden(self, plugin: "Plugin", response: Response) -> Response:
        """Security headers and the framework's scripts.

        :param plugin: the plugin.
        :param response: the reply."""
        return harden_response(response, plugin.name)

