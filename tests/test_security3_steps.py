"""Security round three, workflow steps (issue 23), against real servers: IvoryOS (under
``ivoryos_plugin.run`` and plain ``ivoryos.run``) and the dev host, each serving a deck with the
``typed`` test plugin's steps and the balance example on a simulated balance (a real pty).

1. a step's arguments are validated against its signature whoever calls it: IvoryOS's runner (a
   workflow), its single-step API (the Instruments page), our steps route, a deck script; wrong
   types and NaN are refused with the plugin, the step and the field named, the step does not run,
   and the deck is free afterwards (IvoryOS's runner idle, a hardware action 200, not 409);
2. a step that never finishes fails its call after its declared timeout and frees the deck; its
   thread is refused a second call until it returns; a bad ``timeout=`` raises at declaration;
3. ``max_body`` holds on the step route for chunked bodies too (413, the step did not run)."""
from __future__ import annotations

import asyncio
import io
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from ivoryos_plugin import Plugin, PluginError, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import login_client, make_deck
from support import ivoryos_login, launch

NAN = float("nan")
JSON = {"Accept": "application/json"}
DEV_TOKEN = "steps-dev-token"
HANG_TIMEOUT = 1.5  # the typed plugin's @plugin.step(timeout=1.5) on hang()
MAX_BODY = 4096  # the typed plugin's max_body

TYPED_PLUGIN = '''
"""The typed plugin: steps with typed arguments, one that never returns, one that stops when its call gives up."""
import threading
import time
from typing import Any, Dict, List, Literal

from ivoryos_plugin import Plugin

plugin = Plugin("typed", __name__, template_folder=None, max_body=4096)
plugin.add_url_rule("/", "main", lambda: "typed")
RAN: List[List[Any]] = []  # every step call that reached the function, in order
HANGING: List[threading.Event] = []


@plugin.step
def count(n: int) -> int:
    """Count to n."""
    RAN.append(["count", n])
    return n


@plugin.step
def choose(mode: Literal["a", "b"] = "a") -> str:
    """Pick a mode."""
    RAN.append(["choose", mode])
    return mode


@plugin.step
def total(items: List[int]) -> int:
    """Add up the items."""
    RAN.append(["total", items])
    return sum(items)


@plugin.step
def settle(timeout_s: float = 0.1) -> float:
    """Wait timeout_s seconds (a NaN would wait for ever)."""
    RAN.append(["settle", timeout_s])
    deadline = time.monotonic() + timeout_s
    while not time.monotonic() >= deadline:
        time.sleep(0.01)
    return timeout_s


@plugin.step(timeout=1.5)
def hang(seconds: float = 3600.0) -> float:
    """Waits seconds, or until the test releases it; it ignores plugin.step_cancelled()."""
    RAN.append(["hang", seconds])
    release = threading.Event()
    HANGING.append(release)
    release.wait(seconds)
    RAN.append(["hang ended", seconds])
    return seconds


@plugin.step(timeout=1.0)
def patient(label: str = "patient") -> str:
    """Loops until its call gives up."""
    RAN.append(["patient", label])
    while not plugin.step_cancelled():
        time.sleep(0.02)
    RAN.append(["patient cancelled", label])
    return label


@plugin.action(hardware=False)
def ran() -> Dict[str, Any]:
    """The step calls that reached their function."""
    return {"ran": RAN}


@plugin.action(hardware=False)
def release() -> Dict[str, Any]:
    """Let every held hang() return."""
    held = len(HANGING)
    while HANGING:
        HANGING.pop().set()
    return {"released": held}


@plugin.action
def bump() -> Dict[str, Any]:
    """A hardware action: refused with 409 while IvoryOS's runner holds the deck."""
    return {"ok": True}
'''

