"""The settings file's lock between processes: an exclusive advisory lock on ``<file>.lock``
(``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), released even if the process dies."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["interprocess_lock", "try_call"]


def try_call(fn: Callable[..., Any], *args: Any) -> bool:
    """Call ``fn(*args)``; report whether it succeeded without ``OSError``.

    :param fn: the function.
    :param args: its arguments.
    """
    try:
        fn(*args)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def interprocess_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (released even if the process dies).

    :param lock_path: the lock file; created if needed and never deleted.
    """
    with open(lock_path, "a+b") as fh:
        fd = fh.fileno()
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows: LK_LOCK gives up after ~10 s, so retry
            while not try_call(msvcrt.locking, fd, msvcrt.LK_LOCK, 1):
                pass
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:  # pragma: no cover - Windows
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
