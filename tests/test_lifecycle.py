"""on_start / on_stop in both hosts (real server subprocesses stopped by signals), refusals and
failures at start, the plugin's data folder and its log file."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests

from support import ROOT, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))

from life_plugin import make_broken, make_life, make_refusing, read_events  # noqa: E402

from ivoryos_plugin import create_app  # noqa: E402
from ivoryos_plugin.hosts.devhost import stop  # noqa: E402
from ivoryos_plugin.testing import login_client, make_deck  # noqa: E402

DECK = (PLUGINS / "life_plugin" / "life_deck.py").read_text()
TOKEN = "life-token"


def start_life(directory: Path, host: str, plugins: str = "life", **env: str) -> Any:
    """Start the life deck in ``directory`` under ``host`` (``ivoryos`` or ``cli``)."""
    return launch(DECK, directory, name="life_deck.py",
                  env={"PYTHONPATH": str(PLUGINS), "LIFE_HOST": host, "LIFE_PLUGINS": plugins,
                       "LIFE_TOKEN": TOKEN, **env})


def clean_env(**extra: str) -> Dict[str, str]:
    """This process's environment without the variables that redirect data or silence IvoryOS."""
    env = {k: v for k, v in os.environ.items() if k not in ("IVORYOS_PLUGIN_DATA", "IVORYOS_ACTIVE")}
    return {**env, **extra}


def session_for(base: str, host: str) -> requests.Session:
    """A logged-in session with its CSRF header, for either host."""
    if host == "cli":
        session = requests.Session()
        assert session.get(f"{base}/ivoryos/?token={TOKEN}").status_code == 200
        session.headers["X-CSRFToken"] = session.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
        return session
    return ivoryos_login(base)


def wait_for_events(data_dir: Path, *wanted: str, timeout: float = 20.0) -> None:
    """Wait until every event in ``wanted`` starts some line of the events file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = read_events(data_dir)
        if all(any(line.startswith(w) for line in lines) for w in wanted):
            return
        time.sleep(0.05)
    raise AssertionError(f"events {wanted} not all seen within {timeout} s: {read_events(data_dir)}")


# ------------------------------------------------------------------ both hosts, real signals
@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("host", ["ivoryos", "cli"], ids=["ivoryos", "dev-host"])
def test_on_start_and_on_stop_run_once_per_server_life(tmp_path: Path, host: str, sig: int) -> None:
    server = start_life(tmp_path, host)
    data_dir = tmp_path / "ivoryos_data" / "plugins" / "life"
    try:
        session = session_for(server.base, host)
        wait_for_events(data_dir, "start", "tick", "loop-start")
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(session.get(f"{server.base}/ivoryos/life/")))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [r.status_code for r in replies] == [200] * 4
        state = session.post(f"{server.base}/ivoryos/life/actions/state", json={})
        assert state.status_code == 200 and state.json()["ticks"] > 0, state.text
        running = read_events(data_dir)
        began = time.monotonic()
        code = server.stop(sig, timeout=30)
        took = time.monotonic() - began
    finally:
        server.stop()
    assert code in (0, 128 + sig), f"the server did not exit on {sig!r} by itself (code {code})\n{server.output()}"
    assert took < 10, f"stopping took {took:.1f} s"
    events = read_events(data_dir)
    deck_name = "__main__"  # both hosts run the deck script as python deck.py would
    assert [e for e in running if e.startswith("start")] == [f"start pid={server.proc.pid} deck={deck_name}"]
    assert "stop" not in running, "on_stop ran before the server was stopped"
    assert sorted(events) == sorted([running[0], "tick", "loop-start", "loop-exit", "stop"]), events
    assert events[-1] == "stop" and events.index("loop-exit") < events.index("stop"), \
        f"on_stop ran before the workers stopped: {events}"
    log = (data_dir / "plugin.log").read_text()
    assert f"INFO ivoryos_plugin.life: life started on deck {deck_name}" in log
    assert "INFO ivoryos_plugin.life: life on_stop ran" in log
    assert "Traceback" not in server.output(), server.output()


@pytest.mark.server
def test_a_page_asked_for_while_its_plugin_starts_waits_for_the_start_under_ivoryos_run(tmp_path: Path) -> None:
    """Under plain ``ivoryos.run`` a starter thread begins the plugins' starts once the deck is set; a
    request that comes while a plugin's ``on_start`` still runs (a stage homing) waits for it, up to
    START_WAIT from the start's beginning, and is served: not a 503 "starting" a moment early."""
    end_stop = tmp_path / "homed"
    server = start_life(tmp_path, "ivoryos", plugins="homing", LIFE_HOMED=str(end_stop))
    data_dir = tmp_path / "ivoryos_data" / "plugins" / "homing"
    try:
        wait_for_events(data_dir, "homing")  # the starter thread began the start: on_start waits
        session = ivoryos_login(server.base)
        replies: list = []
        asking = threading.Thread(target=lambda: replies.append(session.get(
            f"{server.base}/ivoryos/homing/", headers={"Accept": "application/json"}, timeout=30)))
        asking.start()
        time.sleep(0.3)  # the request reaches the server while on_start still waits
        assert read_events(data_dir) == ["homing"], "on_start still runs when the page is asked for"
        end_stop.touch()
        asking.join(30)
        assert [r.status_code for r in replies] == [200], [(r.status_code, r.text[:300]) for r in replies]
        assert read_events(data_dir) == ["homing", "homed"]
    finally:
        server.stop()


