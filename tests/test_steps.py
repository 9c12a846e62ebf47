"""Workflow steps from plugins: ``@plugin.step`` functions appear in IvoryOS as the instrument named
after the plugin (designer palette, Instruments page, API schema) and run in IvoryOS's runner like
any instrument's method. Against real IvoryOS servers, under plain ``ivoryos.run`` and
``ivoryos_plugin.run``; the dev host lists and runs them; bad declarations raise at registration."""
from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

from ivoryos_plugin import Plugin, PluginError, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import login_client, make_deck
from support import PY, ROOT, ivoryos_login, start_process, wait_until

PLUGINS = ROOT / "tests" / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))


class StepServer:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.base = f"{server.base}/ivoryos"
        self.session = ivoryos_login(server.base)

    def run_workflow(self, name: str, script: str) -> int:
        """Submit a workflow as IvoryOS's design page does (Python source), start it, return its run id."""
        reply = self.session.post(f"{self.base}/draft/submit_python",
                                  json={"workflow_name": name, "script": script, "prep": "", "cleanup": ""})
        assert reply.status_code == 200 and reply.json()["script"]["script"] == "success", reply.text
        reply = self.session.post(f"{self.base}/executions/config", json={"repeat": 1},
                                  headers={"Accept": "application/json"})
        assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = self.session.get(f"{self.base}/executions/records", headers={"Accept": "application/json"}).json()
            mine = [int(i) for i, info in runs["workflow_data"].items() if info["workflow_name"] == name]
            if mine:
                return max(mine)
            time.sleep(0.1)
        raise AssertionError(f"workflow {name!r} never started")

    def status(self) -> Dict[str, Any]:
        return dict(self.session.get(f"{self.base}/executions/status", headers={"Accept": "application/json"}).json())

    def wait_idle_or_paused(self, timeout: float = 30) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if not status["busy"] or status.get("paused"):
                return status
            time.sleep(0.1)
        raise AssertionError(f"the workflow still runs: {self.status()}")

    def records(self, run_id: int) -> Dict[str, Any]:
        return dict(self.session.get(f"{self.base}/executions/records/{run_id}",
                                     headers={"Accept": "application/json"}).json())

    def seen(self) -> Dict[str, Any]:
        return dict(self.session.post(f"{self.base}/plate_log/actions/seen", json={}).json())


@pytest.fixture(scope="module", params=["plain", "ivoryos_plugin"], ids=["plain-ivoryos.run", "ivoryos_plugin.run"])
def steps_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepServer]:
    folder = tmp_path_factory.mktemp(f"steps_{request.param}")
    server = start_process([PY, str(PLUGINS / "step_deck.py")], folder, "step_deck.log",
                           env={"PYTHONPATH": str(PLUGINS), "STEP_HOST": request.param})
    try:
        yield StepServer(server)
    finally:
        server.stop()


@pytest.mark.server
def test_steps_are_an_instrument_in_ivoryos(steps_server: StepServer) -> None:
    s = steps_server
    schema = s.session.get(f"{s.base}/instruments", headers={"Accept": "application/json"}).json()
    steps = schema["deck.plate_log"]
    assert sorted(steps) == ["explode", "hold", "record"]
    assert steps["record"]["signature"].startswith("(self, label: str, value: float = 0.0, unit: Literal[")
    assert steps["record"]["docstring"] == "File a labelled value under the current run; returns what was filed."
    palette = s.session.get(f"{s.base}/draft/instruments").json()["html"]
    assert "deck.plate_log" in palette
    methods = s.session.get(f"{s.base}/draft/instruments/deck.plate_log").json()["html"]
    assert all(name in methods for name in ("record", "hold", "explode"))
    page = s.session.get(f"{s.base}/instruments/deck.plate_log")
    assert page.status_code == 200 and "File a labelled value under the current run" in page.text


