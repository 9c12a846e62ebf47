"""Each simulator's private folder in the temporary directory (where its stable port symlink lives),
and the sweep that removes the folders of simulators whose process is gone (killed before it could
clean up), so a crash leaves nothing behind after the next start."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Optional

__all__ = ["FOLDER_PREFIX", "OWNER_FILE", "remove_stale_folders"]

logger = logging.getLogger("ivoryos_plugin.sim")


#: Each simulator's private folder in the temporary directory: ``ivoryos-sim-<pid>-<random>``, with a
#: file :data:`OWNER_FILE` naming the process that made it (its pid and start time).
FOLDER_PREFIX = "ivoryos-sim-"
OWNER_FILE = ".owner"


def _process_identity(pid: int) -> Optional[str]:
    """``"<pid> <start time in clock ticks since boot>"`` for a live process, None for a gone one: a
    pid the kernel gave to a new process since has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return f"{pid} {int(fields[19])}"  # field 22 of stat(5), counted after the command's ")"
    except (OSError, IndexError, ValueError):
        return None


def remove_stale_folders(root: Optional[str] = None) -> list[str]:
    """Remove the folders of simulators whose process is gone (killed before it could clean up), so
    a crash leaves nothing behind after the next start. A folder is removed only when it is a real
    directory (not a link) of this user, named :data:`FOLDER_PREFIX` ``<pid>-...``, whose owner file
    names a process that no longer runs (another start time for the same pid counts as gone).

    :param root: the folder to sweep (default: the temporary directory).
    :returns: the folders removed."""
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(FOLDER_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            pid = int(entry.name[len(FOLDER_PREFIX):].split("-", 1)[0])
            with open(os.path.join(entry.path, OWNER_FILE), encoding="ascii") as owner:
                recorded = owner.read().strip()
        except (OSError, ValueError):
            continue  # an older simulator's folder, or not ours: left alone
        now = _process_identity(pid)
        if pid == os.getpid() or (now == recorded if recorded else now is not None):
            continue  # its process still runs
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    if removed:
        logger.info("removed %d simulator folder(s) left by processes that are gone: %s", len(removed),
                    ", ".join(removed))
    return removed
