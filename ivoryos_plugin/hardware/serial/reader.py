"""The reader thread of a :class:`~.device.SerialDevice` and the slot a query waits on.

:class:`_Reader` reads an open port (plain posix ports with ``select`` and ``os.read`` of everything
available, other pyserial ports with ``read``), splits the bytes into lines, hands each to the
device, and reports a lost port; :class:`_Pending` is one query waiting for its reply line."""
from __future__ import annotations

import logging
import os
import select
import threading
from typing import TYPE_CHECKING, Optional

import serial

from ...core.clock import THREAD_PREFIX

if TYPE_CHECKING:
    from .device import SerialDevice, SerialDeviceError

logger = logging.getLogger("ivoryos_plugin.serial")

# Plain posix ports (device paths, ptys) are read with select + os.read of everything available.
_POSIX_PORTS: tuple[type, ...] = tuple(filter(None, [getattr(getattr(serial, "serialposix", None), "Serial", None)]))
_MAX_LINE = 1 << 20  # a partial line longer than this is discarded (device without terminators)


class _Pending:
    """A query waiting for its reply; resolved once (under the device lock) with a line or an error."""

    __slots__ = ("command", "reply", "error", "resolved", "done")

    def __init__(self, command: str) -> None:
        """Create an unresolved slot; ``done`` is a held lock, released on resolution.

        :param command: the command sent.
        """
        self.command, self.reply, self.resolved = command, "", False
        self.error: Optional[SerialDeviceError] = None
        self.done = threading.Lock()  # a bare lock is CPython's cheapest cross-thread wake-up
        self.done.acquire()

    def resolve(self, reply: str = "", error: Optional[SerialDeviceError] = None) -> None:
        """Deliver the reply line, or the error to raise instead, and wake the waiter.

        :param reply: the reply line.
        :param error: the error for the waiting thread.
        """
        if not self.resolved:
            self.resolved, self.reply, self.error = True, reply, error
            self.done.release()


class _Reader(threading.Thread):
    """Reads a port, splits lines and hands them to the device; reports a lost port.

    A daemon named ``ivoryos_plugin-SerialDevice[<name>]-reader``: the framework's prefix
    (:data:`~ivoryos_plugin.core.clock.THREAD_PREFIX`), so
    :func:`~ivoryos_plugin.core.clock.running_threads` counts it, as it counts the reconnect thread."""

    def __init__(self, device: SerialDevice, port: serial.SerialBase) -> None:
        """Prepare (not start) a reader.

        :param device: the owner, receiving lines and loss reports.
        :param port: the open port to read.
        """
        super().__init__(name=f"{THREAD_PREFIX}SerialDevice[{device.name}]-reader", daemon=True)
        self._device, self._port = device, port
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._buf = bytearray()
        self._sep = device.terminator[-1:]
        self._strip = device.terminator[:-1]
        posix = isinstance(port, _POSIX_PORTS)  # else pyserial's read() and cancel_read()
        self._fd: int = port.fileno() if posix else -1
        self._wake: Optional[tuple[int, int]] = os.pipe() if posix else None  # wakes select on stop

    def stop(self) -> None:
        """Ask the loop to end, wake it, join it (unless called from it) and release the pipe."""
        with self._stop_lock:
            self._stopping = True
            if self._wake is not None:
                os.write(self._wake[1], b"\0")
            elif hasattr(self._port, "cancel_read"):
                self._port.cancel_read()
        if self is not threading.current_thread() and self.ident is not None:
            self.join(5.0)
        with self._stop_lock:
            if self._wake is not None and (self is threading.current_thread() or not self.is_alive()):
                for fd in self._wake:
                    os.close(fd)
                self._wake = None

    def run(self) -> None:
        """Read until stopped or until the port fails; a failure is reported to the device."""
        error: Optional[BaseException] = None
        try:
            while not self._stopping:
                data = self._read()
                if data:
                    self._feed(data)
        except Exception as exc:  # read errors of any URL type mean "port lost"
            error = exc
        if not self._stopping:
            self._device._handle_loss(self._port, error or serial.SerialException("port closed"))

    def _read(self) -> bytes:
        """Block for the next chunk of input; ``b""`` when woken by :meth:`stop` or a timeout."""
        if self._wake is None:
            return bytes(self._port.read(self._port.in_waiting or 1))
        ready, _, _ = select.select([self._fd, self._wake[0]], [], [])
        if self._wake[0] in ready:
            return b""
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        if not data:
            raise serial.SerialException("end of file: the device was unplugged or its other end closed")
        return data

    def _feed(self, data: bytes) -> None:
        """Split received bytes into lines and dispatch complete ones.

        :param data: the bytes just read.
        """
        buf = self._buf
        buf += data
        if self._sep not in data:
            if len(buf) > _MAX_LINE:
                logger.warning("%s: discarding %d bytes without a line terminator", self._device.name, len(buf))
                del buf[:]
            return
        parts = buf.split(self._sep)
        self._buf = parts.pop()
        strip, enc, dispatch = self._strip, self._device.encoding, self._device._dispatch
        for part in parts:
            if strip and part.endswith(strip):
                del part[-len(strip):]
            dispatch(part.decode(enc, "replace"))
