"""Churn (issue 13): 1,000 connect / subscribe / disconnect races against a stream served by a real
IvoryOS leave no viewer behind, and the stream stops reading its instrument within one tick.

The stream is the red deck's ``tick`` (read only while someone watches; the demo's balance stream
is recorded, so it reads the balance all the time by design). Each race is a hand-made Engine.IO
polling client (so the subscribe and the disconnect can be sent in one HTTP request, the subscribe
then handled in its own thread while the disconnect is processed at once), eight at a time, in three
shapes: the namespace disconnect in the same request, in the next request, and the whole Engine.IO
session closed instead."""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import NS, RawEngineIO, RedServer, start_red  # noqa: E402

RACES, WORKERS = 1000, 8


@pytest.fixture(scope="module")
def red(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp("churn"), "ivoryos", env={"RED_HZ": "5"})
    try:
        yield running
    finally:
        running.server.stop()


def tick_stream(red: RedServer) -> Dict[str, Any]:
    return dict(red.plugin_status("red")["streams"]["tick"])


@pytest.mark.server
def test_a_thousand_connect_subscribe_disconnect_races_leave_nobody_watching(red: RedServer) -> None:
    token = next(word for word in red.cli("create", "churn").split() if word.startswith("ivp_"))
    hz = float(tick_stream(red)["hz"])
    errors: List[str] = []
    done = [0]
    lock = threading.Lock()

    def race(number: int) -> None:
        raw = RawEngineIO(red.base)
        assert raw.status == 200
        raw.send(f"40{NS}," + json.dumps({"token": token}))
        assert any(p.startswith(f"40{NS},") for p in raw.receive()), "the red namespace refused the token"
        subscribe = f'42{NS},["subscribe",{{"stream":"tick"}}]'
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
    first = tick_stream(red)
    time.sleep(1.0)
    second = tick_stream(red)
    print(f"{RACES} races in {elapsed:.1f} s; after one tick: {first}; one second later: {second}")
    assert first["viewers"] == 0, f"{first['viewers']} viewer(s) left after {RACES} races: {first}"
    assert not first["running"] and second["reads"] == first["reads"], \
        f"the instrument is still read for nobody: {second['reads'] - first['reads']} reads/s"
