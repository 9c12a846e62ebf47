"""The anchor: a hand-written Flask-SocketIO app (threading mode) doing what the plugin does.

A background task emits ``{"t", "seq"}`` to a room every 50 ms (deadline-scheduled, one sensor
read per tick); clients join the room on ``subscribe``; a naive HTTP route reads a second sensor
per request (the polling pattern). Runs on 127.0.0.1:$PORT; clients give ``auth={"token": $TOKEN}``."""
from __future__ import annotations

import hmac
import itertools
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, Tuple

from flask import Flask, request
from flask_socketio import ConnectionRefusedError, SocketIO, join_room, leave_room

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_plugin.sensor import Sensor  # noqa: E402

NS = "/ivoryos/benchlive"
ROOM = "stream:value"
TOKEN = os.environ.get("TOKEN", "")
app = Flask(__name__)
app.config["SECRET_KEY"] = os.urandom(16).hex()
socketio = SocketIO(app, async_mode="threading", path="ivoryos/socket.io")
sensor = Sensor()  # read by the emit loop
meter = Sensor()  # read by the naive HTTP route
ticks: Deque[Tuple[int, float]] = deque(maxlen=100_000)
ticks_lock = threading.Lock()


@socketio.on("connect", namespace=NS)
def connect(auth: Any = None) -> None:
    """Refuse clients without the token."""
    token = auth.get("token", "") if isinstance(auth, dict) else ""
    if not hmac.compare_digest(str(token).encode(), TOKEN.encode()):
        raise ConnectionRefusedError("unauthorized")


@socketio.on("subscribe", namespace=NS)
def subscribe(data: Any = None) -> Dict[str, Any]:
    """Join the stream's room."""
    join_room(ROOM)
    return {"ok": True, "hz": 20.0}


@socketio.on("unsubscribe", namespace=NS)
def unsubscribe(data: Any = None) -> Dict[str, Any]:
    """Leave the stream's room."""
    leave_room(ROOM)
    return {"ok": True}


def emit_loop() -> None:
    """Emit to the room every 50 ms."""
    counter = itertools.count(1)
    due = time.monotonic()
    while True:
        sensor.read()
        with ticks_lock:
            seq, t = next(counter), time.time()
            ticks.append((seq, t))
        socketio.emit("value", {"t": t, "seq": seq}, namespace=NS, to=ROOM)
        due += 0.05
        now = time.monotonic()
        due = max(due, now)  # fell behind: drop the missed ticks (as the framework's producer does)
        socketio.sleep(due - now)


@app.route("/naive")
def naive() -> Dict[str, Any]:
    """The naive pattern: every request reads the instrument."""
    return {"n": meter.read(), "t": time.time()}


@app.route("/reads")
def reads() -> Dict[str, float]:
    """The naive sensor's reads in ``[since, until]``."""
    return meter.read_stats(float(request.args["since"]), float(request.args["until"]))


@app.route("/ticks")
def ticks_route() -> Dict[str, Any]:
    """The sequence numbers emitted in ``[since, until]``."""
    since, until = float(request.args["since"]), float(request.args["until"])
    with ticks_lock:
        return {"seqs": [seq for seq, t in ticks if since <= t <= until]}


if __name__ == "__main__":
    socketio.start_background_task(emit_loop)
    socketio.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), debug=False, use_reloader=False,
                 allow_unsafe_werkzeug=True, log_output=False)
