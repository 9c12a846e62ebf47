"""How many of the snapshot step's photos are kept: each camera's :class:`Bound` and the
:class:`PhotoRetention` that applies it, and the bounds in words for the gallery page.

Photos live in ``<plugin data>/photos/<run folder>/<file>.jpg`` (see :mod:`.camera_set`). Each
camera's photos are bounded by age and by total size (``plugin.camera(..., keep_s=, keep_bytes=)``);
the oldest go first, the newest photo of a camera is never removed, and a run folder left empty goes
with its last photo. Ages are measured with the injectable ``clock`` (a
:class:`~ivoryos_plugin.core.clock.Clock`, or a function returning epoch seconds; the file's time is
set from it when the photo is written), so tests move time instead of waiting. The folder itself is
read and changed through :mod:`.disk`, which never follows a symbolic link.
"""
from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from ...core.clock import SYSTEM_CLOCK, Clock
from .disk import Photo, remove, remove_empty_folders, walk

#: a photo's file name: ``[step<n>-]<YYYYmmdd-HHMMSS-mmm>-<camera>-<label>.jpg``
PHOTO_NAME = re.compile(r"^(?:step\d+-)?\d{8}-\d{6}-\d{3}-(\w+)-.*\.jpg$")
#: photos of no declared camera (another name, an older layout) are kept under the default bound
OTHER = ""


@dataclass(frozen=True)
class Bound:
    """How many photos of one camera are kept.

    :param keep_s: photos older than this many seconds are removed (None: any age).
    :param keep_bytes: at most this many bytes, the newest (None: any size)."""

    keep_s: Optional[float]
    keep_bytes: Optional[int]

    def describe(self) -> str:
        """The bound in words, for the gallery page: ``"30 days, at most 2 GiB"``."""
        age = f"for {duration(self.keep_s)}" if self.keep_s is not None else "whatever their age"
        size = f"at most {size_text(self.keep_bytes)}" if self.keep_bytes is not None else "with no size limit"
        return f"{age}, {size}"


def camera_of(name: str, cameras: Dict[str, Bound]) -> str:
    """The declared camera a photo's file name names, else :data:`OTHER`.

    :param name: the file's name.
    :param cameras: the declared cameras."""
    found = PHOTO_NAME.match(name)
    return found.group(1) if found and found.group(1) in cameras else OTHER


def duration(seconds: float) -> str:
    """``seconds`` in words: ``"30 days"``, ``"12 hours"``, ``"90 s"``.

    :param seconds: a duration."""
    for unit, width in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= width and (seconds % width == 0 or seconds >= 10 * width):
            count = seconds / width
            text = f"{count:.0f}" if abs(count - round(count)) < 0.05 else f"{count:.1f}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{seconds:g} s"


def size_text(count: float) -> str:
    """A number of bytes in words: ``"2 GiB"``, ``"118.4 MiB"``, ``"912 bytes"``.

    :param count: bytes."""
    for unit, width in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if count >= width:
            value = count / width
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(count)} bytes"


