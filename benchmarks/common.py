"""Helpers shared by the benchmarks: FIGURE lines, medians, free ports, servers in threads."""
from __future__ import annotations

import socket
import statistics
import sys
import threading
from typing import Any, List, Sequence, Tuple

from werkzeug.serving import make_server

_results: List[Tuple[str, float, str, bool]] = []


def figure(name: str, value: float, target: str) -> None:
    """Record a figure; ``target`` is like ``<=1.10`` or ``>=0.90``.

    :param name: the figure's name.
    :param value: the measured value.
    :param target: the comparison and bound."""
    op, bound = (target[:2], float(target[2:])) if target[:2] in ("<=", ">=") else (target[0], float(target[1:]))
    ok = {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]
    _results.append((name, value, target, ok))


def finish() -> None:
    """Print the FIGURE lines and exit 1 when a figure misses its target."""
    for name, value, target, ok in _results:
        shown = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        print(f"FIGURE {name} {shown} target{target} {'ok' if ok else 'MISSED'}")
    sys.exit(0 if all(r[3] for r in _results) else 1)


def median(values: Sequence[float]) -> float:
    """The median of ``values``.

    :param values: numbers."""
    return float(statistics.median(values))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """A WSGI app served on 127.0.0.1 from a background thread.

    :param app: the WSGI app."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.thread.join(5)
