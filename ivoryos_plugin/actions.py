"""Typed actions: ``POST /ivoryos/<plugin>/actions/<name>``, arguments validated from the signature."""
from __future__ import annotations

import asyncio
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .names import PluginError


class ActionError(Exception):
    """Raise in an action to answer with a JSON error and a status of your choice.

    :param message: a sentence for the person who clicked (shown by ``live.action``'s rejection).
    :param status: the HTTP status (400 bad input, 404 unknown thing, 409 conflict...).

    Example::

        if owner:
            raise ActionError(f"{url} belongs to instrument {owner!r}", status=409)
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = int(status)


@dataclass
class ActionSpec:
    """One declared action.

    :param name: the URL name.
    :param func: the plugin's function.
    :param hardware: refuse while IvoryOS's runner holds the deck.
    :param public: serve without login.
    :param model: the pydantic model built from the signature."""

    name: str
    func: Callable[..., Any]
    hardware: bool
    public: bool
    model: Type[BaseModel]


def make_action(plugin: str, func: Callable[..., Any], *, hardware: bool, public: bool,
                name: Optional[str]) -> ActionSpec:
    """Build an :class:`ActionSpec`, raising :class:`PluginError` for a signature it cannot serve.

    :param plugin: the plugin's name, for messages.
    :param func: the function to expose.
    :param hardware: see :class:`ActionSpec`.
    :param public: see :class:`ActionSpec`.
    :param name: the URL name, or None for the function's name."""
    key = name or func.__name__
    if not key.replace("-", "_").isidentifier():
        raise PluginError(plugin, f"action name {key!r} must be letters, digits, '_' or '-'; pass name=.")
    try:
        hints = typing.get_type_hints(func, include_extras=True)  # keep Annotated[..., Field(...)]
    except Exception as exc:  # an annotation that cannot be resolved
        raise PluginError(plugin, f"action {key!r}: cannot read the annotations of {func.__name__}() "
                                  f"({exc}); import the annotated types at module level.") from exc
    fields: Dict[str, Tuple[Any, Any]] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PluginError(plugin, f"action {key!r}: *{param.name} is not supported; "
                                      "declare each argument with a type.")
        if param.name.startswith("_") or param.name.startswith("model_"):
            raise PluginError(plugin, f"action {key!r}: argument {param.name!r} cannot be sent as JSON; rename it.")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    try:
        model = create_model(  # type: ignore[call-overload]
            f"{plugin}_{key}_arguments",
            __config__=ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True),
            **fields,
        )
    except Exception as exc:
        raise PluginError(plugin, f"action {key!r}: its arguments cannot be validated ({exc}); "
                                  "use JSON-compatible annotations (int, float, str, bool, list, Literal, "
                                  "pydantic models).") from exc
    return ActionSpec(name=key, func=func, hardware=hardware, public=public, model=model)


def field_errors(exc: ValidationError) -> Dict[str, List[str]]:
    """Turn a pydantic error into ``{field: [messages]}`` (``"_"`` for the body as a whole).

    :param exc: the validation error."""
    errors: Dict[str, List[str]] = {}
    for err in exc.errors(include_url=False):
        loc = err.get("loc") or ()
        key = str(loc[0]) if loc else "_"
        errors.setdefault(key, []).append(str(err.get("msg")))
    return errors


def error_response(status: int, message: str, **extra: Any) -> Response:
    """A JSON error reply: ``{"error": message, ...}`` with ``status``.

    :param status: the HTTP status.
    :param message: a sentence for a person.
    :param extra: more JSON fields."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def parse_arguments(plugin: str, spec: ActionSpec) -> Tuple[Optional[Dict[str, Any]], Optional[Response]]:
    """Validate the request's JSON body against the action's signature.

    :param plugin: the plugin's name.
    :param spec: the action.
    :returns: (arguments, None) or (None, a 400 reply)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raw = b"{}"
    try:
        args = spec.model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        if "_" in errors and set(errors) == {"_"}:
            return None, error_response(400, f"Plugin {plugin!r}: action {spec.name!r} expects a JSON object "
                                             "body such as {\"arg\": 1}.", errors=errors)
        return None, error_response(400, f"Plugin {plugin!r}: invalid arguments for action {spec.name!r}.",
                                    errors=errors)
    return {key: getattr(args, key) for key in type(args).model_fields}, None


def call(func: Callable[..., Any], kwargs: Dict[str, Any]) -> Any:
    """Call ``func(**kwargs)``, running a coroutine function to completion.

    :param func: the action function.
    :param kwargs: validated arguments."""
    if inspect.iscoroutinefunction(func):
        return asyncio.run(func(**kwargs))
    return func(**kwargs)


def to_response(plugin: str, spec: ActionSpec, result: Any) -> Response:
    """Turn an action's return value into a JSON reply (None -> ``{"ok": true}``).

    :param plugin: the plugin's name.
    :param spec: the action.
    :param result: what the function returned."""
    if isinstance(result, Response):
        return result
    if result is None:
        result = {"ok": True}
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    try:
        return jsonify(result)
    except TypeError as exc:
        return error_response(500, f"Plugin {plugin!r}: action {spec.name!r} returned a value that is not "
                                   f"JSON ({exc}); return a dict, list, number or string.")
