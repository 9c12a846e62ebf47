"""ivoryos-edge host against hand-written native edge code, in one edge process, interleaved.

1. Our action route (``POST /plugins/ours/actions/work``: guarded, validated from the signature, run in
   the plugin's Flask request context) against a native edge plugin route doing the same work
   (``POST /plugins/native/actions/work``: a FastAPI route with a pydantic body). Median latency
   ratio, target <= 1.10.
2. 100 WebSocket clients on a 20 Hz stream: our live channel (``/plugins/ours/live``, the runtime's
   stream producer) against a hand-written FastAPI broadcast loop (``/plugins/native/ticks``).
   Delivered share (target 100 %: of the values produced in a round's window, each client got each,
   however late), p99 delivery-latency ratio (target <= 1.2; the median of the rounds) and the
   server's CPU per delivered message, ratio (target <= 1.1), rounds alternating.

Run: ``python benchmarks/bench_edge.py`` (needs the [edge] extra). Bounded to about two minutes.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from benchmarks.common import figure, finish, median  # noqa: E402
from support import Server, launch  # noqa: E402

CLIENTS = 100
HZ = 20
ROUND_S = 4.0
GRACE_S = 0.5
ROUNDS = 7
REQUESTS = 300

PLUGINS = '''
    import asyncio
    import time

    from fastapi import Request, WebSocket, WebSocketDisconnect
    from ivoryos_edge.plugins import Plugin as NativePlugin
    from pydantic import BaseModel

    from ivoryos_plugin import Plugin

    ours = Plugin("ours", __name__, title="Ours", template_folder=None)

    @ours.route("/")
    def main():
        return "ours"

    @ours.action(hardware=False)
    def work(n: int = 100) -> dict:
        return {"sum": sum(range(n))}

    @ours.stream("tick", hz=20)
    def tick():
        return {"t": time.time()}

    native = NativePlugin("Native", id="native")

    class Work(BaseModel):
        n: int = 100

    @native.router.post("/actions/work")
    def native_work(body: Work) -> dict:
        return {"sum": sum(range(body.n))}

    clients = set()
    loop_task = {}

    async def broadcast():
        loop = asyncio.get_running_loop()
        due = loop.time()
        while clients:
            message = {"type": "event", "event": "tick", "data": {"t": time.time()}}
            for ws in list(clients):
                try:
                    await ws.send_json(message)
                except Exception:
                    clients.discard(ws)
            due = max(due + 1 / 20, loop.time())  # 20 Hz on a schedule, as our producer keeps it
            await asyncio.sleep(due - loop.time())
        loop_task.clear()

    @native.router.websocket("/ticks")
    async def ticks(ws: WebSocket):
        await ws.accept()
        clients.add(ws)
        if not loop_task:
            loop_task["t"] = asyncio.ensure_future(broadcast())
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)
'''

DECK = '''
    import os
    import ivoryos_edge
    from ivoryos_plugin.edge import for_edge
    import bench_plugins

    if __name__ == "__main__":
        ivoryos_edge.run(__name__, plugins=[for_edge(bench_plugins.ours), bench_plugins.native], host="127.0.0.1",
                         port=int(os.environ["PORT"]), exclude_names=["bench_plugins"])
'''


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_rounds(server: Server) -> Tuple[List[float], List[float]]:
    session = requests.Session()
    ours_url, native_url = (f"{server.base}/plugins/{p}/actions/work" for p in ("ours", "native"))
    ours: List[float] = []
    native: List[float] = []
    for _ in range(30):  # warm up both
        session.post(ours_url, json={"n": 100})
        session.post(native_url, json={"n": 100})
    for i in range(REQUESTS * 2):
        url, into = (ours_url, ours) if i % 2 == 0 else (native_url, native)
        started = time.perf_counter()
        reply = session.post(url, json={"n": 100})
        into.append(time.perf_counter() - started)
        assert reply.status_code == 200 and reply.json() == {"sum": 4950}, reply.text
    return ours, native


def fanout_round(server: Server, side: str) -> Dict[str, Any]:
    """One round of ``CLIENTS`` viewers of one side. The window is one of *production*: every value
    produced in it (its ``t``) counts, however late it arrives (read until ``GRACE_S`` after the window),
    so a value delivered just past the end is not taken for a lost one."""
    path = "/plugins/ours/live" if side == "ours" else "/plugins/native/ticks"
    url = server.base.replace("http://", "ws://") + path
    sockets = [websocket.create_connection(url, timeout=10) for _ in range(CLIENTS)]
    if side == "ours":
        for ws in sockets:
            ws.send(json.dumps({"op": "subscribe", "stream": "tick"}))
    received: List[Dict[float, float]] = [{} for _ in sockets]  # per client: value's t -> its latency
    stop = threading.Event()
    window: Dict[str, float] = {}

    def reader(index: int, ws: Any) -> None:
        ws.settimeout(1.0)
        while not stop.is_set():
            try:
                frame = json.loads(ws.recv())
            except Exception:
                continue
            if frame.get("event") == "tick":
                now = time.time()
                t = float(frame["data"]["t"])
                if window.get("start", float("inf")) <= t <= window.get("end", 0.0):
                    received[index][t] = now - t

    threads = [threading.Thread(target=reader, args=(i, ws), daemon=True) for i, ws in enumerate(sockets)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every client receiving
    cpu_before = cpu_seconds(server.proc.pid)
    window["start"] = time.time()
    window["end"] = window["start"] + ROUND_S
    time.sleep(ROUND_S)
    cpu = cpu_seconds(server.proc.pid) - cpu_before  # the window's work
    time.sleep(GRACE_S)
    stop.set()
    for ws in sockets:
        ws.close()
    for thread in threads:
        thread.join(2)
    produced = set().union(*(set(r) for r in received))  # every value of the window some client got
    counts = [len(r) for r in received]
    delivered = sum(counts) / (len(produced) * CLIENTS) if produced else 0.0
    latencies = sorted(x for r in received for x in r.values())
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
    time.sleep(0.5)
    return {"delivered": delivered, "p99": p99, "cpu": cpu / max(1, sum(counts)), "counts": (min(counts), len(produced))}


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_edge-"))
    (folder / "bench_plugins.py").write_text(textwrap.dedent(PLUGINS))
    server = launch(DECK, folder, name="bench_deck.py", env={"IVORYOS_DATA_DIR": str(folder / "data")}, timeout=120)
    try:
        ours, native = latency_rounds(server)
        ratio = median(ours) / median(native)
        print(f"action: ours {median(ours) * 1000:.2f} ms, native {median(native) * 1000:.2f} ms (median)")
        figure("edge_action_median_ratio", ratio, "<=1.10")
        results: Dict[str, List[Dict[str, Any]]] = {"ours": [], "native": []}
        for _ in range(ROUNDS):
            for side in ("ours", "native"):
                results[side].append(fanout_round(server, side))
                print(side, results[side][-1])
        delivered = min(r["delivered"] for r in results["ours"])
        p99 = median([r["p99"] for r in results["ours"]]) / median([r["p99"] for r in results["native"]])
        cpu = median([r["cpu"] for r in results["ours"]]) / median([r["cpu"] for r in results["native"]])
        figure("edge_fanout_delivered", delivered, ">=1.0")
        figure("edge_fanout_p99_ratio", p99, "<=1.2")
        figure("edge_fanout_cpu_ratio", cpu, "<=1.1")
    finally:
        server.stop()
    finish()


if __name__ == "__main__":
    main()
