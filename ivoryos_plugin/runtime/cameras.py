"""A plugin's cameras in one app: the MJPEG stream and snapshot routes, the snapshot step's photos
kept per workflow run in the plugin's data folder (bounded by age and size per camera, see
``photos.py``), and the gallery page that lists them and says what it keeps."""
from __future__ import annotations

import datetime
import os
import re
import socket
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from flask import Response, jsonify, render_template, request

from ..core.clock import Clock, optional_clock, start_thread
from ..core.specs import PHOTO_KEEP_BYTES, PHOTO_KEEP_S
from ..hardware.camera import Camera, CameraUnavailable, Frame
from .extension import current_extension
from .files import atomic_write, serve_inside
from .libraries import raw_socket
from .photos import OTHER, Bound, PhotoRetention, duration, size_text
from .replies import error_response, prefers_json

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime

BOUNDARY = "ivoryos-frame"
#: a stream with no frame for this long ends (the page helper reconnects): dead viewers free at once
NO_FRAME_END_S = 10.0
PHOTOS = "photos"
#: a viewer whose connection still holds this many frames unsent skips the next (it lags behind by
#: a few frames, however large the kernel lets its send buffer grow)
BACKLOG_FRAMES = 2
#: the photos' bounds are applied after each snapshot, and every this many seconds in the background
#: (what ages out while no workflow runs, what another program added)
PRUNE_EVERY_S = 60.0


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


def _raw_socket() -> Optional[socket.socket]:
    """The request's own connection when frames can be written to it directly (Werkzeug's threaded
    server, IvoryOS's and the dev host's: see :func:`~ivoryos_plugin.runtime.libraries.raw_socket`);
    None elsewhere (the frames are then yielded to the server)."""
    return raw_socket(request.environ)


