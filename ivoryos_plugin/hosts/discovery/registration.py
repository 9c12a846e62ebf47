"""Registering a plugin on an app as IvoryOS's ``load_plugins`` does (:func:`register_plugin`), a
plain Blueprint given the framework's safety baseline first (:func:`protect_plain`)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

from ...core.plugin import Plugin
from ...runtime.attach import attach
from ...runtime.plain import protect_plain as _protect_routes
from .. import ivoryos as adapter


def register_plugin(app: Flask, blueprint: Blueprint, socketio: Any, url_prefix: str = "/ivoryos") -> None:
    """Register a Plugin, or a plain Blueprint with the framework's safety baseline, on ``app``
    (as IvoryOS's ``load_plugins`` does: ``init_socketio`` first, then the blueprint).

    :param app: the app.
    :param blueprint: the plugin.
    :param socketio: the app's Socket.IO server (given to ``init_socketio``).
    :param url_prefix: the app's URL prefix."""
    if not isinstance(blueprint, Plugin):
        protect_plain(app, blueprint)
    if hasattr(blueprint, "init_socketio"):
        blueprint.init_socketio(socketio)
    app.register_blueprint(blueprint, url_prefix=f"{url_prefix}/{blueprint.name}")
    attach(app)


def protect_plain(app: Flask, blueprint: Blueprint) -> None:
    """Give a plain Blueprint plugin the framework's baseline: login, CSRF, headers, scripts, and
    an ``init_socketio`` that can neither crash IvoryOS nor put its default-namespace handlers out
    of action (what it does there otherwise is as under plain IvoryOS, with a warning).

    :param app: the app it is registered on.
    :param blueprint: the plain Blueprint."""
    if _protect_routes(app, blueprint, attach(app)):
        adapter.guard_init_socketio(blueprint, attach(app).record_warning)
