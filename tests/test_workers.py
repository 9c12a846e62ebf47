"""Background workers: restart with growing delays, suspension after a crash loop, the health page's
restart button, the period of a periodic worker, and a worker that ignores stop at shutdown.

The delays, the crash window and the period are measured on a :class:`ManualClock` the tests move by
hand (a worker run by a :class:`WorkerRunner` on that clock): they assert counts and order, exactly,
instead of sleeping through the delays and allowing for a loaded machine."""
from __future__ import annotations

import logging
import re
import signal
import sys
import time
from dataclasses import replace
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
from ivoryos_plugin.runtime.workers import WorkerRunner  # noqa: E402
from ivoryos_plugin.testing import CsrfClient, RecordingClock, login_client, manual_clock  # noqa: E402,F401

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
def clocked(manual_clock: RecordingClock) -> Iterator[Callable[[Plugin, str], WorkerRunner]]:
    """``clocked(plugin, worker)``: the plugin's worker run by a :class:`WorkerRunner` on the test's
    clock, with the clock time of each call it makes in ``runner.calls``; stopped after the test."""
    runners: List[WorkerRunner] = []

    def run(plugin: Plugin, worker: str) -> WorkerRunner:
        spec = plugin.declarations.workers[worker]
        calls: List[float] = []

        def timed(*args: Any) -> Any:
            calls.append(manual_clock.monotonic())
            return spec.func(*args)

        runner = WorkerRunner(replace(spec, func=timed), logging.getLogger(f"test.{plugin.name}"), clock=manual_clock)
        runner.calls = calls  # type: ignore[attr-defined]
        runners.append(runner)
        assert runner.start()
        return runner

    yield run
    for runner in runners:
        runner.request_stop()
    for runner in runners:
        assert runner.join(5.0), "a worker did not stop"


def advance(clock: RecordingClock, seconds: float, reached: Callable[[], bool], what: str) -> None:
    """Once the worker waits on ``clock``, move it on by ``seconds``, then wait (real time, briefly)
    for the worker to do what ``reached`` sees."""
    clock.step(seconds)
    wait_until(reached, timeout=5.0, what=what)


def crash_loop(clock: RecordingClock, runner: WorkerRunner, calls: List[Any], delays: List[float], inner: float,
               first: int = 0) -> None:
    """Drive a crashing worker, just (re)started after ``first`` calls, through ``delays``: each crash
    is followed by a wait of the next delay (a loop worker first sleeps ``inner`` in its own loop, then
    fails)."""
    for n, delay in enumerate([None, *delays]):
        if delay is not None:
            restarts = runner.restarts
            advance(clock, delay, lambda: runner.restarts == restarts + 1, f"restart {restarts + 1}")
        if inner:
            advance(clock, inner, lambda: len(calls) == first + n + 1, f"crash {n + 1}")
        else:
            wait_until(lambda: len(calls) == first + n + 1, what=f"crash {n + 1}")


def clock_waits(clock: RecordingClock, count: int) -> List[float]:
    """The first ``count`` waits on ``clock``, once that many have begun."""
    assert clock.wait_for_waiters(1) and len(clock.waited) >= count, clock.waited
    return clock.waited[:count]


@pytest.mark.parametrize("loop", [False, True], ids=["periodic", "loop"])
def test_a_crashing_worker_backs_off_then_is_suspended_until_restarted_on_the_clock(
        clocked: Any, manual_clock: RecordingClock, loop: bool) -> None:
    plugin = make_crashy(backoff=0.1, max_crashes=4, loop=loop)
    runner: WorkerRunner = clocked(plugin, "flaky")
    failed: List[float] = plugin.calls  # type: ignore[attr-defined]
    inner = 0.01 if loop else 0.0  # the loop worker's own stop.sleep(0.01) before it fails
    crash_loop(manual_clock, runner, failed, [0.1, 0.2, 0.4, 0.8], inner)
    wait_until(lambda: runner.state == "suspended", what="suspension")
    assert runner.join(5.0), "a suspended worker's thread did not end"
    delays = [w for w in manual_clock.waited if w != inner]
    assert delays == [0.1, 0.2, 0.4, 0.8], f"restart delays {delays} are not 0.1, 0.2, 0.4, 0.8 s"
    gaps = [b - a for a, b in zip(runner.crashes, runner.crashes[1:])]
    assert gaps == pytest.approx([0.1 + inner, 0.2 + inner, 0.4 + inner, 0.8 + inner]), f"crashes at {runner.crashes}"
    assert len(failed) == 5, f"4 crashes are allowed in the window, the 5th suspends: {len(failed)} calls"
    assert (runner.restarts, len(runner.crashes)) == (4, 5)
    assert "RuntimeError: sensor unplugged (call 5)" in runner.last_error
    manual_clock.advance(60.0)
    assert len(failed) == 5, "a suspended worker kept running"

    manual_clock.waited.clear()
    assert runner.start(), "the suspended worker was not restarted"
    crash_loop(manual_clock, runner, failed, [0.1, 0.2, 0.4, 0.8], inner, first=5)
    wait_until(lambda: runner.state == "suspended", what="the second suspension")
    assert len(failed) == 10, "the restart did not give the worker a fresh crash budget"
    assert [w for w in manual_clock.waited if w != inner] == [0.1, 0.2, 0.4, 0.8], "the restart did not reset the backoff"