DECK = '''
"""The deck: a simulated balance; the typed plugin's steps and the balance example's. Env STEP_HOST:
run (ivoryos_plugin.run), plain (ivoryos.run) or standalone (the dev host, token $STEP_TOKEN)."""
from ivoryos_plugin.sim import Balance as _Balance, BalanceSimulator as _BalanceSimulator

_SIMULATOR = _BalanceSimulator("balance").start()
balance = _Balance(_SIMULATOR.port)


def main() -> None:
    """Serve (a function: the deck's globals are its instruments)."""
    import os
    import sys

    from balance_dashboard.plugin import plugin as balance_plugin
    from typed_steps import plugin as typed

    mode, port = os.environ["STEP_HOST"], int(os.environ["PORT"])
    plugins = [typed, balance_plugin]
    if mode == "standalone":
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        serve(create_app(plugins, deck=sys.modules[__name__], token=os.environ["STEP_TOKEN"]), port=port)
    elif mode == "plain":
        import ivoryos

        ivoryos.run(__name__, host="127.0.0.1", port=port, debug=False, blueprint_plugins=plugins)
    else:
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, plugins=plugins, port=port)


if __name__ == "__main__":
    main()
'''


class StepHost:
    """A running deck: its base URL, a logged-in session (CSRF header set) and helpers."""

    def __init__(self, server: Any, mode: str) -> None:
        self.server, self.mode = server, mode
        self.base = f"{server.base}/ivoryos"
        if mode == "standalone":
            self.session = requests.Session()
            assert self.session.get(f"{self.base}/plugins/?token={DEV_TOKEN}").status_code == 200
            csrf = self.session.get(f"{self.base}/plugins/csrf.json").json()["csrf_token"]
            self.session.headers["X-CSRFToken"] = csrf
        else:
            self.session = ivoryos_login(server.base)

    def ran(self) -> List[List[Any]]:
        """The step calls that reached their function so far."""
        reply = self.session.post(f"{self.base}/typed/actions/ran", json={})
        assert reply.status_code == 200, reply.text
        return list(reply.json()["ran"])

    def bump(self) -> int:
        """The status of a hardware action now."""
        return int(self.session.post(f"{self.base}/typed/actions/bump", json={}).status_code)

    def release(self) -> None:
        """End every held hang() and wait until its thread has returned."""
        assert self.session.post(f"{self.base}/typed/actions/release", json={}).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ran = self.ran()
            if sum(1 for r in ran if r[0] == "hang ended") == sum(1 for r in ran if r[0] == "hang"):
                return
            time.sleep(0.05)
        raise AssertionError(f"a hang() thread never ended: {self.ran()}")

    # ---- IvoryOS's runner and single-step API
    def post_json(self, url: str, value: Any, **kwargs: Any) -> requests.Response:
        """POST ``value`` as JSON, NaN and Infinity written as Python's json module writes them
        (``requests`` refuses to encode them; IvoryOS's JSON parser reads them)."""
        return self.session.post(url, data=json.dumps(value), headers={**JSON, "Content-Type": "application/json"},
                                 **kwargs)

    def status(self) -> Dict[str, Any]:
        return dict(self.session.get(f"{self.base}/executions/status", headers=JSON).json())

    def single_step(self, instrument: str, method: str, wait: float = 60, **kwargs: Any) -> Dict[str, Any]:
        """Run one step as IvoryOS's Instruments page does (its JSON API), waiting for its output at
        most ``wait`` seconds."""
        reply = self.post_json(f"{self.base}/instruments/deck.{instrument}",
                               {"hidden_name": method, "hidden_wait": "true", **kwargs}, timeout=wait)
        assert reply.status_code == 200, reply.text[:300]
        return dict(reply.json())

    def start_workflow(self, name: str, script: str, rows: Optional[List[Dict[str, Any]]] = None) -> None:
        """Publish a workflow as IvoryOS's Python editor does and start it (``rows``: its parameters)."""
        reply = self.session.post(f"{self.base}/draft/submit_python",
                                  json={"workflow_name": name, "script": script, "prep": "", "cleanup": ""})
        assert reply.status_code == 200 and reply.json()["script"]["script"] == "success", reply.text
        body = {"kwargs": rows} if rows else {"repeat": 1}
        reply = self.post_json(f"{self.base}/executions/config", body, timeout=60)
        assert reply.status_code == 200 and "task_id" in reply.json(), reply.text

    def wait_paused_or_done(self, name: str, timeout: float = 30) -> Dict[str, Any]:
        """The status once the workflow ``name`` has paused (a step failed) or ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            info = status.get("workflow_status", {}).get("workflow_info", {})
            if info.get("name") == name and (status.get("paused") or not status["busy"]):
                return status
            time.sleep(0.05)
        raise AssertionError(f"workflow {name!r} neither paused nor ended: {self.status()}")

    def stop_run(self) -> None:
        """Stop the paused run (IvoryOS's "stop now"), and wait until the runner is idle."""
        reply = self.session.post(f"{self.base}/executions/abort/next-task", headers=JSON)
        assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 20
        while self.status()["busy"] and time.monotonic() < deadline:
            time.sleep(0.05)


def start_host(directory: Path, mode: str) -> StepHost:
    (directory / "typed_steps.py").write_text(TYPED_PLUGIN.lstrip())
    server = launch(DECK, directory, name="typed_deck.py",
                    env={"PYTHONPATH": str(directory), "STEP_HOST": mode, "STEP_TOKEN": DEV_TOKEN})
    try:
        return StepHost(server, mode)
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module", params=["run", "plain"], ids=["ivoryos_plugin.run", "plain-ivoryos.run"])
def ivoryos_host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepHost]:
    host = start_host(tmp_path_factory.mktemp(f"steps3_{request.param}"), request.param)
    try:
        yield host
    finally:
        host.server.stop()


