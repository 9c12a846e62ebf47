"""The framework's one clock, backoff and thread starter (ivoryos_plugin.core.clock)."""
from __future__ import annotations

import math
import threading

import pytest

from ivoryos_plugin.core.clock import SYSTEM_CLOCK, Backoff, ManualClock, running_threads, start_thread


def test_manual_clock_wakes_a_wait_only_when_advanced_past_its_deadline() -> None:
    clock = ManualClock(start=1000.0)
    stop = threading.Event()
    woke: list = []

    def sleeper() -> None:
        woke.append(clock.wait(stop, 10.0))

    thread = start_thread("test-sleeper", sleeper)
    assert clock.wait_for_waiters(1)
    clock.advance(9.5)
    thread.join(0.1)
    assert thread.is_alive() and woke == []
    clock.advance(0.5)
    thread.join(2.0)
    assert woke == [False]
    assert clock.monotonic() == 10.0 and clock.time() == 1010.0


def test_manual_clock_wait_ends_early_when_its_event_is_set() -> None:
    clock = ManualClock()
    stop = threading.Event()
    result: list = []
    thread = start_thread("test-stopper", lambda: result.append(clock.wait(stop, 3600.0)))
    assert clock.wait_for_waiters(1)
    stop.set()
    thread.join(2.0)
    assert result == [True] and clock.monotonic() == 0.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_manual_clock_refuses_to_go_back_or_to_infinity(bad: float) -> None:
    with pytest.raises(ValueError, match="advance"):
        ManualClock().advance(bad)


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    delay = Backoff(0.5, 4.0)
    assert [delay.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    delay.reset()
    assert delay.peek() == 0.5 and delay.next() == 0.5
    zero = Backoff(0.0, 10.0)
    assert [zero.next() for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("args", [(-1.0, 2.0), (3.0, 2.0), (1.0, math.inf), (math.nan, 2.0), (1.0, 2.0, 0.5)])
def test_backoff_refuses_nonsense(args: tuple) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(*args)


def test_framework_threads_are_named_daemons() -> None:
    gate = threading.Event()
    thread = start_thread("test-named", gate.wait, 5.0)
    try:
        assert thread.name == "ivoryos_plugin-test-named" and thread.daemon
        assert thread in running_threads()
        assert start_thread("ivoryos_plugin-x", lambda: None).name == "ivoryos_plugin-x"
    finally:
        gate.set()
        thread.join(2.0)


def test_system_clock_is_the_real_time() -> None:
    import time
    assert abs(SYSTEM_CLOCK.time() - time.time()) < 1.0
    assert SYSTEM_CLOCK.wait(threading.Event(), -5) is False


@pytest.mark.parametrize("bad", ["fast", 3.0, object()])
def test_an_app_configured_with_something_that_is_not_a_clock_says_so(bad: object, tmp_path) -> None:
    from ivoryos_plugin import Plugin, create_app

    plugin = Plugin("clockless", __name__)

    @plugin.route("/")
    def main() -> str:
        return "ok"

    with pytest.raises(TypeError, match="IVORYOS_PLUGIN_CLOCK.*not a clock.*ManualClock"):
        create_app([plugin], data_dir=tmp_path, testing=True, clock=bad)  # type: ignore[arg-type]
