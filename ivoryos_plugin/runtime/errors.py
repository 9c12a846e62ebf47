"""The framework's exceptions and their JSON replies, in one place: :func:`install` puts them on a
plugin's Blueprint with Flask's ``register_error_handler``, so every request the plugin serves (its
actions and steps, and its author's own routes) answers a refusal alike, and the host's own routes
(IvoryOS's) are left to the host.

=============================  ======  =====================================================
exception                      status  JSON beside ``error``
=============================  ======  =====================================================
``DeckBusy``                   409     ``busy``; ``hardware`` and the fix for a hardware action
``DeckUnverified``             503     ``unverified`` (the reason)
``InstrumentUnavailable``      503     ``instrument``, ``loaded``
``ActionError``                its own the action's (or step's) name
:class:`StepArgumentError`     400     ``errors`` (per field), the step's name
:class:`StepTimeout`           504     ``timeout``, the step's name
:class:`StepStillRunning`      409     ``busy: false``, the step's name
:class:`CallFailed`            500     the action's (or step's) name; logged with its traceback
``SettingsValidationError``    400     ``errors`` (per field); nothing was saved
``SettingsError``              500     (the store's sentence: a settings file it cannot read)
``HistoryUnavailable``         503     (the database, masked, and the fix); ``Retry-After``
=============================  ======  =====================================================

The settings and history replies name the plugin the request is for (its Blueprint): they are what
``settings.json`` and ``history/<stream>`` answer. The settings *form* page does not raise them to this
table: an invalid form is shown again with its errors beside the fields (a page, not an error reply).

An action's or a step's view runs the call inside :func:`answering`, which names the call for the
replies and turns any other exception into :class:`CallFailed`. A plugin that registers its own
handler for one of these classes keeps it (``@plugin.errorhandler(DeckBusy)``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

from flask import Response, g, request
from flask.sansio.scaffold import Scaffold

from ..core.specs import ActionError
from ..hardware.deck import DeckBusy, DeckUnverified, InstrumentUnavailable
from .history.database import RETRY_S
from .history.errors import HistoryUnavailable
from .replies import error_response
from .settings.errors import SettingsError, SettingsValidationError

__all__ = ["Call", "CallFailed", "StepArgumentError", "StepStillRunning", "StepTimeout", "answer", "answering",
           "current_call", "install", "reply_for"]

#: where the current request's :class:`Call` is kept (``flask.g``: one per request)
_CALL = "ivoryos_plugin_call"


@dataclass(frozen=True)
class Call:
    """The action or step the current request runs, named in the replies of its errors.

    :param kind: ``"action"`` or ``"step"``: the JSON field that names it.
    :param name: its name.
    :param hardware: whether it runs under the hardware guard (the busy reply then says how to
        declare one that does not)."""

    kind: str
    name: str
    hardware: bool = False


class StepArgumentError(ValueError):
    """A step was called with arguments its signature refuses; the step did not run.

    :param message: the sentence (plugin, step, each bad field and the fix).
    :param errors: ``{field: [messages]}``."""

    def __init__(self, message: str, errors: Dict[str, List[str]]) -> None:
        super().__init__(message)
        self.errors = errors

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (str(self), self.errors)


class StepTimeout(TimeoutError):
    """A step's call waited its ``timeout`` and gave up (the step's thread may still be running).

    :param message: the sentence (plugin, step, the timeout and the fix).
    :param timeout: the step's timeout in seconds."""

    def __init__(self, message: str, timeout: Optional[float] = None) -> None:
        super().__init__(message)
        self.timeout = timeout

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (str(self), self.timeout)


class StepStillRunning(RuntimeError):
    """A step is called again while its earlier, timed-out call is still running in its thread."""


