"""Tests for the pty instrument simulators and their drivers (real ptys, real threads)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Iterator

import pytest
import serial
from support import wait_until

from ivoryos_plugin import sim as simmod
from ivoryos_plugin.sim import (
    Balance,
    BalanceSimulator,
    EchoSimulator,
    Hotplate,
    HotplateSimulator,
    InstrumentError,
    PtySimulator,
    Pump,
    PumpSimulator,
)


def _ask(port: serial.Serial, command: str, eol: bytes = b"\r\n") -> str:
    """One raw pyserial exchange."""
    port.write(command.encode() + eol)
    line = port.readline()
    assert line.endswith(b"\r\n"), f"no reply to {command!r}: {line!r}"
    return line[:-2].decode()


@pytest.fixture
def balance_sim() -> Iterator[BalanceSimulator]:
    """A balance that settles in 0.5 s, with seeded noise."""
    with BalanceSimulator(settle_time=0.5, seed=1) as sim:
        yield sim


# -- the pty base ------------------------------------------------------------------------------------
def test_port_is_a_stable_symlink_that_drops_and_comes_back() -> None:
    with EchoSimulator() as sim:
        assert os.path.islink(sim.port) and os.path.realpath(sim.port) == sim.device
        with serial.Serial(sim.port, timeout=1) as port:
            assert _ask(port, "ECHO 1") == "1"
            sim.drop()
            assert not os.path.exists(sim.port) and sim.device is None
            with pytest.raises(serial.SerialException):
                port.write(b"ECHO 2\r\n")
                port.read(1)
        with pytest.raises(serial.SerialException):
            serial.Serial(sim.port)
        sim.restore()
        with serial.Serial(sim.port, timeout=1) as port:
            assert _ask(port, "ECHO 3") == "3"
        path = sim.port
    assert not os.path.exists(os.path.dirname(path))
    assert list(sim.log) == [("ECHO 1", "1"), ("ECHO 3", "3")]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_commands_accept_both_terminators(eol: bytes) -> None:
    with EchoSimulator() as sim, serial.Serial(sim.port, timeout=1) as port:
        assert _ask(port, "ECHO 7", eol) == "7"
        assert _ask(port, "ID?", eol) == "SIM-ECHO"


def test_garbled_and_overlapped_commands_are_counted() -> None:
    with EchoSimulator(delay=0.05) as sim, serial.Serial(sim.port, timeout=1) as port:
        assert _ask(port, "ECHO 1ECHO 2") == "ERR unknown command"
        assert _ask(port, "ECHO \x01") == "ERR unknown command"
        assert sim.garbled == 2 and sim.overlapped == 0
        port.write(b"ECHO 3\r\nECHO 4\r\n")  # pipelined: the second arrives before the first reply
        assert port.readline() == b"3\r\n" and port.readline() == b"4\r\n"
        assert sim.overlapped == 1 and sim.commands == 4


def test_stream_emits_numbered_lines_without_loss_when_read() -> None:
    with EchoSimulator() as sim, serial.Serial(sim.port, timeout=1) as port:
        sim.stream(500, prefix="N")
        numbers = [int(port.readline().split()[1]) for _ in range(100)]
        sim.stream(None)
        assert numbers == list(range(100))
        assert sim.dropped == 0 and sim.streamed >= 100


def test_stream_drops_lines_when_nobody_reads() -> None:
    with EchoSimulator(tx_buffer=64) as sim:
        sim.stream(20000)
        assert wait_until(lambda: sim.dropped > 0, 5.0)  # the pty buffer filled up
        sim.stream(None)


# -- instrument protocols (raw pyserial) ------------------------------------------------------------
PROTOCOL_CASES = [
    pytest.param(BalanceSimulator, "ID?", r"SIM-BALANCE", id="balance-id"),
    pytest.param(BalanceSimulator, "W?", r"W -?\d+\.\d{3} g [SU]", id="balance-weight"),
    pytest.param(BalanceSimulator, "T", r"OK", id="balance-tare"),
    pytest.param(BalanceSimulator, "U mg", r"OK", id="balance-unit"),
    pytest.param(BalanceSimulator, "U lb", r"ERR unknown unit", id="balance-bad-unit"),
    pytest.param(BalanceSimulator, "U?", r"g", id="balance-unit-query"),
    pytest.param(BalanceSimulator, "XYZ", r"ERR unknown command", id="balance-unknown"),
    pytest.param(PumpSimulator, "ID?", r"SIM-PUMP", id="pump-id"),
    pytest.param(PumpSimulator, "RATE 5", r"OK", id="pump-rate"),
    pytest.param(PumpSimulator, "RATE 500", r"ERR rate out of range", id="pump-bad-rate"),
    pytest.param(PumpSimulator, "RATE?", r"10\.000", id="pump-rate-query"),
    pytest.param(PumpSimulator, "DISPENSE 0.5", r"OK", id="pump-dispense"),
    pytest.param(PumpSimulator, "VOL?", r"0\.000", id="pump-volume"),
    pytest.param(PumpSimulator, "STOP", r"OK", id="pump-stop"),
    pytest.param(PumpSimulator, "DISPENSE lots", r"ERR unknown command", id="pump-malformed"),
    pytest.param(HotplateSimulator, "ID?", r"SIM-HOTPLATE", id="hotplate-id"),
    pytest.param(HotplateSimulator, "TEMP 60", r"OK", id="hotplate-temp"),
    pytest.param(HotplateSimulator, "TEMP 900", r"ERR temperature out of range", id="hotplate-bad-temp"),
    pytest.param(HotplateSimulator, "TEMP?", r"25\.0", id="hotplate-temp-query"),
    pytest.param(HotplateSimulator, "STIR 300", r"OK", id="hotplate-stir"),
    pytest.param(HotplateSimulator, "STIR?", r"0", id="hotplate-stir-query"),
]


@pytest.mark.parametrize("cls, command, reply", PROTOCOL_CASES)
def test_protocol(cls: type[PtySimulator], command: str, reply: str) -> None:
    with cls() as sim, serial.Serial(sim.port, timeout=1) as port:
        assert re.fullmatch(reply, _ask(port, command))
        assert list(sim.log) == [(command, sim.log[0][1])]
        assert sim.garbled == (1 if reply == "ERR unknown command" else 0)


def test_balance_protocol_tare_unit_and_stability(balance_sim: BalanceSimulator) -> None:
    with serial.Serial(balance_sim.port, timeout=1) as port:
        balance_sim.load(12.5)
        assert _ask(port, "W?").endswith(" U")
        assert wait_until(lambda: _ask(port, "W?").endswith(" S"))
        grams = float(_ask(port, "W?").split()[1])
        assert grams == pytest.approx(12.5, abs=0.005)
        assert _ask(port, "T") == "OK"
        assert float(_ask(port, "W?").split()[1]) == pytest.approx(0.0, abs=0.005)
        balance_sim.load(14.5)
        assert wait_until(lambda: _ask(port, "W?").endswith(" S"))
        assert _ask(port, "U mg") == "OK" and _ask(port, "U?") == "mg"
        value, unit = _ask(port, "W?").split()[1:3]
        assert unit == "mg" and float(value) == pytest.approx(2000.0, abs=5.0)


# -- drivers --------------------------------------------------------------------------------------
def test_balance_driver(balance_sim: BalanceSimulator) -> None:
    with Balance(balance_sim.port) as balance:
        assert balance.identify() == "SIM-BALANCE"
        balance_sim.load(20.0)
        assert balance.stable is False
        assert wait_until(lambda: balance.stable)
        assert balance.weigh() == pytest.approx(20.0, abs=0.005)
        balance.tare()
        assert abs(balance.weigh()) < 0.005
        balance_sim.load(21.0)
        assert wait_until(lambda: balance.stable)
        balance.set_unit("kg")
        assert balance.unit == "kg"
        reading = balance.read()
        assert reading["unit"] == "kg" and reading["stable"] is True
        assert reading["value"] == pytest.approx(0.001, abs=0.0005)
        assert reading["grams"] == pytest.approx(1.0, abs=0.5)
        with pytest.raises(ValueError):
            balance.set_unit("lb")


def test_pump_driver() -> None:
    with PumpSimulator(time_scale=0.01, max_delay=0.3) as sim, Pump(sim.port) as pump:
        assert pump.identify() == "SIM-PUMP"
        pump.set_rate(20.0)
        assert pump.rate() == 20.0
        started = time.monotonic()
        assert pump.dispense(2.0) == 2.0  # 2 ml at 20 ml/min = 6 s, scaled to 0.06 s
        quick = time.monotonic() - started
        started = time.monotonic()
        pump.dispense(100.0)              # 300 s scaled to 3 s, capped at 0.3 s
        capped = time.monotonic() - started
        assert quick >= 0.06 and 0.3 <= capped < 2.5  # uncapped would be 3 s
        assert pump.dispensed() == pytest.approx(102.0)
        pump.stop()
        with pytest.raises(InstrumentError, match="rate out of range"):
            pump.set_rate(0)
        assert sim.garbled == 0 and sim.overlapped == 0


def test_hotplate_driver() -> None:
    with HotplateSimulator(tau=0.3) as sim, Hotplate(sim.port) as plate:
        assert plate.identify() == "SIM-HOTPLATE"
        assert plate.temperature() == pytest.approx(25.0)
        plate.set_temperature(80.0)
        assert plate.setpoint() == 80.0
        first = plate.temperature()
        assert wait_until(lambda: plate.temperature() > 79.0, 6.0)
        assert 25.0 <= first < 79.0
        plate.set_stirring(450)
        assert plate.stirring() == 450
        with pytest.raises(InstrumentError, match="out of range"):
            plate.set_stirring(5000)


def test_driver_reconnects_after_the_instrument_restarts(balance_sim: BalanceSimulator) -> None:
    with Balance(balance_sim.port) as balance:
        balance_sim.drop()
        assert wait_until(lambda: not balance._dev.connected)
        balance_sim.restore()
        assert wait_until(lambda: balance._dev.connected)
        assert balance.identify() == "SIM-BALANCE"


def test_start_all_and_stop_all() -> None:
    sims = simmod.start_all()
    try:
        assert set(sims) == {"balance", "pump", "hotplate"}
        assert isinstance(sims["balance"], BalanceSimulator)
        with Pump(sims["pump"].port) as pump, Hotplate(sims["hotplate"].port) as plate:
            assert pump.identify() == "SIM-PUMP" and plate.identify() == "SIM-HOTPLATE"
    finally:
        simmod.stop_all()
    assert not any(os.path.exists(s.port) for s in sims.values())
    assert not any(s.running for s in sims.values())


# ------------------------------------------------------------------ folders left by a crash
SIM_PROCESS = """
import sys, time
from ivoryos_plugin.sim import EchoSimulator
sim = EchoSimulator("left").start()
print(sim.port, flush=True)
time.sleep(float(sys.argv[1]))
sim.stop()
"""


def start_sim_process(tmp_path, seconds: float) -> "tuple[subprocess.Popen, str]":
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", SIM_PROCESS, str(seconds)], env=env, stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    assert port, "the simulator process did not start"
    return proc, os.path.dirname(port)


def test_a_folder_left_by_a_killed_simulator_is_gone_after_the_next_start(tmp_path) -> None:
    killed, killed_dir = start_sim_process(tmp_path, 60)
    alive, alive_dir = start_sim_process(tmp_path, 60)
    try:
        killed.kill()
        killed.wait(10)
        assert os.path.isdir(killed_dir), "SIGKILL left no folder: nothing to test"
        not_ours = tmp_path / "ivoryos-sim-notapid-x"  # a folder of another shape is left alone
        not_ours.mkdir()
        finished, finished_dir = start_sim_process(tmp_path, 0)  # the next start
        assert finished.wait(20) == 0
        finished.stdout.close()
        assert not os.path.exists(killed_dir), "the killed simulator's folder is still there"
        assert os.path.isdir(alive_dir), "a running simulator's folder was removed"
        assert not os.path.exists(finished_dir) and not_ours.is_dir()
    finally:
        for proc in (killed, alive):
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
