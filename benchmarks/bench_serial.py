"""Benchmark SerialDevice against raw pyserial on a pty simulator (loopback only, < 60 s).

1. Round trips per second of ``SerialDevice.query`` versus raw ``write`` + ``readline`` on the
   same echo simulator, interleaved in rounds (alternating which goes first); the figure is the
   median over rounds of the per-round ratio (robust to machine-load drift between rounds).
2. Lossless reading of an unsolicited numbered line stream: step the rate up until raw pyserial
   (a ``readline`` loop) loses lines, then check that ``SerialDevice``'s ``on_line`` receives
   every line at the highest rate raw pyserial sustained.

Run: ``python benchmarks/bench_serial.py``. Prints the raw numbers, then one ``FIGURE`` line per
figure, and exits 1 when a figure misses its target.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import serial  # noqa: E402

from ivoryos_plugin.hardware.serial import SerialDevice  # noqa: E402
from ivoryos_plugin.sim import EchoSimulator  # noqa: E402

ROUNDS = 9
ROUND_SECONDS = 0.5  # each side of a round runs this long (bounded even on a loaded machine)
STREAM_RATES = [1000, 2000, 5000, 10000, 20000, 40000]
STREAM_SECONDS = 2.0
BUDGET_SECONDS = 45.0  # stop stepping stream rates past this
QUERY_TARGET = 0.90
LOSS_TARGET = 0


def raw_round_trips(port: str, seconds: float) -> float:
    """Raw pyserial: round trips per second with ``write`` + ``readline``.

    :param port: the simulator's port.
    :param seconds: how long to run.
    """
    with serial.Serial(port, timeout=1.0) as ser:
        ser.write(b"ECHO -1\r\n")
        ser.readline()
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            ser.write(b"ECHO %d\r\n" % n)
            if ser.readline() != b"%d\r\n" % n:
                raise AssertionError(f"raw: bad reply to ECHO {n}")
            n += 1
        return n / (time.perf_counter() - started)


def device_round_trips(port: str, seconds: float) -> float:
    """SerialDevice: round trips per second with ``query``.

    :param port: the simulator's port.
    :param seconds: how long to run.
    """
    with SerialDevice(port, timeout=1.0) as dev:
        dev.query("ECHO -1")
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            if dev.query(f"ECHO {n}") != str(n):
                raise AssertionError(f"device: bad reply to ECHO {n}")
            n += 1
        return n / (time.perf_counter() - started)


def bench_queries(sim: EchoSimulator) -> tuple[float, float, float]:
    """Interleave raw and device rounds; return the median rates (raw, device) and pair ratio.

    :param sim: a running echo simulator.
    """
    raw: list[float] = []
    dev: list[float] = []
    for rnd in range(ROUNDS):
        order: list[tuple[Callable[[str, float], float], list[float]]] = [
            (raw_round_trips, raw), (device_round_trips, dev)]
        for bench, results in (order if rnd % 2 == 0 else order[::-1]):
            results.append(bench(sim.port, ROUND_SECONDS))
        print(f"round {rnd + 1}: raw {raw[-1]:8.0f} q/s   SerialDevice {dev[-1]:8.0f} q/s"
              f"   ratio {dev[-1] / raw[-1]:.3f}")
    ratio = statistics.median(d / r for d, r in zip(dev, raw))
    return statistics.median(raw), statistics.median(dev), ratio


class _Tally:
    """Counts in-order received stream numbers and gaps."""

    def __init__(self) -> None:
        """Start empty."""
        self.received = 0
        self.next = 0
        self.gaps = 0
        self.last_at = time.monotonic()

    def add(self, line: str) -> None:
        """Account for one received stream line.

        :param line: ``DATA <n>``.
        """
        n = int(line.split()[1])
        if n != self.next:
            self.gaps += 1
        self.next = n + 1
        self.received += 1
        self.last_at = time.monotonic()


def raw_stream(sim: EchoSimulator, rate: int) -> tuple[int, int]:
    """Read the stream at ``rate`` with a raw ``readline`` loop; return (lines lost, lines sent).

    :param sim: a running simulator.
    :param rate: lines per second.
    """
    tally = _Tally()
    with serial.Serial(sim.port, timeout=0.3) as ser:
        sim.stream(rate)
        stop_at = time.monotonic() + STREAM_SECONDS
        while True:
            if sim.streamed and time.monotonic() >= stop_at:
                sim.stream(None)
                stop_at = float("inf")
            line = ser.readline()
            if not line:
                break  # stream stopped and drained
            tally.add(line.decode())
    return sim.streamed - tally.received, sim.streamed


def device_stream(sim: EchoSimulator, rate: int) -> tuple[int, int]:
    """Receive the stream at ``rate`` through ``SerialDevice(on_line=...)``; return (lost, sent).

    :param sim: a running simulator.
    :param rate: lines per second.
    """
    tally = _Tally()
    with SerialDevice(sim.port, on_line=tally.add):
        sim.stream(rate)
        time.sleep(STREAM_SECONDS)
        sim.stream(None)
        while time.monotonic() - tally.last_at < 0.3:
            time.sleep(0.05)
    return sim.streamed - tally.received, sim.streamed


def main() -> int:
    """Run both benchmarks, print the figures and return the exit status."""
    began = time.monotonic()
    with EchoSimulator(name="bench-echo") as sim:
        raw_qps, dev_qps, ratio = bench_queries(sim)
        print(f"median: raw {raw_qps:.0f} q/s, SerialDevice {dev_qps:.0f} q/s; median round ratio {ratio:.3f}")

        sustained, failed_at = 0, 0
        for rate in STREAM_RATES:
            lost, sent = raw_stream(sim, rate)
            print(f"raw pyserial stream at {rate:6d} lines/s: {sent} sent, {lost} lost")
            if lost:
                failed_at = rate
                break
            sustained = rate
            if time.monotonic() - began > BUDGET_SECONDS:
                print("time budget reached; not stepping further")
                break
        if not sustained:
            print("raw pyserial lost lines even at the lowest rate; checking SerialDevice there")
        check_rate = sustained or STREAM_RATES[0]
        dev_lost, dev_sent = device_stream(sim, check_rate)
        print(f"SerialDevice on_line at {check_rate:6d} lines/s: {dev_sent} sent, {dev_lost} lost")
        if failed_at:  # context only: how SerialDevice fares where raw pyserial failed
            lost, sent = device_stream(sim, failed_at)
            print(f"(info) SerialDevice on_line at {failed_at:6d} lines/s: {sent} sent, {lost} lost")
    print(f"elapsed {time.monotonic() - began:.1f} s")

    figures = [
        ("serial_query_ratio", f"{ratio:.2f}", ratio >= QUERY_TARGET, f"target>={QUERY_TARGET:.2f}"),
        ("serial_stream_loss_lines", str(dev_lost), dev_lost <= LOSS_TARGET, f"target<={LOSS_TARGET}"),
    ]
    for name, value, ok, target in figures:
        print(f"FIGURE {name} {value} {target} {'ok' if ok else 'MISS'}")
    return 0 if all(ok for _, _, ok, _ in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