class CallFailed(Exception):
    """An action or a step raised an exception the table does not know: a 500 that names the call
    and the exception (logged with its traceback where it was caught, by :func:`answering`).

    :param call: the call.
    :param error: what it raised."""

    def __init__(self, call: Call, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.call, self.error = call, error


E = TypeVar("E", bound=Exception)
Reply = Callable[[Any, Optional[Call]], Response]
#: each exception class -> its reply (made from the exception and the request's call, if any)
_REPLIES: Dict[Type[Exception], Reply] = {}


def _replies(cls: Type[E]) -> Callable[[Callable[[E, Optional[Call]], Response]], Callable[[E, Optional[Call]], Response]]:
    def add(func: Callable[[E, Optional[Call]], Response]) -> Callable[[E, Optional[Call]], Response]:
        _REPLIES[cls] = func
        return func
    return add


def _named(call: Optional[Call]) -> Dict[str, Any]:
    return {call.kind: call.name} if call is not None else {}


@_replies(DeckBusy)
def _busy(exc: DeckBusy, call: Optional[Call]) -> Response:
    if call is None or call.kind != "action" or not call.hardware:  # a step, a page, or an action that raised it
        return error_response(409, str(exc), busy=True)
    return error_response(409, f"{exc} Action {call.name!r} is a hardware action (the default), refused while a "
                               "workflow holds the deck; an action that does not touch the instruments runs during "
                               "a workflow when declared with @plugin.action(hardware=False).", busy=True, hardware=True)


@_replies(DeckUnverified)
def _unverified(exc: DeckUnverified, call: Optional[Call]) -> Response:
    return error_response(503, str(exc), unverified=exc.reason)


@_replies(InstrumentUnavailable)
def _unavailable(exc: InstrumentUnavailable, call: Optional[Call]) -> Response:
    return error_response(503, str(exc), instrument=exc.name, loaded=list(exc.loaded))


@_replies(ActionError)
def _action_error(exc: ActionError, call: Optional[Call]) -> Response:
    return error_response(exc.status, str(exc), **_named(call))


@_replies(StepArgumentError)
def _bad_arguments(exc: StepArgumentError, call: Optional[Call]) -> Response:
    return error_response(400, str(exc), errors=exc.errors, **_named(call))


@_replies(StepTimeout)
def _timed_out(exc: StepTimeout, call: Optional[Call]) -> Response:
    return error_response(504, str(exc), timeout=exc.timeout, **_named(call))


@_replies(StepStillRunning)
def _still_running(exc: StepStillRunning, call: Optional[Call]) -> Response:
    return error_response(409, str(exc), busy=False, **_named(call))


@_replies(CallFailed)
def _failed(exc: CallFailed, call: Optional[Call]) -> Response:
    return error_response(500, str(exc), **_named(exc.call))


def _plugin_says(sentence: str) -> str:
    """``sentence`` said by the plugin the request is for (its Blueprint's name), as its views say it."""
    name = request.blueprint
    return f"Plugin {name!r}: {sentence}" if name else sentence


@_replies(SettingsValidationError)
def _invalid_settings(exc: SettingsValidationError, call: Optional[Call]) -> Response:
    return error_response(400, _plugin_says("invalid settings; nothing was saved."), errors=exc.errors)


@_replies(SettingsError)
def _settings_failed(exc: SettingsError, call: Optional[Call]) -> Response:
    return error_response(500, str(exc))


@_replies(HistoryUnavailable)
def _history_unavailable(exc: HistoryUnavailable, call: Optional[Call]) -> Response:
    reply = error_response(503, _plugin_says(
        f"{exc}. Recorded values are kept in memory and written when it answers; check that the database server "
        "runs and is reachable (IVORYOS_PLUGIN_HISTORY_URL names it), then try again."))
    reply.headers["Retry-After"] = str(int(RETRY_S))
    return reply


#: the classes the table answers (an exception of a subclass gets its nearest base's reply)
ANSWERED: Tuple[Type[Exception], ...] = tuple(_REPLIES)


def current_call() -> Optional[Call]:
    """The action or step the current request runs (set by :func:`answering`), or None."""
    found = g.get(_CALL)
    return found if isinstance(found, Call) else None


def reply_for(exc: BaseException) -> Optional[Response]:
    """The JSON reply of one of the framework's exceptions (None for any other), in a request.

    :param exc: the exception."""
    for cls in type(exc).__mro__:
        reply = _REPLIES.get(cls)
        if reply is not None:
            return reply(exc, current_call())
    return None


def answer(exc: Exception) -> Response:
    """The error handler :func:`install` registers: the reply of ``exc`` from the table.

    :param exc: an exception of one of the table's classes."""
    reply = reply_for(exc)
    if reply is None:  # registered only for the table's classes; kept for a handler registered by hand
        raise exc
    return reply


def install(blueprint: Scaffold) -> None:
    """Answer the table's exceptions on every request ``blueprint`` serves (Flask's
    ``register_error_handler``). Call it before the blueprint's first registration on an app (Flask
    copies a blueprint's handlers into the app then, and refuses new ones afterwards): a
    :class:`~ivoryos_plugin.Plugin` does, through its host, each time an app registers it. Idempotent;
    a class the blueprint already handles (the plugin author's own handler) keeps its handler.

    :param blueprint: a plugin's Blueprint (or an app)."""
    own = blueprint.error_handler_spec[None][None]
    for cls in ANSWERED:
        if cls not in own:
            blueprint.register_error_handler(cls, answer)


class answering:  # noqa: N801 (used as a function: ``with answering(...)``)
    """Run an action or a step for the current request: the replies of the table's exceptions name
    it, and any other exception becomes :class:`CallFailed` (a 500), logged here with its traceback
    (a context manager; a class, not a generator: it runs around every action and step call).

    :param call: the call.
    :param logger: the plugin's logger."""

    __slots__ = ("call", "logger")

    def __init__(self, call: Call, logger: logging.Logger) -> None:
        self.call, self.logger = call, logger

    def __enter__(self) -> None:
        setattr(g, _CALL, self.call)

    def __exit__(self, kind: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Any) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, ANSWERED):
            return  # no exception, one the error handler answers, or not an Exception (KeyboardInterrupt)
        self.logger.error("%s %r failed", self.call.kind, self.call.name, exc_info=exc)
        raise CallFailed(self.call, exc) from exc
