"""What IvoryOS is in this process: its installed version, its app, the deck it runs, its runner's
lock and queue (the probe hardware safety needs), the workflow running now. Part of the IvoryOS
adapter (:mod:`ivoryos_plugin.hosts.ivoryos`)."""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

from flask import Flask

from ...core.clock import start_thread
from ...hardware.deck import Gate

log = logging.getLogger("ivoryos_plugin.ivoryos")

#: The IvoryOS releases this adapter was run against: the CI runs the whole suite on 1.7.2, and the
#: host, busy-guard, discovery and demo tests on the newest 1.6.x (tests/test_dropin_floor.py); 1.6.4,
#: the floor in requirements.txt, passed them too. 1.6.0 does not: its Socket.IO path ignores URL_PREFIX.
VERIFIED_ON = "1.6.4, 1.6.14, 1.7.2"

#: ``global_state`` attribute names (verified on 1.7.2): the runner's lock and the running deck.
RUNNER_LOCK_ATTR = "runner_lock"
DECK_ATTR = "deck"


def _adapter() -> Any:
    """The adapter package: its names are read from there at each call, so that setting one on
    ``ivoryos_plugin.hosts.ivoryos`` (a test moving ``RUNNER_LOCK_ATTR``) is obeyed."""
    return sys.modules[__name__.rpartition(".")[0]]


# ------------------------------------------------------------------ what IvoryOS is here
def installed_version() -> Optional[str]:
    """The installed IvoryOS distribution's version (read from its metadata, IvoryOS not imported)."""
    try:
        from importlib.metadata import version

        return version("ivoryos")
    except Exception:
        return None


def is_ivoryos_app(app: Flask) -> bool:
    """Whether ``app`` is IvoryOS's own (its ``create_app`` names it ``ivoryos.app``; verified on 1.7.2).

    :param app: a Flask app."""
    return app.import_name == "ivoryos.app"


def _global_state() -> Any:
    """IvoryOS's ``global_state`` (``ivoryos.runtime.state``; verified on 1.7.2), imported on demand."""
    from ivoryos.runtime.state import global_state

    return global_state


def deck() -> Any:
    """The running deck module (``global_state.deck``; verified on 1.7.2), or None before
    ``ivoryos.run`` sets it or when IvoryOS is not imported (never imports IvoryOS)."""
    if "ivoryos" not in sys.modules:
        return None
    try:
        return getattr(_global_state(), _adapter().DECK_ATTR, None)
    except Exception:
        return None


def set_deck(module: Any) -> bool:
    """Make ``module`` IvoryOS's ``global_state.deck`` when IvoryOS is installed (the dev host's
    ``--deck``, so plugins that read ``global_state.deck`` see it). IvoryOS refuses a second deck.

    :param module: the deck module.
    :returns: whether ``global_state.deck`` is now ``module``."""
    try:
        state = _global_state()
        if getattr(state, _adapter().DECK_ATTR, None) is not module:
            setattr(state, _adapter().DECK_ATTR, module)
        return getattr(state, _adapter().DECK_ATTR, None) is module
    except Exception as exc:
        log.info("IvoryOS's global_state.deck was not set (%s: %s)", type(exc).__name__, exc)
        return False


# ------------------------------------------------------------------ the runner: the probe
def _runner() -> Any:
    """IvoryOS's ``ScriptRunner`` (``ivoryos.socket_handlers.runner``; verified on 1.7.2)."""
    from ivoryos.socket_handlers import runner

    return runner


def probe() -> Gate:
    """Find IvoryOS's runner lock and queue; the :class:`Gate` hardware actions go through.

    Verified on 1.7.2: ``global_state.runner_lock`` (a ``threading.Lock`` held while a workflow or a
    single step runs), ``runner.execution_queue`` (a list), ``runner._process_queue()`` (starts the
    next queued workflow), ``runner.paused`` / ``runner.queue_paused``. Anything missing gives a gate
    that refuses hardware actions and says why."""
    version = installed_version() or "unknown version"
    try:
        lock = getattr(_global_state(), _adapter().RUNNER_LOCK_ATTR)
        if not all(callable(getattr(lock, name, None)) for name in ("acquire", "release", "locked")):
            raise TypeError(f"{_adapter().RUNNER_LOCK_ATTR} is a {type(lock).__name__}, not a lock")
    except Exception as exc:
        return Gate.unverified(f"IvoryOS {version}: runner lock not found ({type(exc).__name__}: {exc})")
    try:
        runner = _runner()
        len(runner.execution_queue)
        if not callable(getattr(runner, "_process_queue", None)):
            raise AttributeError("ScriptRunner has no _process_queue")
    except Exception as exc:
        return Gate.unverified(f"IvoryOS {version}: workflow queue not found ({type(exc).__name__}: {exc})")

    def queued() -> int:
        return len(runner.execution_queue)

    def after_release() -> None:
        # IvoryOS only starts a queued workflow when one of its own runs ends: one queued while a
        # plugin held the lock would strand unless started here (unless its queue is paused).
        if queued() and not (getattr(runner, "paused", False) or getattr(runner, "queue_paused", False)):
            runner._process_queue()

    return Gate(lock=lock, queued=queued, after_release=after_release)


def start_when_deck_is_set(start: Callable[[], None], timeout: float = 10.0) -> threading.Thread:
    """Run ``start()`` in a thread as soon as ``ivoryos.run`` has set the deck (or after ``timeout``):
    ``ivoryos.run`` registers plugins before it sets ``global_state.deck`` (verified on 1.7.2).

    :param start: starts every plugin of the app.
    :param timeout: seconds to wait for a deck before starting without one."""
    def wait_then_start() -> None:
        deadline = time.monotonic() + timeout
        while deck() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        start()

    return start_thread("starter", wait_then_start)  # ivoryos_plugin-starter, a daemon


# ------------------------------------------------------------------ workflow steps
def deck_being_loaded() -> Any:
    """The deck module that ``ivoryos.run(module)`` is starting with, while it loads plugins.

    ``ivoryos.run`` registers plugins before it sets ``global_state.deck = sys.modules[module]``
    and builds the designer's schema from the deck's globals (verified on 1.7.2), so a plugin's step
    instrument put on the deck now shows up in the designer. The module name is read from the
    ``module`` argument of the running ``ivoryos.server.run`` frame (verified on 1.7.2)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run" and frame.f_globals.get("__name__") == "ivoryos.server":
            module = frame.f_locals.get("module")
            return sys.modules.get(module) if isinstance(module, str) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def current_run() -> Optional[Dict[str, Any]]:
    """The workflow run IvoryOS's runner is executing, or None: ``ScriptRunner.run_id`` (set while
    a workflow runs, None after) and its ``progress`` (run name, phase, step, iteration); verified
    on 1.7.2. Never imports IvoryOS."""
    if "ivoryos.socket_handlers" not in sys.modules:
        return None
    try:
        runner = _runner()
        run_id = getattr(runner, "run_id", None)
        if run_id is None:
            return None
        progress = getattr(runner, "progress", None)
        return {"run_id": int(run_id), "run_name": getattr(progress, "run_name", None),
                "phase": getattr(progress, "phase", None), "step": getattr(progress, "step", None),
                "iteration": getattr(progress, "iteration", None)}
    except Exception as exc:
        log.warning("cannot read IvoryOS's current run (%s: %s)", type(exc).__name__, exc)
        return None
