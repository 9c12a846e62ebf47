"""A plugin's workflow steps as a deck instrument: one object named after the plugin whose methods
are the ``@plugin.step`` functions, with their signatures and docstrings, so IvoryOS's designer,
Instruments page and API schema show them as they show any instrument's methods, and its runner
calls them as it calls any instrument's methods. Also the steps page and the direct call route.

Whoever calls a step's method (IvoryOS's runner or single-step API, a deck script, our route), the
method checks the arguments against the step's signature first (pydantic, lax as IvoryOS's forms
send text; NaN and Infinity refused), then runs the step in a thread of its own and waits at most
the step's ``timeout``: a step that cannot finish never holds IvoryOS's runner (and so the deck)
for ever. Python cannot stop a thread: a timed-out step keeps running until it returns, its result
dropped, ``plugin.step_cancelled()`` true in it; meanwhile a new call of that step is refused."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import threading
import time
import typing
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from flask import Response, jsonify, render_template
from pydantic import BaseModel, ValidationError

from ..core.clock import start_thread
from ..core.names import PluginError
from ..core.specs import STEP_CANCELLED, StepSpec
from ..hardware.deck import calling_as
from . import payloads, registry
from .actions import call, field_errors, parse_arguments
from .extension import current_extension
from .errors import Call, StepArgumentError, StepStillRunning, StepTimeout, answering
from .replies import error_response, prefers_json

if TYPE_CHECKING:
    from ..core.plugin import Plugin

__all__ = ["StepArgumentError", "StepTimeout", "StepStillRunning", "check_arguments", "resolved_signature",
           "step_instrument", "install_on_deck", "step_list", "steps_page", "run_step"]

_MARK = "_ivoryos_plugin_steps_of"


@contextlib.contextmanager
def _acting_for(plugin: "Plugin") -> Iterator[None]:
    runtime = registry.resolve(plugin)
    if runtime is None:
        yield
        return
    with registry.acting_for(runtime):
        yield


# ------------------------------------------------------------------ checking a call's arguments
def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return repr(hint).replace("typing.", "")


def check_arguments(plugin: str, spec: StepSpec, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The step's arguments, validated against its signature as IvoryOS or a script passed them.

    Lax, as IvoryOS's forms send text (``"5"`` is taken for an ``int``, ``"abc"`` is not); NaN and
    Infinity are refused wherever they are (a float, ``"nan"``, an item of a list).

    :param plugin: the plugin's name, for messages.
    :param spec: the step.
    :param args: the positional arguments (a deck script may pass some).
    :param kwargs: the keyword arguments (IvoryOS passes these).
    :returns: every argument by name, defaults included.
    :raises StepArgumentError: naming the plugin, the step, each bad field and the fix."""
    params = list(inspect.signature(spec.func).parameters)
    data: Dict[str, Any] = dict(kwargs)
    if len(args) > len(params):
        raise StepArgumentError(f"Plugin {plugin!r}: step {spec.name!r} takes {len(params)} arguments "
                                f"({', '.join(params) or 'none'}), not {len(args)}; pass them by name.",
                                {"_": [f"{len(args)} positional arguments"]})
    for name, value in zip(params, args):
        if name in data:
            raise StepArgumentError(f"Plugin {plugin!r}: step {spec.name!r} got {name!r} twice; pass it once.",
                                    {name: ["given twice"]})
        data[name] = value
    try:
        model = spec.model.model_validate(data, strict=False)
        errors: Dict[str, List[str]] = {}
    except ValidationError as exc:
        errors = field_errors(exc)
        inputs = {str(e["loc"][0]): e.get("input") for e in exc.errors(include_url=False) if e.get("loc")}
    else:
        checked = {name: getattr(model, name) for name in type(model).model_fields}
        for name, value in checked.items():
            found = payloads.problem(value, payloads.MAX_DEPTH)
            if found:
                errors[name] = [found]
        inputs = {name: checked[name] for name in errors}
        if not errors:
            return checked
    fields = spec.model.model_fields
    details = []
    for field, messages in errors.items():
        what = f"expects {_type_name(fields[field].annotation)}" if field in fields else "not an argument"
        details.append(f"{field} ({what}): {messages[0]}, got {_shown(inputs.get(field, data.get(field)))}")
    raise StepArgumentError(f"Plugin {plugin!r}: step {spec.name!r} refused its arguments and did not run: "
                            f"{'; '.join(details)}. Fix the value in the workflow step (or the Instruments form) "
                            "and run it again.", errors)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------ running a call, bounded
