"""Hardware actions against a real IvoryOS runner: refused while a workflow or a single step holds
the deck, never leaving a queued workflow stranded; instrument faults become clear JSON errors."""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator

import pytest
import requests

from support import launch, wait_until
from test_live import PLUGINS, Probe

WORKFLOW = "def workflow():\n    deck.sensor.slow(seconds={seconds})\n    deck.sensor.bump(by=2)\n"


@pytest.fixture(scope="module")
def ivoryos_probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    server = launch((PLUGINS / "probe_deck.py").read_text(), tmp_path_factory.mktemp("busy"),
                    name="probe_deck.py", env={"PYTHONPATH": str(PLUGINS), "PROBE_HOST": "ivoryos"})
    try:
        yield Probe(server, "ivoryos")
    finally:
        server.stop()


def submit_workflow(probe: Probe, seconds: float) -> None:
    base = f"{probe.base}/ivoryos"
    reply = probe.session.post(f"{base}/draft/submit_python", json={
        "workflow_name": "busy_test", "script": WORKFLOW.format(seconds=seconds), "prep": "", "cleanup": ""})
    assert reply.status_code == 200, reply.text


def run_workflow(probe: Probe) -> requests.Response:
    return probe.session.post(f"{probe.base}/ivoryos/executions/config", json={"repeat": 1},
                              headers={"Accept": "application/json"}, timeout=60)


def post(probe: Probe, action: str, **args: Any) -> requests.Response:
    return probe.session.post(f"{probe.base}/ivoryos/probe/actions/{action}", json=args, timeout=60)


def wait_busy(probe: Probe, busy: bool = True, timeout: float = 20.0) -> None:
    """Wait until IvoryOS's runner reports ``busy`` (its lock held: by a workflow, a single step, or a
    plugin's hardware action, which takes it too), or not (a finished workflow still saves its results):
    what the next request must find, however slowly the server runs."""
    def reported() -> bool:
        return bool(probe.session.get(f"{probe.base}/ivoryos/executions/status").json().get("busy")) is busy

    assert wait_until(reported, timeout), "IvoryOS's runner " + ("never became busy" if busy else "stayed busy")


def wait_idle(probe: Probe) -> None:
    wait_busy(probe, busy=False)


def wait_total(probe: Probe, expected: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    total = -1
    while time.monotonic() < deadline:
        total = post(probe, "total").json()["total"]
        if total >= expected:
            return int(total)
        time.sleep(0.1)
    return int(total)


@pytest.mark.server
def test_hardware_action_is_refused_while_a_workflow_runs(ivoryos_probe: Probe) -> None:
    before = post(ivoryos_probe, "total").json()["total"]
    submit_workflow(ivoryos_probe, 2.0)
    assert run_workflow(ivoryos_probe).status_code == 200
    wait_busy(ivoryos_probe)
    busy = post(ivoryos_probe, "bump", by=100)
    assert busy.status_code == 409
    assert busy.json()["busy"] is True and "probe" in busy.json()["error"]
    assert post(ivoryos_probe, "total").status_code == 200, "a non-hardware action must still run"
    assert wait_total(ivoryos_probe, before + 2) == before + 2, "the refused action ran anyway"
    wait_idle(ivoryos_probe)
    assert post(ivoryos_probe, "bump", by=1).status_code == 200, "the deck stayed locked after the workflow"


@pytest.mark.server
def test_hardware_action_is_refused_while_a_single_step_runs(ivoryos_probe: Probe) -> None:
    wait_idle(ivoryos_probe)
    done: Dict[str, Any] = {}

    def single_step() -> None:  # IvoryOS's Instruments page runs one method, holding the runner lock
        done["reply"] = ivoryos_probe.session.post(f"{ivoryos_probe.base}/ivoryos/instruments/deck.sensor",
                                                   json={"hidden_name": "slow", "seconds": 1.5}, timeout=30)

    stepper = threading.Thread(target=single_step)
    stepper.start()
    wait_busy(ivoryos_probe)
    assert post(ivoryos_probe, "hold", seconds=0.1).status_code == 409
    stepper.join(30)
    assert done["reply"].status_code == 200, done["reply"].text
    assert post(ivoryos_probe, "hold", seconds=0.1).status_code == 200


@pytest.mark.server
def test_workflow_queued_during_an_action_starts_afterwards(ivoryos_probe: Probe) -> None:
    wait_idle(ivoryos_probe)
    before = post(ivoryos_probe, "total").json()["total"]
    submit_workflow(ivoryos_probe, 0.1)
    held: Dict[str, Any] = {}
    holder = threading.Thread(target=lambda: held.update(reply=post(ivoryos_probe, "hold", seconds=1.5)))
    holder.start()
    wait_busy(ivoryos_probe)  # the action holds the deck
    started = time.monotonic()
    run = run_workflow(ivoryos_probe)  # queued behind the action, then started when it ends
    holder.join(30)
    assert held["reply"].status_code == 200
    assert run.status_code == 200, run.text
    assert wait_total(ivoryos_probe, before + 2, timeout=15) == before + 2, "the queued workflow never ran"
    assert time.monotonic() - started < 15


@pytest.mark.server
def test_instrument_faults_become_json_errors_and_release_the_lock(ivoryos_probe: Probe) -> None:
    wait_idle(ivoryos_probe)
    jam = post(ivoryos_probe, "jam")
    assert jam.status_code == 500
    assert jam.json()["error"] == "RuntimeError: jammed by test"
    missing = post(ivoryos_probe, "missing")
    assert missing.status_code == 503
    assert missing.json()["instrument"] == "nope" and "sensor" in missing.json()["loaded"]
    assert "sensor" in missing.json()["error"]
    assert post(ivoryos_probe, "hold", seconds=0.05).status_code == 200, "a failed action kept the deck locked"
