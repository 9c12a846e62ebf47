"""The seam between what a plugin declares (this layer) and the apps that run it (the layers above).

A :class:`~ivoryos_plugin.core.plugin.Plugin` never imports the runtime or a host: when an app
registers it, or when its author asks for live state (``plugin.settings``, ``plugin.publish``...),
it asks the :class:`Host` installed here. The package root installs a provider (``configure``), a
function that imports the host on first use, so importing ``ivoryos_plugin`` loads no app code, a
lower layer never imports a higher one, and no host is found by a string (the import is plain code
in the package root, which the import contracts see).

"Host" has one meaning in the framework, this one: the app that serves plugins (IvoryOS 1.x
through its adapter, the standalone dev host, ivoryos-edge), and :class:`Host` is what such an app
provides to a plugin; the ``hosts`` layer holds their code. The address a server listens on is its
``bind`` address, the HTTP header is "the Host header", and the dev host's login token is
``dev_token``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Protocol

if TYPE_CHECKING:
    from flask import Flask, Response
    from flask.blueprints import BlueprintSetupState
    from flask.typing import ResponseReturnValue

    from .declarations import Builtin
    from .plugin import Plugin

__all__ = ["Host", "RuntimeView", "configure", "host"]


class RuntimeView(Protocol):
    """What a plugin's author reaches through the plugin, in the app it runs in now."""

    def settings_current(self) -> Any:
        """The validated current settings (None without a settings model)."""

    def ensure_data_dir(self) -> Path:
        """The plugin's data folder, created on demand."""

    def instruments(self) -> Dict[str, Any]:
        """The deck's instruments, name -> live object."""

    def instrument(self, name: str) -> Any:
        """The deck's own object ``name``.

        :param name: the deck global's name."""

    def deck_busy(self) -> bool:
        """Whether a workflow or single step holds the deck now."""

    def current_run(self) -> Optional[Dict[str, Any]]:
        """The host's workflow run in progress (None outside one)."""

    def record(self, name: str, value: Any) -> None:
        """Keep ``value`` in the history database under ``name``.

        :param name: the series.
        :param value: the value."""

    def snapshot(self, camera: str, label: str) -> Dict[str, Any]:
        """Take a photo with one of the plugin's cameras and keep it under the current run.

        :param camera: the camera's name.
        :param label: what the photo shows (part of its file name)."""

    def observe(self, instrument: str, callback: Callable[[Dict[str, Any]], Any], *,
                methods: Optional[Iterable[str]] = None, starts: bool = False) -> Callable[[], None]:
        """Watch an instrument's calls (see :meth:`Plugin.observe <ivoryos_plugin.Plugin.observe>`)."""


class Host(Protocol):
    """What the layers above provide to a plugin: registration, live state and its built-in routes."""

    def adopt(self, app: "Flask", ext: Any) -> None:
        """A new app attached the framework: configure how its deck is reached and guarded.

        :param app: the app.
        :param ext: its framework state (``app.extensions["ivoryos_plugin"]``)."""

    def prepare(self, plugin: "Plugin") -> None:
        """An app is about to register ``plugin`` (each time, before Flask copies the Blueprint's
        handlers into the app): add what must be on the Blueprint by then (the framework's error
        replies). Idempotent: after the first registration Flask accepts no new handler.

        :param plugin: the plugin."""

    def registered(self, plugin: "Plugin", state: "BlueprintSetupState") -> None:
        """The app in ``state`` registered ``plugin`` for the first time: give it a runtime there.

        :param plugin: the plugin.
        :param state: Flask's setup state (the app, the URL prefix, the options)."""

    def runtime(self, plugin: "Plugin") -> RuntimeView:
        """The plugin's runtime in the current app (or the only one); raises before registration.

        :param plugin: the plugin."""

    def publish(self, plugin: "Plugin", event: str, data: Any) -> None:
        """Send ``data`` to the plugin's pages (and remember it for replay).

        :param plugin: the plugin.
        :param event: the event's name.
        :param data: a JSON-serialisable value."""

    def render(self, plugin: "Plugin", template: str, context: Dict[str, Any]) -> str:
        """Render ``template`` with ``plugin_base`` and ``plugin`` in its context.

        :param plugin: the plugin.
        :param template: the template's name.
        :param context: more template variables."""

    def serve(self, plugin: "Plugin", route: "Builtin", **args: Any) -> "ResponseReturnValue":
        """Answer a request to one of the framework's built-in routes of ``plugin`` (a row of
        :attr:`Plugin.declarations <ivoryos_plugin.Plugin.declarations>` whose ``builtin`` is set).

        :param plugin: the plugin.
        :param route: which built-in route.
        :param args: the route's view arguments."""

    def guard(self, plugin: "Plugin") -> Optional["Response"]:
        """Before every request to ``plugin``: the refusal, or None to serve it.

        :param plugin: the plugin."""

    def harden(self, plugin: "Plugin", response: "Response") -> "Response":
        """After every request to ``plugin``: security headers and the framework's scripts.

        :param plugin: the plugin.
        :param response: the reply."""


_lock = threading.Lock()
_provider: Optional[Callable[[], Host]] = None
_host: Optional[Host] = None


def configure(provider: Callable[[], Host]) -> None:
    """Install the function that gives the host (called once, on first use).

    :param provider: e.g. ``lambda: hosts.binding.HOST``, importing the hosts layer only when called."""
    global _provider, _host
    with _lock:
        if provider is not _provider:
            _provider, _host = provider, None


def host() -> Host:
    """The installed :class:`Host`, made by the provider on first use.

    :raises RuntimeError: no host was configured (the package root configures one)."""
    global _host
    if _host is not None:
        return _host
    with _lock:
        if _host is None:
            if _provider is None:
                raise RuntimeError("ivoryos_plugin: no host is configured; import ivoryos_plugin first.")
            _host = _provider()
        return _host