class PhotoRetention:
    """The photos of one plugin, per camera, oldest first, and their bound.

    :param root: returns the photos folder (it may not exist yet).
    :param bounds: each declared camera's bound.
    :param default: the bound of photos of no declared camera.
    :param clock: the time ages are measured with: a :class:`~ivoryos_plugin.core.clock.Clock` (its
        ``time()``; :data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK` by default, a test's ``ManualClock``)
        or a function returning epoch seconds."""

    def __init__(self, root: Callable[[], Path], bounds: Dict[str, Bound], default: Bound,
                 clock: Union[Clock, Callable[[], float], None] = None) -> None:
        self.root = root
        self.bounds = dict(bounds)
        self.default = default
        self._now: Callable[[], float] = SYSTEM_CLOCK.time
        if clock is not None:
            self.clock = clock
        #: held while photos are written, listed or removed (a run folder is never removed between
        #: its creation and its first photo)
        self.lock = threading.RLock()
        self._photos: Optional[Dict[str, List[Photo]]] = None  # per camera, oldest first; None: not scanned
        self._bytes: Dict[str, int] = {}
        self.removed = 0
        self.removed_bytes = 0
        self.error = ""

    @property
    def clock(self) -> Callable[[], float]:
        """The time photos are stamped with and their ages measured by, as a function returning epoch
        seconds (a :class:`~ivoryos_plugin.core.clock.Clock`'s ``time``); set a ``Clock`` or such a
        function."""
        return self._now

    @clock.setter
    def clock(self, clock: Union[Clock, Callable[[], float]]) -> None:
        now = getattr(clock, "time", None)
        self._now = now if callable(now) else clock  # type: ignore[assignment]

    def _fail(self, error: str) -> None:
        """What the folder's last failure was, in words, for the gallery page."""
        self.error = error

    def bound(self, camera: str) -> Bound:
        """The bound of ``camera``'s photos.

        :param camera: a camera's name, or :data:`OTHER`."""
        return self.bounds.get(camera, self.default)

    # ------------------------------------------------------------ what is there
    def rescan(self) -> None:
        """Read the photos folder again (what another program added or removed is seen)."""
        with self.lock:
            photos: Dict[str, List[Photo]] = {}
            empty: List[str] = []
            for run, files in walk(self.root(), self._fail):
                if not files:
                    empty.append(run)
                for photo in files:
                    photos.setdefault(camera_of(photo.name, self.bounds), []).append(photo)
            for group in photos.values():
                group.sort()
            self._photos = photos
            self._bytes = {camera: sum(p.size for p in group) for camera, group in photos.items()}
            if empty:
                remove_empty_folders(self.root(), empty)

    def added(self, run: str, name: str, size: int, mtime: float) -> None:
        """A photo was written (under :attr:`lock`): it counts towards its camera's bound.

        :param run: its run folder.
        :param name: its file's name.
        :param size: its bytes.
        :param mtime: its time."""
        with self.lock:
            if self._photos is None:
                self.rescan()  # (it is seen there)
                return
            camera = camera_of(name, self.bounds)
            bisect.insort(self._photos.setdefault(camera, []), Photo(mtime=mtime, run=run, name=name, size=size))
            self._bytes[camera] = self._bytes.get(camera, 0) + size

    def totals(self) -> Dict[str, Dict[str, int]]:
        """Photos and bytes kept per camera (every declared camera, and :data:`OTHER` when there are some)."""
        with self.lock:
            if self._photos is None:
                self.rescan()
            assert self._photos is not None
            found = {camera: {"photos": 0, "bytes": 0} for camera in self.bounds}
            for camera, group in self._photos.items():
                if group:
                    found[camera] = {"photos": len(group), "bytes": self._bytes.get(camera, 0)}
            return found

    # ------------------------------------------------------------ removing
    def enforce(self, rescan: bool = False) -> int:
        """Remove what the bounds no longer keep, oldest first, never a camera's newest photo; the
        number of photos removed.

        :param rescan: read the folder again first (the periodic pass does; after a snapshot the
            photos known are enough)."""
        with self.lock:
            if rescan or self._photos is None:
                self.rescan()
            assert self._photos is not None
            now = self.clock()
            doomed: List[Tuple[str, Photo]] = []
            for camera, group in self._photos.items():
                bound = self.bound(camera)
                total = self._bytes.get(camera, 0)
                cut = 0
                while cut < len(group) - 1:  # the newest stays whatever the bound
                    photo = group[cut]
                    too_old = bound.keep_s is not None and photo.mtime < now - bound.keep_s
                    too_big = bound.keep_bytes is not None and total > bound.keep_bytes
                    if not (too_old or too_big):
                        break
                    doomed.append((camera, photo))
                    total -= photo.size
                    cut += 1
            if not doomed:
                return 0
            gone = remove(self.root(), (photo for _, photo in doomed), self._fail)
            freed = 0
            for camera in {camera for camera, _ in doomed}:
                kept = [p for p in self._photos[camera] if (p.run, p.name) not in gone]
                freed += self._bytes.get(camera, 0) - sum(p.size for p in kept)
                self._photos[camera], self._bytes[camera] = kept, sum(p.size for p in kept)
            self.removed += len(gone)
            self.removed_bytes += freed
            return len(gone)
