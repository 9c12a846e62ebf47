"""The cameras of one plugin runtime (:class:`CameraSet`): each declared camera and its MJPEG
sender, and the snapshot step's photos, kept per workflow run in the plugin's data folder
(``<data_dir>/photos/run-<id>/``), bounded by :mod:`.retention` after each snapshot and every
:data:`PRUNE_EVERY_S` seconds in the background, and listed for the gallery page."""
from __future__ import annotations

import datetime
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from ...core.clock import Clock, optional_clock, start_thread
from ...core.specs import PHOTO_KEEP_BYTES, PHOTO_KEEP_S
from ...hardware.camera import Camera, CameraUnavailable
from ..files import atomic_write
from .retention import OTHER, Bound, PhotoRetention, duration, size_text
from .streaming import Broadcast, mjpeg_part

if TYPE_CHECKING:
    from ..lifecycle import PluginRuntime

PHOTOS = "photos"
#: the photos' bounds are applied after each snapshot, and every this many seconds in the background
#: (what ages out while no workflow runs, what another program added)
PRUNE_EVERY_S = 60.0


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
