"""Tests for ivoryos_plugin.hardware.serial on real ptys (pty simulators) and pyserial's loop://;
the reconnect delays on a clock the test moves (counts, not sleeps)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterator, Optional

import pytest
from support import wait_until

from ivoryos_plugin.core.clock import running_threads
from ivoryos_plugin.hardware.serial import (
    SerialDevice,
    SerialDeviceError,
    SerialDeviceTimeout,
    open_serial,
)
from ivoryos_plugin.sim import EchoSimulator
from ivoryos_plugin.testing import RecordingClock, manual_clock  # noqa: F401  (a fixture)


@pytest.fixture
def echo() -> Iterator[EchoSimulator]:
    """A running echo simulator (``ECHO <n>`` -> ``<n>``)."""
    with EchoSimulator() as sim:
        yield sim


@pytest.fixture
def slow_echo() -> Iterator[EchoSimulator]:
    """An echo simulator that takes 0.5 s per command."""
    with EchoSimulator(delay=0.5) as sim:
        yield sim


# -- open_serial -------------------------------------------------------------------------------
def test_open_serial_missing_device_returns_none_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.serial"):
        assert open_serial("/dev/does-not-exist") is None
    [record] = [r for r in caplog.records if r.name == "ivoryos_plugin.serial"]
    assert "/dev/does-not-exist" in record.getMessage()
    assert "No such file" in record.getMessage()


@pytest.mark.parametrize("url", ["loop://", "pty"], ids=["loop", "pty"])
def test_open_serial_opens_urls(url: str, echo: EchoSimulator) -> None:
    port = open_serial(echo.port if url == "pty" else url, timeout=1)
    assert port is not None and port.is_open
    port.write(b"ECHO 3\r\n")
    assert port.readline() == (b"3\r\n" if url == "pty" else b"ECHO 3\r\n")
    port.close()


def test_open_failure_is_a_clear_error() -> None:
    dev = SerialDevice("/dev/does-not-exist", name="ghost")
    with pytest.raises(SerialDeviceError, match="ghost: cannot open /dev/does-not-exist"):
        dev.open()
    assert not dev.connected


def test_reopen_after_close(echo: EchoSimulator) -> None:
    dev = SerialDevice(echo.port)
    for n in range(2):
        with dev:
            assert dev.query(f"ECHO {n}") == str(n)
        with pytest.raises(SerialDeviceError, match="is closed"):
            dev.query("ECHO 9")


def test_query_inside_on_line_is_refused_not_deadlocked(echo: EchoSimulator) -> None:
    errors: list[Exception] = []

    def callback(line: str) -> None:
        try:
            dev.query("ECHO 1", timeout=5.0)
        except SerialDeviceError as exc:
            errors.append(exc)

    with SerialDevice(echo.port, on_line=callback) as dev:
        echo.emit("HELLO")
        assert wait_until(lambda: len(errors) == 1)
        assert "would deadlock" in str(errors[0])


def test_query_before_open_fails_fast() -> None:
    dev = SerialDevice("loop://", name="idle", open=False)
    with pytest.raises(SerialDeviceError, match="idle: cannot send 'X': loop:// is not open yet"):
        dev.query("X")


# -- request/reply and unsolicited lines ----------------------------------------------------
@pytest.mark.parametrize("kind", ["pty", "loop"], ids=["pty-sim", "loop-url"])
def test_query_round_trip(kind: str, echo: EchoSimulator) -> None:
    url, expected = (echo.port, "42") if kind == "pty" else ("loop://", "ECHO 42")
    with SerialDevice(url, timeout=1.0) as dev:
        assert dev.connected
        assert dev.query("ECHO 42") == expected
        assert dev.query("ECHO 43") == expected[:-1] + "3"
    assert not dev.connected


def test_bare_newline_terminated_replies_are_lines(echo: EchoSimulator) -> None:
    echo.terminator = b"\n"
    with SerialDevice(echo.port) as dev:
        assert dev.query("ECHO 1") == "1"


@pytest.mark.parametrize("kind", ["pty", "loop"], ids=["pty-sim", "loop-url"])
def test_unsolicited_lines_reach_on_line(kind: str, echo: EchoSimulator) -> None:
    got: list[str] = []
    with SerialDevice(echo.port if kind == "pty" else "loop://", on_line=got.append) as dev:
        for n in range(3):
            if kind == "pty":
                echo.emit(f"EVENT {n}")
            else:
                dev.write(f"EVENT {n}")  # loop:// sends it straight back, unrequested
        assert wait_until(lambda: len(got) == 3)
        assert got == ["EVENT 0", "EVENT 1", "EVENT 2"]
        assert dev.lines_received == 3


def test_raising_callback_is_logged_and_reader_survives(echo: EchoSimulator,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    got: list[str] = []

    def callback(line: str) -> None:
        got.append(line)
        if line == "BOOM":
            raise RuntimeError("callback failure")

    with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.serial"):
        with SerialDevice(echo.port, on_line=callback, name="cb") as dev:
            echo.emit("BOOM")
            echo.emit("AFTER")
            assert wait_until(lambda: got == ["BOOM", "AFTER"])
            assert dev.query("ECHO 5") == "5" and dev.connected
    assert any("on_line callback raised" in r.getMessage() and r.exc_info for r in caplog.records)


def test_twenty_threads_never_interleave() -> None:
    """Each reply must match its own request and the device must never see mixed commands."""
    errors: list[str] = []
    with EchoSimulator(delay=0.001) as sim, SerialDevice(sim.port, timeout=5.0) as dev:
        start = threading.Barrier(20)

        def worker(base: int) -> None:
            start.wait()
            for i in range(10):
                n = base * 100 + i
                reply = dev.query(f"ECHO {n}")
                if reply != str(n):
                    errors.append(f"ECHO {n} -> {reply}")

        threads = [threading.Thread(target=worker, args=(b,)) for b in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert len(sim.log) == 200 and all(reply == cmd.split()[1] for cmd, reply in sim.log)
        assert sim.garbled == 0
        assert sim.overlapped == 0


def test_query_timeout_names_the_command(slow_echo: EchoSimulator) -> None:
    with SerialDevice(slow_echo.port, name="slow") as dev:
        started = time.monotonic()
        with pytest.raises(SerialDeviceTimeout, match="slow: no reply to 'ECHO 1'") as info:
            dev.query("ECHO 1", timeout=0.1)
        assert time.monotonic() - started < 0.45  # did not wait for the late reply
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, SerialDeviceError)


# -- losing the port ---------------------------------------------------------------------------
def test_port_lost_mid_query_fails_fast_then_reconnects(slow_echo: EchoSimulator) -> None:
    outcome: list[BaseException] = []
    with SerialDevice(slow_echo.port, timeout=10.0, name="bench-echo") as dev:
        def ask() -> None:
            try:
                dev.query("ECHO 1")
            except BaseException as exc:  # recorded for the main thread
                outcome.append(exc)

        asker = threading.Thread(target=ask)
        asker.start()
        assert wait_until(lambda: slow_echo.commands == 1)
        lost_at = time.monotonic()
        slow_echo.drop()
        asker.join(5.0)
        assert not asker.is_alive(), "query hung after the port vanished"
        assert time.monotonic() - lost_at < 3.0  # far below the 10 s query timeout
        [error] = outcome
        assert isinstance(error, SerialDeviceError) and not isinstance(error, TimeoutError)
        assert "bench-echo" in str(error) and slow_echo.port in str(error) and "ECHO 1" in str(error)
        assert wait_until(lambda: not dev.connected)
        with pytest.raises(SerialDeviceError, match="disconnected"):
            dev.query("ECHO 2", timeout=5.0)

        slow_echo.delay = 0.0
        slow_echo.restore()
        assert wait_until(lambda: dev.connected, 5.0), "did not reconnect to the same URL"
        assert dev.query("ECHO 3") == "3"


def reconnecting(dev: SerialDevice) -> bool:
    """Whether a thread reopens ``dev``'s port."""
    return any(t.name.endswith(f"SerialDevice[{dev.name}]-reconnect") for t in threading.enumerate())


