"""Thread-safe, self-healing line-oriented serial devices: :class:`SerialDevice` and its errors.

:class:`SerialDevice` opens its port when constructed (as :class:`serial.Serial` does) and adds a
reader thread (:mod:`.reader`), serialised request/reply exchanges (:meth:`SerialDevice.query`), a
callback for unsolicited lines, reconnection when the port disappears, and errors that say what
happened and what to do. It opens serial ports only: a device path that is a tty, ``loop://``,
``alt://`` and ``hwgrep://``. The pyserial schemes that reach beyond a port (``spy://`` writes a
file, ``socket://`` and ``rfc2217://`` connect to a host, ``cp2110://`` opens a HID device) need
``allow=("socket",)`` and so on from the code that opens the port; anything else is refused before
pyserial sees it (:func:`ivoryos_plugin.hardware.serial.urls.check_url`).

Over 400 lines on purpose: :class:`SerialDevice`'s methods share one state lock and one state (the
port, the waiting query, why it is down, the reconnect thread), which splitting would spread out; its
reader thread, URL policy, opening and registry of open ports are already modules of their own.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Iterable, Optional

import serial

from ...core.clock import Backoff, Clock, optional_clock, start_thread
from . import registry, urls
from .open import _explain, _open_url
from .reader import _POSIX_PORTS, _Pending, _Reader

__all__ = ["SerialDevice", "SerialDeviceError", "SerialDeviceTimeout"]

logger = logging.getLogger("ivoryos_plugin.serial")

LineCallback = Callable[[str], None]


class SerialDeviceError(Exception):
    """A serial exchange failed. The message names the device and says which case it is (not
    open yet, closed by this program, connection lost, in use by another program, cannot be
    opened) and what to do.

    :attr holder: when the port is held by another part of this program (a deck instrument),
        who holds it; else None."""

    holder: Optional[str] = None


class SerialDeviceTimeout(SerialDeviceError, TimeoutError):
    """No reply (or no free port) within the query timeout."""


class SerialDevice:
    """A line-oriented instrument on a serial port, safe to share between threads.

    ``SerialDevice(url)`` opens the port at once, as :class:`serial.Serial` does (pass
    ``open=False`` or no url to open later with :meth:`open` or ``with``). A reader thread
    splits incoming bytes into lines. :meth:`query` sends a command and returns the next line;
    a lock serialises whole exchanges so concurrent callers never interleave. Lines arriving
    while no query waits are passed to ``on_line``.

    When the port fails (unplugged, pty closed), the waiting and later queries raise
    :class:`SerialDeviceError` at once, :attr:`connected` turns ``False`` and, with
    ``reconnect=True``, a background thread reopens the same URL with exponential backoff
    (``backoff_initial`` doubling up to ``backoff_max`` seconds); a port that cannot be opened
    at construction is retried the same way. :meth:`close` joins every thread it started.

    A reply arriving after its query timed out is treated as unsolicited if no other query
    is waiting (otherwise, as with any line protocol, it is taken as that query's reply).

    Only serial ports are opened unless ``allow`` says otherwise: a URL of another scheme, a path
    that is not a tty, or a URL with a control character raises :class:`SerialDeviceError` at
    construction, before pyserial (or any file, device or host) is touched::

        SerialDevice("/dev/ttyUSB0", baudrate=115200)                     # a serial port
        SerialDevice("socket://10.0.0.7:4001", allow=("socket",))         # a serial-to-Ethernet adapter
        SerialDevice("spy:///dev/ttyUSB0?file=trace.txt", allow=("spy",))  # a traffic dump, knowingly
    """

    backoff_initial = 0.05
    backoff_max = 2.0

    def __init__(self, url: Optional[str] = None, baudrate: int = 9600, terminator: bytes = b"\r\n",
                 timeout: float = 1.0, *, open: bool = True, on_line: Optional[LineCallback] = None,
                 reconnect: bool = True, name: Optional[str] = None, encoding: str = "ascii",
                 allow: Iterable[str] = (), clock: Optional[Clock] = None, **serial_kw: Any) -> None:
        """Configure the device and open it (unless ``open=False`` or ``url`` is ``None``).

        :param url: device path or pyserial URL (``/dev/ttyUSB0``, ``loop://``, or ``socket://h:p``
            with ``allow=("socket",)``), or ``None`` (pyserial's ``port=None``) to set :attr:`url`
            and call :meth:`open` later.
        :param baudrate: line speed.
        :param terminator: bytes ending each line in both directions; on input only its last
            byte is required (``b"\\r\\n"`` also accepts bare ``\\n``).
        :param timeout: default seconds to wait for a reply (also the write timeout).
        :param open: open the port now; if it is unavailable, raise (``reconnect=False``) or log
            one warning and start disconnected, retrying in the background (``reconnect=True``).
        :param on_line: called with each unsolicited line, in the reader thread.
        :param reconnect: reopen the port in the background when it is lost or unavailable.
        :param name: label for logs, errors and thread names (default: the url).
        :param encoding: text encoding of commands and replies.
        :param allow: pyserial URL schemes this device may open beyond serial ports (device paths
            that are ttys, ``loop://``, ``alt://``, ``hwgrep://``): ``"socket"``, ``"rfc2217"``,
            ``"spy"``, ``"cp2110"``. Give only what the instrument needs; never pass a URL a user
            typed together with a wide ``allow``.
        :param clock: what the reconnect delays are waited on (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK`
            when None; a test's ``ManualClock`` counts attempts without sleeping them).
        :param serial_kw: passed to :func:`serial.serial_for_url` (e.g. ``exclusive=True``).
        :raises SerialDeviceError: the port cannot be opened and ``reconnect`` is ``False``, or the
            URL or a setting is invalid (e.g. an unknown ``xyz://`` scheme), or the URL is refused
            (a scheme not in ``allow``, a path that is not a tty): then nothing was opened.
        :raises ValueError: ``allow`` names a scheme pyserial does not know, or ``terminator`` is empty.
        """
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.url, self.baudrate, self.terminator, self.timeout = url, baudrate, bytes(terminator), float(timeout)
        self.on_line, self.reconnect, self.encoding = on_line, reconnect, encoding
        self.clock = optional_clock(clock)
        self.name = name or (urls.printable(url) if url else "") or "SerialDevice"
        self.allow = urls.allowed_schemes(allow)  # a typo is a ValueError now, not a refusal later
        self.lines_received = 0
        self._serial_kw: dict[str, Any] = {"baudrate": baudrate, "timeout": None, "write_timeout": self.timeout}
        self._serial_kw.update(serial_kw)
        self._exchange = threading.Lock()  # held for a whole request/reply exchange
        self._state = threading.Lock()     # guards the fields below
        self._port: Optional[serial.SerialBase] = None
        self._reader: Optional[_Reader] = None
        self._retry: Optional[tuple[threading.Thread, threading.Event]] = None  # reconnector and its stop flag
        self._threads: list[threading.Thread] = []
        self._pending: Optional[_Pending] = None
        self._down = ("unopened", "")  # while there is no port: (unopened|failed|closed|unavailable|lost, detail)
        self._note = ("", "")          # why the last reconnect attempt failed: (what, fix)
        if url is not None:  # refused at construction, even with open=False: the mistake is in the code
            try:
                urls.check_url(url, self.allow)
            except urls.PortRefused as exc:
                raise SerialDeviceError(f"{self.name}: cannot open {urls.printable(url)}: {exc}") from exc
        if open and url is not None:
            try:
                self.open()
            except SerialDeviceError as exc:
                if not reconnect or not isinstance(exc.__cause__, OSError):  # a bad URL or setting: never works
                    raise
                with self._state:
                    self._down = ("unavailable", self._down[1])
                    self._start_retrying()
                logger.warning("%s; starting disconnected and retrying in the background", exc)

    @property
    def connected(self) -> bool:
        """Whether the port is open and being read right now."""
        return self._port is not None

    def open(self) -> None:
        """Open the port now and start the reader; a no-op when already open.

        Stops background reconnection first; a failure is raised and leaves the device not open.

        :raises SerialDeviceError: no url is set, or the port cannot be opened (e.g. in use).
        """
        with self._state:
            retry = self._stop_retrying() if self._port is None else None
        if retry is not None:
            retry.join(5.0)  # its open attempt must not race ours (exclusive=True locks)
        with self._state:
            if self._port is not None:
                return
            if self.url is None:
                raise SerialDeviceError(f"{self.name}: no port to open; set url, then call open()")
            port, exc = _open_url(self.url, self._serial_kw, owner=self, label=self.name, allow=self.allow)
            if port is None:
                self._down = ("failed", "; ".join(_explain(exc)))
                error = SerialDeviceError(f"{self.name}: cannot open {urls.printable(self.url)}: {self._down[1]}")
                error.holder = exc.holder if isinstance(exc, registry.PortHeld) else None
                raise error from exc
            self._install(port)

    def close(self) -> None:
        """Close the port and stop (and join) the reader and any reconnect thread."""
        with self._state:
            port, reader, self._port, self._reader = self._port, self._reader, None, None
            self._down = ("closed", "")
            self._stop_retrying()
            self._fail_pending()
            threads, self._threads = self._threads, []
        if reader is not None:
            reader.stop()
        if port is not None:
            _close_quietly(port)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(5.0)

    def __enter__(self) -> SerialDevice:
        """Open the device, unless it is open or reconnecting already, for a ``with`` block."""
        if self._retry is None:
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
        :raises SerialDeviceError: the port is not open, closed, or lost before or during the exchange.
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
            raise SerialDeviceTimeout(f"{self.name}: no reply to {cmd!r} from {self.url} within {limit:g} s (timed "
                                      f"out); check the instrument is on and its baud rate ({self.baudrate}) and "
                                      f"line ending ({self.terminator!r}) match")
        if pending.error is not None:
            raise pending.error
        return pending.reply

    def write(self, cmd: str) -> None:
        """Send ``cmd`` plus terminator without waiting for a reply (waits for a running exchange).

        :param cmd: the command, without terminator.
        :raises SerialDeviceError: the port is not open or the write failed.
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
            raise SerialDeviceTimeout(f"{self.name}: {cmd!r} not sent: {self.url} stayed busy with another "
                                      f"thread's exchange for {limit:g} s (timed out)")

    def _send(self, cmd: str, pending: Optional[_Pending]) -> None:
        """Register ``pending`` as the waiting query and write one command line.

        :param cmd: the command, without terminator.
        :param pending: the query slot for the reply, ``None`` for a plain write.
        """
        data = cmd.encode(self.encoding) + self.terminator
        with self._state:
            port = self._port
            if port is None:
                raise SerialDeviceError(f"{self.name}: cannot send {cmd!r}: {self._why_down()}")
            self._pending = pending
        try:
            port.write(data)
        except serial.SerialTimeoutException as exc:
            raise SerialDeviceTimeout(f"{self.name}: {cmd!r} not sent: {self.url} took no data for "
                                      f"{self._serial_kw['write_timeout']} s (timed out); check flow control") from exc
        except Exception as exc:  # the port is gone (maybe closed under us by the reader, which saw why)
            self._handle_loss(port, exc)
            with self._state:
                why = self._why_down() if self._port is None else f"{self.url} was lost ({exc}) and is back; retry"
            raise SerialDeviceError(f"{self.name}: cannot send {cmd!r}: {why}") from exc

    def _why_down(self) -> str:
        """Why there is no port and what to do (call with the state lock held)."""
        (state, detail), url = self._down, self.url
        if state == "unopened":
            return (f"{url} is not open yet (created with open=False); call open() or use 'with' first" if url
                    else "no port is set yet; set url, then call open()")
        if state == "failed":
            return f"{url} is not open: the last open() failed: {detail}, then call open() again"
        if state == "closed":
            return f"{url} is closed: device closed by this program (close() was called); call open() to reuse it"
        if state == "unavailable":
            detail = "; ".join(self._note) if self._note[0] else detail
            return f"{url} is not connected (retrying in the background since creation): {detail}"
        last = f" (last attempt: {self._note[0]})" if self._note[0] else ""
        then = (f"reconnecting in the background{last}; check that it is plugged in and on, queries work again "
                "once it is back" if self.reconnect else "not reconnecting (reconnect=False): call open() once "
                "the instrument is back")
        return f"{url} is disconnected: connection lost ({detail}); {then}"

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

    def _fail_pending(self) -> None:
        """Fail the waiting query, if any, saying why the port is gone (call with the state lock held)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            why = self._why_down()
            pending.resolve(error=SerialDeviceError(f"{self.name}: no reply to {pending.command!r}: {why}"))

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
            reader, self._port, self._reader = self._reader, None, None
            self._down, self._note = ("lost", str(exc) or type(exc).__name__), ("", "")
            self._fail_pending()
            logger.warning("%s: %s", self.name, self._why_down())
        if reader is not None:
            reader.stop()
        _close_quietly(port)
        with self._state:
            if self.reconnect and self._port is None and self._down[0] == "lost" and self._retry is None:
                self._start_retrying()

    def _start_retrying(self) -> None:
        """Start the background reconnect thread (call with the state lock held)."""
        if self.url is not None:
            stop, self._note = threading.Event(), ("", "")
            thread = start_thread(f"SerialDevice[{self.name}]-reconnect", self._reconnect_loop, self.url, stop)
            self._retry = (thread, stop)
            self._threads.append(thread)

    def _stop_retrying(self) -> Optional[threading.Thread]:
        """Tell the reconnect thread, if any, to stop, and return it (call with the state lock held)."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry[1].set()
        return None if retry is None else retry[0]

    def _reconnect_loop(self, url: str, stop: threading.Event) -> None:
        """Retry opening ``url`` with exponential backoff until it works or ``stop`` is set.

        :param url: the port to open.
        :param stop: set by :meth:`open` and :meth:`close`.
        """
        delay, attempts = Backoff(self.backoff_initial, max(self.backoff_initial, self.backoff_max)), 0
        while not self.clock.wait(stop, delay.next()):
            attempts += 1
            port, exc = _open_url(url, self._serial_kw, owner=self, label=self.name, allow=self.allow)
            if port is None:
                if not stop.is_set():
                    self._note = _explain(exc)
                logger.debug("%s: reconnect attempt %d to %s failed: %s", self.name, attempts, url, exc)
                continue
            with self._state:
                if not stop.is_set() and self._port is None:
                    self._retry = None
                    self._install(port)
                    logger.info("%s: connected to %s after %d attempt(s)", self.name, url, attempts)
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
    trace = getattr(getattr(port, "formatter", None), "output", None)  # spy://?file=: pyserial never closes it
    if trace is not None and trace not in (sys.stderr, sys.stdout) and hasattr(trace, "close"):
        trace.close()
