"""N MJPEG viewers in one process (for bench_camera.py): each reads whole parts for SECONDS and the
process prints, as JSON, the frames each got per second and the frames' age on arrival."""
from __future__ import annotations

import json
import socket
import statistics
import sys
import threading
import time
from typing import Dict, List
from urllib.parse import urlsplit


def viewer(url: str, headers: Dict[str, str], seconds: float, out: List[float], counts: List[int]) -> None:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode())
    buf, frames, end = b"", 0, time.monotonic() + seconds
    head_seen = False
    try:
        while time.monotonic() < end:
            chunk = sock.recv(262144)
            if not chunk:
                break
            buf += chunk
            if not head_seen:
                cut = buf.find(b"\r\n\r\n")
                if cut < 0:
                    continue
                buf, head_seen = buf[cut + 4:], True
            while True:
                cut = buf.find(b"\r\n\r\n")
                if cut < 0:
                    break
                head = buf[:cut].decode("latin-1")
                fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
                size = int(fields["Content-Length"])
                if len(buf) < cut + 4 + size + 2:
                    break
                out.append(time.time() - float(fields["X-Frame-Time"]))
                frames += 1
                buf = buf[cut + 4 + size + 2:]
    finally:
        sock.close()
        counts.append(frames)


def main() -> None:
    url, n, seconds, headers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
    ages: List[float] = []
    counts: List[int] = []
    threads = [threading.Thread(target=viewer, args=(url, headers, seconds, ages, counts)) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 20)
    ages.sort()
    p99 = ages[min(len(ages) - 1, int(len(ages) * 0.99))] if ages else float("inf")
    print(json.dumps({"viewers": n, "fps_per_viewer": statistics.mean(counts) / seconds if counts else 0.0,
                      "age_p99": p99}))


if __name__ == "__main__":
    main()
