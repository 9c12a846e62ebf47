"""The settings routes of a plugin with a settings model: an HTML form and ``settings.json``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from flask import Response, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import payloads
from ..actions import json_reply
from ..extension import current_extension
from ..replies import error_response
from .errors import SettingsError, SettingsValidationError
from .forms import coerce_form, form_fields

if TYPE_CHECKING:
    from ...core.plugin import Plugin

Reply = Union[Response, Tuple[str, int], str]


def _error(status: int, message: str, errors: Optional[Dict[str, List[str]]] = None) -> Response:
    return error_response(status, message, **({"errors": errors} if errors is not None else {}))


def settings_views(plugin: "Plugin") -> Dict[str, Callable[[], Reply]]:
    """The views of ``/settings`` (form, GET/POST) and ``/settings.json`` (GET, PUT, PATCH).

    :param plugin: a plugin constructed with ``settings=``.
    :returns: ``{"settings": view, "settings_json": view}``, served in the current request's app."""

    def store() -> Any:
        return current_extension().runtimes[plugin.name].settings_store

    def render_form(errors: Optional[Dict[str, List[str]]] = None, submitted: Any = None,
                    saved: bool = False) -> str:
        fields = form_fields(store().current)
        if submitted is not None:  # an invalid form shows what was typed, next to its errors
            for spec in fields:
                if spec.input_type == "checkbox":
                    spec.value = spec.name in submitted
                elif spec.input_type != "password" and spec.name in submitted:
                    spec.value = submitted[spec.name]
        return render_template("ivoryos_plugin/settings.html", plugin=plugin, fields=fields,
                               errors=errors or {}, saved=saved,
                               plugin_base=current_extension().base_template)

    def settings_page() -> Reply:
        if request.method == "GET":
            return render_form()
        # a form re-render, not an error reply: the page is shown again with the errors beside the fields
        # and what was typed (the JSON replies of these exceptions are runtime/errors.py's table)
        try:
            data = coerce_form(plugin.settings_model, request.form)
            store().update(data)
        except SettingsValidationError as exc:
            return render_form(exc.errors, submitted=request.form), 400
        except SettingsError as exc:
            return render_form({"_": [str(exc)]}, submitted=request.form), 500
        return render_form(saved=True)

    def settings_json() -> Response:
        if request.method == "GET":
            current = store().current
            return json_reply({"settings_version": plugin.settings_version,
                            "values": current.model_dump(mode="json"),
                            "schema": plugin.settings_model.model_json_schema()})  # type: ignore[union-attr]
        request.max_content_length = plugin.max_body
        try:
            # nesting and lone surrogates here; NaN and Infinity are refused by the store, naming the
            # setting that holds them
            data = payloads.parse_json(request.get_data(cache=True) or b"null", finite=False)
        except RequestEntityTooLarge:
            return _error(413, f"Plugin {plugin.name!r}: the settings body is larger than {plugin.max_body} bytes "
                               "(max_body); send less, or raise Plugin(max_body=...).")
        except payloads.PayloadError as exc:
            field = exc.field
            if field == "values" and "values" not in plugin.settings_model.model_fields:  # type: ignore[union-attr]
                field = payloads.PayloadError(str(exc), exc.where[len("values."):]).field  # the GET shape, sent back
            if field:  # a setting's value (nested too deep, a lone surrogate): named, as the store names them
                return _error(400, f"Plugin {plugin.name!r}: invalid settings; nothing was saved: {exc}.",
                              {field: [str(exc)]})
            return _error(400, f"Plugin {plugin.name!r}: {exc}; send an object of setting values.",
                          {"_": [str(exc)]})
        if isinstance(data, dict) and isinstance(data.get("values"), dict) and set(data) <= {"values", "settings_version"}:
            data = data["values"]  # the GET shape, sent back
        if not isinstance(data, dict):
            return _error(400, f"Plugin {plugin.name!r}: settings must be a JSON object of values.",
                          {"_": ["expected an object"]})
        # SettingsValidationError (400) and SettingsError (500) are answered by runtime/errors.py's table
        if request.method == "PUT":
            _, new = store().replace(data)
        else:
            _, new = store().update(data)
        return json_reply({"settings_version": plugin.settings_version, "values": new.model_dump(mode="json")})

    return {"settings": settings_page, "settings_json": settings_json}
