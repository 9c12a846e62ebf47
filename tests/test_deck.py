"""Tests of ivoryos_plugin.hardware.deck: instruments on the deck, per-instrument locks and observers,
and the busy guard against IvoryOS's own runner lock and queue."""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import pickle
import sys
import threading
import time
import types
import typing
from typing import Any, Dict, Iterator, List

import pytest

from ivoryos_plugin.hardware import deck as deck_mod
from ivoryos_plugin.hosts.ivoryos import probe as ivoryos_gate
from ivoryos_plugin.hardware.deck import (DeckBusy, DeckUnverified, InstrumentLock, InstrumentUnavailable,
                                 deck_instruments, get_instrument, guard_instrument,
                                 hardware_guard, instrument_lock, is_deck_busy, observe)


# ---------------------------------------------------------------- sample instruments


class Recorder:
    """Counts how many calls are inside the instrument at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.max_inside = 0
        self.count = threading.Lock()

    def _enter(self) -> None:
        with self.count:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)

    def _exit(self) -> None:
        with self.count:
            self.inside -= 1


class Balance(Recorder):
    """A balance with the kinds of members a real driver has."""

    unit = "g"

    def weigh(self, samples: int = 1, *, settle: float = 0.0) -> float:
        """Weigh the load.

        :param samples: readings averaged."""
        self._enter()
        time.sleep(0.01)
        self._exit()
        return 12.5 * samples

    def tare(self) -> None:
        """Zero the balance."""
        self._enter()
        time.sleep(0.01)
        self._exit()

    def calibrate(self, mass: float = 1.0) -> str:
        """Calibrate with a reference mass; calls other methods of the instrument."""
        self.tare()
        return f"ok {self.weigh(samples=2)} {mass}"

    def fail(self, code: int) -> None:
        """Always raises."""
        raise ValueError(f"bad code {code}")

    async def read_async(self, channel: int = 0) -> Dict[str, int]:
        """Read a channel without blocking the loop."""
        self._enter()
        await asyncio.sleep(0.01)
        self._exit()
        return {"channel": channel}

    async def tare_async(self) -> str:
        """Tare by running the blocking method in a worker thread."""
        await asyncio.to_thread(self.tare)
        return "tared"

    async def hold(self, gate: asyncio.Event) -> None:
        """Stay inside the instrument until ``gate`` is set."""
        await gate.wait()

    @staticmethod
    def units() -> List[str]:
        """Supported units."""
        return ["g", "mg"]

    @classmethod
    def model(cls, verbose: bool = False) -> str:
        """The model name."""
        return cls.__name__

    def stream(self, n: int) -> Iterator[int]:
        """A generator: left unwrapped."""
        yield from range(n)

    @property
    def status(self) -> str:
        """A property: left unwrapped."""
        return "idle"

    def _private(self) -> int:
        return 1


class Slotted:
    """An instrument without an instance __dict__."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 1

    def read(self) -> int:
        """Read."""
        return self.value


def make_deck() -> types.ModuleType:
    deck = types.ModuleType("my_deck")
    deck.balance = Balance()  # type: ignore[attr-defined]
    deck.pump = Recorder()  # type: ignore[attr-defined]
    return deck


# ---------------------------------------------------------------- IvoryOS, imported once


