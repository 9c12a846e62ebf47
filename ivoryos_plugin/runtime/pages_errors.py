"""The dev host's answer to a page that fails for a mistake ``ivoryos-plugin check`` knows: a
template name that does not exist, a ``url_for`` endpoint that does not exist. Instead of a bare
"500 Internal Server Error", the page that failed shows the message ``check`` gives, with the fix
(JSON callers get it as ``{"error": ...}``). Installed by the dev host only: inside IvoryOS such a
page still answers IvoryOS's 500."""
from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Tuple, Union

from flask import Flask, current_app, render_template, request
from jinja2 import TemplateNotFound, TemplatesNotFound
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from ..core import hints
from .extension import current_extension
from .replies import error_response, wants_json

TEMPLATE = "ivoryos_plugin/error.html"


def _plugin(name: Optional[str]) -> Any:
    """The plugin (or plain Blueprint) the failing request was for, or None."""
    if not name:
        return None
    ext = current_extension()
    runtime = ext.runtimes.get(name)
    return runtime.plugin if runtime is not None else current_app.blueprints.get(name)


def _where(tb: Optional[TracebackType], root: Union[str, Path]) -> str:
    """``file.py:line`` of the innermost frame in the plugin's own Python files (the render call)."""
    found = ""
    root_path = str(Path(root).resolve())
    for frame in traceback.extract_tb(tb):
        if frame.filename.endswith(".py") and str(Path(frame.filename).resolve()).startswith(root_path):
            found = f"{Path(frame.filename).name}:{frame.lineno}"
    return found


def template_message(exc: TemplateNotFound) -> Tuple[str, str]:
    """(headline, the ``check`` message) for a missing template in the current request.

    :param exc: Jinja's exception."""
    names = list(exc.templates) if isinstance(exc, TemplatesNotFound) else [str(exc.name)]
    missing = str(names[0])
    plugin = _plugin(request.blueprint)
    headline = f"Template {missing!r} not found"
    if plugin is None:
        return headline, f"{headline}; create it or fix the name."
    loader = plugin.jinja_loader
    own = loader.list_templates() if loader is not None else []
    folder = Path(plugin.root_path) / (plugin.template_folder or "templates")
    return headline, hints.missing_template(plugin.name, missing, folder, own,
                                            _where(exc.__traceback__, plugin.root_path))


def endpoint_message(exc: BuildError) -> Tuple[str, str]:
    """(headline, message) for ``url_for`` naming no endpoint.

    :param exc: Werkzeug's exception."""
    plugin = _plugin(request.blueprint)
    name = plugin.name if plugin is not None else (request.blueprint or "?")
    endpoints = [rule.endpoint for rule in current_app.url_map.iter_rules()]
    headline = f"No endpoint {exc.endpoint!r}"
    return headline, hints.missing_endpoint(name, str(exc.endpoint), endpoints)


def _answer(headline: str, message: str) -> Response:
    plugin = _plugin(request.blueprint)
    logger = getattr(plugin, "logger", current_app.logger)
    logger.error("%s %s: %s", request.method, request.path, message)  # the fix, not a traceback
    if wants_json():
        return error_response(500, message)
    check = f"ivoryos-plugin check {Path(plugin.root_path).parent}" if plugin is not None else "ivoryos-plugin check ."
    html = render_template(TEMPLATE, plugin_base=current_extension().base_template, headline=headline,
                           message=message, check=check, path=request.path)
    return Response(html, status=500, mimetype="text/html")


def install_error_pages(app: Flask) -> None:
    """Answer a missing template or endpoint with the page that names the fix (the dev host).

    :param app: the dev host's app."""

    def on_template(exc: TemplateNotFound) -> Response:
        return _answer(*template_message(exc))

    def on_endpoint(exc: BuildError) -> Response:
        return _answer(*endpoint_message(exc))

    app.register_error_handler(TemplateNotFound, on_template)
    app.register_error_handler(BuildError, on_endpoint)
