"""The camera routes of a plugin: ``.../cameras/<name>/stream.mjpg`` (MJPEG, written to the
viewer's own socket by the camera's sender where the server allows it), ``.../snapshot.jpg`` (one
fresh frame), ``.../gallery`` (the snapshot step's photos per run, and what is kept) and
``.../gallery/<run>/<file>`` (one photo, only from inside the photos folder)."""
from __future__ import annotations

import socket
from typing import Iterator, Optional, Tuple, Union

from flask import Response, jsonify, render_template, request

from ...hardware.camera import Camera, CameraUnavailable
from ..extension import current_extension
from ..files import serve_inside
from ..libraries import raw_socket
from ..replies import error_response, prefers_json
from .camera_set import CameraSet
from .streaming import BOUNDARY, NO_FRAME_END_S


def _raw_socket() -> Optional[socket.socket]:
    """The request's own connection when frames can be written to it directly (Werkzeug's threaded
    server, IvoryOS's and the dev host's: see :func:`~ivoryos_plugin.runtime.libraries.raw_socket`);
    None elsewhere (the frames are then yielded to the server)."""
    return raw_socket(request.environ)


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