@pytest.fixture(scope="session")
def ivoryos_runtime(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """IvoryOS's global state and runner, imported from a scratch CWD (its config captures it)."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ivoryos_cwd"))
    try:
        from ivoryos.runtime.state import global_state
        from ivoryos.socket_handlers import runner
    finally:
        os.chdir(old)
    assert runner.lock is global_state.runner_lock
    return types.SimpleNamespace(state=global_state, runner=runner)


@pytest.fixture
def runner(ivoryos_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """IvoryOS's real runner, idle, with its queue, pause flags and socket restored after."""
    real = ivoryos_runtime.runner
    assert not real.execution_queue and not ivoryos_runtime.state.runner_lock.locked()
    monkeypatch.setattr(real, "socketio", None)  # no app: emitting would fail
    monkeypatch.setattr(real, "paused", False)
    monkeypatch.setattr(real, "queue_paused", False)
    yield real
    real.execution_queue.clear()


def run_async(main: Any, timeout: float = 10) -> Any:
    """``asyncio.run(main())`` in a daemon thread, failing instead of hanging on a deadlock."""
    out: List[Any] = []
    errors: List[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "deadlock: the event loop never finished"
    if errors:
        raise errors[0]
    return out[0]


def hold_in_thread(lock: Any) -> Any:
    """Hold ``lock`` in another thread until the returned event is set."""
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            done.wait(5)
    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(5)
    return done, thread


# ---------------------------------------------------------------- deck_instruments


@pytest.fixture
def mixed_deck() -> types.ModuleType:
    import flask
    deck = types.ModuleType("mixed_deck")
    values = dict(balance=Balance(), pump=Recorder(), helper=lambda: 1, Balance=Balance,
                  rate=3, label="x", plates=[1, 2], _hidden=Balance(), Main=Balance(),
                  log=logging.getLogger("deck"), bp=flask.Blueprint("bp", __name__),
                  ns=types.SimpleNamespace(a=1), os=os)
    for name, value in values.items():
        setattr(deck, name, value)
    return deck


@pytest.mark.parametrize("name, included", [
    ("balance", True), ("pump", True), ("ns", True), ("helper", False), ("Balance", False),
    ("rate", False), ("label", False), ("plates", False), ("_hidden", False), ("Main", False),
    ("log", False), ("bp", False), ("os", False), ("__name__", False),
], ids=lambda v: str(v))
def test_deck_instruments_follow_ivoryos_rule(mixed_deck: types.ModuleType, name: str,
                                              included: bool) -> None:
    found = deck_instruments(mixed_deck)
    assert (name in found) is included
    if included:
        assert found[name] is getattr(mixed_deck, name)


def test_deck_instruments_matches_ivoryos(mixed_deck: types.ModuleType,
                                          ivoryos_runtime: Any) -> None:
    from ivoryos.parsers.introspection import generate_interface_schema
    schema = generate_interface_schema(mixed_deck)
    names = set(schema[0] if isinstance(schema, tuple) else schema)
    assert {f"deck.{n}" for n in deck_instruments(mixed_deck)} == names


def test_deck_instruments_without_deck() -> None:
    assert deck_instruments(None) == {}


# ---------------------------------------------------------------- get_instrument


def test_get_instrument_returns_the_deck_object() -> None:
    deck = make_deck()
    assert get_instrument(deck, "balance", plugin="p") is deck.balance  # type: ignore[attr-defined]


@pytest.mark.parametrize("deck, plugin, loaded, message", [
    (make_deck(), "balance", ["balance", "pump"],
     r"^Plugin 'balance': instrument 'scale' is not on the deck; loaded: balance, pump\. "
     r"Check the deck script or the plugin's settings\.$"),
    (make_deck(), None, ["balance", "pump"],
     r"^Instrument 'scale' is not on the deck; loaded: balance, pump\."),
    (types.ModuleType("empty"), "balance", [], r"not on the deck; loaded: \(none\)\."),
    (None, "balance", [],
     r"^Plugin 'balance': instrument 'scale' is unavailable: no deck is loaded"),
], ids=["missing", "no-plugin", "empty-deck", "no-deck"])
def test_instrument_unavailable_message(deck: Any, plugin: Any, loaded: List[str],
                                        message: str) -> None:
    with pytest.raises(InstrumentUnavailable, match=message) as info:
        get_instrument(deck, "scale", plugin=plugin)
    err = info.value
    assert isinstance(err, LookupError)
    assert (err.name, err.plugin, err.deck_loaded) == ("scale", plugin, deck is not None)
    assert err.loaded == loaded
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


# ---------------------------------------------------------------- wrapping


METHODS = ["weigh", "tare", "calibrate", "fail", "read_async", "tare_async", "hold", "units",
           "model"]


@pytest.mark.parametrize("method", METHODS, ids=METHODS)
def test_wrapper_keeps_signature_hints_doc_and_asyncness(method: str) -> None:
    obj = Balance()
    before = getattr(obj, method)
    guard_instrument(obj)
    after = getattr(obj, method)
    assert method in vars(obj), "wrapped in place, as an instance attribute"
    assert after is not before
    assert inspect.signature(after) == inspect.signature(before)
    assert typing.get_type_hints(after) == typing.get_type_hints(before)
    assert after.__doc__ == before.__doc__ and after.__name__ == method
    assert inspect.iscoroutinefunction(after) == inspect.iscoroutinefunction(before)


@pytest.mark.parametrize("member", ["stream", "status", "_private", "__init__", "unit"],
                         ids=["generator", "property", "private", "dunder", "constant"])
def test_members_left_alone(member: str) -> None:
    obj = Balance()
    guard_instrument(obj)
    assert member not in vars(obj)
    assert obj.status == "idle" and list(obj.stream(2)) == [0, 1]


def test_guard_is_idempotent() -> None:
    obj = Balance()
    lock = guard_instrument(obj)
    wrapper = obj.weigh
    assert guard_instrument(obj) is lock and instrument_lock(obj) is lock
    assert obj.weigh is wrapper
    first: List[Dict[str, Any]] = []
    second: List[Dict[str, Any]] = []
    observe(obj, first.append, instrument="balance")
    observe(obj, second.append, instrument="balance")
    guard_instrument(obj)
    assert obj.weigh(2) == 25.0
    assert [e["method"] for e in first] == ["weigh"] == [e["method"] for e in second]


def test_slotted_object_gets_a_lock_but_no_wrappers() -> None:
    obj = Slotted()
    lock = guard_instrument(obj)
    assert isinstance(lock, InstrumentLock) and instrument_lock(obj) is lock
    assert obj.read() == 1 and not hasattr(obj, "__dict__")
    with pytest.raises(TypeError, match="__slots__"):
        observe(obj, print, instrument="slotted")


def test_ivoryos_sees_the_same_interface_and_calls_the_wrapper(ivoryos_runtime: Any) -> None:
    from ivoryos.parsers.introspection import generate_interface_schema
    from ivoryos.runtime.task_runner import TaskRunner
    deck = make_deck()
    before = generate_interface_schema(deck)
    events: List[Dict[str, Any]] = []
    observe(deck.balance, events.append, instrument="balance")  # type: ignore[attr-defined]
    assert generate_interface_schema(deck) == before
    step = TaskRunner()._get_executable("deck.balance", deck, "weigh")
    assert step is deck.balance.weigh  # type: ignore[attr-defined]
    kwargs = TaskRunner._convert_kwargs_type({"samples": "2"}, step)
    assert kwargs == {"samples": 2} and step(**kwargs) == 25.0
    coro = TaskRunner()._get_executable("deck.balance", deck, "read_async")
    assert inspect.iscoroutinefunction(coro)
    assert run_async(lambda: coro(channel=1)) == {"channel": 1}
    assert [(e["method"], e["kwargs"]) for e in events] == [("weigh", {"samples": 2}),
                                                           ("read_async", {"channel": 1})]


# ---------------------------------------------------------------- serialisation


def run_threads(obj: Balance, methods: List[str]) -> None:
    start = threading.Barrier(len(methods))
    errors: List[BaseException] = []

    def call(name: str) -> None:
        start.wait()
        try:
            getattr(obj, name)()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=call, args=(m,), daemon=True) for m in methods]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors


