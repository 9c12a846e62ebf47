"""What an author declares, as plain data: actions, streams, workers. No Flask app, no Socket.IO.

Each spec is built (and checked) at declaration time, so a mistake raises when the plugin module is
imported, with the plugin's name and the fix, never at the first request.
"""
from __future__ import annotations

import contextvars
import inspect
import keyword
import math
import threading
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type, Union

from pydantic import BaseModel, ConfigDict, create_model

from .names import PluginError

__all__ = ["ActionError", "ActionSpec", "make_action", "argument_model", "StepSpec", "make_step", "check_step_timeout",
           "DEFAULT_STEP_TIMEOUT", "MAX_STEP_TIMEOUT", "STEP_CANCELLED", "CameraSpec", "make_camera", "PHOTO_KEEP_S",
           "PHOTO_KEEP_BYTES", "StreamSpec", "WorkerSpec"]


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
    :param model: the pydantic model built from the signature.
    :param coroutine: ``func`` is a coroutine function (run with ``asyncio.run``); worked out once here."""

    name: str
    func: Callable[..., Any]
    hardware: bool
    public: bool
    model: Type[BaseModel]
    coroutine: bool = False


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
    model = argument_model(plugin, "action", key, func)
    return ActionSpec(name=key, func=func, hardware=hardware, public=public, model=model,
                      coroutine=inspect.iscoroutinefunction(func))


def argument_model(plugin: str, kind: str, key: str, func: Callable[..., Any], *,
                   require_types: bool = False) -> Type[BaseModel]:
    """The strict pydantic model of ``func``'s arguments (JSON in, validated per field).

    :param plugin: the plugin's name, for messages.
    :param kind: ``"action"`` or ``"step"``, for messages.
    :param key: the action's or step's name.
    :param func: the function.
    :param require_types: every argument must be annotated (IvoryOS shows a step's types).
    :raises PluginError: a signature that cannot be sent as JSON."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)  # keep Annotated[..., Field(...)]
    except Exception as exc:  # an annotation that cannot be resolved
        raise PluginError(plugin, f"{kind} {key!r}: cannot read the annotations of {func.__name__}() "
                                  f"({exc}); import the annotated types at module level.") from exc
    fields: Dict[str, Tuple[Any, Any]] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PluginError(plugin, f"{kind} {key!r}: *{param.name} is not supported; "
                                      "declare each argument with a type.")
        if param.name.startswith("_") or param.name.startswith("model_"):
            raise PluginError(plugin, f"{kind} {key!r}: argument {param.name!r} cannot be sent as JSON; rename it.")
        if require_types and param.name not in hints:
            raise PluginError(plugin, f"{kind} {key!r}: argument {param.name!r} has no type; IvoryOS's designer "
                                      f"shows each argument's type: annotate it, e.g. {param.name}: float.")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    try:
        model = create_model(  # type: ignore[call-overload]
            f"{plugin}_{key}_arguments",
            __config__=ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True),
            **fields,
        )
        if require_types:
            model.model_json_schema()  # a type IvoryOS's form cannot show fails here
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(plugin, f"{kind} {key!r}: its arguments cannot be sent as JSON ({exc}); "
                                  "use JSON-compatible annotations (int, float, str, bool, list, Literal, "
                                  "Enum, pydantic models).") from exc
    return model  # type: ignore[no-any-return]


#: the longest a step's call waits for it when the step declares no ``timeout=`` (seconds)
DEFAULT_STEP_TIMEOUT = 3600.0
#: the longest ``timeout=`` a step may declare (seconds): seven days
MAX_STEP_TIMEOUT = 7 * 86400.0
#: inside a step's thread: the event set when the call running it gave up (its timeout passed)
STEP_CANCELLED: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar(
    "ivoryos_plugin_step_cancelled", default=None)


@dataclass
class StepSpec:
    """A declared workflow step: one method of the plugin's instrument in IvoryOS's designer.

    :param name: the method's name.
    :param func: the plugin's function.
    :param model: the pydantic model of its arguments (every caller's arguments are validated with it).
    :param timeout: the most seconds a call waits for the step before it fails (the deck is freed)."""

    name: str
    func: Callable[..., Any]
    model: Type[BaseModel]
    timeout: float = DEFAULT_STEP_TIMEOUT


def check_step_timeout(plugin: str, key: str, timeout: Any) -> float:
    """``timeout`` as a float, or :class:`PluginError` when it is not a positive, finite number of
    seconds up to :data:`MAX_STEP_TIMEOUT`.

    :param plugin: the plugin's name, for messages.
    :param key: the step's name, for messages.
    :param timeout: the declared ``timeout=``."""
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_STEP_TIMEOUT):
        raise PluginError(plugin, f"step {key!r}: timeout={timeout!r} must be a positive, finite number of "
                                  f"seconds up to {MAX_STEP_TIMEOUT:.0f} (seven days), e.g. "
                                  f"@plugin.step(timeout=120); it bounds how long a call holds the deck.")
    return float(timeout)