class CameraSet:
    """The cameras of one plugin runtime (a capture only runs while someone watches).

    :param runtime: the plugin's runtime.
    :param clock: what the captures and the background pruning's period run on
        (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` when None; a test's ``ManualClock``). The
        photos' ages are measured by :attr:`clock`, the retention's own."""

    def __init__(self, runtime: "PluginRuntime", clock: Optional[Clock] = None) -> None:
        self.runtime = runtime
        self._clock = optional_clock(clock)
        self.cameras: Dict[str, Camera] = {
            name: Camera(name, spec.source, fps=spec.fps, width=spec.width, quality=spec.quality, framer=mjpeg_part,
                         clock=self._clock)
            for name, spec in runtime.plugin.declarations.cameras.items()}
        self.broadcasts: Dict[str, Broadcast] = {name: Broadcast(camera) for name, camera in self.cameras.items()}
        self.retention = PhotoRetention(
            lambda: self.runtime.ext.data_root / self.runtime.plugin.name / PHOTOS,
            {name: Bound(spec.keep_s, spec.keep_bytes) for name, spec in runtime.plugin.declarations.cameras.items()},
            Bound(PHOTO_KEEP_S, PHOTO_KEEP_BYTES))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sweeper: Optional[threading.Thread] = None

    @property
    def clock(self) -> Callable[[], float]:
        """The time photos are stamped with and their ages measured by (``time.time``); a test sets
        its own to move time instead of waiting."""
        return self.retention.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.retention.clock = clock

    def get(self, name: str) -> Optional[Camera]:
        """The camera ``name``, or None.

        :param name: the camera's name."""
        return self.cameras.get(name)

    def start(self) -> None:
        """Apply the photos' bounds in the background every :data:`PRUNE_EVERY_S` s (once the plugin
        runs; a plugin with no camera starts nothing)."""
        if not self.cameras or self._sweeper is not None or self._stop.is_set():
            return
        self._sweeper = start_thread(f"photos-{self.runtime.plugin.name}", self._sweep)

    def _sweep(self) -> None:
        while not self._stop.is_set():
            self.prune(rescan=True)
            self._clock.wait(self._wake, PRUNE_EVERY_S)
            self._wake.clear()

    def prune(self, rescan: bool = False) -> int:
        """Remove the photos their camera's bound no longer keeps (oldest first, never a camera's
        newest); the number removed. Never raises: a failure is logged and shown on the gallery.

        :param rescan: read the photos folder again first (what another program changed is seen)."""
        try:
            removed = self.retention.enforce(rescan=rescan)
        except Exception as exc:  # a full disk, a permission: the next pass tries again
            self.retention.error = f"{type(exc).__name__}: {exc}"
            self.runtime.plugin.logger.warning("photos: cannot apply the bound: %s", self.retention.error)
            return 0
        if removed and rescan:  # (after a snapshot, one out for one in is the steady state: not logged)
            self.runtime.plugin.logger.info("photos: removed %d beyond their bound", removed)
        return removed

    def stop(self) -> None:
        """Stop every capture and the background pruning (at shutdown)."""
        self._stop.set()
        self._wake.set()
        for camera in self.cameras.values():
            camera.stop()
        sweeper = self._sweeper
        if sweeper is not None and sweeper is not threading.current_thread():
            sweeper.join(5.0)

    def status(self) -> Dict[str, Any]:
        """Each camera's viewers, counters and last error, for the health page."""
        return {name: camera.status() for name, camera in self.cameras.items()}

    def kept(self) -> Dict[str, Any]:
        """What the photos' bounds keep and what is kept now, for the gallery: ``{"cameras": [{camera,
        keep_s, keep_bytes, bound (words), photos, bytes, size (words)}], "removed", "error"}``."""
        self.retention.rescan()  # (what the listing shows: another program may have changed the folder)
        totals = self.retention.totals()
        rows = []
        for camera in [*self.cameras, *([OTHER] if OTHER in totals else [])]:
            bound = self.retention.bound(camera)
            found = totals.get(camera, {"photos": 0, "bytes": 0})
            rows.append({"camera": camera or None, "keep_s": bound.keep_s, "keep_bytes": bound.keep_bytes,
                         "bound": bound.describe(), "photos": found["photos"], "bytes": found["bytes"],
                         "size": size_text(found["bytes"])})
        return {"cameras": rows, "removed": self.retention.removed, "every_s": PRUNE_EVERY_S,
                "every": duration(PRUNE_EVERY_S).removeprefix("1 "), "error": self.retention.error}

    # ------------------------------------------------------------ photos
    def folder(self) -> Path:
        """Where the snapshot step keeps photos: ``<data_dir>/photos/run-<id>/`` per run."""
        return self.runtime.ensure_data_dir() / PHOTOS

    def snapshot(self, name: str, label: str) -> Dict[str, Any]:
        """Take a photo and keep it under the current run (``no-run/`` outside one).

        :param name: the camera's name.
        :param label: what it shows (part of the file name).
        :raises CameraUnavailable: the camera is unknown or gave no frame."""
        camera = self.cameras.get(name)
        if camera is None:
            raise CameraUnavailable(f"Plugin {self.runtime.plugin.name!r} has no camera {name!r}; cameras: "
                                    f"{', '.join(sorted(self.cameras)) or 'none'}.")
        frame = camera.snapshot()
        run = self.runtime.current_run()
        run_folder = f"run-{run['run_id']}" if run else "no-run"
        stamp = datetime.datetime.fromtimestamp(frame.captured).strftime("%Y%m%d-%H%M%S-%f")[:-3]
        step = f"step{run['step']}-" if run and run.get("step") is not None else ""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")[:60] or "snapshot"
        with self.retention.lock:  # (pruning never removes the run folder between these lines)
            folder = self.folder() / run_folder
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{step}{stamp}-{name}-{safe}.jpg"
            atomic_write(path, frame.jpeg, mode=0o644)
            now = self.clock()
            os.utime(path, (now, now))  # its age is measured with the clock that stamped it
            self.retention.added(run_folder, path.name, len(frame.jpeg), now)
            self.prune()
        relative = f"{run_folder}/{path.name}"
        prefix = self.runtime.namespace
        return {"camera": name, "label": label, "run_id": run["run_id"] if run else None, "file": relative,
                "url": f"{prefix}/gallery/{relative}", "bytes": len(frame.jpeg)}

    def photos(self) -> List[Dict[str, Any]]:
        """Every kept photo, newest run first: ``{run, files: [{name, url, bytes}]}``."""
        root = self.folder()
        if not root.is_dir():
            return []
        runs = sorted((d for d in root.iterdir() if d.is_dir() and not d.is_symlink()),
                      key=lambda d: (d.name != "no-run", int(d.name[4:]) if d.name[4:].isdigit() else -1),
                      reverse=True)
        prefix = self.runtime.namespace
        return [{"run": d.name, "run_id": int(d.name[4:]) if d.name[4:].isdigit() else None,
                 "files": [{"name": f.name, "url": f"{prefix}/gallery/{d.name}/{f.name}", "bytes": f.stat().st_size}
                           for f in sorted(d.glob("*.jpg")) if f.is_file() and not f.is_symlink()]}
                for d in runs]