# Process-wide on purpose: a timed-out step call keeps running in its thread (Python cannot kill a
# thread), and it holds the instrument whichever app called it, so the refusal of a second call to the
# same step while the first is stuck must hold for every app of the process, keyed by the step's spec.
_STUCK: Dict[int, Tuple[StepSpec, threading.Thread, float]] = {}  # id(spec) -> a timed-out call still running
_STUCK_LOCK = threading.Lock()


def _refuse_if_stuck(plugin: "Plugin", spec: StepSpec) -> None:
    with _STUCK_LOCK:
        found = _STUCK.get(id(spec))
        if found is not None and found[0] is spec and found[1].is_alive():
            raise StepStillRunning(
                f"Plugin {plugin.name!r}: step {spec.name!r} is still running from a call that timed out "
                f"{time.monotonic() - found[2]:.0f} s ago (after {spec.timeout:g} s); it is refused until that "
                f"call returns. Python cannot stop it: make the step return (check plugin.step_cancelled() "
                f"in its loop, bound its waits), or restart the host.")
        _STUCK.pop(id(spec), None)


def _start(plugin: "Plugin", spec: StepSpec, kwargs: Dict[str, Any]) -> Tuple[
        "concurrent.futures.Future[Any]", threading.Event, threading.Thread]:
    """Run the step in a daemon thread of its own, in a copy of the caller's context."""
    future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
    cancelled = threading.Event()
    func = spec.func
    params = inspect.signature(func).parameters.values()
    args = [kwargs.pop(p.name) for p in params if p.kind is p.POSITIONAL_ONLY]

    def run() -> None:
        STEP_CANCELLED.set(cancelled)
        future.set_running_or_notify_cancel()
        try:
            with _acting_for(plugin):
                result = func(*args, **kwargs)
                if inspect.iscoroutine(result):  # an async def step: run in this thread's own event loop
                    result = asyncio.run(result)
        except BaseException as exc:  # handed to the caller (or logged, when it gave up)
            future.set_exception(exc)
            if cancelled.is_set():
                plugin.logger.warning("step %r, abandoned after its %g s timeout, ended with %s: %s",
                                      spec.name, spec.timeout, type(exc).__name__, exc)
        else:
            future.set_result(result)
            if cancelled.is_set():
                plugin.logger.warning("step %r returned after its %g s timeout; its result was dropped",
                                      spec.name, spec.timeout)

    context = contextvars.copy_context()
    thread = start_thread(f"step {plugin.name}.{spec.name}", context.run, run)
    return future, cancelled, thread


def _timed_out(plugin: "Plugin", spec: StepSpec, cancelled: threading.Event, thread: threading.Thread) -> StepTimeout:
    cancelled.set()
    with _STUCK_LOCK:
        _STUCK[id(spec)] = (spec, thread, time.monotonic())
    plugin.logger.error("step %r did not finish within its timeout of %g s; the call failed, the step's thread "
                        "runs on until it returns", spec.name, spec.timeout)
    return StepTimeout(f"Plugin {plugin.name!r}: step {spec.name!r} did not finish within its timeout of "
                       f"{spec.timeout:g} s; the call failed and no longer holds the deck (the step's thread runs on "
                       f"until it returns, its result dropped). Raise @plugin.step(timeout=...) if it needs longer, "
                       "or make it return sooner.", spec.timeout)


