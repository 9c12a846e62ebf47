"""A plugin's workflow steps as a deck instrument: one object named after the plugin whose methods
are the ``@plugin.step`` functions, with their signatures and docstrings, so IvoryOS's designer,
Instruments page and API schema show them as they show any instrument's methods, and its runner
calls them as it calls any instrument's methods. Also the steps page and the direct call route."""
from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Union

from flask import Response, jsonify, render_template, request
from pydantic import BaseModel
from werkzeug.exceptions import RequestEntityTooLarge

from ..core.names import PluginError
from ..core.specs import StepSpec
from ..hardware.deck import DeckBusy, DeckUnverified, InstrumentUnavailable, calling_as
from . import registry
from .actions import call, parse_arguments
from .extension import current_extension
from .replies import error_response

if TYPE_CHECKING:
    from ..core.plugin import Plugin

_MARK = "_ivoryos_plugin_steps_of"


@contextlib.contextmanager
def _acting_for(plugin: "Plugin") -> Iterator[None]:
    runtime = registry.resolve(plugin)
    if runtime is None:
        yield
        return
    with registry.acting_for(runtime):
        yield


def _method(plugin: "Plugin", spec: StepSpec) -> Callable[..., Any]:
    """The instrument method for one step: the author's function, run for the plugin's runtime."""
    func = spec.func
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _acting_for(plugin):
                return await func(*args, **kwargs)
        method: Callable[..., Any] = async_method
    else:
        @functools.wraps(func)
        def sync_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _acting_for(plugin):
                return func(*args, **kwargs)
        method = sync_method
    method.__signature__ = resolved_signature(func, with_self=True)  # type: ignore[attr-defined]
    del method.__wrapped__  # type: ignore[attr-defined]  # IvoryOS reads __signature__, with self
    method.__name__ = method.__qualname__ = spec.name
    return method


def resolved_signature(func: Callable[..., Any], *, with_self: bool = False) -> inspect.Signature:
    """``func``'s signature with its annotations resolved to types (a module written with
    ``from __future__ import annotations`` holds them as strings, which IvoryOS would show as text).

    :param func: the step's function.
    :param with_self: put a ``self`` first, as on an instrument's method."""
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    if with_self:
        params.insert(0, inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return signature.replace(parameters=params, return_annotation=hints.get("return", signature.return_annotation))


def step_instrument(plugin: "Plugin") -> Any:
    """A new object whose methods are ``plugin``'s steps (its class is named after the plugin).

    :param plugin: a plugin with at least one ``@plugin.step``."""
    methods: Dict[str, Any] = {name: _method(plugin, spec) for name, spec in plugin._steps.items()}
    methods["__doc__"] = plugin.description or f"Workflow steps of the {plugin.title} plugin."
    methods["__module__"] = plugin.import_name
    methods["__repr__"] = lambda self: f"<steps of plugin {plugin.name!r}>"
    cls = type("".join(part.capitalize() for part in plugin.name.split("_")) + "Steps", (), methods)
    instrument = cls()
    setattr(instrument, _MARK, plugin.name)
    return instrument


def install_on_deck(plugin: "Plugin", deck: Optional[ModuleType]) -> Optional[Any]:
    """Put ``plugin``'s step instrument on the deck module as the global ``plugin.name``.

    :param plugin: the plugin.
    :param deck: the deck module (None: no deck, nothing to do).
    :returns: the instrument on the deck, or None.
    :raises PluginError: the deck already has a global of that name that is not this plugin's steps."""
    if deck is None or not plugin._steps:
        return None
    name = plugin.steps_instrument
    existing = getattr(deck, name, None)
    if existing is not None:
        if getattr(existing, _MARK, None) == plugin.name:
            return existing
        raise PluginError(plugin.name, f"its steps would be the deck instrument {name!r}, but the deck "
                                       f"{deck.__name__!r} already has a global {name!r} "
                                       f"({type(existing).__name__}); pass steps_as='another_name' to Plugin(), "
                                       "or rename that deck global.")
    instrument = step_instrument(plugin)
    setattr(deck, name, instrument)
    return instrument


def step_list(plugin: "Plugin") -> List[Dict[str, Any]]:
    """The steps as IvoryOS shows them: name, signature, docstring, JSON schema of the arguments.

    :param plugin: the plugin."""
    return [{"name": spec.name, "signature": f"{plugin.steps_instrument}.{spec.name}{resolved_signature(spec.func)}",
             "doc": inspect.getdoc(spec.func) or "", "schema": spec.model.model_json_schema(),
             "url": f"{current_extension().url_prefix}/{plugin.name}/steps/{spec.name}"}
            for spec in plugin._steps.values()]


def steps_page(plugin: "Plugin") -> Union[Response, str]:
    """``GET /ivoryos/<plugin>/steps``: the steps, as a page or JSON.

    :param plugin: the plugin."""
    steps = step_list(plugin)
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return jsonify({"plugin": plugin.name, "instrument": plugin.steps_instrument, "steps": steps})
    return render_template("ivoryos_plugin/steps.html", plugin=plugin, steps=steps,
                           plugin_base=current_extension().base_template)


def run_step(plugin: "Plugin", name: str) -> Response:
    """``POST /ivoryos/<plugin>/steps/<name>``: run one step now, as IvoryOS runs a single step: with
    the runner's lock held (409 while a workflow runs), through the deck instrument when there is one.

    :param plugin: the plugin.
    :param name: the step's name."""
    spec = plugin._steps.get(name)
    if spec is None:
        known = ", ".join(sorted(plugin._steps)) or "none"
        return error_response(404, f"Plugin {plugin.name!r} has no step {name!r}; steps: {known}.")
    request.max_content_length = plugin.max_body
    try:  # the actions' checks: nesting, fields, NaN and Infinity
        kwargs, problem = parse_arguments(plugin.name, spec, kind="step")
    except RequestEntityTooLarge:
        return error_response(413, f"Plugin {plugin.name!r}: the body of step {name!r} is larger than "
                                   f"{plugin.max_body} bytes.")
    if problem is not None:
        return problem
    assert kwargs is not None
    ext = current_extension()
    deck = ext.deck_getter()
    instrument = getattr(deck, plugin.steps_instrument, None) if deck is not None else None
    target = getattr(instrument, name) if getattr(instrument, _MARK, None) == plugin.name else spec.func
    try:
        with calling_as(f"plugin:{plugin.name} step {name}"), ext.hardware_guard(plugin.name):
            result = call(target, kwargs)
    except DeckBusy as exc:
        return error_response(409, str(exc), busy=True)
    except DeckUnverified as exc:
        return error_response(503, str(exc), unverified=exc.reason)
    except InstrumentUnavailable as exc:
        return error_response(503, str(exc), instrument=exc.name, loaded=list(exc.loaded))
    except Exception as exc:
        plugin.logger.exception("step %r failed", name)
        return error_response(500, f"{type(exc).__name__}: {exc}", step=name)
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    try:
        return jsonify({"result": result})
    except TypeError as exc:
        return error_response(500, f"Plugin {plugin.name!r}: step {name!r} returned a value that is not JSON "
                                   f"({exc}); return a number, string, list or dict.", step=name)
