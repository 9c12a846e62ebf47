"""The photos folder on disk, no link ever followed: the run folders and their real ``.jpg`` files
(:func:`walk`), and removing photos and the run folders they leave empty (:func:`remove`,
:func:`remove_empty_folders`).

Folders are opened relative to their parent's descriptor with ``O_NOFOLLOW`` and files are removed
relative to their folder's, so a symbolic link planted inside the photos folder is neither counted,
listed nor removed, nor what it points to (where the system has no such descriptors, links are
checked by name and skipped)."""
from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

log = logging.getLogger("ivoryos_plugin.photos")

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: descriptors relative to a folder's descriptor: what keeps links from being followed (Linux, macOS)
_AT_SUPPORTED = (os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd
                 and os.rmdir in os.supports_dir_fd and os.scandir in os.supports_fd and bool(_NOFOLLOW))


@dataclass(frozen=True, order=True)
class Photo:
    """One kept photo.

    :param run: its run folder's name.
    :param name: its file's name.
    :param mtime: its time (``clock()`` when it was written).
    :param size: its size in bytes."""

    mtime: float
    run: str
    name: str
    size: int


def walk(root: Path, fail: Callable[[str], None]) -> Iterator[Tuple[str, List[Photo]]]:
    """Each real run folder in ``root`` and its real ``.jpg`` files (links skipped, not followed).

    :param root: the photos folder (nothing when it does not exist).
    :param fail: told, in words, why the folder could not be read."""
    try:
        root_fd = os.open(root, _DIR_FLAGS) if _AT_SUPPORTED else -1
        with os.scandir(root_fd if _AT_SUPPORTED else str(root)) as entries:
            runs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as exc:
        fail(f"cannot read {root}: {exc}")
        return
    try:
        for run in runs:
            files = _files(root_fd, root, run)
            if files is not None:
                yield run, files
    finally:
        if root_fd >= 0:
            os.close(root_fd)


def _files(root_fd: int, root: Path, run: str) -> Optional[List[Photo]]:
    try:
        if _AT_SUPPORTED:
            run_fd = os.open(run, _DIR_FLAGS | _NOFOLLOW, dir_fd=root_fd)
            try:
                with os.scandir(run_fd) as entries:
                    return [photo for e in entries if (photo := _photo(run, e)) is not None]
            finally:
                os.close(run_fd)
        folder = root / run
        if folder.is_symlink():
            return None
        with os.scandir(folder) as entries:
            return [photo for e in entries if (photo := _photo(run, e)) is not None]
    except OSError:  # gone meanwhile, or a link put in its place: not ours to read
        return None


def _photo(run: str, entry: "os.DirEntry[str]") -> Optional[Photo]:
    """``entry`` as a photo when it is a real ``.jpg`` file (a link is not)."""
    if not entry.name.endswith(".jpg") or not entry.is_file(follow_symlinks=False):
        return None
    info = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        return None
    return Photo(mtime=info.st_mtime, run=run, name=entry.name, size=info.st_size)


def remove(root: Path, photos: Iterable[Photo], fail: Callable[[str], None]) -> set[Tuple[str, str]]:
    """Remove ``photos`` (relative to their folders' descriptors), then their folders when empty;
    the ``(run, name)`` of those gone (a photo already gone counts as gone).

    :param root: the photos folder.
    :param photos: what to remove.
    :param fail: told, in words, what could not be removed."""
    by_run: Dict[str, List[str]] = {}
    for photo in photos:
        by_run.setdefault(photo.run, []).append(photo.name)
    gone: set[Tuple[str, str]] = set()
    try:
        root_fd = os.open(root, _DIR_FLAGS) if _AT_SUPPORTED else -1
    except OSError as exc:
        fail(f"cannot open {root}: {exc}")
        return gone
    try:
        for run, names in by_run.items():
            try:
                run_fd = os.open(run, _DIR_FLAGS | _NOFOLLOW, dir_fd=root_fd) if _AT_SUPPORTED else -1
            except OSError:  # gone, or no longer a real folder: nothing in it is removed
                continue
            try:
                for name in names:
                    try:
                        if _AT_SUPPORTED:
                            os.unlink(name, dir_fd=run_fd)  # a link in its place: the link goes, never its target
                        elif not (root / run).is_symlink():
                            os.unlink(root / run / name)
                        else:
                            continue
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        fail(f"cannot remove {run}/{name}: {exc}")
                        log.warning("photos: cannot remove %s/%s: %s", run, name, exc)
                        continue
                    gone.add((run, name))
            finally:
                if run_fd >= 0:
                    os.close(run_fd)
        remove_empty_folders(root, list(by_run), root_fd)
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    return gone


def remove_empty_folders(root: Path, runs: List[str], root_fd: Optional[int] = None) -> None:
    """Remove the run folders of ``runs`` that are empty (a folder with anything in it stays).

    :param root: the photos folder.
    :param runs: run folders' names.
    :param root_fd: ``root`` opened already (else it is opened here)."""
    own = root_fd is None
    if own:
        try:
            root_fd = os.open(root, _DIR_FLAGS) if _AT_SUPPORTED else -1
        except OSError:
            return
    assert root_fd is not None
    try:
        for run in runs:
            try:
                if _AT_SUPPORTED:
                    os.rmdir(run, dir_fd=root_fd)  # a link is not a folder: refused, left alone
                elif not (root / run).is_symlink():
                    os.rmdir(root / run)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
                    log.debug("photos: cannot remove the folder %s: %s", run, exc)
    finally:
        if own and root_fd >= 0:
            os.close(root_fd)
