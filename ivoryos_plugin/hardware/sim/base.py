"""Line-protocol instrument simulators on real pseudo-terminals: :class:`PtySimulator`, the base
class, and the protocol's types (:class:`Reply`, :class:`UnknownCommand`).

A :class:`PtySimulator` owns a pty pair and a thread that reads command lines from the master
side and writes reply lines back. Clients open :attr:`PtySimulator.port` like any serial
device (``serial.Serial(sim.port)``, ``SerialDevice(sim.port)``).

Stable port path: a pty device path (``/dev/pts/N``) cannot be reclaimed once released, so
:attr:`~PtySimulator.port` is a symlink in a private temporary directory (:mod:`.folders`) pointing
at the current pts device (:attr:`~PtySimulator.device`). :meth:`~PtySimulator.drop` closes the pty
(connected clients see read/write errors) and removes the symlink (opening fails);
:meth:`~PtySimulator.restore` opens a fresh pty and re-points the symlink, so the device
"comes back" at the same path.
"""
from __future__ import annotations

import collections
import logging
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from typing import NamedTuple, Optional, Union

from ...core.clock import start_thread
from .folders import FOLDER_PREFIX, OWNER_FILE, _process_identity, remove_stale_folders

__all__ = ["PtySimulator", "Reply", "UnknownCommand", "HandlerResult"]

logger = logging.getLogger("ivoryos_plugin.sim")


class UnknownCommand(Exception):
    """Raised by a handler for a line that is not a valid command; counted in ``garbled``."""


class Reply(NamedTuple):
    """A reply sent ``delay`` seconds after the command (the device is busy meanwhile)."""

    text: Optional[str]
    delay: float


HandlerResult = Union[str, Reply, None]