def make_step(plugin: str, func: Callable[..., Any], name: Optional[str],
              timeout: Any = DEFAULT_STEP_TIMEOUT) -> StepSpec:
    """Build a :class:`StepSpec`, raising :class:`PluginError` for what IvoryOS could not show or run.

    :param plugin: the plugin's name (also the instrument's name in IvoryOS).
    :param func: the step's function.
    :param name: the method's name, or None for the function's name.
    :param timeout: the most seconds a call waits for the step (positive, finite)."""
    key = name or func.__name__
    if not key.isidentifier() or key.startswith("_") or keyword.iskeyword(key):
        raise PluginError(plugin, f"step name {key!r} must be a Python identifier not starting with '_' "
                                  "(IvoryOS hides those); pass name=.")
    seconds = check_step_timeout(plugin, key, timeout)
    model = argument_model(plugin, "step", key, func, require_types=True)
    return StepSpec(name=key, func=func, model=model, timeout=seconds)


#: the snapshot step keeps each camera's photos this long by default (seconds): 30 days
PHOTO_KEEP_S = 30 * 86400.0
#: and at most this many bytes of each camera's photos by default, the newest: 2 GiB
PHOTO_KEEP_BYTES = 2 * 1024 ** 3


@dataclass
class CameraSpec:
    """A declared camera.

    :param name: the camera's name (its URLs: ``cameras/<name>/stream.mjpg``, ``snapshot.jpg``).
    :param source: an OpenCV capture target (device index, path, URL, video file) or a callable
        returning a frame (numpy array, PIL image or JPEG bytes).
    :param fps: frames per second captured while someone watches.
    :param width: scale frames to this width in pixels, or None.
    :param quality: JPEG quality, 1-100.
    :param keep_s: the snapshot step's photos of this camera older than this many seconds are
        removed (None: no age limit).
    :param keep_bytes: at most this many bytes of its photos are kept, the newest (None: no size limit)."""

    name: str
    source: Union[int, str, Callable[[], Any]]
    fps: float = 15.0
    width: Optional[int] = None
    quality: int = 80
    keep_s: Optional[float] = PHOTO_KEEP_S
    keep_bytes: Optional[int] = PHOTO_KEEP_BYTES


def make_camera(plugin: str, name: str, source: Any, *, fps: float, width: Optional[int],
                quality: int, keep_s: Optional[float] = PHOTO_KEEP_S,
                keep_bytes: Optional[int] = PHOTO_KEEP_BYTES) -> CameraSpec:
    """Build a :class:`CameraSpec`, raising :class:`PluginError` with the fix for a bad value.

    :param plugin: the plugin's name, for messages.
    :param name: the camera's name.
    :param source: see :class:`CameraSpec`.
    :param fps: frames per second, in (0, 60].
    :param width: None, or 16 to 7680 pixels.
    :param quality: 1 to 100.
    :param keep_s: seconds a photo is kept (positive, finite), or None for no age limit; default
        :data:`PHOTO_KEEP_S`.
    :param keep_bytes: bytes of photos kept (a whole number, at least 1), or None for no size
        limit; default :data:`PHOTO_KEEP_BYTES`."""
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(plugin, f"camera name {name!r} must be a Python identifier, e.g. 'deck'.")
    if isinstance(source, bool) or not (callable(source) or (isinstance(source, int) and source >= 0)
                                        or (isinstance(source, str) and source.strip())):
        raise PluginError(plugin, f"camera {name!r}: source={source!r} is not a device index (0, 1...), a device "
                                  "path, a stream URL or video file, or a function returning a frame.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 60:
        raise PluginError(plugin, f"camera {name!r}: fps={fps!r} must be a number in (0, 60].")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or not 16 <= width <= 7680):
        raise PluginError(plugin, f"camera {name!r}: width={width!r} must be None or 16 to 7680 pixels.")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise PluginError(plugin, f"camera {name!r}: quality={quality!r} must be a whole number from 1 to 100.")
    if keep_s is not None and (isinstance(keep_s, bool) or not isinstance(keep_s, (int, float))
                               or not math.isfinite(keep_s) or keep_s <= 0):
        raise PluginError(plugin, f"camera {name!r}: keep_s={keep_s!r} must be a positive number of seconds, e.g. "
                                  "keep_s=7 * 86400 to keep its photos for a week, or None to keep them whatever "
                                  f"their age (default {PHOTO_KEEP_S / 86400:.0f} days).")
    if keep_bytes is not None and (isinstance(keep_bytes, bool) or not isinstance(keep_bytes, int) or keep_bytes < 1):
        raise PluginError(plugin, f"camera {name!r}: keep_bytes={keep_bytes!r} must be a whole number of bytes, at "
                                  "least 1, e.g. keep_bytes=500 * 1024 ** 2 for 500 MiB, or None for no size limit "
                                  f"(default {PHOTO_KEEP_BYTES // 1024 ** 3} GiB).")
    return CameraSpec(name=name, source=source, fps=float(fps), width=width, quality=quality,
                      keep_s=None if keep_s is None else float(keep_s), keep_bytes=keep_bytes)


@dataclass
class StreamSpec:
    """A declared stream.

    :param name: the stream's and the client event's name.
    :param func: the producer.
    :param hz: ticks per second, or a callable read every tick.
    :param record: keep every value in the history database (True, or the name of the dict key
        whose number is downsampled; True downsamples the value itself or its ``"value"`` key).
    :param keep_s: recorded values older than this are deleted (None: kept).
    :param keep_rows: at most this many recorded values are kept, the newest (None: all)."""

    name: str
    func: Callable[[], Any]
    hz: Union[float, Callable[[], float]]
    record: Union[bool, str] = False
    keep_s: Optional[float] = 7 * 86400.0
    keep_rows: Optional[int] = 1_000_000


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