@pytest.mark.parametrize("guarded, most", [(True, 1), (False, None)], ids=["guarded", "control"])
def test_threads_never_overlap_inside_a_guarded_instrument(guarded: bool, most: Any) -> None:
    obj = Balance()
    if guarded:
        guard_instrument(obj)
    run_threads(obj, ["weigh", "tare", "calibrate"] * 6 + ["weigh", "tare"])
    if most is None:
        assert obj.max_inside > 1, "control: without the guard the calls do overlap"
    else:
        assert obj.max_inside == most


@pytest.mark.parametrize("how", ["with", "async with"])
def test_holding_the_instrument_lock_blocks_other_callers(how: str) -> None:
    obj = Balance()
    lock = instrument_lock(obj)
    finished = threading.Event()

    def call() -> None:
        obj.tare()
        finished.set()
    caller = threading.Thread(target=call, daemon=True)

    def hold() -> None:
        caller.start()
        assert not finished.wait(0.1), "the call ran while the lock was held"

    if how == "with":
        with lock:
            hold()
    else:
        async def main() -> None:
            async with lock:
                await asyncio.to_thread(hold)
        run_async(main)
    assert finished.wait(5) and not lock.locked()


def test_reentrant_call_does_not_deadlock() -> None:
    obj = Balance()
    guard_instrument(obj)
    result: List[str] = []
    thread = threading.Thread(target=lambda: result.append(obj.calibrate(1.0)), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and result == ["ok 25.0 1.0"]


def test_async_calls_serialise_and_keep_the_loop_running() -> None:
    obj = Balance()
    lock = guard_instrument(obj)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)
        tick = asyncio.create_task(ticker())
        threads = [asyncio.to_thread(obj.weigh) for _ in range(3)]
        reads = [obj.read_async(i) for i in range(8)]
        results = await asyncio.gather(*reads, *threads, obj.tare_async())
        tick.cancel()
        assert results[:8] == [{"channel": i} for i in range(8)]
        assert results[-1] == "tared"
        return ticks
    assert run_async(main) > 10, "waiting for the lock must not block the event loop"
    assert obj.max_inside == 1 and not lock.locked()


