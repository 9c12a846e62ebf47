"""A server left running for days: glibc's mmap threshold stays fixed under ``ivoryos_plugin.run``,
so what Werkzeug's 10 MB drain after each request would raise it to never sends the blocks freed
by a camera, a reply or a query into heaps that keep them (hosts/allocator.py; issue 27).

Each check runs in a fresh interpreter: the allocator's state is the whole process's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import PY, ROOT, ivoryos_login, launch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# One 10 MB block freed (what Werkzeug's rfile.read(10_000_000) does after each response, or an import
# at start), then the setup; then forty 1 MiB blocks (camera frames, JSON replies): how many glibc gave
# as mappings of their own (returned to the system when freed); and 150 blocks of 64 KiB, touched and
# freed: the RSS the heap keeps of them (given back when the top of the heap is trimmed); then 50 rounds of
# what one request allocates and frees (four blocks of 64 KiB, zlib's for a signed cookie): the pages
# faulted in again because the heap gave them back after the round before.
PROBE = """
import ctypes, json, sys
sys.path.insert(0, {root!r})
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
big = libc.malloc(10_000_000)
ctypes.memset(big, 1, 4096)
libc.free(big)
{setup}
before = libc.mallinfo2().hblks
blocks = [libc.malloc(1 << 20) for _ in range(40)]
for block in blocks:
    ctypes.memset(block, 1, 1 << 20)  # touched, as a frame is
mapped = libc.mallinfo2().hblks - before
for block in blocks:
    libc.free(block)
start = rss()
small = [libc.malloc(64 << 10) for _ in range(150)]
for block in small:
    ctypes.memset(block, 1, 64 << 10)
for block in small:
    libc.free(block)
kept_mib = (rss() - start) / 2 ** 20
import resource
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    request = [libc.malloc(64 << 10) for _ in range(4)]
    for block in request:
        ctypes.memset(block, 1, 64 << 10)
    for block in request:
        libc.free(block)
refaults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({{"said": said, "mapped": mapped, "kept_mib": kept_mib, "refaults": refaults}}))
"""


def probe(setup: str, env: dict) -> dict:
    code = PROBE.format(root=str(ROOT), setup=setup)
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


STEADY = "from ivoryos_plugin.hosts.allocator import steady_allocator\nsaid = steady_allocator()"


def test_after_a_10_mb_block_is_freed_memory_freed_later_still_goes_back_to_the_system() -> None:
    plain = probe("said = None", {})
    assert plain["mapped"] == 0, "glibc's threshold was not raised by the freed 10 MB block: the probe proves nothing"
    assert plain["kept_mib"] > 8, f"the heap kept {plain['kept_mib']:.1f} MiB of 9.4: the probe proves nothing"
    steady = probe(STEADY, {})
    assert steady["said"].startswith("glibc's mmap threshold fixed at 128 KiB")
    assert steady["mapped"] == 40, f"only {steady['mapped']} of 40 blocks of 1 MiB were mapped: the threshold moved"
    assert steady["kept_mib"] < 1, f"the heap kept {steady['kept_mib']:.1f} MiB of 9.4 freed: its top is not trimmed"


def test_what_one_request_frees_is_kept_for_the_next_one() -> None:
    steady = probe(STEADY, {})
    # 50 rounds of 256 KiB: 3 200 page faults if the heap gave the top back after each round
    assert steady["refaults"] < 100, f"{steady['refaults']} page faults in 50 rounds: the heap's top is trimmed each round"
    # the same probe with glibc's default trim threshold, 128 KiB: the check above can fail
    trimming = probe(STEADY + "\nlibc.mallopt(-1, 128 * 1024)", {})
    assert trimming["refaults"] > 1000, f"{trimming['refaults']} page faults: the probe proves nothing"


def test_a_threshold_the_user_chose_is_left_alone() -> None:
    for env in ({"MALLOC_MMAP_THRESHOLD_": "33554432"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432"}):
        chosen = probe(STEADY, env)
        assert chosen["said"] is None and chosen["mapped"] == 0, (env, chosen)


DECK = """
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor

sensor = Sensor()

if __name__ == "__main__":
    import ivoryos_plugin
    from probe_plugin import plugin

    ivoryos_plugin.run(__name__, plugins=[plugin], port=int(os.environ["PORT"]))
"""


@pytest.mark.server
def test_ivoryos_plugin_run_fixes_the_threshold_and_says_so(tmp_path: Path) -> None:
    server = launch(DECK.format(plugins=str(ROOT / "tests" / "plugins")), tmp_path, name="deck.py")
    try:
        session = ivoryos_login(server.base)
        assert session.get(f"{server.base}/ivoryos/plugins/status.json").status_code == 200
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        assert "libc.so" in maps  # the server runs on glibc: the line below must be there
    finally:
        server.stop()
    said = [line for line in server.output().splitlines() if "glibc's mmap threshold fixed at 128 KiB" in line]
    assert len(said) == 1, server.output()[-3000:]


# Twelve threads alive at once, each allocating (as request threads, workers and a camera do): how many
# arenas glibc made (malloc_stats writes one "Arena N:" block per arena to stderr).
ARENAS = """
import ctypes, sys, threading
sys.path.insert(0, {root!r})
{setup}
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(12)
def work():
    block = libc.malloc(4096)
    barrier.wait()
    libc.free(block)
threads = [threading.Thread(target=work) for _ in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()
"""


def arenas(setup: str, env: dict) -> int:
    done = subprocess.run([PY, "-c", ARENAS.format(root=str(ROOT), setup=setup)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **env})
    assert done.returncode == 0, done.stderr
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


def test_the_heaps_of_many_threads_are_few() -> None:
    # what each heap keeps at its top (up to the trim threshold) times the heaps: bounded by ARENA_MAX
    from ivoryos_plugin.hosts.allocator import ARENA_MAX

    plain = arenas("", {})
    assert plain > ARENA_MAX, f"{plain} arenas for 12 threads without the setting: the probe proves nothing"
    assert arenas(STEADY, {}) <= ARENA_MAX
    assert arenas(STEADY, {"MALLOC_ARENA_MAX": "8"}) > ARENA_MAX  # the user's choice wins