def _method(plugin: "Plugin", spec: StepSpec) -> Callable[..., Any]:
    """The instrument method for one step: arguments checked, then the author's function run for
    the plugin's runtime in a thread of its own, waited for at most ``spec.timeout`` seconds."""
    func = spec.func
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            checked = check_arguments(plugin.name, spec, args, kwargs)
            _refuse_if_stuck(plugin, spec)
            future, cancelled, thread = _start(plugin, spec, checked)
            # the step runs in an event loop of its own thread; the caller's loop is not blocked
            done, _ = await asyncio.to_thread(concurrent.futures.wait, [future], spec.timeout)
            if not done:
                raise _timed_out(plugin, spec, cancelled, thread)
            return future.result()
        method: Callable[..., Any] = async_method
    else:
        @functools.wraps(func)
        def sync_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            checked = check_arguments(plugin.name, spec, args, kwargs)
            _refuse_if_stuck(plugin, spec)
            future, cancelled, thread = _start(plugin, spec, checked)
            done, _ = concurrent.futures.wait([future], timeout=spec.timeout)
            if not done:
                raise _timed_out(plugin, spec, cancelled, thread)
            return future.result()
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
        only = bool(params) and params[0].kind is inspect.Parameter.POSITIONAL_ONLY
        params.insert(0, inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY if only
                                           else inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return signature.replace(parameters=params, return_annotation=hints.get("return", signature.return_annotation))


def step_instrument(plugin: "Plugin") -> Any:
    """A new object whose methods are ``plugin``'s steps (its class is named after the plugin).

    :param plugin: a plugin with at least one ``@plugin.step``."""
    methods: Dict[str, Any] = {name: _method(plugin, spec) for name, spec in plugin.declarations.steps.items()}
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
    if deck is None or not plugin.declarations.steps:
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
            for spec in plugin.declarations.steps.values()]


def steps_page(plugin: "Plugin") -> Union[Response, str]:
    """``GET /ivoryos/<plugin>/steps``: the steps, as a page or JSON.

    :param plugin: the plugin."""
    steps = step_list(plugin)
    if prefers_json():
        return jsonify({"plugin": plugin.name, "instrument": plugin.steps_instrument, "steps": steps})
    return render_template("ivoryos_plugin/steps.html", plugin=plugin, steps=steps,
                           plugin_base=current_extension().base_template)


def run_step(plugin: "Plugin", name: str) -> Response:
    """``POST /ivoryos/<plugin>/steps/<name>``: run one step now, as IvoryOS runs a single step: with
    the runner's lock held (409 while a workflow runs), through the deck instrument when there is one.

    :param plugin: the plugin.
    :param name: the step's name."""
    spec = plugin.declarations.steps.get(name)
    if spec is None:
        known = ", ".join(sorted(plugin.declarations.steps)) or "none"
        return error_response(404, f"Plugin {plugin.name!r} has no step {name!r}; steps: {known}.")
    # max_body (whatever the framing) was enforced before this view (a body-limited row of the declarations)
    kwargs, problem = parse_arguments(plugin.name, spec, kind="step")  # the actions' checks: nesting, fields, NaN
    if problem is not None:
        return problem
    assert kwargs is not None
    ext = current_extension()
    deck = ext.deck_getter()
    instrument = getattr(deck, plugin.steps_instrument, None) if deck is not None else None
    if getattr(instrument, _MARK, None) != plugin.name:  # no deck: the same checks and timeout all the same
        instrument = step_instrument(plugin)
    # a refusal, bad arguments, a timeout or any other exception propagates to the error handler
    # every plugin has (errors.install), which answers it in JSON
    with answering(Call("step", name, hardware=True), plugin.logger), \
            calling_as(f"plugin:{plugin.name} step {name}"), ext.hardware_guard(plugin.name):
        result = call(getattr(instrument, name), kwargs)
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    try:
        return jsonify({"result": result})
    except TypeError as exc:
        return error_response(500, f"Plugin {plugin.name!r}: step {name!r} returned a value that is not JSON "
                                   f"({exc}); return a number, string, list or dict.", step=name)