async def enter_and_wait(obj: Balance, gate: asyncio.Event) -> "asyncio.Task[None]":
    """Start ``obj.hold(gate)`` and return once it holds the instrument's lock."""
    holder = asyncio.ensure_future(obj.hold(gate))
    while not instrument_lock(obj).locked():
        await asyncio.sleep(0)
    return holder


def test_sync_call_that_would_deadlock_the_loop_raises() -> None:
    obj = Balance()
    guard_instrument(obj)

    async def main() -> None:
        gate = asyncio.Event()
        holder = await enter_and_wait(obj, gate)
        with pytest.raises(RuntimeError, match="deadlock"):
            obj.tare()
        gate.set()
        await holder
        obj.tare()  # free again
    run_async(main)


def test_cancelled_waiter_does_not_leak_the_lock() -> None:
    obj = Balance()
    lock = guard_instrument(obj)

    async def main() -> None:
        gate = asyncio.Event()
        holder = await enter_and_wait(obj, gate)
        waiter = asyncio.ensure_future(obj.read_async(1))
        while not lock._waiters:
            await asyncio.sleep(0)
        waiter.cancel()
        gate.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not lock._waiters
    run_async(main)
    assert not lock.locked() and lock.acquire(blocking=False)
    lock.release()


@pytest.mark.parametrize("blocking, timeout", [(False, -1), (True, 0.05)],
                         ids=["non-blocking", "timeout"])
def test_lock_acquire_fails_while_another_thread_holds_it(blocking: bool, timeout: float) -> None:
    lock = InstrumentLock()
    done, thread = hold_in_thread(lock)
    try:
        assert lock.acquire(blocking, timeout) is False
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release()
    finally:
        done.set()
        thread.join(5)
    assert lock.acquire(blocking=False)
    lock.release()


# ---------------------------------------------------------------- observe


def test_observe_reports_the_call() -> None:
    obj = Balance()
    events: List[Dict[str, Any]] = []
    observe(obj, events.append, instrument="balance")
    assert obj.weigh(2, settle=0.5) == 25.0
    event, = events
    assert {k: event[k] for k in ("instrument", "method", "args", "kwargs", "result", "phase")} \
        == {"instrument": "balance", "method": "weigh", "args": [2], "kwargs": {"settle": 0.5},
            "result": 25.0, "phase": "end"}
    assert "error" not in event
    assert event["started"] <= event["finished"] and event["duration"] >= 0.009


def test_observe_reports_errors_and_the_exception_still_raises() -> None:
    obj = Balance()
    events: List[Dict[str, Any]] = []
    observe(obj, events.append, instrument="balance")
    with pytest.raises(ValueError, match="bad code 7"):
        obj.fail(7)
    assert events[0]["error"] == "ValueError: bad code 7" and "result" not in events[0]


