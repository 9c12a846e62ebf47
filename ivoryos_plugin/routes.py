"""The routes every plugin gets: actions, static and public files, settings, and the request guards."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from flask import Response, request, send_from_directory
from werkzeug.exceptions import RequestEntityTooLarge

from . import actions as _actions
from .security import guard_request, harden_response

if TYPE_CHECKING:
    from .plugin import Plugin


def add_builtin_routes(plugin: "Plugin") -> None:
    """Register the framework's routes and request hooks on a new plugin.

    :param plugin: the plugin being constructed."""

    def run_action(name: str) -> Response:
        return action_view(plugin, name)

    plugin.add_url_rule("/actions/<name>", "actions", run_action, methods=["POST"])

    def static_file(filename: str) -> Response:
        return _send(plugin, "static", filename)

    def public_file(filename: str) -> Response:
        return _send(plugin, "public", filename)

    plugin.add_url_rule("/static/<path:filename>", "static", static_file)
    plugin.add_url_rule("/public/<path:filename>", "public", public_file, public=True)
    if plugin.settings_model is not None:
        from .settings_views import add_settings_routes

        add_settings_routes(plugin)

    @plugin.before_request
    def _guard() -> Optional[Response]:
        endpoint = (request.endpoint or "").rpartition(".")[2]
        return guard_request(plugin.name, plugin.is_public(endpoint, request.view_args))

    @plugin.after_request
    def _harden(response: Response) -> Response:
        return harden_response(response, plugin.name)


def _send(plugin: "Plugin", folder: str, filename: str) -> Response:
    root = os.path.join(plugin.root_path, folder)
    response = send_from_directory(root, filename, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


def action_view(plugin: "Plugin", name: str) -> Response:
    """Serve one action call: validate, guard the deck, run, reply JSON.

    :param plugin: the plugin.
    :param name: the action's URL name."""
    from .deck import DeckBusy, InstrumentUnavailable, calling_as
    from .extension import current_extension

    spec = plugin._actions.get(name)
    if spec is None:
        known = ", ".join(sorted(plugin._actions)) or "none"
        return _actions.error_response(404, f"Plugin {plugin.name!r} has no action {name!r}; actions: {known}.")
    request.max_content_length = plugin.max_body
    try:
        kwargs, problem = _actions.parse_arguments(plugin.name, spec)
    except RequestEntityTooLarge:
        return _actions.error_response(413, f"Plugin {plugin.name!r}: the body of action {name!r} is larger "
                                            f"than {plugin.max_body} bytes; send less or raise max_body.")
    if problem is not None:
        return problem
    assert kwargs is not None
    ext = current_extension()
    try:
        with calling_as(f"plugin:{plugin.name} action {name}"):
            if spec.hardware:
                with ext.hardware_guard(plugin.name):
                    result = _actions.call(spec.func, kwargs)
            else:
                result = _actions.call(spec.func, kwargs)
    except DeckBusy as exc:
        return _actions.error_response(409, str(exc), busy=True)
    except _actions.ActionError as exc:
        return _actions.error_response(exc.status, str(exc), action=name)
    except InstrumentUnavailable as exc:
        return _actions.error_response(503, str(exc), instrument=exc.name, loaded=list(exc.loaded))
    except Exception as exc:
        plugin.logger.exception("action %r failed", name)
        return _actions.error_response(500, f"{type(exc).__name__}: {exc}", action=name)
    return _actions.to_response(plugin.name, spec, result)
