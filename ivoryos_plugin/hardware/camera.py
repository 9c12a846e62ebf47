"""Cameras: one capture thread per camera, shared by every viewer, running only while someone
watches; each frame JPEG-encoded once whatever the number of viewers. Plain Python (OpenCV for
capture and encoding; no Flask).

A source is an OpenCV capture target (a device index, a device path, an RTSP/HTTP URL, a video
file) or a callable returning a frame: a numpy array (BGR, or grey), a PIL image, or JPEG bytes.
Viewers wait on :meth:`Camera.next_frame` and always get the newest frame: a slow viewer skips
frames, it never makes the capture wait or a queue grow.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ..core.clock import Backoff, Clock, optional_clock, start_thread

log = logging.getLogger("ivoryos_plugin.camera")

Source = Union[int, str, Callable[[], Any]]
#: how long the capture keeps running after the last viewer left (a page reload reuses it)
LINGER_S = 1.0
#: the first wait after a failed capture (doubled each failure up to the camera's ``max_backoff``)
FIRST_BACKOFF_S = 0.2


class CameraUnavailable(RuntimeError):
    """The camera cannot give a frame (not found, unplugged, or its source failed)."""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - the extra is installed by install.sh
        raise CameraUnavailable("OpenCV is not installed: pip install 'opencv-python-headless'") from exc
    return cv2


def encode_jpeg(frame: Any, quality: int, width: Optional[int] = None) -> bytes:
    """JPEG bytes of ``frame`` (numpy BGR/grey array, PIL image, or JPEG bytes), scaled to ``width``.

    OpenCV's encoder: about 3x faster than Pillow's at 640x480 (measured: 0.50 ms against 1.6 ms).

    :param frame: the frame.
    :param quality: JPEG quality, 1-100.
    :param width: scale to this width (keeping the aspect ratio), or None.
    :raises CameraUnavailable: the frame is not an image."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        data = bytes(frame)
        if width is None and data[:2] == b"\xff\xd8":
            return data
        frame = _decode(data)
    cv2 = _cv2()
    import numpy as np

    if not isinstance(frame, np.ndarray):
        if hasattr(frame, "convert"):  # a PIL image
            frame = np.asarray(frame.convert("RGB"))[:, :, ::-1]
        else:
            raise CameraUnavailable(f"a frame must be a numpy array, a PIL image or JPEG bytes, not "
                                    f"{type(frame).__name__}")
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise CameraUnavailable(f"a frame must be an image array (height x width [x 3]), not shape {frame.shape}")
    if width is not None and frame.shape[1] != width:
        height = max(1, round(frame.shape[0] * width / frame.shape[1]))
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CameraUnavailable("OpenCV could not encode the frame as JPEG")
    return bytes(buffer)


def _decode(data: bytes) -> Any:
    cv2 = _cv2()
    import numpy as np

    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise CameraUnavailable("the source gave bytes that are not an image")
    return frame


class _OpenCVSource:
    """An OpenCV capture target, reopened after a failure (a video file loops)."""

    def __init__(self, target: Union[int, str]) -> None:
        self.target = target
        self.capture: Any = None

    def read(self) -> Any:
        cv2 = _cv2()
        if self.capture is None:
            self.capture = cv2.VideoCapture(self.target)
            if not self.capture.isOpened():
                self.close()
                raise CameraUnavailable(f"OpenCV cannot open {self.target!r} (no such device, file or stream)")
        ok, frame = self.capture.read()
        if not ok and isinstance(self.target, str) and self.capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a video file: start again
            ok, frame = self.capture.read()
        if not ok or frame is None:
            self.close()
            raise CameraUnavailable(f"{self.target!r} gave no frame (unplugged, or the stream ended)")
        return frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


@dataclass
class Frame:
    """One encoded frame.

    :param jpeg: the JPEG bytes.
    :param seq: its number (1, 2, ...) since the camera was made.
    :param captured: the camera clock's ``time()`` when it was captured (epoch seconds).
    :param wire: the frame as sent to viewers (built once per frame by the camera's ``framer``)."""

    jpeg: bytes
    seq: int
    captured: float
    wire: bytes = b""