@pytest.fixture(scope="module")
def dev_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepHost]:
    host = start_host(tmp_path_factory.mktemp("steps3_dev"), "standalone")
    try:
        yield host
    finally:
        host.server.stop()


def assert_deck_free(host: StepHost) -> None:
    """IvoryOS's runner is idle (its lock free): a hardware action runs (200, not 409)."""
    if host.mode != "standalone":
        assert host.status()["busy"] is False, host.status()
    assert host.bump() == 200


# ------------------------------------------------------------------ 1. arguments, whoever calls
# (id, instrument, step, the bad argument, the field and what the error says about it)
BAD = [
    ("text-for-int", "typed", "count", {"n": "notanint"}, "n", "expects int"),
    ("not-in-literal", "typed", "choose", {"mode": "zzz"}, "mode", "expects Literal['a', 'b']"),
    ("dict-for-list", "typed", "total", {"items": {"a": 1}}, "items", "expects List[int]"),
    ("nan", "typed", "settle", {"timeout_s": NAN}, "timeout_s", "not a finite number"),
    ("nan-as-text", "typed", "settle", {"timeout_s": "nan"}, "timeout_s", "not a finite number"),
    ("infinity", "typed", "settle", {"timeout_s": float("inf")}, "timeout_s", "not a finite number"),
    ("balance-example-nan", "balance_steps", "wait_until_stable", {"timeout_s": NAN}, "timeout_s",
     "not a finite number"),
]
BAD_IDS = [case[0] for case in BAD]


def refusal(plugin: str, step: str, field: str, says: str) -> List[str]:
    return [f"Plugin {plugin!r}: step {step!r} refused its arguments and did not run: {field} (", says,
            "Fix the value in the workflow step"]


@pytest.mark.server
@pytest.mark.parametrize("case,instrument,step,bad,field,says", BAD, ids=BAD_IDS)
def test_a_workflow_step_with_a_bad_argument_is_refused_and_the_runner_ends_idle(
        ivoryos_host: StepHost, case: str, instrument: str, step: str, bad: Dict[str, Any], field: str,
        says: str) -> None:
    host, plugin = ivoryos_host, "balance" if instrument == "balance_steps" else "typed"
    before = host.ran()
    name = f"bad_{case.replace('-', '_')}"
    value = bad[field]
    if isinstance(value, float):  # no literal for NaN: a workflow parameter, as the run page's table sends it
        host.start_workflow(name, f"def workflow(value):\n    deck.{instrument}.{step}({field}=value)\n",
                            rows=[{"value": value}])
    else:  # as written in the designer's Python editor
        host.start_workflow(name, f"def workflow():\n    deck.{instrument}.{step}({field}={value!r})\n")
    status = host.wait_paused_or_done(name)
    try:
        assert status["paused"] is True and status["current_task"]["method_name"] == step, status
        assert status["current_task"]["run_error"] is True
        errors = [e["detail"] for e in status["workflow_status"]["workflow_info"]["events"] if e["kind"] == "error"]
        assert errors and all(part in errors[-1] for part in refusal(plugin, step, field, says)), errors
        assert host.ran() == before, "the step ran with a value its signature refuses"
    finally:
        host.stop_run()
    assert_deck_free(host)


