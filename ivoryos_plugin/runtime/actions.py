"""Serving typed actions: ``POST /ivoryos/<plugin>/actions/<name>``, arguments validated from the
signature declared in :mod:`ivoryos_plugin.core.specs`."""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from flask import Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ValidationError

from ..core.specs import ActionSpec, StepSpec
from . import payloads
from .replies import error_response

#: the argument types that hold nothing :func:`payloads.problem` refuses (not looked into)
_PLAIN = frozenset({int, bool, type(None)})
#: what an action usually returns: neither a reply nor a model
_CONTAINERS = frozenset({dict, list})


def field_errors(exc: ValidationError) -> Dict[str, List[str]]:
    """Turn a pydantic error into ``{field: [messages]}`` (``"_"`` for the body as a whole).

    :param exc: the validation error."""
    errors: Dict[str, List[str]] = {}
    for err in exc.errors(include_url=False):
        loc = err.get("loc") or ()
        key = str(loc[0]) if loc else "_"
        errors.setdefault(key, []).append(str(err.get("msg")))
    return errors


def parse_arguments(plugin: str, spec: Union[ActionSpec, StepSpec], kind: str = "action",
                    req: Any = None) -> Tuple[Optional[Dict[str, Any]], Optional[Response]]:
    """Validate the request's JSON body against an action's (or a step's) signature: too deep a
    nesting, a field that fails validation, or NaN/Infinity in a value → a 400 naming the field.

    :param plugin: the plugin's name.
    :param spec: the action or step.
    :param kind: what ``spec`` is called in the messages ("action", "step").
    :param req: the current request, when the caller has it at hand (default: Flask's ``request``).
    :returns: (arguments, None) or (None, a 400 reply)."""
    raw = (request if req is None else req).get_data(cache=True)
    if not raw.strip():
        raw = b"{}"
    try:  # nesting first (a parser's recursion limit); NaN/Infinity per field, after validation
        payloads.check_nesting(raw)
    except payloads.PayloadError as exc:
        return None, error_response(400, f"Plugin {plugin!r}: {kind} {spec.name!r}: {exc}.", errors={"_": [str(exc)]})
    try:
        args = spec.model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        if "_" in errors and set(errors) == {"_"}:
            return None, error_response(400, f"Plugin {plugin!r}: {kind} {spec.name!r} expects a JSON object "
                                             "body such as {\"arg\": 1}.", errors=errors)
        return None, error_response(400, f"Plugin {plugin!r}: invalid arguments for {kind} {spec.name!r}.",
                                    errors=errors)
    kwargs = dict(args.__dict__)  # each field's value, as validated (pydantic keeps extra keys elsewhere)
    errors = {key: [found] for key, value in kwargs.items()
              if type(value) not in _PLAIN and (found := payloads.problem(value, payloads.MAX_DEPTH))}
    if errors:  # e.g. the string "NaN", which pydantic turns into a float
        return None, error_response(400, f"Plugin {plugin!r}: invalid arguments for {kind} {spec.name!r}: "
                                         f"{'; '.join(f'{k}: {v[0]}' for k, v in errors.items())}.", errors=errors)
    return kwargs, None


def call(func: Callable[..., Any], kwargs: Dict[str, Any], coroutine: Optional[bool] = None) -> Any:
    """Call ``func(**kwargs)``, running a coroutine function to completion.

    :param func: the action function (or the step's method).
    :param kwargs: validated arguments.
    :param coroutine: whether ``func`` is a coroutine function, when known (an action's spec knows);
        None: looked up."""
    if inspect.iscoroutinefunction(func) if coroutine is None else coroutine:
        return asyncio.run(func(**kwargs))
    return func(**kwargs)


def to_response(plugin: str, spec: ActionSpec, result: Any) -> Response:
    """Turn an action's return value into a JSON reply (None -> ``{"ok": true}``).

    :param plugin: the plugin's name.
    :param spec: the action.
    :param result: what the function returned."""
    if type(result) in _CONTAINERS:  # (the usual case, neither a reply nor a model)
        return _reply_or_500(plugin, spec, result)
    if isinstance(result, Response):
        return result
    if result is None:
        result = {"ok": True}
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    return _reply_or_500(plugin, spec, result)


def _reply_or_500(plugin: str, spec: ActionSpec, result: Any) -> Response:
    try:
        return json_reply(result)
    except TypeError as exc:
        return error_response(500, f"Plugin {plugin!r}: action {spec.name!r} returned a value that is not "
                                   f"JSON ({exc}); return a dict, list, number or string.")


def json_reply(value: Any) -> Response:
    """``jsonify(value)``, with NaN and Infinity sent as ``null`` (a reply ``JSON.parse`` accepts):
    compact, or indented in debug mode, as the app's JSON provider's ``compact`` says.

    :param value: the JSON-able value."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    provider = app.json
    compact = getattr(provider, "compact", None)  # DefaultJSONProvider's; jsonify reads it the same way
    indent = compact is False or (compact is None and app.debug)
    encoder: Optional[json.JSONEncoder] = None
    if type(provider).dumps is DefaultJSONProvider.dumps:  # what its dumps does, with an encoder made once
        try:
            encoder = _encoder(provider.default, provider.ensure_ascii, provider.sort_keys, indent)
        except TypeError:  # a default that cannot be a cache key: the provider's dumps makes one each time
            pass
    dumps: Callable[[Any], str] = (encoder.encode if encoder is not None else functools.partial(
        provider.dumps, allow_nan=False, **({"indent": 2} if indent else {"separators": (",", ":")})))
    try:
        text = dumps(value)
    except ValueError:  # a NaN or Infinity (a sensor that lost its signal): null, as JSON.stringify does
        text = dumps(payloads.finite(value))
    response: Response = app.response_class(f"{text}\n", mimetype=provider.mimetype)
    setattr(response, payloads.FINITE_REPLY, True)
    return response


@functools.lru_cache(maxsize=16)
def _encoder(default: Callable[[Any], Any], ensure_ascii: bool, sort_keys: bool, indent: bool) -> json.JSONEncoder:
    """The encoder ``json.dumps`` makes afresh on each call with these settings (it keeps no state
    between calls: one serves every thread), NaN refused.

    :param default: the provider's ``default``.
    :param ensure_ascii: the provider's ``ensure_ascii``.
    :param sort_keys: the provider's ``sort_keys``.
    :param indent: indented by 2 (debug), else compact."""
    return json.JSONEncoder(default=default, ensure_ascii=ensure_ascii, sort_keys=sort_keys, allow_nan=False,
                            **({"indent": 2} if indent else {"separators": (",", ":")}))
