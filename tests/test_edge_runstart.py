"""A run that starts while our hardware action runs waits for it (issue 26, fail closed): the edge's
run-state read and the action are one step against the edge's run start. On the kit's in-process
ivoryos-edge (a real uvicorn, the edge's own queue and ``POST /api/execute``); the interleaving is
forced with Events: the action is inside its hardware call (it read "idle") when the run is submitted,
and the edge's first driver call is seen parked on the deck gate before the action is let go."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

from ivoryos_plugin import Plugin
from ivoryos_plugin.hosts.extras import edge_missing
from ivoryos_plugin.testing import EDGE_MISSING, make_deck
from support import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

runstart = Plugin("runstart", __name__, template_folder=None)
ORDER: List[str] = []
IN_ACTION = threading.Event()
LET_ACTION_END = threading.Event()
IN_STEP = threading.Event()
LET_STEP_END = threading.Event()


@runstart.route("/")
def main() -> str:
    return "run start"


@runstart.action
def dose() -> Dict[str, bool]:
    """A hardware action that stays inside the hardware until the test lets it end."""
    ORDER.append("action start")
    IN_ACTION.set()
    assert LET_ACTION_END.wait(30)
    ORDER.append("action end")
    return {"ok": True}


class Stirrer:
    """The instrument the edge's run (or manual call) drives."""

    def stir(self) -> str:
        ORDER.append("edge call")
        IN_STEP.set()
        assert LET_STEP_END.wait(30)
        return "stirred"


@pytest.fixture
def edge(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if edge_missing() is not None:
        pytest.skip(EDGE_MISSING)
    from ivoryos_plugin.hosts.edge import inprocess

    server = inprocess.shared(tmp_path_factory.getbasetemp() / "ivoryos_edge_in_process")
    served = server.serve(runstart, make_deck(stirrer=Stirrer()), tmp_path / "plugins")
    for event in (IN_ACTION, LET_ACTION_END, IN_STEP, LET_STEP_END):
        event.clear()
    ORDER.clear()
    try:
        yield server
    finally:
        LET_ACTION_END.set()
        LET_STEP_END.set()
        server.stop(served)


def _action_in_flight(edge: Any) -> "tuple[threading.Thread, Dict[str, Any]]":
    reply: Dict[str, Any] = {}

    def post() -> None:
        answer = requests.post(f"{edge.base}/plugins/runstart/actions/dose", json={}, timeout=60)
        reply.update(status=answer.status_code, body=answer.json())

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    assert IN_ACTION.wait(10), "the action did not start"
    return thread, reply


def _parked(edge: Any) -> bool:
    from ivoryos_plugin.hosts.edge import deckgate

    gate = deckgate.installed()
    return gate is not None and gate.waiting == 1 and gate.actions == 1


STIR = [{"instrument": "stirrer", "method": "stir", "params": {}}]


def test_a_run_that_starts_during_an_action_waits_for_it(edge: Any) -> None:
    thread, reply = _action_in_flight(edge)  # the action read "idle" and is in the hardware
    started = requests.post(f"{edge.base}/api/queue/runs", json={"name": "stir", "sequence": STIR}, timeout=10)
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    assert wait_until(lambda: _parked(edge), timeout=10), "the run's first driver call never reached the deck gate"
    assert edge.server.queue_manager.active_run_id == run_id  # the run has started...
    assert ORDER == ["action start"]  # ...and its step has not touched the stirrer
    deck = requests.get(f"{edge.base}/plugins/runstart/deck.json", timeout=10).json()
    assert deck["busy"] is True
    LET_ACTION_END.set()
    thread.join(30)
    assert reply == {"status": 200, "body": {"ok": True}}
    assert IN_STEP.wait(10), "the run did not go on after the action"
    assert ORDER == ["action start", "action end", "edge call"]
    refused = requests.post(f"{edge.base}/plugins/runstart/actions/dose", json={}, timeout=10)
    assert refused.status_code == 409 and refused.json()["busy"] is True  # the run holds the deck now
    LET_STEP_END.set()
    assert wait_until(lambda: requests.get(f"{edge.base}/api/queue/runs/{run_id}", timeout=10).json()
                      .get("status") == "completed", timeout=20)
    assert ORDER == ["action start", "action end", "edge call"]  # the refused action never ran


def test_a_manual_edge_call_during_an_action_waits_for_it(edge: Any) -> None:
    thread, reply = _action_in_flight(edge)
    manual: Dict[str, Any] = {}

    def execute() -> None:  # the edge answers once it has handed the call to the driver
        answer = requests.post(f"{edge.base}/api/execute", json={"module": "stirrer", "method": "stir", "args": {}},
                               timeout=60)
        manual.update(status=answer.status_code, body=answer.json())

    caller = threading.Thread(target=execute, daemon=True)
    caller.start()
    assert wait_until(lambda: _parked(edge), timeout=10), "the manual call never reached the deck gate"
    assert ORDER == ["action start"] and not manual  # parked: not handed to the driver, not answered
    LET_ACTION_END.set()
    thread.join(30)
    assert reply["status"] == 200
    assert IN_STEP.wait(10)
    assert ORDER == ["action start", "action end", "edge call"]
    caller.join(30)
    assert manual["status"] == 200 and manual["body"]["status"] == "started"
    LET_STEP_END.set()


def test_an_action_is_refused_while_the_edge_hands_a_call_to_a_driver() -> None:
    """Between the edge's door and its own record of the call (``active_tasks``) there is no await:
    the gate marks the call as sent until that task yields, so an action is refused there too."""
    from ivoryos_plugin.hosts.edge.deckgate import DeckGate

    gate = DeckGate()
    seen: List[bool] = []

    def action_now() -> None:  # in another thread, as our actions run
        worker = threading.Thread(target=lambda: seen.append(gate.enter_action(lambda: False)))
        worker.start()
        worker.join()

    async def edge_handing_a_call_over() -> None:
        await gate.edge_call()
        action_now()  # the edge's task has not yielded yet: its call is not recorded anywhere else
        await asyncio.sleep(0)  # it yields: the edge's own state takes over
        await asyncio.sleep(0)
        action_now()

    asyncio.run(edge_handing_a_call_over())
    assert seen == [False, True]
    gate.leave_action()
