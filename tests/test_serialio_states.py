"""SerialDevice opens at construction (as pyserial's Serial does), and every failure says which
state the device is in: not opened yet, closed by the program, lost (reconnecting or not),
timed out, in use by another program. Real ptys (``os.openpty`` and the pty simulators)."""
from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from typing import Iterator

import pytest
from support import wait_until

from ivoryos_plugin.hardware.serial import SerialDevice, SerialDeviceError, SerialDeviceTimeout
from ivoryos_plugin.sim import EchoSimulator


class PtyInstrument:
    """A bare ``os.openpty`` instrument answering ``OK <command>`` to each line; :meth:`hang_up`
    closes its end of the pty (as an instrument program that exits)."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing
        self.port = os.ttyname(self._slave)  # the slave stays open here until hang_up: a pty needs one holder
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="PtyInstrument", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buf = b""
        while True:
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            buf += os.read(self._master, 4096)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                os.write(self._master, b"OK " + line.rstrip(b"\r") + b"\r\n")

    def hang_up(self) -> None:
        """Stop answering and close the instrument's end of the pty."""
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join(5.0)
            for fd in (self._master, self._slave, self._wake_r, self._wake_w):
                os.close(fd)


@pytest.fixture
def instrument() -> Iterator[PtyInstrument]:
    """A bare pty instrument, hung up after the test."""
    inst = PtyInstrument()
    yield inst
    inst.hang_up()


@pytest.fixture
def echo() -> Iterator[EchoSimulator]:
    """A running echo simulator (``ECHO <n>`` -> ``<n>``)."""
    with EchoSimulator() as sim:
        yield sim


def own_threads() -> set[threading.Thread]:
    """Threads other than the simulators' and the bare instrument's."""
    return {t for t in threading.enumerate() if "PtySimulator[" not in t.name and t.name != "PtyInstrument"}


# -- ready when constructed -------------------------------------------------------------------------
def test_one_line_use(instrument: PtyInstrument) -> None:
    dev = SerialDevice(instrument.port, baudrate=9600, timeout=1)
    assert dev.query("W") == "OK W"
    dev.close()


def test_simulator_answers_right_after_construction_and_with_still_works(echo: EchoSimulator) -> None:
    before = own_threads()
    dev = SerialDevice(echo.port)
    assert dev.connected and dev.query("ECHO 1") == "1"
    dev.open()  # already open: a no-op, as the drivers call it
    assert len(own_threads() - before) == 1  # one reader, not two
    dev.close()
    with SerialDevice(echo.port) as dev:
        assert dev.query("ECHO 2") == "2"
    assert own_threads() == before


def test_unavailable_port_at_construction_starts_disconnected_and_connects_later(
        echo: EchoSimulator, caplog: pytest.LogCaptureFixture) -> None:
    before = own_threads()
    echo.drop()
    with caplog.at_level(logging.INFO, logger="ivoryos_plugin.serial"):
        dev = SerialDevice(echo.port, name="late")  # must not raise
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage().startswith(f"late: cannot open {echo.port}: no such port")
    assert "starting disconnected and retrying in the background" in record.getMessage()
    assert not dev.connected
    with pytest.raises(SerialDeviceError, match=r"late: cannot send 'ECHO 1': .* is not connected \(retrying in the "
                                                r"background since creation\): no such port; check the instrument"):
        dev.query("ECHO 1")
    with dev:  # reconnecting already: entering does not raise
        echo.restore()
        assert wait_until(lambda: dev.connected, 5.0)
        assert dev.query("ECHO 2") == "2"
    assert own_threads() == before


def test_unavailable_port_without_reconnect_raises_at_construction() -> None:
    before = own_threads()
    with pytest.raises(SerialDeviceError, match=r"ghost: cannot open /dev/does-not-exist: no such port; check "
                                                r"the instrument is plugged in and the path is right$"):
        SerialDevice("/dev/does-not-exist", reconnect=False, name="ghost")
    assert own_threads() == before


def test_a_bad_url_or_setting_raises_at_construction_even_with_reconnect() -> None:
    before = own_threads()
    with pytest.raises(SerialDeviceError, match="typo: cannot open nope://x: invalid URL, protocol 'nope' not known"):
        SerialDevice("nope://x", name="typo")
    with pytest.raises(SerialDeviceError, match="cannot open loop://: Not a valid baudrate: -5"):
        SerialDevice("loop://", baudrate=-5)
    assert own_threads() == before


# -- each failure says what happened ----------------------------------------------------------------
def test_not_opened_yet_says_how_to_open(instrument: PtyInstrument) -> None:
    dev = SerialDevice(instrument.port, open=False, name="dev")
    with pytest.raises(SerialDeviceError, match=r"dev: cannot send 'W': /dev/pts/\d+ is not open yet \(created "
                                                r"with open=False\); call open\(\) or use 'with' first"):
        dev.query("W")
    with dev:
        assert dev.query("W") == "OK W"


def test_no_url_is_pyserials_port_none(instrument: PtyInstrument) -> None:
    dev = SerialDevice(None)
    with pytest.raises(SerialDeviceError, match=r"cannot send 'W': no port is set yet; set url, then call open"):
        dev.query("W")
    dev.url = instrument.port
    dev.open()
    assert dev.query("W") == "OK W"
    dev.close()


