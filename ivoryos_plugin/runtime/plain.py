"""The safety baseline for plain Blueprint plugins (not :class:`~ivoryos_plugin.Plugin`): login,
CSRF, security headers and the framework's scripts on every route under the plugin's URL prefix
``{URL_PREFIX}/{name}``: its own routes, its nested blueprints (whatever their own url_prefix),
and the 404s and 405s there. The routes its registration adds to the app itself (``record_once``,
its Blueprint's ``register``), wherever they are, are guarded as its own too, by the app's hooks
(:class:`~ivoryos_plugin.runtime.extension.Registrations`): the plugin is known from here, before
it registers."""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, Flask, Response, request

from .extension import Extension
from .security import guard_request, harden_response


def _belongs(endpoint_blueprint: Optional[str], name: str) -> bool:
    """Whether a request's blueprint is ``name`` or nested inside it (``name.child``).

    :param endpoint_blueprint: ``request.blueprint``.
    :param name: the plain plugin's name."""
    return endpoint_blueprint is not None and (endpoint_blueprint == name or endpoint_blueprint.startswith(name + "."))


def under_prefix(path: str, ext: Extension, name: str) -> bool:
    """Whether ``path`` is the plugin's URL prefix or below it (``/ivoryos/name`` or ``/ivoryos/name/...``).

    :param path: the request's path.
    :param ext: the app's framework state (its URL prefix).
    :param name: the plain plugin's name."""
    base = f"{ext.url_prefix}/{name}"
    return path == base or path.startswith(base + "/")


def protect_plain(app: Flask, blueprint: Blueprint, ext: Extension) -> bool:
    """Give a plain Blueprint plugin the framework's baseline on ``app``, once.

    :param app: the app it is registered on.
    :param blueprint: the plain Blueprint.
    :param ext: the app's framework state (the app is attached already).
    :returns: False when it was protected already."""
    if blueprint.name in ext.plain:
        return False
    ext.plain[blueprint.name] = blueprint
    name = blueprint.name

    def guarded() -> bool:
        if ext.registrations.owner(request.endpoint) is not None:
            return False  # a route it added to the app: guarded by the app's hooks, as its own
        return _belongs(request.blueprint, name) or under_prefix(request.path, ext, name)

    @app.before_request
    def _guard_plain() -> Optional[Response]:
        if not guarded():
            return None
        return guard_request(name, public=False)

    @app.after_request
    def _harden_plain(response: Response) -> Response:
        if not guarded():
            return response
        return harden_response(response, name)

    return True