EXIT_SCRIPT = """
    import sys
    from life_plugin import make_life
    from ivoryos_plugin import create_app
    from ivoryos_plugin.hosts.devhost import stop

    plugin = make_life()
    app = create_app([plugin], data_dir="data", token="t")
    client = app.test_client()
    assert client.get("/ivoryos/life/?token=t", follow_redirects=True).status_code == 200
    how = sys.argv[1]
    if how == "explicit-stop":
        stop(app)
    elif how == "uncaught-exception":
        raise RuntimeError("the deck script crashed")
    elif how == "sys-exit":
        sys.exit(3)
"""


@pytest.mark.parametrize("how, code", [("falls-off-the-end", 0), ("explicit-stop", 0), ("sys-exit", 3),
                                       ("uncaught-exception", 1)],
                         ids=["interpreter-exit", "explicit-stop", "sys-exit", "uncaught-exception"])
def test_on_stop_runs_once_at_interpreter_exit(tmp_path: Path, how: str, code: int) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT))
    done = subprocess.run([sys.executable, str(script), how], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=clean_env(PYTHONPATH=str(PLUGINS)))
    assert done.returncode == code, done.stderr
    events = read_events(tmp_path / "data" / "plugins" / "life")
    assert events[0].startswith("start") and events.count("stop") == 1 and events[-1] == "stop", events
    assert events.index("loop-exit") < events.index("stop")


