"""``bench_soak.py --probe``: imported at the start of each server (PYTHONPATH), it writes a JSON line
every 30 s to $SOAK_PROBE_FILE: glibc's ``mallinfo2`` (bytes in use, free inside the heap, mapped
one by one, the number of arenas), the blocks Python's allocator holds, objects the garbage
collector tracks, threads. Not part of the framework; for finding where a server's memory goes.
Also, for checking the benchmark itself, a deliberate leak: SOAK_PROBE_LEAK_KIB (that many KiB kept
every SOAK_PROBE_LEAK_EVERY_S seconds, default 10) and SOAK_PROBE_LEAK_THREADS (a thread left
sleeping as often)."""
import os

if os.environ.get("SOAK_PROBE_FILE"):
    import ctypes
    import gc
    import json
    import sys
    import threading
    import time

    class _MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    def _probe() -> None:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        path = os.environ["SOAK_PROBE_FILE"]
        while True:
            info = libc.mallinfo2()
            line = {"t": time.time(), "malloc_in_use": info.uordblks, "malloc_free": info.fordblks,
                    "malloc_heap": info.arena, "malloc_mmapped": info.hblkhd, "malloc_mmaps": info.hblks,
                    "malloc_top_free": info.keepcost, "py_blocks": sys.getallocatedblocks(),
                    "gc_objects": len(gc.get_objects()), "threads": threading.active_count()}
            with open(path, "a") as out:
                out.write(json.dumps(line) + "\n")
            time.sleep(30)

    def _snapshots() -> None:
        import tracemalloc

        time.sleep(float(os.environ.get("SOAK_PROBE_TRACEMALLOC_DELAY", "90")))  # the server up first
        tracemalloc.start(int(os.environ["SOAK_PROBE_TRACEMALLOC"]))
        n = 0
        while True:
            time.sleep(float(os.environ.get("SOAK_PROBE_SNAPSHOT_S", "180")))
            tracemalloc.take_snapshot().dump(f"{os.environ['SOAK_PROBE_FILE']}.{n}.tracemalloc")
            n += 1

    def _trim() -> None:
        libc = ctypes.CDLL("libc.so.6")
        while True:
            time.sleep(float(os.environ["SOAK_PROBE_TRIM_S"]))
            libc.malloc_trim(0)

    def _leak() -> None:  # for checking the benchmark itself: a server that leaks must miss its figures
        kept = []
        every = float(os.environ.get("SOAK_PROBE_LEAK_EVERY_S", "10"))
        size = int(float(os.environ.get("SOAK_PROBE_LEAK_KIB", "0")) * 1024)
        while True:
            time.sleep(every)
            if size:
                kept.append(bytearray(b"x" * size))
            if os.environ.get("SOAK_PROBE_LEAK_THREADS"):
                threading.Thread(target=time.sleep, args=(1e9,), daemon=True, name="soak-probe-leak").start()

    threading.Thread(target=_probe, daemon=True, name="soak-probe").start()
    if os.environ.get("SOAK_PROBE_LEAK_KIB") or os.environ.get("SOAK_PROBE_LEAK_THREADS"):
        threading.Thread(target=_leak, daemon=True, name="soak-probe-leaker").start()
    if os.environ.get("SOAK_PROBE_TRIM_S"):
        threading.Thread(target=_trim, daemon=True, name="soak-probe-trim").start()
    if os.environ.get("SOAK_PROBE_TRACEMALLOC"):
        threading.Thread(target=_snapshots, daemon=True, name="soak-probe-snapshots").start()