def test_the_device_threads_are_the_framework_s(echo: EchoSimulator, manual_clock: RecordingClock) -> None:
    """The reader and the reconnect thread carry the framework's prefix, so ``running_threads()`` (shutdown
    accounting, the leak check) counts them; none is left after close."""
    def mine() -> list[str]:
        return sorted(t.name for t in running_threads() if "[threads-echo]" in t.name)

    with SerialDevice(echo.port, name="threads-echo", clock=manual_clock) as dev:
        assert mine() == ["ivoryos_plugin-SerialDevice[threads-echo]-reader"]
        echo.drop()
        assert wait_until(lambda: not dev.connected)
        assert wait_until(lambda: "ivoryos_plugin-SerialDevice[threads-echo]-reconnect" in mine())
    assert wait_until(lambda: mine() == []), mine()


def test_reconnect_attempts_back_off_on_the_clock(echo: EchoSimulator, manual_clock: RecordingClock) -> None:
    with SerialDevice(echo.port, name="bench-echo", clock=manual_clock) as dev:
        echo.drop()
        assert wait_until(lambda: not dev.connected)
        for attempt in range(1, 9):  # each attempt fails (no port) and waits longer
            manual_clock.step()
            assert wait_until(lambda: len(manual_clock.waited) == attempt + 1, 5), f"attempt {attempt} not made"
        assert manual_clock.waited == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0], \
            "not 0.05 s doubled up to 2 s between attempts"
        with pytest.raises(SerialDeviceError, match="bench-echo.*disconnected"):
            dev.query("ECHO 0")
        echo.restore()
        assert manual_clock.wait_for_waiters(1)
        assert not dev.connected, "reconnected before its delay"
        manual_clock.advance(2.0)
        assert wait_until(lambda: dev.connected, 5.0), "did not reconnect after its delay"
        assert dev.query("ECHO 1") == "1"
        assert wait_until(lambda: not reconnecting(dev), 5.0), "the reconnect thread outlived its success"


