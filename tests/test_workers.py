"""Background workers: restart with growing delays, suspension after a crash loop, the health page's
restart button, the period of a periodic worker, and a worker that ignores stop at shutdown."""
from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from flask import Flask

from support import ROOT, launch

PLUGINS = ROOT / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))

from life_plugin import make_crashy, make_life, read_events  # noqa: E402

from ivoryos_plugin import Plugin, create_app  # noqa: E402
from ivoryos_plugin.hosts.devhost import stop  # noqa: E402
from ivoryos_plugin.testing import CsrfClient, login_client  # noqa: E402

RESTART_FORM = re.compile(r'<tr data-worker="flaky">.*?<form method="post" action="([^"]+)">\s*'
                          r'<input type="hidden" name="csrf_token" value="([^"]+)">', re.S)


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout} s")


def worker_status(client: CsrfClient, plugin: str = "crashy", worker: str = "flaky") -> Dict[str, Any]:
    (entry,) = [p for p in client.get("/ivoryos/plugins/status.json").get_json()["plugins"] if p["name"] == plugin]
    return entry["workers"][worker]  # type: ignore[no-any-return]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., Dict[str, Any]]]:
    """Start the standalone host around the plugins given; stopped after the test."""
    apps: List[Flask] = []

    def start(*plugins: Plugin) -> Dict[str, Any]:
        app = create_app(list(plugins), data_dir=tmp_path / "data", testing=True)
        apps.append(app)
        return {"app": app, "client": login_client(app)}

    yield start
    for app in apps:
        stop(app)


@pytest.mark.parametrize("loop", [False, True], ids=["periodic", "loop"])
def test_a_crashing_worker_backs_off_then_is_suspended_until_restarted(running: Any, loop: bool) -> None:
    plugin = make_crashy(backoff=0.1, max_crashes=4, loop=loop)
    host = running(plugin)
    client: CsrfClient = host["client"]
    calls: List[float] = plugin.calls  # type: ignore[attr-defined]
    wait_until(lambda: worker_status(client)["state"] == "suspended", what="suspension")
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(calls) == 5, f"4 crashes are allowed in the window, the 5th suspends: {len(calls)} calls"
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4, 0.8]):  # never shorter; later only on a loaded machine
        assert expected * 0.95 <= gap <= expected + 0.6, f"restart delays {gaps} are not 0.1, 0.2, 0.4, 0.8 s"
    status = worker_status(client)
    assert (status["restarts"], status["crashes"]) == (4, 5)
    assert "RuntimeError: sensor unplugged (call 5)" in status["last_error"]
    assert "in fail\n" in status["last_error"], "the last error is not a traceback"
    time.sleep(1.0)
    assert len(calls) == 5, "a suspended worker kept running"

    page = client.get("/ivoryos/plugins/").get_data(as_text=True)
    assert "RuntimeError: sensor unplugged (call 5)" in page and "Traceback (most recent call last)" in page
    assert re.search(r'<tr data-worker="flaky"><td>flaky</td><td>suspended</td><td>4</td>', page), page
    action, csrf = RESTART_FORM.search(page).groups()  # type: ignore[union-attr]
    client.csrf_token = None  # the button sends the form's own token, as a browser does
    pressed = client.post(action, data={"csrf_token": csrf})
    assert pressed.status_code == 302 and pressed.headers["Location"].endswith("/ivoryos/plugins/")
    wait_until(lambda: len(calls) > 5, timeout=5, what="a run after the restart")
    wait_until(lambda: worker_status(client)["state"] == "suspended", what="the second suspension")
    assert len(calls) == 10, "the restart did not give the worker a fresh crash budget"
    assert calls[6] - calls[5] < 0.1 + 0.6, "the restart did not reset the backoff"
    log = (plugin.data_dir / "plugin.log").read_text()
    assert "worker 'flaky' restarted from the health page" in log
    assert log.count("worker 'flaky' suspended after 5 crashes") == 2