@pytest.mark.server
@pytest.mark.parametrize("case,instrument,step,bad,field,says", BAD, ids=BAD_IDS)
def test_a_single_step_with_a_bad_argument_is_refused_and_the_deck_stays_free(
        ivoryos_host: StepHost, case: str, instrument: str, step: str, bad: Dict[str, Any], field: str,
        says: str) -> None:
    host, plugin = ivoryos_host, "balance" if instrument == "balance_steps" else "typed"
    before = host.ran()
    started = time.monotonic()
    output = host.single_step(instrument, step, wait=10, **bad)  # a step run with NaN would never answer
    assert time.monotonic() - started < 5, "the refused step held the runner"
    assert output["success"] is False, output
    assert all(part in output["output"] for part in refusal(plugin, step, field, says)), output
    assert host.ran() == before, "the step ran with a value its signature refuses"
    assert_deck_free(host)


@pytest.mark.server
@pytest.mark.parametrize("step,sent,received,output", [
    ("count", {"n": "5"}, 5, 5),
    ("total", {"items": "1,2,3"}, [1, 2, 3], 6),
    ("choose", {"mode": "b"}, "b", "b"),
], ids=["int-from-text", "list-from-text", "literal"])
def test_what_the_instruments_form_sends_as_text_is_coerced_as_pydantic_does(
        ivoryos_host: StepHost, step: str, sent: Dict[str, Any], received: Any, output: Any) -> None:
    assert ivoryos_host.single_step("typed", step, **sent) == {"success": True, "output": output}
    assert ivoryos_host.ran()[-1] == [step, received]


@pytest.mark.server
@pytest.mark.parametrize("body,field", [
    ({"n": "notanint"}, "n"), ({"n": 1.5}, "n"), ({"items": [1, "x"]}, "items"),
], ids=["text-for-int", "fraction-for-int", "text-in-list"])
def test_the_steps_route_refuses_bad_arguments_with_a_400(dev_host: StepHost, body: Dict[str, Any], field: str) -> None:
    step = "total" if "items" in body else "count"
    before = dev_host.ran()
    reply = dev_host.session.post(f"{dev_host.base}/typed/steps/{step}", json=body)
    assert reply.status_code == 400 and list(reply.json()["errors"]) == [field], reply.text
    assert dev_host.ran() == before


