"""20 threads hammer one simulated balance through actions, a stream and an IvoryOS workflow at
once: the simulator sees no interleaved exchange, and nothing deadlocks."""
from __future__ import annotations

import threading
import time
from typing import List

import pytest
import requests
import socketio

from support import ROOT, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"


@pytest.mark.server
def test_actions_stream_and_workflow_never_interleave_on_the_wire(tmp_path) -> None:
    server = launch((PLUGINS / "hammer_deck.py").read_text(), tmp_path, name="hammer_deck.py",
                    env={"PYTHONPATH": str(PLUGINS)})
    try:
        base = server.base
        session = ivoryos_login(base)
        script = "def workflow():\n    deck.balance.tare()\n    deck.balance.weigh()\n    deck.balance.set_unit(unit='g')\n"
        assert session.post(f"{base}/ivoryos/draft/submit_python", json={
            "workflow_name": "hammer", "script": script, "prep": "", "cleanup": ""}).status_code == 200
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        viewers: List[socketio.Client] = []
        received: List[dict] = []
        for _ in range(2):
            sio = socketio.Client(reconnection=False)
            sio.on("weight", received.append, namespace="/ivoryos/hammer")
            sio.connect(base, socketio_path="/ivoryos/socket.io", namespaces=["/ivoryos/hammer"],
                        headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10)
            sio.call("subscribe", {"stream": "weight"}, namespace="/ivoryos/hammer", timeout=5)
            viewers.append(sio)
        failures: List[str] = []
        calls = [0]
        stop_at = time.monotonic() + 4.0

        def hammer() -> None:
            own = requests.Session()
            own.cookies.update(session.cookies)
            own.headers.update(session.headers)
            while time.monotonic() < stop_at:
                reply = own.post(f"{base}/ivoryos/hammer/actions/weigh", json={}, timeout=30)
                calls[0] += 1
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")

        threads = [threading.Thread(target=hammer) for _ in range(17)]
        for thread in threads:
            thread.start()
        run = session.post(f"{base}/ivoryos/executions/config", json={"repeat": 15},
                           headers={"Accept": "application/json"}, timeout=60)
        assert run.status_code == 200, run.text
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "an action never returned: deadlock"
        assert not failures, failures[:5]
        deadline = time.monotonic() + 30
        while session.get(f"{base}/ivoryos/executions/status").json().get("busy") and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = session.post(f"{base}/ivoryos/hammer/actions/sim_stats", json={}).json()
        for sio in viewers:
            sio.disconnect()
        assert calls[0] > 50 and len(received) > 50, (calls, len(received))
        assert stats["garbled"] == 0, stats
        assert stats["overlapped"] == 0, stats
        assert {"T", "W?", "U"} <= set(stats["kinds"]), stats  # actions, stream and workflow all ran
        assert all("grams" in r for r in received)
    finally:
        server.stop()