class Camera:
    """One camera's shared capture: started by the first viewer, stopped after the last one left.

    :param name: the camera's name (for messages).
    :param source: see the module docstring.
    :param fps: the capture rate.
    :param width: scale frames to this width (None keeps the source's).
    :param quality: JPEG quality, 1-100.
    :param max_backoff: the longest wait between attempts to reach a failing source.
    :param framer: builds a frame's bytes for the wire once, for every viewer (e.g. a multipart part).
    :param clock: what the capture ticks, the backoff, the linger and frames' times are measured on
        (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` when None; a test's ``ManualClock``)."""

    def __init__(self, name: str, source: Source, *, fps: float = 15.0, width: Optional[int] = None,
                 quality: int = 80, max_backoff: float = 5.0,
                 framer: Optional[Callable[[Frame], bytes]] = None, clock: Optional[Clock] = None) -> None:
        self.name, self.fps, self.width, self.quality = name, float(fps), width, int(quality)
        self._framer = framer
        self.max_backoff = max_backoff
        self.clock = optional_clock(clock)
        self._source: Any = source if callable(source) else _OpenCVSource(source)
        self._cond = threading.Condition()
        self._viewers = 0
        self._latest: Optional[Frame] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._stopped = threading.Event()  # set with _stopping: ends the capture's wait between ticks
        self._left_at = 0.0
        self.captures = 0
        self.encodes = 0
        self.failures = 0
        self.error = ""

    # ------------------------------------------------------------ viewers
    def watch(self) -> None:
        """A viewer starts watching (starts the capture if it is idle)."""
        with self._cond:
            self._viewers += 1
            self._start_locked()

    def leave(self) -> None:
        """A viewer stopped watching; the capture stops :data:`LINGER_S` after the last one left."""
        with self._cond:
            self._viewers = max(0, self._viewers - 1)
            self._left_at = self.clock.monotonic()
            self._cond.notify_all()

    @property
    def viewers(self) -> int:
        """How many viewers watch now."""
        return self._viewers

    @property
    def running(self) -> bool:
        """Whether the capture thread runs."""
        return self._thread is not None

    def next_frame(self, after: int = 0, timeout: float = 5.0) -> Optional[Frame]:
        """The newest frame newer than ``after`` (waiting up to ``timeout`` s of the camera's clock), or None.

        :param after: the last frame number this viewer got.
        :param timeout: seconds to wait."""
        deadline = self.clock.monotonic() + timeout
        with self._cond:
            while not self._stopping:
                latest = self._latest
                # the newest frame, if this viewer has not had it and it is current (a stopped capture's
                # last frame is not: the viewer waits for the next)
                if latest is not None and latest.seq > after and self.clock.time() - latest.captured <= 2.0 / self.fps:
                    return latest
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
        return None

    def snapshot(self, timeout: float = 5.0) -> Frame:
        """One fresh frame (the capture runs for it if nobody watches).

        :param timeout: seconds to wait for it.
        :raises CameraUnavailable: no frame within ``timeout`` (the reason when known)."""
        with self._cond:
            after = self._latest.seq if self._latest is not None else 0
        self.watch()
        try:
            frame = self.next_frame(after, timeout)
        finally:
            self.leave()
        if frame is None:
            raise CameraUnavailable(f"camera {self.name!r} gave no frame within {timeout} s"
                                    + (f": {self.error}" if self.error else ""))
        return frame

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the capture now (at shutdown); viewers waiting get None."""
        with self._cond:
            self._stopping = True
            self._stopped.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if isinstance(self._source, _OpenCVSource):
            self._source.close()

    def status(self) -> Dict[str, Any]:
        """Viewers, rate, counters and the last error, for the health page."""
        return {"viewers": self._viewers, "running": self.running, "fps": self.fps, "captures": self.captures,
                "encodes": self.encodes, "failures": self.failures, "error": self.error}

    # ------------------------------------------------------------ capture
    def _start_locked(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = start_thread(f"camera-{self.name}", self._loop)

    def _idle(self) -> bool:
        return self._viewers == 0 and self.clock.monotonic() - self._left_at >= LINGER_S

    def _grab(self) -> Tuple[Optional[Frame], str]:
        try:
            raw = self._source.read() if isinstance(self._source, _OpenCVSource) else self._source()
            self.captures += 1
            jpeg = encode_jpeg(raw, self.quality, self.width)
            self.encodes += 1
        except Exception as exc:  # a failing source must never kill the capture thread
            return None, f"{type(exc).__name__}: {exc}"
        return Frame(jpeg=jpeg, seq=0, captured=self.clock.time()), ""

    def _loop(self) -> None:
        failures = Backoff(min(FIRST_BACKOFF_S, self.max_backoff), self.max_backoff)
        backoff = 0.0  # the extra wait after a failed capture (none after a good one)
        period = 1.0 / self.fps
        due = self.clock.monotonic()
        seq = self._latest.seq if self._latest is not None else 0
        while True:
            with self._cond:
                if self._stopping or self._idle():
                    if isinstance(self._source, _OpenCVSource):
                        self._source.close()  # let the device go while nobody watches
                    self._thread = None
                    self._cond.notify_all()
                    break
            frame, error = self._grab()
            with self._cond:
                if frame is not None:
                    seq += 1
                    frame.seq = seq
                    if self._framer is not None:
                        frame.wire = self._framer(frame)
                    self._latest, self.error, backoff = frame, "", 0.0
                    failures.reset()
                else:
                    self.failures += 1
                    if error != self.error:
                        log.warning("camera %r: %s", self.name, error)
                    self.error = error
                    backoff = failures.next()
                self._cond.notify_all()
            due += period
            now = self.clock.monotonic()
            if due < now:  # a slow source: drop the missed ticks
                due = now
            self.clock.wait(self._stopped, due + backoff - now)  # viewers coming and going do not end it
