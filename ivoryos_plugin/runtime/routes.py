"""Serving the routes every plugin declares: actions, and static and public files."""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Tuple

from flask import Response, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from ..hardware.deck import calling_as
from . import actions as _actions
from .errors import Call, answering
from .extension import current_extension
from .files import serve_inside
from .replies import error_response

if TYPE_CHECKING:
    from ..core.plugin import Plugin


def send_file(plugin: "Plugin", folder: str, filename: str) -> Response:
    """Serve ``filename`` from the plugin's ``static/`` or ``public/`` folder, never cached.

    :param plugin: the plugin.
    :param folder: ``"static"`` or ``"public"``.
    :param filename: the path inside the folder."""
    response = serve_inside(os.path.join(plugin.root_path, folder), filename)
    if response is None:
        raise NotFound()
    return response


def action_view(plugin: "Plugin", name: str) -> Response:
    """Serve one action call: validate, guard the deck, run, reply JSON (an error: the reply of
    :mod:`.errors`).

    :param plugin: the plugin.
    :param name: the action's URL name."""
    actions = plugin.declarations.actions
    spec = actions.get(name)
    if spec is None:
        known = ", ".join(sorted(actions)) or "none"
        return error_response(404, f"Plugin {plugin.name!r} has no action {name!r}; actions: {known}.")
    req = request._get_current_object()  # type: ignore[attr-defined]
    req.max_content_length = plugin.max_body
    try:
        kwargs, problem = _actions.parse_arguments(plugin.name, spec, req=req)
    except RequestEntityTooLarge:
        return error_response(413, f"Plugin {plugin.name!r}: the body of action {name!r} is larger "
                                            f"than {plugin.max_body} bytes; send less or raise max_body.")
    if problem is not None:
        return problem
    assert kwargs is not None
    # a refusal (409 busy, 503 unverified or no instrument), an ActionError or any other exception
    # propagates to the error handler every plugin has (:func:`.errors.install`), which answers it in JSON
    call, caller = _action_call(plugin.name, name, spec.hardware)
    with answering(call, plugin.logger), calling_as(caller):
        if spec.hardware:
            with current_extension().hardware_guard(plugin.name):
                result = _actions.call(spec.func, kwargs, spec.coroutine)
        else:
            result = _actions.call(spec.func, kwargs, spec.coroutine)
    return _actions.to_response(plugin.name, spec, result)


@functools.lru_cache(maxsize=1024)
def _action_call(plugin: str, name: str, hardware: bool) -> Tuple[Call, str]:
    """The :class:`~.errors.Call` an action's error replies name, and whom its instrument calls are
    reported as coming from: the same for every call of the action, made once.

    :param plugin: the plugin's name.
    :param name: the action's name.
    :param hardware: whether it runs under the hardware guard."""
    return Call("action", name, hardware=hardware), f"plugin:{plugin} action {name}"
