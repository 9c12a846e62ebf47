"""N Socket.IO viewers in one process (for bench_soak.py), connected until the process is killed.

Each viewer is a python-socketio client over WebSocket, as a browser tab: it joins the given
namespaces and, in a plugin's namespace, subscribes to a stream. bench_soak.py kills whole processes
(SIGKILL: no Socket.IO goodbye, the kernel closes the sockets) to play browsers that vanish.

Usage: soak_viewers.py BASE N NAMESPACES_JSON [STREAM], the login's ``Cookie`` header in env
SOAK_COOKIE (not on the command line, where other users see it); prints ``connected <n>`` once up,
then ``events <n>`` every 10 s; exits by itself when its parent (the benchmark) is gone.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, List


def main() -> None:
    base, n, namespaces = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    stream = sys.argv[4] if len(sys.argv) > 4 else ""
    cookie = os.environ["SOAK_COOKIE"]
    import socketio

    parent = os.getppid()
    counted = [0]
    lock = threading.Lock()

    def count(*_: Any) -> None:
        with lock:
            counted[0] += 1

    clients: List[Any] = []
    for _ in range(n):
        client = socketio.Client(reconnection=False)
        for namespace in namespaces:
            client.on("*", count, namespace=namespace)
        client.connect(base, socketio_path="/ivoryos/socket.io", namespaces=namespaces,
                       headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=20)
        if stream:
            plugin_namespace = next(ns for ns in namespaces if ns != "/")
            client.call("subscribe", {"stream": stream}, namespace=plugin_namespace, timeout=20)
        clients.append(client)
    print(f"connected {len(clients)}", flush=True)
    while os.getppid() == parent:
        time.sleep(10)
        with lock:
            print(f"events {counted[0]}", flush=True)


if __name__ == "__main__":
    main()
