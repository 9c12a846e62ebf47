"""The MJPEG side of a plugin's cameras: each frame framed once as a part of a
``multipart/x-mixed-replace`` stream (:func:`mjpeg_part`), and one sender thread per camera
(:class:`Broadcast`) that writes it to every viewer's socket without waiting, so a slow viewer skips
frames and never slows the others."""
from __future__ import annotations

import socket
import struct
import threading
from typing import List, Optional

from ...core.clock import start_thread
from ...hardware.camera import Camera, Frame

BOUNDARY = "ivoryos-frame"
#: a stream with no frame for this long ends (the page helper reconnects): dead viewers free at once
NO_FRAME_END_S = 10.0
#: a viewer whose connection still holds this many frames unsent skips the next (it lags behind by
#: a few frames, however large the kernel lets its send buffer grow)
BACKLOG_FRAMES = 2


def mjpeg_part(frame: Frame) -> bytes:
    """One part of the multipart/x-mixed-replace stream, built once per frame for every viewer.

    :param frame: the encoded frame."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Frame-Seq: {frame.seq}\r\nX-Frame-Time: {frame.captured:.6f}\r\n\r\n").encode() + frame.jpeg + b"\r\n"


class _Viewer:
    """One viewer's socket, written by its camera's :class:`Broadcast` (never blocking it).

    :param sock: the viewer's connection, its response headers already sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = memoryview(b"")  # the rest of a frame its socket had no room for
        self.done = threading.Event()

    def send(self, chunk: memoryview) -> bool:
        """Send ``chunk`` without waiting; a viewer still draining an earlier frame skips this one.
        False when the viewer is gone (its connection closed).

        :param chunk: one frame, framed for the wire."""
        try:
            if self.pending:
                self.pending = self.pending[self.sock.send(self.pending, socket.MSG_DONTWAIT):]
                if self.pending:
                    return True
            if _unsent(self.sock) > BACKLOG_FRAMES * len(chunk):
                self.sock.send(b"", socket.MSG_DONTWAIT)  # sends nothing, but fails once the viewer is gone
                return True  # a slow reader: what its connection holds is enough
            self.pending = chunk[self.sock.send(chunk, socket.MSG_DONTWAIT):]
        except BlockingIOError:  # no room at all: it gets a later frame
            pass
        except OSError:
            return False
        return True

    def end(self) -> None:
        """Let the viewer's request finish; a frame cut in the middle ends the connection too."""
        if self.pending:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.done.set()


def _unsent(sock: socket.socket) -> int:
    """Bytes written to ``sock`` that its peer has not taken yet (Linux's ``SIOCOUTQ``; 0 where it
    cannot be read: the kernel's own buffer is then the bound)."""
    try:
        import fcntl
        import termios

        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (ImportError, AttributeError, OSError):
        return 0


class Broadcast:
    """One sender thread per camera that writes each frame to every viewer's socket, one send each
    without waiting (a viewer whose connection is full skips frames until it drains, and never slows
    the others), instead of one woken thread per viewer per frame. It runs while viewers are here.

    :param camera: the camera."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._viewers: List[_Viewer] = []
        self._thread: Optional[threading.Thread] = None

    def add(self, sock: socket.socket) -> _Viewer:
        """Start sending frames to ``sock``.

        :param sock: the viewer's connection, its response headers already sent."""
        viewer = _Viewer(sock)
        with self._lock:
            self._viewers.append(viewer)
            if self._thread is None:
                self._thread = start_thread(f"camera-{self.camera.name}-sender", self._run)
        return viewer

    def _drop(self, gone: List[_Viewer]) -> None:
        with self._lock:
            self._viewers = [v for v in self._viewers if v not in gone]
        for viewer in gone:
            viewer.end()

    def _run(self) -> None:
        last = 0
        while True:
            with self._lock:
                viewers = list(self._viewers)
                if not viewers:
                    self._thread = None
                    return
            frame = self.camera.next_frame(last, timeout=NO_FRAME_END_S)
            if frame is None:  # no signal (or shutting down): the page helpers reconnect
                self._drop(viewers)
                continue
            last = frame.seq
            chunk = memoryview(b"%x\r\n%b\r\n" % (len(frame.wire), frame.wire))  # HTTP/1.1 chunked framing, once
            self._drop([viewer for viewer in viewers if not viewer.send(chunk)])
