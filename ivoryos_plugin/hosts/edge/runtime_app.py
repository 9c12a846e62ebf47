"""The plugin's runtime on the edge: a private Flask app that is never served.

The edge host serves every request with FastAPI; this app only holds what the framework keeps per
app (``app.extensions["ivoryos_plugin"]``: settings, history, cameras, workers, tokens, the plugin's
runtime) and gives the author's views the Flask request context they were written for (``request``,
``url_for``, ``render_template``). The plugin is registered at ``/plugins/<name>`` and the framework's
assets at ``/plugins/<name>/_framework``, so every URL ``url_for`` builds is the edge's own URL.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ...runtime.attach import framework_blueprint
from ...runtime.extension import Extension
from ...runtime.lifecycle import PluginRuntime
from ..panels import EDGE_HOST_NAME
from . import runstate

if TYPE_CHECKING:
    from ...core.plugin import Plugin

PACKAGE = Path(__file__).resolve().parents[2]
EDGE_SHELL = "ivoryos_plugin/edge_shell.html"
#: where a plugin's URLs start on the edge (``/plugins/<id>/``, the id being the plugin's name)
EDGE_PREFIX = "/plugins"
FRAMEWORK = "_framework"


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with a request that brings no session cookie (every request a
    program makes, and a page's until a view stores something) given its empty session without
    building the cookie's signer first: the edge has no login, so most requests have none."""

    def open_session(self, app: Flask, request: Request) -> Optional[SecureCookieSession]:
        """The request's session (an empty one when it brings no cookie).

        :param app: the private app.
        :param request: the request."""
        name = self.get_cookie_name(app)
        # the raw header first: a request whose Cookie header does not even name it has none (no parse)
        if app.secret_key and (name not in request.environ.get("HTTP_COOKIE", "") or not request.cookies.get(name)):
            return self.session_class()
        return super().open_session(app, request)


class EdgeDeck:
    """The edge's deck as the framework reads a deck: an object whose attributes are the edge's own
    instrument mapping (the same dict, never a copy: an instrument the edge adds is seen here, and the
    steps instrument set here is on the edge's deck).

    :param instruments: the edge's ``name -> object`` mapping (``ivoryos_edge.plugins.Plugin.instruments``)."""

    __name__ = "the ivoryos-edge deck"

    def __init__(self, instruments: Dict[str, Any]) -> None:
        object.__setattr__(self, "__dict__", instruments)

    def __iter__(self) -> Iterator[str]:
        return iter(list(vars(self)))


def data_root() -> Path:
    """The folder of the plugins' data on the edge: ``$IVORYOS_PLUGIN_DATA``, else ``plugins/`` in
    the edge's data folder (``$IVORYOS_DATA_DIR``), else ``./ivoryos_data/plugins``."""
    configured = os.environ.get("IVORYOS_PLUGIN_DATA")
    if configured:
        return Path(configured)
    edge = os.environ.get("IVORYOS_DATA_DIR") or os.environ.get("IVORYOS_EDGE_HOME")
    if edge:
        return Path(edge).expanduser().resolve() / "plugins"
    return Path(os.path.abspath(os.curdir)) / "ivoryos_data" / "plugins"


class RuntimeApp:
    """One plugin's private Flask app and its framework state.

    :param plugin: the plugin."""

    def __init__(self, plugin: "Plugin") -> None:
        self.plugin = plugin
        self.name = plugin.name
        self.prefix = f"{EDGE_PREFIX}/{plugin.name}"
        app = Flask(f"ivoryos_plugin.edge.{plugin.name}", root_path=str(PACKAGE), static_folder=None,
                    template_folder=None)
        app.session_interface = _CookieSessions()
        app.config.update(SECRET_KEY=secrets.token_hex(32), URL_PREFIX=EDGE_PREFIX,
                          OUTPUT_FOLDER=str(data_root().parent), SESSION_COOKIE_SAMESITE="Strict",
                          WTF_CSRF_ENABLED=False)
        # the framework's assets under the plugin's own prefix: the edge serves nothing of ours elsewhere
        app.register_blueprint(framework_blueprint, url_prefix=f"{self.prefix}/{FRAMEWORK}")
        ext: Extension = app.extensions["ivoryos_plugin"]
        ext.base_template = EDGE_SHELL
        ext.host_name = EDGE_HOST_NAME  # it has a right panel: a right_panel plugin's registration warns nothing
        ext.gate = runstate.UNSTARTED_GATE  # closed until the edge has started the plugin and the probe passed
        ext.run_context = runstate.current_run
        self.deck: Optional[EdgeDeck] = None
        ext.deck_getter = lambda: self.deck
        app.register_blueprint(plugin, url_prefix=self.prefix)
        self.app = app
        self.ext = ext

    @property
    def runtime(self) -> PluginRuntime:
        """The plugin's runtime in this app."""
        return self.ext.runtimes[self.name]

    def start(self, instruments: Dict[str, Any]) -> None:
        """The edge built its deck: adopt it, verify its run state, start the plugin (``on_start``,
        workers, recorded streams).

        :param instruments: the edge's instrument mapping."""
        self.deck = EdgeDeck(instruments)
        self.ext.gate = runstate.probe(self.name)
        self.ext.ensure_started()
