"""The one atomic writer: settings, tokens and the secret key are written so that a reader (or a
crash) sees the old file or the new one, never a torn mix."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union


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
