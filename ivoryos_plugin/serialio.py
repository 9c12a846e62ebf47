"""Thread-safe, self-healing line-oriented serial devices.

:func:`open_serial` opens any pyserial URL without raising; :class:`SerialDevice` wraps a
port with a reader thread, serialised request/reply exchanges (:meth:`SerialDevice.query`),
a callback for unsolicited lines and automatic reconnection when the port disappears.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any, Callable, Optional

import serial

__all__ = ["SerialDevice", "SerialDeviceError", "SerialDeviceTimeout", "open_serial"]

logger = logging.getLogger("ivoryos_plugin.serial")

LineCallback = Callable[[str], None]

# Plain posix ports (device paths, ptys) are read with select + os.read of everything available.
_POSIX_PORTS: tuple[type, ...] = tuple(filter(None, [getattr(getattr(serial, "serialposix", None), "Serial", None)]))
_MAX_LINE = 1 << 20  # a partial line longer than this is discarded (device without terminators)


class SerialDeviceError(Exception):
    """A serial exchange failed: the port is closed, vanished or could not be opened."""


class SerialDeviceTimeout(SerialDeviceError, TimeoutError):
    """No reply (or no free port) within the query timeout."""


def _open_url(url: str, kw: dict[str, Any]) -> tuple[Optional[serial.SerialBase], Optional[BaseException]]:
    """Open ``url`` with :func:`serial.serial_for_url`, returning ``(port, None)`` or ``(None, error)``.

    :param url: any pyserial URL or device path.
    :param kw: keyword arguments for :func:`serial.serial_for_url`.
    """
    try:
        return serial.serial_for_url(url, **kw), None
    except Exception as exc:  # SerialException, OSError, ValueError for bad URLs...
        return None, exc


def open_serial(url: str, **kw: Any) -> Optional[serial.SerialBase]:
    """Open a serial port by URL; never raises.

    :param url: a device path (``/dev/ttyUSB0``, a pty) or pyserial URL (``loop://``,
        ``socket://host:port``, ``rfc2217://host:port``).
    :param kw: passed to :func:`serial.serial_for_url` (``baudrate``, ``timeout``...).
    :returns: the open port, or ``None`` after logging the url and the error.
    """
    port, exc = _open_url(url, kw)
    if port is None:
        logger.error("could not open serial port %s: %s", url, exc)
    return port


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
    """Reads a port, splits lines and hands them to the device; reports a lost port."""

    def __init__(self, device: SerialDevice, port: serial.SerialBase) -> None:
        """Prepare (not start) a reader.

        :param device: the owner, receiving lines and loss reports.
        :param port: the open port to read.
        """
        super().__init__(name=f"SerialDevice[{device.name}]-reader", daemon=True)
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
            raise serial.SerialException("device reports readiness to read but returned no data")
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


class SerialDevice:
    """A line-oriented instrument on a serial port, safe to share between threads.

    A reader thread splits incoming bytes into lines. :meth:`query` sends a command and
    returns the next line; a lock serialises whole exchanges so concurrent callers never
    interleave. Lines arriving while no query waits are passed to ``on_line``.

    When the port fails (unplugged, pty closed), the waiting and later queries raise
    :class:`SerialDeviceError` at once, :attr:`connected` turns ``False`` and, with
    ``reconnect=True``, a background thread reopens the same URL with exponential backoff
    (``backoff_initial`` doubling up to ``backoff_max`` seconds). :meth:`close` stops and
    joins every thread the device started.

    A reply arriving after its query timed out is treated as unsolicited if no other query
    is waiting (otherwise, as with any line protocol, it is taken as that query's reply).
    """

    backoff_initial = 0.05
    backoff_max = 2.0

    def __init__(self, url: str, baudrate: int = 9600, terminator: bytes = b"\r\n", timeout: float = 1.0, *,
                 on_line: Optional[LineCallback] = None, reconnect: bool = True, name: Optional[str] = None,
                 encoding: str = "ascii", **serial_kw: Any) -> None:
        """Configure the device; call :meth:`open` (or use ``with``) to connect.

        :param url: device path or pyserial URL (``/dev/ttyUSB0``, ``loop://``, ``socket://h:p``).
        :param baudrate: line speed.
        :param terminator: bytes ending each line in both directions; on input only its last
            byte is required (``b"\\r\\n"`` also accepts bare ``\\n``).
        :param timeout: default seconds to wait for a reply (also the write timeout).
        :param on_line: called with each unsolicited line, in the reader thread.
        :param reconnect: reopen the port in the background after it is lost.
        :param name: label for logs, errors and thread names (default: the url).
        :param encoding: text encoding of commands and replies.
        :param serial_kw: passed to :func:`serial.serial_for_url`.
        """
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.url, self.baudrate, self.terminator, self.timeout = url, baudrate, bytes(terminator), float(timeout)
        self.on_line, self.reconnect, self.encoding = on_line, reconnect, encoding
        self.name = name or url
        self.lines_received = 0
        self._serial_kw: dict[str, Any] = {"baudrate": baudrate, "timeout": None, "write_timeout": self.timeout}
        self._serial_kw.update(serial_kw)
        self._exchange = threading.Lock()  # held for a whole request/reply exchange
        self._state = threading.Lock()     # guards the fields below
        self._port: Optional[serial.SerialBase] = None
        self._reader: Optional[_Reader] = None
        self._reconnector: Optional[threading.Thread] = None
        self._threads: list[threading.Thread] = []
        self._pending: Optional[_Pending] = None
        self._closing = threading.Event()

    @property
    def connected(self) -> bool:
        """Whether the port is open and being read right now."""
        return self._port is not None

    def open(self) -> None:
        """Open the port and start the reader; a no-op when already open.

        :raises SerialDeviceError: the port cannot be opened (the first open is not retried).
        """
        with self._state:
            if self._port is None:
                self._closing.clear()
                port, exc = _open_url(self.url, self._serial_kw)
                if port is None:
                    raise SerialDeviceError(f"{self.name}: cannot open {self.url}: {exc}")
                self._install(port)

    def close(self) -> None:
        """Close the port and stop (and join) the reader and any reconnect thread."""
        with self._state:
            self._closing.set()
            port, reader, self._port, self._reader = self._port, self._reader, None, None
            self._fail_pending("device closed")
            threads, self._threads, self._reconnector = self._threads, [], None
        if reader is not None:
            reader.stop()
        if port is not None:
            _close_quietly(port)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(5.0)

    def __enter__(self) -> SerialDevice:
        """Open the device for a ``with`` block."""
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the device at the end of a ``with`` block.

        :param exc: the exception triple, ignored.
        """
        self.close()

    def query(self, cmd: str, timeout: Optional[float] = None) -> str:
        """Send ``cmd`` and return the next reply line (without terminator).

        :param cmd: the command, without terminator.
        :param timeout: seconds to wait (default: the device timeout), including the wait for
            another thread's exchange to finish.
        :raises SerialDeviceTimeout: no reply in time.
        :raises SerialDeviceError: the port is closed, or was lost before or during the exchange.
        """
        if threading.current_thread() is self._reader:
            raise SerialDeviceError(f"{self.name}: query() from the on_line callback would deadlock; use write()")
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        pending = _Pending(cmd)
        self._acquire(cmd, limit)
        try:
            self._send(cmd, pending)
            pending.done.acquire(timeout=max(deadline - time.monotonic(), 0.0))
        finally:
            with self._state:
                if self._pending is pending:
                    self._pending = None
            self._exchange.release()
        if not pending.resolved:
            raise SerialDeviceTimeout(f"{self.name}: no reply to {cmd!r} from {self.url} within {limit:g} s")
        if pending.error is not None:
            raise pending.error
        return pending.reply

    def write(self, cmd: str) -> None:
        """Send ``cmd`` plus terminator without waiting for a reply (waits for a running exchange).

        :param cmd: the command, without terminator.
        :raises SerialDeviceError: the port is closed or the write failed.
        """
        self._acquire(cmd, self.timeout)
        try:
            self._send(cmd, None)
        finally:
            self._exchange.release()

    def _acquire(self, cmd: str, limit: float) -> None:
        """Take the exchange lock or raise :class:`SerialDeviceTimeout`.

        :param cmd: the command waiting to be sent, for the message.
        :param limit: seconds to wait.
        """
        if not self._exchange.acquire(timeout=max(limit, 0.0)):
            raise SerialDeviceTimeout(f"{self.name}: {self.url} busy for {limit:g} s; {cmd!r} not sent")

    def _send(self, cmd: str, pending: Optional[_Pending]) -> None:
        """Register ``pending`` as the waiting query and write one command line.

        :param cmd: the command, without terminator.
        :param pending: the query slot for the reply, ``None`` for a plain write.
        """
        data = cmd.encode(self.encoding) + self.terminator
        with self._state:
            port, self._pending = self._port, pending
            if port is None:
                retrying = self._reconnector is not None and self._reconnector.is_alive()
                state = "closed" if self._closing.is_set() else "disconnected" + (" (reconnecting)" if retrying else "")
                raise SerialDeviceError(f"{self.name}: cannot send {cmd!r}: {self.url} is {state}")
        try:
            port.write(data)
        except serial.SerialTimeoutException as exc:
            raise SerialDeviceTimeout(f"{self.name}: writing {cmd!r} to {self.url} timed out") from exc
        except Exception as exc:  # the port is gone
            self._handle_loss(port, exc)
            raise SerialDeviceError(f"{self.name}: writing {cmd!r} to {self.url} failed: {exc}") from exc

    def _install(self, port: serial.SerialBase) -> None:
        """Adopt an open port and start its reader (call with the state lock held).

        :param port: the freshly opened port.
        """
        if not hasattr(port, "cancel_read") and not isinstance(port, _POSIX_PORTS):
            port.timeout = 0.1  # poll so the reader notices stop()
        self._threads = [t for t in self._threads if t.is_alive()]
        self._port, self._reader = port, _Reader(self, port)
        self._threads.append(self._reader)
        self._reader.start()

    def _fail_pending(self, why: str) -> None:
        """Fail the waiting query, if any (call with the state lock held).

        :param why: the reason, for the message.
        """
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.resolve(error=SerialDeviceError(f"{self.name}: no reply to {pending.command!r} from {self.url}: {why}"))

    def _dispatch(self, line: str) -> None:
        """Route one received line to the waiting query or to ``on_line`` (reader thread).

        :param line: the decoded line.
        """
        self.lines_received += 1
        with self._state:
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.resolve(line)
                return
        if self.on_line is not None:
            try:
                self.on_line(line)
            except Exception:
                logger.exception("%s: on_line callback raised for line %r", self.name, line)

    def _handle_loss(self, port: serial.SerialBase, exc: BaseException) -> None:
        """Tear down a failed port once, fail the waiting query, and start reconnecting.

        :param port: the port that failed (ignored if already replaced or closed).
        :param exc: the error seen.
        """
        with self._state:
            if port is not self._port:
                return
            reader, old, self._port, self._reader = self._reader, self._reconnector, None, None
            self._fail_pending(f"connection lost ({exc})")
        logger.warning("%s: lost connection to %s: %s", self.name, self.url, exc)
        if reader is not None:
            reader.stop()
        _close_quietly(port)
        if old is not None and old is not threading.current_thread():
            old.join(5.0)
        with self._state:
            if self.reconnect and not self._closing.is_set():
                self._reconnector = threading.Thread(target=self._reconnect_loop, daemon=True,
                                                     name=f"SerialDevice[{self.name}]-reconnect")
                self._threads.append(self._reconnector)
                self._reconnector.start()

    def _reconnect_loop(self) -> None:
        """Retry opening the URL with exponential backoff until it works or the device closes."""
        delay, attempts = self.backoff_initial, 0
        while not self._closing.wait(delay):
            attempts += 1
            port, exc = _open_url(self.url, self._serial_kw)
            if port is None:
                logger.debug("%s: reconnect attempt %d to %s failed: %s", self.name, attempts, self.url, exc)
                delay = min(delay * 2, self.backoff_max)
                continue
            with self._state:
                if not self._closing.is_set() and self._port is None:
                    self._install(port)
                    logger.info("%s: reconnected to %s after %d attempt(s)", self.name, self.url, attempts)
                    return
            _close_quietly(port)
            return


def _close_quietly(port: serial.SerialBase) -> None:
    """Close a port, ignoring errors from an already dead device.

    :param port: the port to close.
    """
    try:
        port.close()
    except Exception as exc:
        logger.debug("closing %s failed: %s", getattr(port, "port", port), exc)
