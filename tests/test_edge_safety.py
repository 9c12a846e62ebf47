"""Hardware safety and steps on a real ivoryos-edge subprocess (issue 26): a @plugin.step in the
edge's Designer schema with its types and defaults, completed in a queued edge run (the camera's
snapshot filed under that run); our hardware actions and steps 409 during the run; with the edge's
run state unreadable (the one touch patched), 503 and the health information says why."""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator

import pytest
import requests

from edgehost import start_edge, url
from support import Server, wait_until


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_edge(tmp_path_factory.mktemp("edge"), plugins=["balance", "deck_camera", "hello"])
    try:
        yield server
    finally:
        server.stop()


def run_of(edge: Server, run_id: int) -> Dict[str, Any]:
    return requests.get(f"{edge.base}/api/queue/runs/{run_id}").json()


def test_steps_are_in_the_edge_designer_with_types_and_defaults(edge: Server) -> None:
    schema = requests.get(f"{edge.base}/api/status").json()["instruments"]
    step = schema["balance_steps"]["wait_until_stable"]  # Plugin(steps_as="balance_steps")
    assert step["parameters"]["settle_s"] == {"type": "float", "required": False, "numeric": True, "default": 0.5}
    assert step["return_type"] == "float" and "settles" in step["description"]
    assert schema["deck_camera"]["snapshot"]["parameters"]["label"]["type"] == "str"


def test_a_step_completes_in_a_queued_run_and_hardware_waits_for_it(edge: Server) -> None:
    sequence = [{"instrument": "balance_steps", "method": "wait_until_stable", "params": {"settle_s": 2.0}},
                {"instrument": "deck_camera", "method": "snapshot", "params": {"label": "plate"}}]
    started = requests.post(f"{edge.base}/api/queue/runs", json={"name": "weigh", "sequence": sequence})
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    assert wait_until(lambda: run_of(edge, run_id).get("status") == "running", timeout=10)
    tare = requests.post(url(edge, "balance", "actions/tare"))
    assert tare.status_code == 409 and tare.json()["busy"] is True and tare.json()["hardware"] is True
    step = requests.post(url(edge, "balance", "steps/wait_until_stable"), json={"settle_s": 0})
    assert step.status_code == 409 and step.json()["busy"] is True
    greet = requests.post(url(edge, "hello", "actions/greet"), json={"name": "during"})  # hardware=False
    assert greet.status_code == 200
    deck = requests.get(url(edge, "balance", "deck.json")).json()
    assert deck["busy"] is True and deck["run"]["run_id"] == run_id and deck["run"]["run_name"] == "weigh"
    assert wait_until(lambda: run_of(edge, run_id).get("status") in ("completed", "error"), timeout=30)
    run = run_of(edge, run_id)
    assert run["status"] == "completed", run
    outputs = {s["method"]: s["outputs"]["result"] for s in run["steps"]}
    assert isinstance(outputs["wait_until_stable"], float)
    assert outputs["snapshot"]["run_id"] == run_id and outputs["snapshot"]["file"].startswith(f"run-{run_id}/")
    photo = requests.get(f"{edge.base}{outputs['snapshot']['url']}")
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
    assert wait_until(lambda: requests.post(url(edge, "balance", "actions/tare")).status_code == 200, timeout=5)


BROKEN = '''\
from ivoryos_plugin.hosts.edge import runstate

def _unreadable():
    raise AttributeError("'WorkflowQueueManager' object has no attribute 'active_run_id'")

runstate.touch = _unreadable
'''


@pytest.fixture(scope="module")
def unreadable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_edge(tmp_path_factory.mktemp("unreadable"), plugins=["balance", "hello"], before_run=BROKEN)
    try:
        yield server
    finally:
        server.stop()


def test_an_unreadable_run_state_refuses_hardware_with_503(unreadable: Server) -> None:
    tare = requests.post(url(unreadable, "balance", "actions/tare"))
    assert tare.status_code == 503, tare.text
    assert "cannot verify the deck is idle" in tare.json()["error"] and "active_run_id" in tare.json()["unverified"]
    step = requests.post(url(unreadable, "balance", "steps/wait_until_stable"), json={})
    assert step.status_code == 503
    assert requests.post(url(unreadable, "hello", "actions/greet"), json={}).status_code == 200
    health = requests.get(url(unreadable, "balance", "health.json")).json()
    assert health["hardware"]["verified"] is False and "run state cannot be read" in health["hardware"]["problem"]
    deck = requests.get(url(unreadable, "balance", "deck.json")).json()
    assert deck["verified"] is False and deck["busy"] is True
    assert "hardware actions are refused" in unreadable.output()
