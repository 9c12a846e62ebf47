"""A run that starts while our hardware action runs waits for it (issue 26, fail closed): the edge's
run-state read and the action are one step against the edge's run start. On the kit's in-process
ivoryos-edge (a real uvicorn, the edge's own queue and ``POST /api/execute``); the interleaving is
forced with Events: the action is inside its hardware call (it read "idle") when the run is submitted,
and the edge's first driver call is seen parked on the deck gate before the action is let go."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

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

    def read_speed(self) -> int:
        """A reading the edge's safety rule takes inside its checks of a call."""
        ORDER.append("edge read")
        return 0

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


RULE = {"id": "ivoryos_plugin_test_read", "name": "Stir only when the speed reads", "enabled": True,
        "when": {"target": "stirrer", "method": "stir"}, "if": [],
        "require": [{"left": {"read": "stirrer.read_speed"}, "op": "<=", "right": {"value": 1000}}],
        "message": "The stirrer's speed cannot be read."}


@pytest.fixture
def read_rule(edge: Any) -> Iterator[None]:
    """A safety rule of the edge's own that reads the stirrer inside its checks of every stir."""
    before = requests.get(f"{edge.base}/api/safety", timeout=10).json()["config"]
    saved = requests.put(f"{edge.base}/api/safety", json={**before, "rules": [*before.get("rules", []), RULE]},
                         timeout=10)
    assert saved.status_code == 200, saved.text
    try:
        yield
    finally:
        assert requests.put(f"{edge.base}/api/safety", json=before, timeout=10).status_code == 200


def test_the_edge_checks_of_a_run_step_read_the_deck_after_the_action(edge: Any, read_rule: None) -> None:
    """The edge's safety rules read instruments inside its checks of a call (``enforce``): those
    readings wait for our action too, so a run never reads the deck half-way through one."""
    thread, reply = _action_in_flight(edge)
    started = requests.post(f"{edge.base}/api/queue/runs", json={"name": "stir", "sequence": STIR}, timeout=10)
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    assert wait_until(lambda: _parked(edge), timeout=10), "the run's first driver call never reached the deck gate"
    assert ORDER == ["action start"]  # the rule has not read the stirrer while the action runs
    LET_ACTION_END.set()
    thread.join(30)
    assert reply["status"] == 200
    assert IN_STEP.wait(10), "the run did not go on after the action"
    assert ORDER == ["action start", "action end", "edge read", "edge call"]
    LET_STEP_END.set()
    assert wait_until(lambda: requests.get(f"{edge.base}/api/queue/runs/{run_id}", timeout=10).json()
                      .get("status") == "completed", timeout=20)


def _gate_and_action() -> "tuple[Any, List[bool], Callable[[], None]]":
    from ivoryos_plugin.hosts.edge.deckgate import DeckGate

    gate = DeckGate()
    seen: List[bool] = []

    def action_now() -> None:  # in another thread, as our actions run
        worker = threading.Thread(target=lambda: seen.append(gate.enter_action(lambda: False)))
        worker.start()
        worker.join()

    return gate, seen, action_now


def test_an_action_is_refused_while_the_edge_checks_and_hands_a_call_to_a_driver() -> None:
    """From the edge's door through its checks to its own record of the call (``active_tasks``),
    the gate marks the call as sent until that task yields, so an action is refused there too."""
    gate, seen, action_now = _gate_and_action()

    async def checks() -> str:  # the edge's enforce: its rules may await readings
        action_now()
        await asyncio.sleep(0)
        action_now()
        return "sent"

    async def edge_handing_a_call_over() -> None:
        assert await gate.edge_call(checks) == "sent"
        action_now()  # the edge's task has not yielded yet: its call is not recorded anywhere else
        await asyncio.sleep(0)  # it yields: the edge's own state takes over
        await asyncio.sleep(0)
        action_now()

    asyncio.run(edge_handing_a_call_over())
    assert seen == [False, False, False, True]
    gate.leave_action()


def test_a_call_the_edge_refuses_lets_actions_run_at_once() -> None:
    gate, seen, action_now = _gate_and_action()

    async def refused() -> None:
        raise RuntimeError("the edge's safety guard refused the call")

    async def edge_refusing_a_call() -> None:
        with pytest.raises(RuntimeError):
            await gate.edge_call(refused)
        action_now()  # no await since: nothing of the edge's is being sent

    asyncio.run(edge_refusing_a_call())
    assert seen == [True]
    gate.leave_action()
