"""A plugin's cameras in one app: the MJPEG stream and snapshot routes, the snapshot step's photos
kept per workflow run in the plugin's data folder, and the gallery page that lists them."""
from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Union

from flask import Response, jsonify, render_template, request, send_file

from ..hardware.camera import Camera, CameraUnavailable, Frame
from .extension import current_extension
from .files import atomic_write
from .replies import error_response

if TYPE_CHECKING:
    from .lifecycle import PluginRuntime

BOUNDARY = "ivoryos-frame"
#: a stream with no frame for this long ends (the page helper reconnects): dead viewers free at once
NO_FRAME_END_S = 10.0
PHOTOS = "photos"


def mjpeg_part(frame: Frame) -> bytes:
    """One part of the multipart/x-mixed-replace stream, built once per frame for every viewer.

    :param frame: the encoded frame."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Frame-Seq: {frame.seq}\r\nX-Frame-Time: {frame.captured:.6f}\r\n\r\n").encode() + frame.jpeg + b"\r\n"


class CameraSet:
    """The cameras of one plugin runtime (a capture only runs while someone watches).

    :param runtime: the plugin's runtime."""

    def __init__(self, runtime: "PluginRuntime") -> None:
        self.runtime = runtime
        self.cameras: Dict[str, Camera] = {
            name: Camera(name, spec.source, fps=spec.fps, width=spec.width, quality=spec.quality, framer=mjpeg_part)
            for name, spec in runtime.plugin._cameras.items()}

    def get(self, name: str) -> Optional[Camera]:
        """The camera ``name``, or None.

        :param name: the camera's name."""
        return self.cameras.get(name)

    def stop(self) -> None:
        """Stop every capture (at shutdown)."""
        for camera in self.cameras.values():
            camera.stop()

    def status(self) -> Dict[str, Any]:
        """Each camera's viewers, counters and last error, for the health page."""
        return {name: camera.status() for name, camera in self.cameras.items()}

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
        folder = self.folder() / run_folder
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.fromtimestamp(frame.captured).strftime("%Y%m%d-%H%M%S-%f")[:-3]
        step = f"step{run['step']}-" if run and run.get("step") is not None else ""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")[:60] or "snapshot"
        path = folder / f"{step}{stamp}-{name}-{safe}.jpg"
        atomic_write(path, frame.jpeg, mode=0o644)
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


def _unknown(plugin_name: str, name: str, cameras: CameraSet) -> Response:
    return error_response(404, f"Plugin {plugin_name!r} has no camera {name!r}; cameras: "
                               f"{', '.join(sorted(cameras.cameras)) or 'none'}.")


def stream(plugin_name: str, name: str) -> Response:
    """``GET .../cameras/<name>/stream.mjpg``: multipart JPEG frames, the newest for each viewer.

    :param plugin_name: the plugin.
    :param name: the camera."""
    cameras = _cameras(plugin_name)
    camera = cameras.get(name)
    if camera is None:
        return _unknown(plugin_name, name, cameras)

    def frames(cam: Camera) -> Iterator[bytes]:
        cam.watch()
        try:
            last = 0
            while True:
                frame = cam.next_frame(last, timeout=NO_FRAME_END_S)
                if frame is None:
                    return  # no signal (or shutting down): the page helper reconnects
                last = frame.seq
                yield frame.wire
        finally:
            cam.leave()  # the viewer closed its tab (the write failed) or the stream ended

    response = Response(frames(camera), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def snapshot(plugin_name: str, name: str) -> Response:
    """``GET .../cameras/<name>/snapshot.jpg``: one fresh frame (503 with the reason without one).

    :param plugin_name: the plugin.
    :param name: the camera."""
    cameras = _cameras(plugin_name)
    camera = cameras.get(name)
    if camera is None:
        return _unknown(plugin_name, name, cameras)
    try:
        frame = camera.snapshot()
    except CameraUnavailable as exc:
        return error_response(503, f"Plugin {plugin_name!r}: {exc}", camera=name)
    return Response(frame.jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store",
                                                               "X-Frame-Seq": str(frame.seq)})


def gallery(plugin_name: str) -> Union[Response, str]:
    """``GET .../gallery``: the snapshot step's photos per run (a page, or JSON).

    :param plugin_name: the plugin."""
    ext = current_extension()
    runtime = ext.runtimes[plugin_name]
    runs = runtime.cameras.photos()
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return jsonify({"plugin": plugin_name, "runs": runs})
    return render_template("ivoryos_plugin/gallery.html", plugin=runtime.plugin, runs=runs,
                           plugin_base=ext.base_template)


def gallery_file(plugin_name: str, filename: str) -> Response:
    """``GET .../gallery/<run>/<file>``: one photo, served only from inside the photos folder.

    :param plugin_name: the plugin.
    :param filename: ``run-<id>/<file>.jpg``."""
    root = _cameras(plugin_name).folder().resolve()
    target = (root / filename).resolve()
    if root not in target.parents or not target.is_file() or target.suffix != ".jpg":
        return error_response(404, f"Plugin {plugin_name!r}: no photo {filename!r} in the gallery.")
    return send_file(target, mimetype="image/jpeg", download_name=target.name,
                     as_attachment=request.args.get("download") == "1", max_age=0)