def test_observe_reports_async_calls() -> None:
    obj = Balance()
    events: List[Dict[str, Any]] = []
    observe(obj, events.append, instrument="balance", methods=["read_async"])
    assert run_async(lambda: obj.read_async(channel=3)) == {"channel": 3}
    assert [(e["method"], e["kwargs"], e["result"]) for e in events] == \
        [("read_async", {"channel": 3}, {"channel": 3})]


def test_failing_observer_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    obj = Balance()
    seen: List[Dict[str, Any]] = []

    def broken(event: Dict[str, Any]) -> None:
        raise RuntimeError("observer broke")
    observe(obj, broken, instrument="balance")
    observe(obj, seen.append, instrument="balance")
    with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.deck"):
        assert obj.weigh(1) == 12.5
    assert "observer broke" in caplog.text and "balance.weigh" in caplog.text
    assert len(seen) == 1, "the other observers still get the event"


def test_unsubscribe_stops_events() -> None:
    obj = Balance()
    events: List[Dict[str, Any]] = []
    unsubscribe = observe(obj, events.append, instrument="balance")
    obj.tare()
    unsubscribe()
    unsubscribe()
    obj.tare()
    assert len(events) == 1


def test_starts_gives_a_start_event_before_the_end() -> None:
    obj = Balance()
    events: List[Dict[str, Any]] = []
    observe(obj, events.append, instrument="balance", starts=True, methods=["weigh"])
    obj.tare()
    obj.weigh(3)
    start, end = events
    assert (start["phase"], start["method"], start["args"]) == ("start", "weigh", [3])
    assert "result" not in start and "finished" not in start
    assert (end["phase"], end["result"]) == ("end", 37.5)
    assert start["call_id"] == end["call_id"] and start["started"] == end["started"]


def test_nested_calls_are_reported_and_observer_calls_are_not() -> None:
    obj = Balance()
    events: List[str] = []

    def chatty(event: Dict[str, Any]) -> None:
        events.append(event["method"])
        obj.tare()  # would loop for ever if reported
    observe(obj, chatty, instrument="balance")
    obj.calibrate(1.0)
    assert events == ["tare", "weigh", "calibrate"]


@pytest.mark.parametrize("methods, error", [(["weigh", "nope"], ValueError),
                                            (["status"], ValueError), ("weigh", TypeError)],
                         ids=["unknown", "property", "str"])
def test_observe_rejects_bad_method_names(methods: Any, error: type) -> None:
    with pytest.raises(error, match="nope|status|str"):
        observe(Balance(), print, instrument="balance", methods=methods)


# ---------------------------------------------------------------- hardware_guard


def test_hardware_guard_refuses_while_the_lock_is_held() -> None:
    lock = threading.Lock()
    with lock:
        with pytest.raises(DeckBusy, match="Plugin 'balance' cannot .* workflow .* Retry"):
            with hardware_guard(lock, plugin="balance"):
                pytest.fail("body must not run")  # pragma: no cover


@pytest.mark.parametrize("body_raises", [False, True], ids=["ok", "body-raises"])
def test_hardware_guard_holds_then_releases(body_raises: bool) -> None:
    lock = threading.Lock()
    ran = []
    with pytest.raises(KeyError) if body_raises else _nothing():
        with hardware_guard(lock):
            ran.append(lock.locked())
            if body_raises:
                raise KeyError("boom")
    assert ran == [True] and not lock.locked()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_busy_with_real_ivoryos_lock_held_elsewhere(runner: Any, ivoryos_runtime: Any) -> None:
    lock = ivoryos_runtime.state.runner_lock
    assert not is_deck_busy(ivoryos_gate())
    done, thread = hold_in_thread(lock)
    try:
        assert is_deck_busy(ivoryos_gate())
        with pytest.raises(DeckBusy, match="'pump'"):
            with hardware_guard(ivoryos_gate(), plugin="pump"):
                pytest.fail("body must not run")  # pragma: no cover
    finally:
        done.set()
        thread.join(5)
    with hardware_guard(ivoryos_gate(), plugin="pump"):
        assert lock.locked() and is_deck_busy(ivoryos_gate())
    assert not lock.locked()


