"""Files on disk, written and served once: the one atomic writer (settings, tokens and the secret key
are written so that a reader, or a crash, sees the old file or the new one, never a torn mix) and the
one safe file server (a plugin's static and public files, the gallery's photos: only regular files
really inside their folder)."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Collection, Optional, Union

from flask import Response, send_file
from werkzeug.security import safe_join


def atomic_write(path: Union[str, Path], data: Union[bytes, str], *, mode: Optional[int] = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename, fsync dir).

    :param path: destination file (its folder must exist).
    :param data: the complete new content (``str`` is written as UTF-8).
    :param mode: the file's permission bits; None keeps the existing file's (or the umask's)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; directories cannot be opened on Windows
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(dir_fd)


def file_inside(root: Union[str, Path], relative: str, *, suffixes: Optional[Collection[str]] = None) -> Optional[str]:
    """The real path of ``relative`` inside ``root``, or None when it is not a file there to serve: a NUL,
    ``..``, an absolute path, a symlink that leads out of ``root`` (to a login-only file, or anywhere on
    the machine), a folder, or a suffix not in ``suffixes``.

    >>> file_inside("/etc", "../etc/passwd") is None and file_inside("/etc", "a\\x00b") is None
    True

    :param root: the folder files are served from.
    :param relative: the requested path inside it (from the URL: untrusted).
    :param suffixes: the file suffixes allowed (e.g. ``{".jpg"}``); None for any."""
    if "\x00" in relative:  # no file has it in its name (and the OS refuses the path with an error)
        return None
    real_root = os.path.realpath(root)
    joined = safe_join(real_root, relative)  # None for "..", absolute paths and the like
    if joined is None:
        return None
    real = os.path.realpath(joined)
    if not real.startswith(real_root + os.sep) or not os.path.isfile(real):
        return None
    if suffixes is not None and os.path.splitext(real)[1] not in suffixes:
        return None
    return real


def serve_inside(root: Union[str, Path], relative: str, *, suffixes: Optional[Collection[str]] = None,
                 mimetype: Optional[str] = None, attachment: bool = False) -> Optional[Response]:
    """Serve ``relative`` from inside ``root`` (see :func:`file_inside`), revalidated on every use
    (``Cache-Control: no-cache``), or None when there is no such file to serve (the caller answers 404).

    :param root: the folder files are served from.
    :param relative: the requested path inside it.
    :param suffixes: the file suffixes allowed; None for any.
    :param mimetype: the type to send (guessed from the name when None).
    :param attachment: ask the browser to download it rather than show it."""
    real = file_inside(root, relative, suffixes=suffixes)
    if real is None:
        return None
    response = send_file(real, mimetype=mimetype, as_attachment=attachment, download_name=os.path.basename(real),
                         max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