@pytest.mark.server
def test_a_workflow_runs_a_step_and_records_its_return_value(steps_server: StepServer) -> None:
    s = steps_server
    run_id = s.run_workflow("with_a_step", 'def workflow():\n    total = deck.sensor.bump(by=2)\n'
                                          '    rec = deck.plate_log.record(label="after-bump", value=1.5)\n'
                                          '    deck.run_monitor.note(text="weighed")\n')
    status = s.wait_idle_or_paused()
    assert not status.get("paused"), status
    record = next(r for r in s.seen()["records"] if r["label"] == "after-bump")
    assert record["run"]["run_id"] == run_id and record["run"]["step"] == 2 and record["run"]["phase"] == "script"
    assert record["sensor_total"] >= 2, "the step ran after the balance step, in order"
    steps = s.records(run_id)["phases"]["script"]["1"][0]["steps"]
    assert [(st["method_name"], st["run_error"]) for st in steps] == [("bump", False), ("record", False),
                                                                      ("note", False)]
    assert steps[1]["output"]["rec"]["label"] == "after-bump" and steps[1]["output"]["rec"]["value"] == 1.5
    assert {"instrument": "plate_log", "method": "record", "phase": "end", "error": None} in s.seen()["calls"]
    # the run monitor example keeps each step's result under its run
    kept = s.session.post(f"{s.base}/run_monitor/actions/runs", json={}).json()["runs"][str(run_id)]
    assert [(e["instrument"], e["method"], e["step"]) for e in kept] == [
        ("sensor", "bump", 1), ("plate_log", "record", 2), ("run_monitor", "note", 3)]
    assert kept[1]["result"]["label"] == "after-bump" and kept[2]["result"]["note"] == "weighed"
    assert kept[2]["result"]["run_id"] == run_id


@pytest.mark.server
def test_hardware_actions_are_refused_while_a_step_runs(steps_server: StepServer) -> None:
    s = steps_server
    # the step holds the deck until the test releases it (a fixed hold could end before a slow
    # machine gets here: then the action would find the deck free, and run)
    s.run_workflow("holding", "def workflow():\n    deck.plate_log.hold(seconds=60.0)\n")
    assert wait_until(lambda: s.status()["busy"], 30), f"the workflow never held the deck: {s.status()}"
    try:
        reply = s.session.post(f"{s.base}/plate_log/actions/bump", json={"by": 1})
        assert reply.status_code == 409 and reply.json()["busy"] is True, reply.text
    finally:
        assert s.session.post(f"{s.base}/plate_log/actions/release", json={}).status_code == 200
    assert not s.wait_idle_or_paused().get("paused")
    assert s.session.post(f"{s.base}/plate_log/actions/bump", json={"by": 1}).status_code == 200


@pytest.mark.server
def test_a_step_that_raises_pauses_the_run_as_an_instrument_error_does(steps_server: StepServer) -> None:
    s = steps_server
    run_id = s.run_workflow("exploding", 'def workflow():\n    deck.plate_log.explode(message="jammed by test")\n'
                                         '    deck.sensor.bump(by=5)\n')
    status = s.wait_idle_or_paused()
    try:
        assert status["paused"] is True and status["current_task"]["method_name"] == "explode"
        assert status["current_task"]["run_error"] is True
        events = status["workflow_status"]["workflow_info"]["events"]
        assert any(e["kind"] == "error" and "deck.plate_log.explode: jammed by test" in e["detail"] for e in events)
        assert {"instrument": "plate_log", "method": "explode", "phase": "end",
                "error": "RuntimeError: jammed by test"} in s.seen()["calls"]
    finally:  # end the paused run so the server is idle again
        s.session.post(f"{s.base}/executions/abort/next-task", headers={"Accept": "application/json"})
        s.session.post(f"{s.base}/executions/pause-resume", headers={"Accept": "application/json"})
        deadline = time.monotonic() + 20
        while s.status()["busy"] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert run_id > 0