@pytest.mark.parametrize("paused, resumed", [(False, 1), (True, 0)], ids=["idle", "paused"])
def test_workflow_queued_during_the_guard_is_started(runner: Any, monkeypatch: pytest.MonkeyPatch,
                                                     paused: bool, resumed: int) -> None:
    calls: List[int] = []
    with hardware_guard(ivoryos_gate(), plugin="pump"):
        # what run_script does: queue the task, then try to start it
        runner.execution_queue.append({"run_name": "queued-while-guarded", "uid": "x"})
        assert runner._process_queue() == "queued", "the guard holds the runner's own lock"
        monkeypatch.setattr(runner, "queue_paused", paused)
        monkeypatch.setattr(runner, "_process_queue", lambda: calls.append(1))
        assert is_deck_busy(ivoryos_gate())
    assert len(calls) == resumed
    assert not runner.lock.locked()


def test_a_queue_resumed_while_the_guard_holds_the_lock_starts_after_it(runner: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # paused between workflows with one queued, IvoryOS's lock is free: a hardware action may run (the
    # deck-busy state still says workflows wait); IvoryOS's own resume during that action finds its lock
    # taken ("queued"): the guard's release must start the workflow
    calls: List[int] = []
    monkeypatch.setattr(runner, "logger", None)
    runner.execution_queue.append({"run_name": "queued-while-paused", "uid": "x"})
    monkeypatch.setattr(runner, "queue_paused", True)
    assert is_deck_busy(ivoryos_gate()) and not runner.lock.locked()
    with hardware_guard(ivoryos_gate(), plugin="pump"):
        assert runner.toggle_pause() == "Resumed" and not runner.queue_paused
        assert runner.execution_queue, "IvoryOS started the workflow under a hardware action"
        monkeypatch.setattr(runner, "_process_queue", lambda: calls.append(1))
    assert calls == [1], "the resumed workflow was left queued"
    assert not runner.lock.locked()


def test_no_queue_no_resume(runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[int] = []
    monkeypatch.setattr(runner, "_process_queue", lambda: calls.append(1))
    with hardware_guard(ivoryos_gate()):
        pass
    assert calls == [] and not is_deck_busy(ivoryos_gate())


def test_without_ivoryos_hardware_actions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety fails closed: when IvoryOS's runner lock cannot be found, nothing runs."""
    monkeypatch.setitem(sys.modules, "ivoryos.runtime.state", None)
    gate = ivoryos_gate()
    assert gate.lock is None and "runner lock not found" in gate.problem
    assert is_deck_busy(gate)
    with pytest.raises(DeckUnverified, match=r"Plugin 'a': hardware actions are refused: cannot verify the deck "
                                             r"is idle \(IvoryOS .*: runner lock not found"):
        with hardware_guard(gate, plugin="a"):
            pytest.fail("body must not run")  # pragma: no cover


def test_plain_lock_state() -> None:
    lock = threading.Lock()
    assert not is_deck_busy(lock)
    with lock:
        assert is_deck_busy(lock)
    rlock = threading.RLock()
    done, thread = hold_in_thread(rlock)
    try:
        assert is_deck_busy(rlock)
    finally:
        done.set()
        thread.join(5)
    assert not is_deck_busy(rlock)


def test_observed_calls_say_who_made_them() -> None:
    from ivoryos_plugin.hardware.deck import calling_as

    class Thing:
        def poke(self) -> int:
            return 1

    thing = Thing()
    seen: list = []
    observe(thing, seen.append, instrument="thing")
    thing.poke()
    with calling_as("plugin:p stream s"):
        thing.poke()
    worker = threading.Thread(target=thing.poke)  # a new thread starts unmarked
    with calling_as("plugin:p action a"):
        worker.start()
        worker.join()
    assert [e["source"] for e in seen] == ["deck", "plugin:p stream s", "deck"]


def test_web_server_objects_on_a_deck_are_not_instruments() -> None:
    from flask import Flask
    from flask_socketio import SocketIO

    app = Flask("deck_app")
    deck = types.ModuleType("server_deck")
    deck.app, deck.socketio, deck.thing = app, SocketIO(app), object.__new__(type("Thing", (), {}))
    assert list(deck_instruments(deck)) == ["thing"]