def test_a_deck_script_calling_the_instrument_is_validated_too(tmp_path: Path) -> None:
    plugin = Plugin("scripted", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    ran: List[Any] = []

    @plugin.step
    def dose(volume_ml: float, mode: str = "slow") -> float:
        """Dose."""
        ran.append((volume_ml, mode))
        return volume_ml

    deck = make_deck("scripted_deck")
    app = create_app([plugin], deck=deck, data_dir=tmp_path, testing=True)
    try:
        assert deck.scripted.dose(1.5, mode="fast") == 1.5 and deck.scripted.dose("2") == 2.0  # positional, lax
        with pytest.raises(ValueError, match=r"Plugin 'scripted': step 'dose' refused its arguments and did not "
                                             r"run: volume_ml \(expects float\): .*not a finite number"):
            deck.scripted.dose(math.inf)
        with pytest.raises(ValueError, match=r"step 'dose' refused .*: speed \(not an argument\): Extra inputs"):
            deck.scripted.dose(1.0, speed=3)
        with pytest.raises(ValueError, match=r"step 'dose' got 'volume_ml' twice"):
            deck.scripted.dose(1.0, volume_ml=2.0)
        assert ran == [(1.5, "fast"), (2.0, "slow")]
    finally:
        stop(app)


# ------------------------------------------------------------------ 2. a step that never finishes
def wait_for_ran(host: StepHost, entry: List[Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while entry not in host.ran():
        assert time.monotonic() < deadline, f"{entry} never ran: {host.ran()}"
        time.sleep(0.05)


def assert_about_the_timeout(elapsed: float, timeout: float = HANG_TIMEOUT) -> None:
    assert timeout - 0.1 <= elapsed < timeout + 3.0, f"the call ended after {elapsed:.2f} s, its timeout is {timeout} s"


@pytest.mark.server
def test_a_step_that_never_finishes_fails_in_a_workflow_after_its_timeout(ivoryos_host: StepHost) -> None:
    host = ivoryos_host
    started = time.monotonic()
    host.start_workflow("hanging", "def workflow():\n    deck.typed.hang()\n")
    wait_for_ran(host, ["hang", 3600.0])
    status = host.wait_paused_or_done("hanging", timeout=HANG_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    try:
        assert status["paused"] is True and status["current_task"]["method_name"] == "hang", status
        errors = [e["detail"] for e in status["workflow_status"]["workflow_info"]["events"] if e["kind"] == "error"]
        assert "Plugin 'typed': step 'hang' did not finish within its timeout of 1.5 s" in errors[-1], errors
        assert elapsed < HANG_TIMEOUT + 5.0, f"the run paused after {elapsed:.2f} s"
    finally:
        host.stop_run()
    assert_deck_free(host)
    host.release()


@pytest.mark.server
def test_a_step_that_never_finishes_fails_as_a_single_step_after_its_timeout(ivoryos_host: StepHost) -> None:
    host = ivoryos_host
    calls = len(host.ran())
    started = time.monotonic()
    output = host.single_step("typed", "hang", wait=HANG_TIMEOUT + 10)
    assert_about_the_timeout(time.monotonic() - started)
    assert output["success"] is False and "step 'hang' did not finish within its timeout of 1.5 s" in output["output"]
    assert_deck_free(host)
    try:  # its thread still runs: the same step is refused, not piled up
        again = host.single_step("typed", "hang", wait=10)
        assert again["success"] is False
        assert "step 'hang' is still running from a call that timed out" in again["output"]
        assert host.ran()[calls:] == [["hang", 3600.0]], "the refused call reached the step"
    finally:
        host.release()
    assert host.single_step("typed", "hang", seconds=0.05) == {"success": True, "output": 0.05}


@pytest.mark.server
def test_a_step_that_never_finishes_is_a_504_on_the_steps_route(dev_host: StepHost) -> None:
    host = dev_host
    started = time.monotonic()
    reply = host.session.post(f"{host.base}/typed/steps/hang", json={}, timeout=HANG_TIMEOUT + 10)
    assert_about_the_timeout(time.monotonic() - started)
    assert reply.status_code == 504 and reply.json()["timeout"] == HANG_TIMEOUT, reply.text
    assert "Raise @plugin.step(timeout=...)" in reply.json()["error"]
    assert_deck_free(host)
    try:
        again = host.session.post(f"{host.base}/typed/steps/hang", json={}, timeout=10)
        assert again.status_code == 409 and "is still running from a call that timed out" in again.json()["error"]
    finally:
        host.release()
    # a step that checks plugin.step_cancelled() stops once its call gave up
    started = time.monotonic()
    reply = host.session.post(f"{host.base}/typed/steps/patient", json={"label": "p1"}, timeout=10)
    assert reply.status_code == 504
    assert_about_the_timeout(time.monotonic() - started, 1.0)
    wait_for_ran(host, ["patient cancelled", "p1"], timeout=2.0)


def test_an_async_step_is_validated_and_bounded_as_a_sync_one(tmp_path: Path) -> None:
    plugin = Plugin("awaiting", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    release = threading.Event()
    ran: List[Any] = []

    @plugin.step(timeout=0.5)
    async def soak(seconds: float, /, label: str = "soak") -> str:
        """Wait ``seconds`` without blocking (or until released); positional-only ``seconds``."""
        ran.append((seconds, label))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not release.is_set():
            await asyncio.sleep(0.01)
        return label

    deck = make_deck("awaiting_deck")
    app = create_app([plugin], deck=deck, data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        assert client.post("/ivoryos/awaiting/steps/soak", json={"seconds": 0.01}).get_json() == {"result": "soak"}
        assert asyncio.run(deck.awaiting.soak("0.01", label="direct")) == "direct"  # as IvoryOS awaits it
        with pytest.raises(ValueError, match=r"step 'soak' refused .*: seconds \(expects float\): .*not a finite"):
            asyncio.run(deck.awaiting.soak(NAN))
        started = time.monotonic()
        reply = client.post("/ivoryos/awaiting/steps/soak", json={"seconds": 5.0})  # unbounded, it would return
        assert reply.status_code == 504 and "did not finish within its timeout of 0.5 s" in reply.get_json()["error"]
        assert_about_the_timeout(time.monotonic() - started, 0.5)
        assert ran == [(0.01, "soak"), (0.01, "direct"), (5.0, "soak")]
    finally:
        release.set()
        stop(app)


@pytest.mark.parametrize("timeout", [0, -1.0, NAN, float("inf"), True, "60", 8 * 86400],
                         ids=["zero", "negative", "nan", "infinity", "bool", "text", "over-seven-days"])
def test_a_bad_step_timeout_raises_at_declaration(timeout: Any) -> None:
    plugin = Plugin("timed", __name__, template_folder=None)

    def wait(seconds: float = 1.0) -> float:
        return seconds

    with pytest.raises(PluginError, match=r"Plugin 'timed': step 'wait': timeout=.* must be a positive, finite "
                                          r"number of seconds up to 604800 \(seven days\), e.g. "
                                          r"@plugin.step\(timeout=120\)"):
        plugin.step(timeout=timeout)(wait)
    assert "wait" not in plugin._steps
    plugin.step(timeout=0.5)(wait)
    assert plugin._steps["wait"].timeout == 0.5


# ------------------------------------------------------------------ 3. body size, whatever the framing
def chunks(head: bytes, size: int) -> Iterator[bytes]:
    """``head`` then ``size`` bytes of JSON whitespace, 64 KiB at a time (``requests`` sends it chunked)."""
    yield head
    sent = 0
    while sent < size:
        piece = min(65536, size - sent)
        yield b" " * piece
        sent += piece


@pytest.mark.server
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_step_body_over_max_body_is_413_and_the_step_does_not_run_in_ivoryos(ivoryos_host: StepHost,
                                                                                 framing: str) -> None:
    body_over_max_body_is_refused(ivoryos_host, framing)


@pytest.mark.server
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_step_body_over_max_body_is_413_and_the_step_does_not_run_in_the_dev_host(dev_host: StepHost,
                                                                                      framing: str) -> None:
    body_over_max_body_is_refused(dev_host, framing)


def body_over_max_body_is_refused(host: StepHost, framing: str) -> None:
    url, headers = f"{host.base}/typed/steps/count", {"Content-Type": "application/json"}
    mark = 40000 + len(host.ran())

    def body(pad: int) -> Any:
        head = b'{"n": %d}' % mark
        return chunks(head, pad) if framing == "chunked" else head + b" " * pad

    reply = host.session.post(url, data=body(3 * MAX_BODY), headers=headers, timeout=60)
    assert reply.status_code == 413, reply.text[:300]
    assert "Plugin 'typed'" in reply.json()["error"] and "max_body" in reply.json()["error"]
    assert ["count", mark] not in host.ran(), "the step ran on a body over max_body"
    fits = host.session.post(url, data=body(MAX_BODY // 2), headers=headers, timeout=60)
    assert fits.status_code == 200 and fits.json() == {"result": mark}, fits.text[:300]  # the control
    assert host.ran()[-1] == ["count", mark]


# ------------------------------------------------------------------ the dev host in process
def test_a_chunked_body_the_server_does_not_end_is_refused_not_taken_for_empty(tmp_path: Path) -> None:
    """A server that passes a chunked body without ``wsgi.input_terminated`` (Werkzeug would read it
    as empty, and a step with defaults would run): 413, the step does not run."""
    plugin = Plugin("framed", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    ran: List[str] = []

    @plugin.step
    def mark(label: str = "default") -> str:
        """Mark."""
        ran.append(label)
        return label

    app = create_app([plugin], deck=make_deck("framed_deck"), data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        reply = client.post("/ivoryos/framed/steps/mark", input_stream=io.BytesIO(b'{"label": "sent"}'),
                            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        assert reply.status_code == 413 and ran == [], reply.get_data(as_text=True)
        assert client.post("/ivoryos/framed/steps/mark", json={"label": "ok"}).status_code == 200 and ran == ["ok"]
    finally:
        stop(app)