class PtySimulator:
    """Base class: a line-protocol instrument served on a pty.

    Subclasses override :meth:`handle`. Commands end in ``\\r\\n`` or ``\\n``; replies end in
    ``terminator``. The simulator handles one command at a time and keeps evidence that
    clients never interleave their exchanges:

    * ``log``: the last ``log_size`` ``(command, reply)`` pairs, in order (``reply`` is ``None``
      if silent; a deque, so a long-running simulator does not grow without bound);
    * ``garbled``: lines that are not valid commands (unknown, malformed, non-printable) --
      e.g. ``ECHO 1ECHO 2`` when two writers' bytes got mixed;
    * ``overlapped``: commands answered while more command bytes were already waiting, i.e.
      the client sent a new command before reading the previous reply;
    * ``commands``, and for :meth:`stream`: ``streamed`` (numbered lines generated) and
      ``dropped`` (lines discarded because the client did not read fast enough and the
      ``tx_buffer`` bytes of device-side transmit buffer overflowed).

    :param name: file name of the port symlink and label in logs.
    :param terminator: bytes appended to each reply.
    :param encoding: text encoding of the protocol.
    :param tx_buffer: unsent bytes the device holds before dropping stream lines.
    :param log_size: how many exchanges ``log`` keeps.
    """

    ident = "SIM"

    def __init__(self, name: Optional[str] = None, *, terminator: bytes = b"\r\n",
                 encoding: str = "ascii", tx_buffer: int = 4096, log_size: int = 10000) -> None:
        """Configure (not start) the simulator.

        :param name: see the class docstring.
        :param terminator: see the class docstring.
        :param encoding: see the class docstring.
        :param tx_buffer: see the class docstring.
        :param log_size: see the class docstring.
        """
        self.name = name or type(self).__name__.lower()
        self.terminator, self.encoding, self.tx_buffer = terminator, encoding, tx_buffer
        self.port = ""                        # stable symlink path, set by start()
        self.device: Optional[str] = None     # current /dev/pts/N, None while dropped
        self.log: collections.deque[tuple[str, Optional[str]]] = collections.deque(maxlen=log_size)
        self.commands = self.garbled = self.overlapped = 0
        self.streamed = self.dropped = 0
        self._dir: Optional[str] = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._fds: tuple[int, int, int, int] = (-1, -1, -1, -1)  # master, slave, wake_r, wake_w
        self._stopping = False
        self._inbuf = bytearray()
        self._out = bytearray()
        self._busy: Optional[tuple[float, str, Optional[str]]] = None
        self._stream: Optional[tuple[float, float, str]] = None   # (rate, t0, prefix)
        self._seq = 0
        self._pending_emit: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the pty is up and served."""
        return self._thread is not None

    def start(self) -> PtySimulator:
        """Create the port symlink directory and serve a fresh pty; returns ``self``."""
        if self._dir is None:
            remove_stale_folders()
            self._dir = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
            with open(os.path.join(self._dir, OWNER_FILE), "w", encoding="ascii") as owner:
                owner.write(_process_identity(os.getpid()) or "")
            self.port = os.path.join(self._dir, self.name)
        if self._thread is None:
            self.restore()
        return self

    def stop(self) -> None:
        """Close the pty, join the thread and remove the port symlink and its directory."""
        self.drop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def drop(self) -> None:
        """Make the port vanish: close the pty (clients get I/O errors) and remove the symlink."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._stopping = True
            self._stream = None
        self._wake()
        thread.join(5.0)
        with self._lock:
            fds, self._fds, self._thread, self.device = self._fds, (-1, -1, -1, -1), None, None
        for fd in fds:
            os.close(fd)
        try:
            os.unlink(self.port)
        except FileNotFoundError:
            pass

    def restore(self) -> None:
        """Bring the port back at the same :attr:`port` path on a fresh pty."""
        if self._dir is None:
            self.start()
            return
        if self._thread is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation
        os.set_blocking(master, False)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        with self._lock:
            self._fds, self.device = (master, slave, wake_r, wake_w), os.ttyname(slave)
        self._inbuf.clear()
        self._out.clear()
        self._busy, self._stopping = None, False
        tmp = self.port + ".new"
        os.symlink(self.device, tmp)
        os.replace(tmp, self.port)
        self._thread = start_thread(f"PtySimulator[{self.name}]", self._run)

    def __enter__(self) -> PtySimulator:
        """Start for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop at the end of a ``with`` block.

        :param exc: the exception triple, ignored.
        """
        self.stop()

    # -- unsolicited output ------------------------------------------------------------------
    def stream(self, rate_hz: Optional[float], prefix: str = "DATA") -> None:
        """Emit numbered unsolicited lines ``<prefix> <n>`` (n = 0, 1, ...) at ``rate_hz``.

        Resets ``streamed``/``dropped`` and the numbering; ``None`` or ``0`` stops streaming.

        :param rate_hz: lines per second.
        :param prefix: first word of every line.
        """
        with self._lock:
            if rate_hz:
                self._seq = self.streamed = self.dropped = 0
                self._stream = (float(rate_hz), time.monotonic(), prefix)
            else:
                self._stream = None
        self._wake()

    def emit(self, line: str) -> None:
        """Send one unsolicited line as soon as the device is idle.

        :param line: the text, without terminator.
        """
        with self._lock:
            self._pending_emit.append(line)
        self._wake()

    # -- protocol ----------------------------------------------------------------------------
    def handle(self, command: str) -> HandlerResult:
        """Answer one command; override in subclasses and call ``super()`` for unknown ones.

        :param command: the command line, stripped of terminator and surrounding blanks.
        :returns: the reply text, a :class:`Reply` for a delayed reply, or ``None`` for none.
        :raises UnknownCommand: the line is not a command of this protocol.
        """
        if command == "ID?":
            return self.ident
        raise UnknownCommand(command)

    # -- serving thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        """Interrupt the serving thread's ``select``."""
        with self._lock:
            if self._fds[3] >= 0:
                try:
                    os.write(self._fds[3], b"\0")
                except OSError:
                    pass

    def _run(self) -> None:
        """Serve the pty until :meth:`drop`."""
        master, _, wake_r, _ = self._fds
        try:
            while not self._stopping:
                timeout = self._next_timeout()
                wlist = [master] if self._out else []
                readable, writable, _ = select.select([master, wake_r], wlist, [], timeout)
                if wake_r in readable:
                    os.read(wake_r, 4096)
                if master in readable:
                    try:
                        self._inbuf += os.read(master, 65536)
                    except BlockingIOError:
                        pass
                    except OSError:       # EIO: no slave open; cannot happen while we hold one
                        time.sleep(0.01)
                self._process(master)
                self._tick(master)
                self._flush(master)
        except Exception:
            logger.exception("%s: simulator thread failed", self.name)

    def _next_timeout(self) -> Optional[float]:
        """Seconds until the next stream line or delayed reply is due (``None``: no deadline)."""
        now, deadlines = time.monotonic(), []
        if self._busy is not None:
            deadlines.append(self._busy[0])
        stream = self._stream
        if stream is not None:
            rate, t0, _ = stream
            deadlines.append(max(t0 + self._seq / rate, now + 0.001))  # batch at >= 1 ms ticks
        return max(min(deadlines) - now, 0.0) if deadlines else None

    def _process(self, master: int) -> None:
        """Finish a due delayed reply, then run complete command lines while not busy.

        :param master: the pty master descriptor.
        """
        if self._busy is not None:
            due, command, reply = self._busy
            if time.monotonic() < due:
                return
            self._busy = None
            self._finish(master, command, reply)
        while self._busy is None:
            end = self._inbuf.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._inbuf[:end]).rstrip(b"\r")
            del self._inbuf[:end + 1]
            if raw.strip():
                self._execute(master, raw)
        if self._busy is None and self._pending_emit:
            with self._lock:
                lines, self._pending_emit = self._pending_emit, []
            for line in lines:
                self._out += line.encode(self.encoding) + self.terminator

    def _execute(self, master: int, raw: bytes) -> None:
        """Run one command line through :meth:`handle`.

        :param master: the pty master descriptor.
        :param raw: the line without terminator.
        """
        self.commands += 1
        command = raw.decode(self.encoding, "replace").strip()
        try:
            if not command.isprintable():
                raise UnknownCommand(command)
            result = self.handle(command)
        except UnknownCommand:
            self.garbled += 1
            result = "ERR unknown command"
        except Exception as exc:
            logger.exception("%s: handler failed for %r", self.name, command)
            result = f"ERR {type(exc).__name__}"
        if isinstance(result, Reply):
            if result.delay > 0:
                self._busy = (time.monotonic() + result.delay, command, result.text)
                return
            result = result.text
        self._finish(master, command, result)

    def _finish(self, master: int, command: str, reply: Optional[str]) -> None:
        """Record the exchange and queue the reply.

        :param master: the pty master descriptor.
        :param command: the command answered.
        :param reply: the reply text, or ``None`` for no reply.
        """
        if self._inbuf or select.select([master], [], [], 0)[0]:
            self.overlapped += 1  # the next command came before this reply went out
        self.log.append((command, reply))
        if reply is not None:
            self._out += reply.encode(self.encoding) + self.terminator

    def _tick(self, master: int) -> None:
        """Generate the stream lines that are due, dropping them if the transmit buffer is full.

        :param master: the pty master descriptor.
        """
        stream = self._stream
        if stream is None:
            return
        rate, t0, prefix = stream
        due = int((time.monotonic() - t0) * rate) + 1
        while self._seq < due:
            line = f"{prefix} {self._seq}".encode(self.encoding) + self.terminator
            self._seq += 1
            self.streamed += 1
            if len(self._out) > self.tx_buffer:
                self._flush(master)
            if len(self._out) > self.tx_buffer:
                self.dropped += 1
            else:
                self._out += line

    def _flush(self, master: int) -> None:
        """Write as much pending output as the pty accepts without blocking.

        :param master: the pty master descriptor.
        """
        while self._out:
            try:
                written = os.write(master, self._out)
            except BlockingIOError:
                return
            except OSError:
                self._out.clear()
                return
            del self._out[:written]
