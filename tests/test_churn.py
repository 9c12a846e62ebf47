"""Churn (issue 13): 1,000 connect / subscribe / disconnect races against the demo's balance
stream leave no viewer behind, and the stream stops reading the balance within one tick.

Each race is a hand-made Engine.IO polling client (so the subscribe and the disconnect can be
sent in one HTTP request, the subscribe then handled in its own thread while the disconnect is
processed at once), eight at a time, in three shapes: the namespace disconnect in the same
request, in the next request, and the whole Engine.IO session closed instead."""
from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests

from browsing import start_demo
from support import Server, ivoryos_login, wait_until

import sys
from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import CLI, RawEngineIO  # noqa: E402

NS = "/ivoryos/balance"
RACES, WORKERS = 1000, 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_demo(tmp_path_factory.mktemp("churn"), "--no-browser", env={"CI": "true"})
    try:
        yield server
    finally:
        server.stop()


def weight_stream(session: requests.Session, demo: Server) -> Dict[str, Any]:
    status = session.get(f"{demo.base}/ivoryos/plugins/status.json", timeout=30).json()
    return dict(next(p for p in status["plugins"] if p["name"] == "balance")["streams"]["weight"])


@pytest.mark.server
def test_a_thousand_connect_subscribe_disconnect_races_leave_nobody_watching(demo: Server) -> None:
    import subprocess

    session = ivoryos_login(demo.base)
    made = subprocess.run([str(CLI), "token", "create", "churn", "--data-dir",
                           str(demo.cwd / "ivoryos_data" / "plugins")], text=True, capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    token = next(word for word in made.stdout.split() if word.startswith("ivp_"))
    hz = float(weight_stream(session, demo)["hz"])
    errors: List[str] = []
    done = [0]
    lock = threading.Lock()

    def race(number: int) -> None:
        raw = RawEngineIO(demo.base)
        assert raw.status == 200
        raw.send(f"40{NS}," + json.dumps({"token": token}))
        assert any(p.startswith(f"40{NS},") for p in raw.receive()), "the balance namespace refused the token"
        subscribe = f'42{NS},["subscribe",{{"stream":"weight"}}]'
        shape = number % 3
        if shape == 0:
            raw.send(subscribe, f"41{NS},")
        elif shape == 1:
            raw.send(subscribe)
            raw.send(f"41{NS},")
        else:
            raw.send(subscribe, "1")  # the whole Engine.IO session closes (a page reload)
        raw.close()

    def worker(first: int) -> None:
        for number in range(first, RACES, WORKERS):
            try:
                race(number)
            except BaseException as exc:  # reported below
                errors.append(f"race {number}: {exc!r}")
            with lock:
                done[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), name=f"churn-{i}") for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    elapsed = time.monotonic() - started
    assert not errors, errors[:5]
    assert done[0] == RACES and elapsed < 300
    time.sleep(1.0 / hz + 0.05)  # one tick (and the time the last event takes to arrive)
    first = weight_stream(session, demo)
    time.sleep(1.0)
    second = weight_stream(session, demo)
    print(f"{RACES} races in {elapsed:.1f} s; after one tick: {first}; one second later: {second}")
    assert first["viewers"] == 0, f"{first['viewers']} viewer(s) left after {RACES} races: {first}"
    assert not first["running"] and second["reads"] == first["reads"], \
        f"the balance is still read for nobody: {second['reads'] - first['reads']} reads/s"