def test_without_reconnect_the_device_stays_down(echo: EchoSimulator) -> None:
    with SerialDevice(echo.port, reconnect=False) as dev:
        echo.drop()
        assert wait_until(lambda: not dev.connected)
        echo.restore()
        assert not reconnecting(dev), "a thread reopens the port of a device without reconnect"
        assert not dev.connected
        with pytest.raises(SerialDeviceError, match="disconnected"):
            dev.query("ECHO 1")


@pytest.mark.parametrize("scenario", ["idle", "after-reconnect", "while-reconnecting", "lost-mid-query",
                                      "closed-mid-query"])
def test_close_leaves_no_threads(scenario: str, echo: EchoSimulator, manual_clock: RecordingClock) -> None:
    def client_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if "PtySimulator[" not in t.name}

    before = client_threads()
    clock: Optional[RecordingClock] = manual_clock if scenario == "while-reconnecting" else None
    dev = SerialDevice(echo.port, timeout=10.0, clock=clock)
    dev.open()
    assert len(client_threads() - before) == 1  # the reader
    assert dev.query("ECHO 1") == "1"
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            dev.query("ECHO 3")
        except BaseException as exc:  # recorded for the main thread
            errors.append(exc)

    asker = threading.Thread(target=ask)
    if scenario == "after-reconnect":
        echo.drop()
        assert wait_until(lambda: not dev.connected)
        echo.restore()
        assert wait_until(lambda: dev.connected)
        assert dev.query("ECHO 2") == "2"
    elif scenario == "while-reconnecting":
        dev.backoff_max = 10.0
        echo.drop()
        assert wait_until(lambda: not dev.connected)
        for attempt in range(1, 4):  # backoff has grown past 0.2 s
            manual_clock.step()
            assert wait_until(lambda: len(manual_clock.waited) == attempt + 1, 5)
        assert manual_clock.waited[-1] == 0.4 and manual_clock.wait_for_waiters(1)
    elif scenario.endswith("mid-query"):
        echo.delay = 10.0
        asker.start()
        assert wait_until(lambda: echo.commands == 2)
        if scenario == "lost-mid-query":
            echo.drop()
            asker.join(5.0)
    started = time.monotonic()
    dev.close()
    assert time.monotonic() - started < 3.0  # no waiting out a 10 s backoff or query timeout
    if asker.ident is not None:
        asker.join(5.0)
        [error] = errors
        assert isinstance(error, SerialDeviceError) and not isinstance(error, TimeoutError)
        assert ("connection lost" if scenario == "lost-mid-query" else "device closed") in str(error)
    assert client_threads() == before
    assert not dev.connected