def test_crashes_older_than_the_window_are_forgiven_and_delays_are_capped(running: Any) -> None:
    plugin = make_crashy(backoff=0.05, max_backoff=0.08, max_crashes=4, window=0.15)
    host = running(plugin)
    calls: List[float] = plugin.calls  # type: ignore[attr-defined]
    wait_until(lambda: len(calls) >= 12, what="12 crashes")
    status = worker_status(host["client"])
    assert status["state"] == "running", "crashes spread over more than the window suspended the worker"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert max(gaps) < 0.08 + 0.5 and min(gaps[1:]) >= 0.08 * 0.95, f"delays not capped at 0.08 s: {gaps}"


def test_a_periodic_worker_keeps_its_period_and_a_loop_worker_sees_stop(running: Any) -> None:
    plugin = make_life(tick_every=0.05)
    host = running(plugin)
    ticks: Dict[str, int] = plugin.ticks  # type: ignore[attr-defined]
    start = ticks["n"]
    time.sleep(1.0)
    done = ticks["n"] - start
    assert 5 <= done <= 21, f"a worker every 0.05 s ran {done} times in 1 s"
    status = host["client"].get("/ivoryos/plugins/status.json").get_json()["plugins"][0]["workers"]
    assert status["tick"]["state"] == "running" and status["tick"]["every"] == 0.05
    assert status["loop"]["state"] == "running" and status["loop"]["every"] is None
    stop(host["app"])
    events = read_events(plugin.data_dir)
    assert events.index("loop-exit") < events.index("stop")
    after = ticks["n"]
    time.sleep(0.3)
    assert ticks["n"] == after, "the periodic worker kept running after stop"


def test_the_restart_route_refuses_what_it_cannot_do(running: Any, tmp_path: Path) -> None:
    plugin = make_life()
    host = running(plugin)
    app, client = host["app"], host["client"]
    missing = client.post("/ivoryos/plugins/life/workers/nope/restart", json={})
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "Plugin 'life' has no worker 'nope'; workers: loop, tick."
    assert client.post("/ivoryos/plugins/ghost/workers/tick/restart", json={}).status_code == 404
    anonymous = app.test_client().post("/ivoryos/plugins/life/workers/tick/restart")
    assert anonymous.status_code == 401
    client.csrf_token = None
    assert client.post("/ivoryos/plugins/life/workers/tick/restart").status_code == 400
    client.csrf_token = client.get("/ivoryos/plugins/csrf.json").get_json()["csrf_token"]
    busy = client.post("/ivoryos/plugins/life/workers/tick/restart", json={})
    assert busy.status_code == 200
    assert (busy.get_json()["restarted"], busy.get_json()["state"]) == (False, "running")
    stop(app)
    late = client.post("/ivoryos/plugins/life/workers/tick/restart", json={})
    assert late.status_code == 409 and "cannot be restarted" in late.get_json()["error"]


@pytest.mark.server
@pytest.mark.parametrize("host", ["ivoryos_plugin", "cli"], ids=["ivoryos", "dev-host"])
def test_a_worker_that_ignores_stop_is_reported_and_shutdown_is_bounded(tmp_path: Path, host: str) -> None:
    code = (PLUGINS / "life_plugin" / "life_deck.py").read_text()
    server = launch(code, tmp_path, name="life_deck.py",
                    env={"PYTHONPATH": str(PLUGINS), "LIFE_HOST": host, "LIFE_PLUGINS": "life",
                         "LIFE_STUBBORN": "1"})
    data_dir = tmp_path / "ivoryos_data" / "plugins" / "life"
    try:
        wait_until(lambda: {"deaf-start", "loop-start"} <= set(read_events(data_dir)), timeout=30,
                   what="the workers' start")
        began = time.monotonic()
        exit_code = server.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - began
    finally:
        server.stop()
    assert exit_code == 128 + signal.SIGTERM, server.output()
    assert 4.5 <= took < 10, f"shutdown took {took:.1f} s (the stop budget is 5 s)"
    events = read_events(data_dir)
    assert events[-1] == "stop" and "loop-exit" in events and "deaf-exit" not in events, events
    log = (data_dir / "plugin.log").read_text()
    assert "ERROR ivoryos_plugin.life: worker 'deaf' ignored stop for 5.0 s; shutting down without it" in log
    assert "worker 'deaf' ignored stop" in server.output(), "the console does not report the deaf worker"