def test_failed_open_is_reported_by_later_queries() -> None:
    dev = SerialDevice("/dev/does-not-exist", open=False, name="ghost")
    with pytest.raises(SerialDeviceError, match="ghost: cannot open /dev/does-not-exist: no such port"):
        dev.open()
    with pytest.raises(SerialDeviceError, match=r"ghost: cannot send 'X': /dev/does-not-exist is not open: the last "
                                                r"open\(\) failed: no such port; check .*, then call open\(\) again"):
        dev.query("X")


def test_closed_by_the_program(instrument: PtyInstrument) -> None:
    dev = SerialDevice(instrument.port, name="dev")
    dev.close()
    with pytest.raises(SerialDeviceError, match=r"dev: cannot send 'W': /dev/pts/\d+ is closed: device closed by "
                                                r"this program \(close\(\) was called\); call open\(\) to reuse it"):
        dev.query("W")


@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_peer_closing_between_two_queries_is_a_lost_connection(reconnect: bool) -> None:
    """Repeated, because the reader and the next write race for the dead port: every ordering
    must say "connection lost", never an internal detail of a closed file descriptor."""
    then = ("reconnecting in the background" if reconnect else
            r"not reconnecting \(reconnect=False\): call open\(\) once the instrument is back")
    before = own_threads()
    for _ in range(15):
        inst = PtyInstrument()
        dev = SerialDevice(inst.port, reconnect=reconnect, name="pty-inst")
        try:
            assert dev.query("W") == "OK W"
            inst.hang_up()
            with pytest.raises(SerialDeviceError, match=rf"pty-inst: (cannot send|no reply to) 'W': /dev/pts/\d+ "
                                                        rf"is disconnected: connection lost \(.+\); {then}") as info:
                dev.query("W")
            assert not isinstance(info.value, TimeoutError)
            assert "fileno" not in str(info.value) and "Bad file descriptor" not in str(info.value)
        finally:
            dev.close()
            inst.hang_up()
    assert own_threads() == before


def test_port_closed_under_a_write_reports_the_loss_not_the_closed_descriptor(instrument: PtyInstrument) -> None:
    """The ordering the loop above hits only sometimes, forced: the peer hangs up while a query is
    writing, and the reader closes the port before the write reaches it."""
    dev = SerialDevice(instrument.port, reconnect=False, name="pty-inst")
    port = dev._port
    assert port is not None
    write = port.write

    def late_write(data: bytes) -> int | None:
        instrument.hang_up()
        assert wait_until(lambda: not dev.connected)  # the reader saw the hang-up and closed the port
        return write(data)

    port.write = late_write
    with pytest.raises(SerialDeviceError, match=r"pty-inst: cannot send 'W': /dev/pts/\d+ is disconnected: connection "
                                                r"lost \(end of file: the device was unplugged or its other end "
                                                r"closed\); not reconnecting") as info:
        dev.query("W")
    assert "not open" not in str(info.value) and "fileno" not in str(info.value)
    dev.close()


def test_timed_out_says_after_how_long_and_which_command() -> None:
    with EchoSimulator(delay=0.5) as slow, SerialDevice(slow.port, name="slow") as dev:
        with pytest.raises(SerialDeviceTimeout, match=r"slow: no reply to 'ECHO 1' from .* within 0\.1 s \(timed "
                                                      r"out\); check the instrument is on and its baud rate \(9600\)"):
            dev.query("ECHO 1", timeout=0.1)
        time.sleep(0.5)  # let the late reply arrive
        asker = threading.Thread(target=dev.query, args=("ECHO 2", 5.0))
        asker.start()
        assert wait_until(lambda: slow.commands == 2)
        with pytest.raises(SerialDeviceTimeout, match=r"slow: 'ECHO 3' not sent: .* stayed busy with another "
                                                      r"thread's exchange for 0\.1 s \(timed out\)"):
            dev.query("ECHO 3", timeout=0.1)
        asker.join(5.0)


def test_in_use_by_another_program(echo: EchoSimulator, caplog: pytest.LogCaptureFixture) -> None:
    before = own_threads()
    holder = SerialDevice(echo.port, exclusive=True, name="holder")  # flock()s the pty
    with pytest.raises(SerialDeviceError, match=r"second: cannot open .*: the port is in use by another program; "
                                                r"close that program \(or its connection to the port\) first"):
        SerialDevice(echo.port, exclusive=True, reconnect=False, name="second")
    second = SerialDevice(echo.port, exclusive=True, name="second")  # reconnect=True: waits for the port
    assert not second.connected
    with pytest.raises(SerialDeviceError, match=r"second: cannot send 'ECHO 1': .* is not connected \(retrying in "
                                                r"the background since creation\): the port is in use by another"):
        second.query("ECHO 1")
    assert holder.query("ECHO 2") == "2"
    holder.close()
    assert wait_until(lambda: second.connected, 5.0)
    assert second.query("ECHO 3") == "3"
    second.close()
    assert own_threads() == before
