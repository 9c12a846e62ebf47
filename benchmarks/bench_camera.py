"""Cameras: 640x480 at 15 fps with 1, 10 and 30 viewers, ours against a hand-written per-request
capture loop (each viewer's request captures and encodes its own frames), interleaved, on loopback.

Figures:
- camera_captures_per_s_vs_fps_at_30_viewers (target <= 1.05): one capture per frame whatever the
  viewers; the anchor's ratio (about 30) is printed beside it;
- camera_encodes_per_s_vs_fps_at_30_viewers (target <= 1.05);
- camera_cpu_per_added_viewer_vs_one_encode (target <= 0.05): the server's extra CPU per viewer
  per frame, against the CPU of one encode, measured in the same run;
- camera_frame_age_p99_vs_interval_at_30_viewers (target <= 2): how old frames are when a viewer
  gets them, in frame intervals.
The anchor's captures per second at 30 viewers (N x fps, as far as the machine keeps up) are printed.
The viewers run in another process (their CPU is not the server's)."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

from common import ThreadedServer, figure, finish, median

FPS, SECONDS, ROUNDS = 15.0, 4.0, 2
HERE = Path(__file__).resolve().parent
COUNTS = {"captures": 0}


def make_source() -> Any:
    """640x480 frames of the simulated deck with a real sensor's noise (Gaussian, sigma 4 levels): a
    flat drawing encodes in a tenth of the time a camera's picture does, which would flatter ours."""
    import numpy as np

    from ivoryos_plugin.sim import DeckCamera

    camera = DeckCamera(640, 480)
    for i in range(40):
        camera.dispensed(0.1 * (i % 10))
    noise = np.random.default_rng(1).normal(0, 4, (480, 640 + 64, 3)).astype(np.int16)

    def source() -> Any:
        COUNTS["captures"] += 1
        shift = (COUNTS["captures"] * 7) % 64
        return np.clip(camera().astype(np.int16) + noise[:, shift:shift + 640], 0, 255).astype(np.uint8)

    return source


def make_apps(source: Any, data: Path) -> Dict[str, Any]:
    import cv2
    from flask import Flask, Response

    from ivoryos_plugin import Plugin, create_app

    plugin = Plugin("bench_cam", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    plugin.camera("deck", source, fps=FPS, width=640, quality=80)
    ours = create_app([plugin], data_dir=data, token="bench", testing=False)

    anchor = Flask("anchor")

    @anchor.route("/stream.mjpg")
    def stream() -> Response:  # the hand-written loop: every request captures and encodes
        def frames() -> Iterator[bytes]:
            due = time.monotonic()
            while True:
                frame = source()
                ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
                data = jpeg.tobytes()
                yield (f"--f\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                       f"X-Frame-Time: {time.time():.6f}\r\n\r\n").encode() + data + b"\r\n"
                due += 1 / FPS
                time.sleep(max(0.0, due - time.monotonic()))

        return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=f")

    return {"ours": ours, "anchor": anchor}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(base: str, path: str, viewers: int, headers: Dict[str, str]) -> Dict[str, Any]:
    captures, cpu0, t0 = COUNTS["captures"], cpu(), time.monotonic()
    out = subprocess.run([sys.executable, str(HERE / "camera_viewers.py"), base + path, str(viewers), str(SECONDS),
                          json.dumps(headers)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    result = json.loads(out.stdout)
    result.update(captures_per_s=(COUNTS["captures"] - captures) / elapsed, cpu_per_s=(cpu() - cpu0) / elapsed)
    time.sleep(1.5)  # our capture lingers 1 s after the last viewer: let it stop between rounds
    return result


def encode_cost() -> float:
    """CPU seconds of one 640x480 encode of the same picture (median of 200)."""
    import cv2

    frame = make_source()()
    times = []
    for _ in range(200):
        t = time.process_time()
        cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        times.append(time.process_time() - t)
    return statistics.median(times)


def main() -> None:
    source = make_source()
    with tempfile.TemporaryDirectory() as folder:
        apps = make_apps(source, Path(folder))
        servers = {name: ThreadedServer(app) for name, app in apps.items()}
        auth = {"Authorization": "Bearer bench"}
        ours_path, anchor_path = "/ivoryos/bench_cam/cameras/deck/stream.mjpg", "/stream.mjpg"
        runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in ("ours1", "ours10", "ours30", "anchor30")}
        try:
            for _ in range(ROUNDS):  # interleaved
                runs["ours1"].append(one_round(servers["ours"].base, ours_path, 1, auth))
                runs["anchor30"].append(one_round(servers["anchor"].base, anchor_path, 30, {}))
                runs["ours10"].append(one_round(servers["ours"].base, ours_path, 10, auth))
                runs["ours30"].append(one_round(servers["ours"].base, ours_path, 30, auth))
            camera = apps["ours"].extensions["ivoryos_plugin"].runtimes["bench_cam"].cameras.get("deck")
            encodes_per_capture = camera.encodes / max(1, camera.captures)
        finally:
            for server in servers.values():
                server.stop()
    cost = encode_cost()
    m = {key: {field: median([r[field] for r in rounds]) for field in rounds[0] if field != "ages"}
         for key, rounds in runs.items()}
    for key, values in m.items():
        print(f"{key}: captures/s {values['captures_per_s']:.1f}, frames/s per viewer {values['fps_per_viewer']:.1f}, "
              f"server CPU {values['cpu_per_s'] * 1000:.0f} ms/s, age p99 {values['age_p99'] * 1000:.0f} ms")
    added = (m["ours30"]["cpu_per_s"] - m["ours1"]["cpu_per_s"]) / 29 / FPS  # CPU s per added viewer per frame
    print(f"one encode: {cost * 1000:.3f} ms CPU; per added viewer per frame: {added * 1000:.4f} ms; "
          f"anchor at 30 viewers: {m['anchor30']['captures_per_s'] / FPS:.1f}x fps captures")
    figure("camera_captures_per_s_vs_fps_at_30_viewers", m["ours30"]["captures_per_s"] / FPS, "<=1.05")
    figure("camera_encodes_per_s_vs_fps_at_30_viewers", m["ours30"]["captures_per_s"] * encodes_per_capture / FPS,
           "<=1.05")
    figure("camera_cpu_per_added_viewer_vs_one_encode", max(0.0, added) / cost, "<=0.05")
    figure("camera_frame_age_p99_vs_interval_at_30_viewers", m["ours30"]["age_p99"] * FPS, "<=2")
    finish()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("IVORYOS_PLUGIN_DATA", tempfile.mkdtemp())
    main()