# ------------------------------------------------------------------ the dev host
def test_a_step_refuses_nan_infinity_and_deep_nesting_as_an_action_does(tmp_path: Path) -> None:
    plugin = Plugin("dosing", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    ran: List[float] = []

    @plugin.step
    def dose(volume_ml: float) -> float:
        """Dose ``volume_ml``."""
        ran.append(volume_ml)
        return volume_ml

    app = create_app([plugin], token="t", data_dir=tmp_path, testing=True)  # not ./ivoryos_data
    try:
        client = app.test_client()
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        for body, field in (('{"volume_ml": NaN}', "volume_ml"), ('{"volume_ml": -Infinity}', "volume_ml"),
                            ("[" * 2000 + "]" * 2000, "_")):
            reply = client.post("/ivoryos/dosing/steps/dose", data=body, headers=headers)
            assert reply.status_code == 400 and field in reply.get_json()["errors"], (body[:30], reply.get_json())
        assert ran == [], "the step never ran on a value that is not a finite number"
        reply = client.post("/ivoryos/dosing/steps/dose", data='{"volume_ml": 1.5}', headers=headers)
        assert reply.status_code == 200 and ran == [1.5]
    finally:
        stop(app)


def test_the_dev_host_lists_and_runs_steps(tmp_path: Path) -> None:
    from step_plugin import plugin as plate_log
    from probe_deck import Sensor

    deck = make_deck("dev_step_deck", sensor=Sensor())
    app = create_app([plate_log], deck=deck, data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        listed = client.get("/ivoryos/plate_log/steps", headers={"Accept": "application/json"}).get_json()
        assert [step["name"] for step in listed["steps"]] == ["record", "hold", "explode"]
        assert listed["steps"][0]["signature"] == "plate_log.record(label: str, value: float = 0.0, unit: Literal['g', 'mL'] = 'g') -> Dict[str, Any]"
        page = client.get("/ivoryos/plate_log/steps")
        assert page.status_code == 200 and b"File a labelled value" in page.data
        reply = client.post("/ivoryos/plate_log/steps/record", json={"label": "by hand", "value": "heavy"})
        assert reply.status_code == 400 and list(reply.get_json()["errors"]) == ["value"]
        reply = client.post("/ivoryos/plate_log/steps/record", json={"label": "by hand", "value": 2.5})
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.get_json()["result"]["label"] == "by hand" and reply.get_json()["result"]["run"] is None
        assert deck.plate_log.record.__name__ == "record", "the steps are the deck's instrument in the dev host too"
        failed = client.post("/ivoryos/plate_log/steps/explode", json={})
        assert failed.status_code == 500 and "RuntimeError: plate jammed" in failed.get_json()["error"]
        assert client.post("/ivoryos/plate_log/steps/nope", json={}).status_code == 404
        with app.extensions["ivoryos_plugin"].runner_lock:  # what a running step or workflow holds
            busy = client.post("/ivoryos/plate_log/steps/hold", json={"seconds": 0.01})
        assert busy.status_code == 409
        assert login_client(app).get("/ivoryos/plate_log/steps").status_code == 200
        assert app.test_client().get("/ivoryos/plate_log/steps", headers={"Accept": "application/json"}).status_code == 401
    finally:
        stop(app)


# ------------------------------------------------------------------ declarations
def test_bad_step_declarations_raise_with_the_fix(tmp_path: Path) -> None:
    plugin = Plugin("stepper", __name__, template_folder=None)

    def untyped(label):  # type: ignore[no-untyped-def]
        return label

    with pytest.raises(PluginError, match=r"Plugin 'stepper': step 'untyped': argument 'label' has no type; "
                                          r"IvoryOS's designer shows each argument's type: annotate it"):
        plugin.step(untyped)

    def opened(handle: threading.Lock) -> None:
        return None

    with pytest.raises(PluginError, match=r"Plugin 'stepper': step 'opened': its arguments cannot be sent as JSON"):
        plugin.step(opened)

    def star(*values: float) -> None:
        return None

    with pytest.raises(PluginError, match=r"step 'star': \*values is not supported"):
        plugin.step(star)

    def fine(x: float) -> float:
        return x

    with pytest.raises(PluginError, match=r"step name '_hidden' must be a Python identifier not starting with '_'"):
        plugin.step(name="_hidden")(fine)
    plugin.step(fine)
    with pytest.raises(PluginError, match=r"step 'fine' is registered twice; pass name="):
        plugin.step(fine)


def test_a_step_instrument_that_clashes_with_a_deck_global_raises_at_registration(tmp_path: Path) -> None:
    plugin = Plugin("balance", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")

    @plugin.step
    def settle(seconds: float = 1.0) -> float:
        return seconds

    deck = make_deck("clash_deck", balance=types.SimpleNamespace(weigh=lambda: 1.0))
    with pytest.raises(PluginError, match=r"Plugin 'Caps': steps_as='Caps': the steps' instrument needs a name "
                                          r"IvoryOS shows: a Python identifier starting with a lowercase letter"):
        Plugin("Caps", __name__).step(settle)
    assert Plugin("Caps2", __name__).steps_instrument == "Caps2", "a plugin without steps keeps its name"
    renamed = Plugin("balance2", __name__, steps_as="balance_steps", template_folder=None)
    renamed.add_url_rule("/", "main", lambda: "page")
    renamed.step(settle)
    deck_ok = make_deck("renamed_deck", balance=types.SimpleNamespace(weigh=lambda: 1.0))
    app = create_app([renamed], deck=deck_ok, data_dir=tmp_path / "ok", testing=True)
    try:
        assert deck_ok.balance_steps.settle(seconds=0.5) == 0.5
    finally:
        stop(app)
    with pytest.raises(PluginError, match=r"Plugin 'balance': its steps would be the deck instrument 'balance', "
                                          r"but the deck 'clash_deck' already has a global 'balance' "
                                          r"\(SimpleNamespace\); pass steps_as='another_name' to Plugin\(\), or rename that deck global."):
        create_app([plugin], deck=deck, data_dir=tmp_path, testing=True)
