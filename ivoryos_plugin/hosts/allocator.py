"""The C allocator of a server left running for days (glibc, Linux): fixed mmap and trim thresholds.

glibc hands out blocks above its *mmap threshold* (128 KiB) as mappings of their own, returned to
the system when freed; but the first time such a block is freed it raises the threshold to that
block's size (up to 32 MiB), for good. Werkzeug's server, which IvoryOS runs, reads up to 10 MB
after every response to drain the request (``werkzeug/serving.py``: ``rfile.read(10_000_000)``),
so after the first request the threshold is 10 MB, and every block under that (a camera frame, a
JPEG, a JSON reply, a history query's rows) comes from the heaps of glibc's arenas, one per
thread that allocates, where the free space left between blocks that live on stays in the
process. Measured with ``benchmarks/bench_soak.py`` (the demo under a lab's load): RSS grew 67 MiB
an hour with the raised threshold and 24 with it fixed; plain ``ivoryos.run``, 11 and 5.

:func:`steady_allocator` fixes the threshold at glibc's default, which also stops the raising, and
the trim threshold (the free space a heap keeps at its top, raised with the other) at 1 MiB, above
what one request allocates and frees (:data:`TRIM_THRESHOLD`), with at most :data:`ARENA_MAX` arenas;
``ivoryos_plugin.run`` calls it at start. A threshold the user chose (``MALLOC_MMAP_THRESHOLD_``, or
``glibc.malloc.mmap_threshold`` in ``GLIBC_TUNABLES``) is left alone, so is a number of arenas the user
chose (``MALLOC_ARENA_MAX``), and so is any other C library (musl, macOS, Windows).
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

#: ``mallopt``'s parameter numbers (glibc's ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``, ``M_ARENA_MAX``)
M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX = -3, -1, -8
#: the mmap threshold, fixed at glibc's default; the trim threshold, fixed above what one request
#: allocates and frees (glibc's default, 128 KiB, gave the top of the heap back after nearly every
#: request, IvoryOS's own included: ``zlib``'s 256 KiB for each signed session cookie and CSRF token,
#: a rendered page and its copies; the next request faulted the same pages in again, 21 to 45 minor
#: faults per ``/ivoryos/`` against 1 for plain ``ivoryos.run``, and 2 with 1 MiB). What a heap keeps
#: at its top stays under this bound, and there are at most :data:`ARENA_MAX` heaps of threads.
MMAP_THRESHOLD, TRIM_THRESHOLD = 128 * 1024, 1 << 20
#: glibc's arenas (a heap each, shared by threads): at most 4 instead of 8 per core, so what the heaps
#: keep at their tops is at most 4 MiB in all (with 16 arenas and 2 MiB, the soak's arena heaps grew from
#: 12 to 21 MiB between its 5th and 20th minute). Python's own allocations take the GIL first, so threads
#: seldom wait on one.
ARENA_MAX = 4


def user_chose_threshold() -> bool:
    """Whether the environment sets glibc's mmap threshold (the user's choice wins)."""
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in os.environ.get(
        "GLIBC_TUNABLES", "")


def user_chose_arenas() -> bool:
    """Whether the environment sets glibc's number of arenas (the user's choice wins)."""
    return "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", "")


def steady_allocator() -> Optional[str]:
    """Fix glibc's mmap threshold at 128 KiB and its trim threshold at 1 MiB for this process (no more
    raising on free), with at most :data:`ARENA_MAX` arenas (unless the environment sets that).

    :returns: the sentence to print at start when it was set; None when nothing was done (not
        glibc, or the environment sets the threshold)."""
    if not sys.platform.startswith("linux") or user_chose_threshold():
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both: a block freed before this call (at import) may have raised the trim threshold with the
    # mmap threshold (to twice it), and free space at the top of a heap would then never be returned
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return None
    if not user_chose_arenas():
        mallopt(M_ARENA_MAX, ARENA_MAX)  # (the thresholds are what matters: a refusal here changes nothing else)
    return ("glibc's mmap threshold fixed at 128 KiB (ivoryos.run: raised to 10 MB by Werkzeug's 10 MB read after "
            "each request, so freed memory stays in the process and RSS grows for hours); set "
            "MALLOC_MMAP_THRESHOLD_ to choose another.")
