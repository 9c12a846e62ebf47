"""What an author declares, as plain data: actions, streams, workers. No Flask app, no Socket.IO.

Each spec is built (and checked) at declaration time, so a mistake raises when the plugin module is
imported, with the plugin's name and the fix, never at the first request.
"""
from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type, Union

from pydantic import BaseModel, ConfigDict, create_model

from .names import PluginError

__all__ = ["ActionError", "ActionSpec", "make_action", "StreamSpec", "WorkerSpec"]


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



@dataclass
class StreamSpec:
    """A declared stream.

    :param name: the stream's and the client event's name.
    :param func: the producer.
    :param hz: ticks per second, or a callable read every tick."""

    name: str
    func: Callable[[], Any]
    hz: Union[float, Callable[[], float]]


@dataclass
class WorkerSpec:
    """A declared worker.

    :param name: its name.
    :param func: the function.
    :param every: the period in seconds, or None for a loop given ``stop``.
    :param backoff: the first restart delay after a crash, doubled each crash.
    :param max_backoff: the longest restart delay.
    :param max_crashes: crashes within ``window`` seconds that suspend the worker.
    :param window: the crash-counting window in seconds."""

    name: str
    func: Callable[..., Any]
    every: Optional[float] = None
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_crashes: int = 5
    window: float = 60.0
