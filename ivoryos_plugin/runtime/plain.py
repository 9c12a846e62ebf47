"""The safety baseline for plain Blueprint plugins (not :class:`~ivoryos_plugin.Plugin`): login,
CSRF, security headers and the framework's scripts on every route under the plugin's name,
nested blueprints included."""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, Flask, Response, request

from .attach import attach
from .security import guard_request, harden_response


def _belongs(endpoint_blueprint: Optional[str], name: str) -> bool:
    """Whether a request's blueprint is ``name`` or nested inside it (``name.child``)."""
    return endpoint_blueprint is not None and (endpoint_blueprint == name or endpoint_blueprint.startswith(name + "."))


def protect_plain(app: Flask, blueprint: Blueprint) -> bool:
    """Give a plain Blueprint plugin the framework's baseline on ``app``, once.

    :param app: the app it is registered on.
    :param blueprint: the plain Blueprint.
    :returns: False when it was protected already."""
    ext = attach(app)
    if blueprint.name in ext.plain:
        return False
    ext.plain[blueprint.name] = blueprint
    name = blueprint.name

    @app.before_request
    def _guard_plain() -> Optional[Response]:
        if not _belongs(request.blueprint, name):
            return None
        return guard_request(name, public=False)

    @app.after_request
    def _harden_plain(response: Response) -> Response:
        if not _belongs(request.blueprint, name):
            return response
        return harden_response(response, name)

    return True