@pytest.mark.parametrize("loop", [False, True], ids=["periodic", "loop"])
def test_a_suspended_worker_is_shown_on_the_health_page_and_restarted_from_it(running: Any, loop: bool) -> None:
    plugin = make_crashy(backoff=0.01, max_crashes=4, loop=loop)
    host = running(plugin)
    client: CsrfClient = host["client"]
    calls: List[float] = plugin.calls  # type: ignore[attr-defined]
    wait_until(lambda: worker_status(client)["state"] == "suspended", what="suspension")
    assert len(calls) == 5, f"4 crashes are allowed in the window, the 5th suspends: {len(calls)} calls"
    status = worker_status(client)
    assert (status["restarts"], status["crashes"]) == (4, 5)
    assert "RuntimeError: sensor unplugged (call 5)" in status["last_error"]
    assert "in fail\n" in status["last_error"], "the last error is not a traceback"

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
    log = (plugin.data_dir / "plugin.log").read_text()
    assert "worker 'flaky' restarted from the health page" in log
    assert log.count("worker 'flaky' suspended after 5 crashes") == 2


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


def test_crashes_older_than_the_window_are_forgiven_and_delays_are_capped(clocked: Any,
                                                                          manual_clock: RecordingClock) -> None:
    plugin = make_crashy(backoff=0.05, max_backoff=0.08, max_crashes=4, window=0.15)
    runner: WorkerRunner = clocked(plugin, "flaky")
    calls: List[float] = runner.calls  # type: ignore[attr-defined]
    crash_loop(manual_clock, runner, plugin.calls, [0.05] + [0.08] * 10, inner=0.0)  # type: ignore[attr-defined]
    assert len(calls) == 12
    assert runner.state == "running", "crashes spread over more than the window suspended the worker"
    assert len(runner.crashes) == 2, f"crashes older than the 0.15 s window still count: {runner.crashes}"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert clock_waits(manual_clock, 12) == [0.05] + [0.08] * 11, f"delays not capped at 0.08 s: {manual_clock.waited}"
    assert gaps == pytest.approx([0.05] + [0.08] * 10), f"crashes at {calls}"


def test_a_periodic_worker_keeps_its_period_on_the_clock(clocked: Any, manual_clock: RecordingClock) -> None:
    plugin = Plugin("ticker", __name__)
    ticks = {"n": 0}

    @plugin.worker(every=0.05)
    def tick() -> None:
        ticks["n"] += 1

    runner: WorkerRunner = clocked(plugin, "tick")
    wait_until(lambda: ticks["n"] == 1, what="the first tick")
    for n in range(2, 22):  # one second of the clock, a period at a time
        advance(manual_clock, 0.05, lambda: ticks["n"] >= n, f"tick {n}")
    assert manual_clock.wait_for_waiters(1)
    assert ticks["n"] == 21, f"a worker every 0.05 s ran {ticks['n'] - 1} times in 1 s after its first"
    assert manual_clock.waited == [0.05] * 21, "a periodic worker does not wait its period after each run"
    assert runner.calls == pytest.approx([0.05 * i for i in range(21)]), "not one run per period"  # type: ignore[attr-defined]
    runner.request_stop()
    assert runner.join(5.0) and runner.state == "stopped"
    manual_clock.advance(1.0)
    assert ticks["n"] == 21, "the periodic worker kept running after stop"


def test_a_running_worker_is_reported_and_a_loop_worker_sees_stop(running: Any) -> None:
    plugin = make_life(tick_every=0.05)
    host = running(plugin)
    ticks: Dict[str, int] = plugin.ticks  # type: ignore[attr-defined]
    wait_until(lambda: ticks["n"] >= 2, what="two ticks")
    status = host["client"].get("/ivoryos/plugins/status.json").get_json()["plugins"][0]["workers"]
    assert status["tick"]["state"] == "running" and status["tick"]["every"] == 0.05
    assert status["loop"]["state"] == "running" and status["loop"]["every"] is None
    stop(host["app"])
    events = read_events(plugin.data_dir)
    assert events.index("loop-exit") < events.index("stop")
    after = worker_status(host["client"], "life", "tick")
    assert after["state"] == "stopped", "the periodic worker kept running after stop"
    assert ticks["n"] == after["runs"], "the periodic worker ran after stop"


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


def test_an_app_given_a_clock_runs_its_plugins_workers_on_it(tmp_path: Path, manual_clock: RecordingClock) -> None:
    """``create_app(clock=)`` (``app.config["IVORYOS_PLUGIN_CLOCK"]``) reaches a running plugin's worker:
    its period passes when the test moves the clock, never by itself."""
    plugin = Plugin("app_clock", __name__)
    ticks = {"n": 0}

    @plugin.route("/")
    def main() -> str:
        return "ok"

    @plugin.worker(every=3600.0)
    def hourly() -> None:
        ticks["n"] += 1

    app = create_app([plugin], data_dir=tmp_path / "data", testing=True, clock=manual_clock)
    try:
        client = login_client(app)
        assert client.get("/ivoryos/plugins/status.json").status_code == 200  # a first use starts the plugins
        from ivoryos_plugin.runtime.extension import current_extension
        with app.app_context():
            assert current_extension().clock is manual_clock
        wait_until_ticks = time.monotonic() + 10
        while ticks["n"] < 1 and time.monotonic() < wait_until_ticks:
            time.sleep(0.01)
        assert ticks["n"] == 1, "the worker did not run once at start"
        assert manual_clock.wait_for_waiters(1), "the worker does not wait on the app's clock"
        time.sleep(0.2)
        assert ticks["n"] == 1, "an hourly worker ran again without the clock moving"
        manual_clock.advance(3600.0)
        deadline = time.monotonic() + 10
        while ticks["n"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ticks["n"] == 2 and 3600.0 in manual_clock.waited
    finally:
        stop(app)
