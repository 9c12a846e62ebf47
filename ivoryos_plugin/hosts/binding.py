"""The host a :class:`~ivoryos_plugin.Plugin` talks to (installed by the package root through
:mod:`ivoryos_plugin.core.binding`): the runtime's behaviour, plus how each kind of app is adopted."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from flask import Flask

from ..core.names import check_ivoryos_compatible
from ..runtime.extension import Extension
from ..runtime.host import RuntimeHost
from ..runtime.steps import install_on_deck
from ..hardware.deck import Gate
from . import demomode
from . import ivoryos as adapter
from . import offline, panels, socketio_live
from .socketio_live import QUEUE_ENV

if TYPE_CHECKING:
    from flask.blueprints import BlueprintSetupState

    from ..core.plugin import Plugin

log = logging.getLogger("ivoryos_plugin")


class FrameworkHost(RuntimeHost):
    """Adopts IvoryOS's app through the adapter's probe; other apps keep hardware refused until
    their host (the dev host) gives them a runner lock."""

    def adopt(self, app: Flask, ext: Extension) -> None:
        """Configure a newly attached app: offline assets, the deck, the hardware gate, the start.

        :param app: the app.
        :param ext: its framework state."""
        socketio_live.install(ext)  # the plugins' live events on the app's Flask-SocketIO server
        offline.install(app)  # IvoryOS's CDN libraries from static/vendor/ (offline lab networks)
        ext.deck_getter = adapter.deck
        if not adapter.is_ivoryos_app(app):
            return
        ext.host_name = f"IvoryOS {adapter.installed_version() or '(unknown version)'}"
        adapter.show_plugin_titles(app, lambda: {name: rt.plugin.title for name, rt in ext.runtimes.items()})
        ext.run_context = adapter.current_run
        ext.gate = adapter.probe()
        if demomode.is_demo(app.config):  # every visitor counts as logged in: fail closed on the hardware
            ext.gate = Gate.unverified(demomode.REFUSAL)
        if ext.gate.problem:
            log.error("ivoryos_plugin: hardware actions are refused: cannot verify the deck is idle (%s)",
                      ext.gate.problem)
        queue = os.environ.get(QUEUE_ENV)
        if queue and ext.socketio is not None:
            adapter.join_message_queue(ext.socketio, queue)

        def start() -> None:  # every plugin is registered once the deck is set
            panels.warn_hidden(app, ext)
            ext.ensure_started()

        adapter.start_when_deck_is_set(start)

    def registered(self, plugin: "Plugin", state: "BlueprintSetupState") -> None:
        """Give the plugin its runtime, then put its workflow steps on the deck as an instrument.

        :param plugin: the plugin.
        :param state: Flask's setup state of this registration."""
        super().registered(plugin, state)
        app = state.app
        assert isinstance(app, Flask)
        ext: Extension = app.extensions["ivoryos_plugin"]
        if plugin.placement == "right_panel":  # IvoryOS 1.x has no right panel: said at registration
            panels.warn_right_panel(plugin.name, ext)
        if plugin.declarations.steps:
            deck = ext.deck_getter() or (adapter.deck_being_loaded() if adapter.is_ivoryos_app(app) else None)
            install_on_deck(plugin, deck)

    def check_registration(self, plugin: "Plugin") -> None:
        """Refuse a plugin whose ``min_ivoryos`` is newer than the installed IvoryOS.

        :param plugin: the plugin being registered."""
        check_ivoryos_compatible(plugin.name, plugin.min_ivoryos, adapter.installed_version())


HOST = FrameworkHost()