# ------------------------------------------------------------------ in-process standalone host
@pytest.fixture
def life_app(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    plugin = make_life()
    deck = make_deck("bench_deck", scale=object())
    app = create_app([plugin], deck=deck, data_dir=tmp_path / "ivoryos_data", testing=True)
    try:
        yield {"app": app, "plugin": plugin, "deck": deck, "data": tmp_path / "ivoryos_data" / "plugins" / "life"}
    finally:
        stop(app)


def test_on_start_gets_the_deck_before_the_first_request(life_app: Dict[str, Any]) -> None:
    events = read_events(life_app["data"])
    assert events and events[0].startswith("start") and events[0].endswith("deck=bench_deck"), events
    client = login_client(life_app["app"])
    for _ in range(3):
        assert client.get("/ivoryos/life/").status_code == 200
    assert [e for e in read_events(life_app["data"]) if e.startswith("start")] == [events[0]]
    stop(life_app["app"])
    stop(life_app["app"])
    assert read_events(life_app["data"]).count("stop") == 1


def test_data_dir_defaults_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVORYOS_PLUGIN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    plugin = make_life()
    app = create_app([plugin], testing=True)
    try:
        assert plugin.data_dir == tmp_path / "ivoryos_data" / "plugins" / "life"
        assert plugin.data_dir.is_dir()
        assert read_events(plugin.data_dir)[0].startswith("start")
    finally:
        stop(app)


def test_ivoryos_plugin_data_overrides_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVORYOS_PLUGIN_DATA", str(tmp_path / "elsewhere"))
    plugin = make_life()
    app = create_app([plugin], data_dir=tmp_path / "ivoryos_data", testing=True)
    try:
        assert plugin.data_dir == tmp_path / "elsewhere" / "life"
        assert (tmp_path / "elsewhere" / "life" / "events.log").exists()
        assert not (tmp_path / "ivoryos_data" / "plugins" / "life").exists()
    finally:
        stop(app)


@pytest.mark.parametrize("answer, reason", [("no balance on this deck", "no balance on this deck"),
                                            (False, "on_start check_deck returned False")],
                         ids=["string", "False"])
def test_on_start_refusal_suspends_the_plugin(tmp_path: Path, answer: Any, reason: str) -> None:
    plugin = make_refusing(answer=answer)
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        for reply in (client.get("/ivoryos/refusing/"), client.post("/ivoryos/refusing/actions/ping", json={})):
            assert reply.status_code == 503
            assert reply.get_json() == {"error": f"Plugin 'refusing' is suspended: {reason}",
                                        "state": "suspended", "reason": reason}
        status = client.get("/ivoryos/plugins/status.json").get_json()["plugins"][0]
        assert (status["state"], status["reason"], status["workers"]) == ("suspended", reason, {})
        time.sleep(0.2)
    finally:
        stop(app)
    assert read_events(tmp_path / "plugins" / "refusing") == [], "a refused plugin ran a worker or on_stop"


def test_on_start_that_raises_marks_the_plugin_failed_with_its_traceback(tmp_path: Path) -> None:
    plugin = make_broken()
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        reply = client.get("/ivoryos/broken/")
        assert reply.status_code == 503
        assert reply.get_json()["reason"] == ("on_start load_calibration raised FileNotFoundError: "
                                              "calibration.csv is missing")
        status = client.get("/ivoryos/plugins/status.json").get_json()
        (broken,) = status["plugins"]
        assert broken["state"] == "failed"
        assert 'in load_calibration\n    raise FileNotFoundError("calibration.csv is missing")' in broken["traceback"]
        assert [f["stage"] for f in status["failures"]] == ["start"]
    finally:
        stop(app)
    log = (tmp_path / "plugins" / "broken" / "plugin.log").read_text()
    assert "ERROR ivoryos_plugin.broken: plugin failed: on_start load_calibration raised" in log
    assert "Traceback (most recent call last)" in log, "the log file lacks the traceback"


# ------------------------------------------------------------------ the plugin's log
def test_the_log_file_is_per_plugin_and_rotates(tmp_path: Path) -> None:
    life, refusing = make_life(), make_refusing()
    app = create_app([life, refusing], data_dir=tmp_path, testing=True)
    try:
        assert life.logger.name == "ivoryos_plugin.life"
        life.logger.info("weighed %s g", 12.5)
        life.logger.debug("too chatty for the file")
        line = "x" * 200
        for _ in range(6000):  # > 1 MiB
            life.logger.info(line)
        life.logger.warning("last words")
    finally:
        stop(app)
    folder = tmp_path / "plugins" / "life"
    assert (folder / "plugin.log.1").exists(), sorted(p.name for p in folder.iterdir())
    assert (folder / "plugin.log").stat().st_size <= 1 << 20
    current = (folder / "plugin.log").read_text()
    assert "WARNING ivoryos_plugin.life: last words" in current
    everything = "".join(p.read_text() for p in folder.glob("plugin.log*"))
    assert "too chatty" not in everything
    other = (tmp_path / "plugins" / "refusing" / "plugin.log").read_text()
    assert "ivoryos_plugin.life" not in other and "ivoryos_plugin.refusing: plugin suspended" in other


def test_a_stopped_app_closes_its_log_file(tmp_path: Path) -> None:
    plugin = make_life()
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    stop(app)
    files = [h for h in plugin.logger.handlers if isinstance(h, logging.FileHandler)]
    assert files == [], "the log file stays open after the app stopped"
