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
the trim threshold (the free space a heap keeps at its top, raised with the other) at 2 MiB, above
what one request allocates and frees (:data:`TRIM_THRESHOLD`); ``ivoryos_plugin.run`` calls it at
start. A threshold the user chose (``MALLOC_MMAP_THRESHOLD_``, or ``glibc.malloc.mmap_threshold`` in ``GLIBC_TUNABLES``) is left alone, and so is any other C
library (musl, macOS, Windows).
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

#: ``mallopt``'s parameter numbers (glibc's ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``)
M_MMAP_THRESHOLD, M_TRIM_THRESHOLD = -3, -1
#: the mmap threshold, fixed at glibc's default; the trim threshold, fixed above what one request
#: allocates and frees (glibc's default, 128 KiB, gave the top of the heap back after nearly every
#: request, IvoryOS's own included: ``zlib``'s 256 KiB for each signed session cookie and CSRF token,
#: a rendered page and its copies; the next request faulted the same pages in again, 21 to 45 minor
#: faults per ``/ivoryos/`` against 1 for plain ``ivoryos.run``, and 2 with 2 MiB). What a heap keeps
#: at its top stays under this bound, so the process does not grow by it.
MMAP_THRESHOLD, TRIM_THRESHOLD = 128 * 1024, 2 << 20


def user_chose_threshold() -> bool:
    """Whether the environment sets glibc's mmap threshold (the user's choice wins)."""
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in os.environ.get(
        "GLIBC_TUNABLES", "")


def steady_allocator() -> Optional[str]:
    """Fix glibc's mmap threshold at 128 KiB and its trim threshold at 2 MiB for this process (no more
    raising on free).

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
    return ("glibc's mmap threshold fixed at 128 KiB (ivoryos.run: raised to 10 MB by Werkzeug's 10 MB read after "
            "each request, so freed memory stays in the process and RSS grows for hours); set "
            "MALLOC_MMAP_THRESHOLD_ to choose another.")
