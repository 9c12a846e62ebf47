"""A plugin's cameras in one app: the MJPEG stream and snapshot routes, the snapshot step's photos
kept per workflow run in the plugin's data folder (bounded by age and size per camera), and the
gallery page that lists them and says what it keeps.

The package, one concern a module (each imports only those listed before it):

- :mod:`.streaming` each frame framed once, and one sender per camera writing it to every viewer;
- :mod:`.disk` the photos folder read and changed with no link followed; :mod:`.retention` each
  camera's bound and what it removes; :mod:`.camera_set` :class:`CameraSet`, one runtime's cameras
  and photos; :mod:`.views` the HTTP routes (stream, snapshot, gallery, one photo)."""
from __future__ import annotations

from .camera_set import PHOTOS, PRUNE_EVERY_S, CameraSet
from .disk import Photo
from .retention import OTHER, PHOTO_NAME, Bound, PhotoRetention, camera_of, duration, size_text
from .streaming import BACKLOG_FRAMES, BOUNDARY, NO_FRAME_END_S, Broadcast, mjpeg_part

__all__ = ["BACKLOG_FRAMES", "BOUNDARY", "Bound", "Broadcast", "CameraSet", "NO_FRAME_END_S", "OTHER", "PHOTOS",
           "PHOTO_NAME", "PRUNE_EVERY_S", "Photo", "PhotoRetention", "camera_of", "duration", "mjpeg_part",
           "size_text"]
