"""A plugin with cameras, used by tests/test_cameras.py: a counting source, a missing device, and
optionally a video file (env CAM_VIDEO)."""
import os
import threading
from typing import Any, Dict

import cv2
import numpy as np

from ivoryos_plugin import Plugin

COUNTS = {"captures": 0}
# noise compresses badly: each frame is ~200 kB of JPEG, so a viewer that stops reading fills its
# socket's buffers within a second or two (as a real camera's frames do)
NOISE = np.random.default_rng(7).integers(0, 255, (480, 640, 3), dtype=np.uint8)
STATE = {"unplugged": False}
_lock = threading.Lock()


def source() -> Any:
    """A 640x480 frame showing its own number; raises while 'unplugged'."""
    if STATE["unplugged"]:
        raise OSError("camera unplugged")
    with _lock:
        COUNTS["captures"] += 1
        n = COUNTS["captures"]
    frame = np.roll(NOISE, n * 11, axis=1)
    cv2.putText(frame, str(n), (40, 240), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
    return frame


plugin = Plugin("cams", __name__, title="Cameras", version="1.0.0")
plugin.camera("bench", source, fps=float(os.environ.get("CAM_FPS", "15")), width=640)
plugin.camera("missing", "/dev/no-such-camera-42", fps=5)
if os.environ.get("CAM_VIDEO"):
    plugin.camera("file", os.environ["CAM_VIDEO"], fps=10, width=320)


@plugin.route("/")
def main() -> str:
    return plugin.render("cams.html")


@plugin.action(hardware=False)
def counts() -> Dict[str, Any]:
    return {"captures": COUNTS["captures"]}


@plugin.action(hardware=False)
def unplug(unplugged: bool) -> Dict[str, Any]:
    STATE["unplugged"] = unplugged
    return {"unplugged": unplugged}