def _cameras(plugin_name: str) -> CameraSet:
    cameras: CameraSet = current_extension().runtimes[plugin_name].cameras
    return cameras


def _camera(plugin_name: str, name: str) -> Union[Tuple[CameraSet, Camera], Response]:
    """The plugin's cameras and the camera ``name``, or a 404 naming the cameras there are."""
    cameras = _cameras(plugin_name)
    camera = cameras.get(name)
    if camera is None:
        return error_response(404, f"Plugin {plugin_name!r} has no camera {name!r}; cameras: "
                                   f"{', '.join(sorted(cameras.cameras)) or 'none'}.")
    return cameras, camera


def stream(plugin_name: str, name: str) -> Response:
    """``GET .../cameras/<name>/stream.mjpg``: multipart JPEG frames, the newest for each viewer.

    :param plugin_name: the plugin.
    :param name: the camera."""
    found = _camera(plugin_name, name)
    if isinstance(found, Response):
        return found
    cameras, camera = found
    sock = _raw_socket()

    def frames() -> Iterator[bytes]:
        camera.watch()
        try:
            if sock is not None:
                yield b""  # the server sends the status line and headers now: the sender writes the rest
                cameras.broadcasts[name].add(sock).done.wait()
                return
            last = 0
            while True:
                frame = camera.next_frame(last, timeout=NO_FRAME_END_S)
                if frame is None:
                    return  # no signal (or shutting down): the page helper reconnects
                last = frame.seq
                yield frame.wire
        finally:
            camera.leave()  # the viewer closed its tab (a write failed) or the stream ended

    response = Response(frames(), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def snapshot(plugin_name: str, name: str) -> Response:
    """``GET .../cameras/<name>/snapshot.jpg``: one fresh frame (503 with the reason without one).

    :param plugin_name: the plugin.
    :param name: the camera."""
    found = _camera(plugin_name, name)
    if isinstance(found, Response):
        return found
    try:
        frame = found[1].snapshot()
    except CameraUnavailable as exc:
        return error_response(503, f"Plugin {plugin_name!r}: {exc}", camera=name)
    return Response(frame.jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store",
                                                               "X-Frame-Seq": str(frame.seq)})


def gallery(plugin_name: str) -> Union[Response, str]:
    """``GET .../gallery``: the snapshot step's photos per run, and what is kept (a page, or JSON).

    :param plugin_name: the plugin."""
    ext = current_extension()
    runtime = ext.runtimes[plugin_name]
    with runtime.cameras.retention.lock:  # (a listing and its totals of the same moment)
        runs = runtime.cameras.photos()
        kept = runtime.cameras.kept()
    if prefers_json():
        return jsonify({"plugin": plugin_name, "runs": runs, "kept": kept})
    return render_template("ivoryos_plugin/gallery.html", plugin=runtime.plugin, runs=runs, kept=kept,
                           plugin_base=ext.base_template)


def gallery_file(plugin_name: str, filename: str) -> Response:
    """``GET .../gallery/<run>/<file>``: one photo, served only from inside the photos folder.

    :param plugin_name: the plugin.
    :param filename: ``run-<id>/<file>.jpg``."""
    found = serve_inside(_cameras(plugin_name).folder(), filename, suffixes={".jpg"}, mimetype="image/jpeg",
                         attachment=request.args.get("download") == "1")
    if found is None:
        return error_response(404, f"Plugin {plugin_name!r}: no photo {filename!r} in the gallery.")
    return found
