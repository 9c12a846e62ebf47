"""One error mapping (issue 25): the framework's exceptions answered in JSON by the error handler every
plugin's Blueprint gets when an app registers it (runtime/errors.py), on the plugin's own routes as on
its actions and steps: a page that drives the hardware while a workflow holds the deck gets the 409 the
actions get, an instrument that is not on the deck the 503 that lists what is, on the dev host, on
ivoryos-edge and inside a real IvoryOS; IvoryOS's own routes and exceptions of other kinds are left alone."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from flask import Flask, current_app
from pydantic import BaseModel, Field

from ivoryos_plugin import (ActionError, DeckBusy, InstrumentUnavailable, Plugin, SettingsError,
                            SettingsValidationError, create_app)
from ivoryos_plugin.hardware.deck import Gate, hardware_guard
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime import errors
from ivoryos_plugin.runtime.history import HistoryUnavailable
from ivoryos_plugin.testing import login_client, make_deck
from support import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

mapped = Plugin("err_map", __name__, template_folder=None)
#: the app each host runs the plugin's views in (the edge's private one), seen by the plugin's main page
seen: Dict[str, Flask] = {}


@mapped.route("/")
def main() -> str:
    seen["app"] = current_app._get_current_object()  # type: ignore[attr-defined]
    return "page"


@mapped.route("/weigh")
def weigh() -> Dict[str, Any]:
    return {"grams": mapped.instrument("balance").weight}


@mapped.route("/tare", methods=["POST"])
def tare() -> Dict[str, Any]:
    with hardware_guard(current_app.extensions["ivoryos_plugin"].gate, plugin=mapped.name):
        return {"ok": True}


@mapped.route("/wells/<well>")
def well(well: str) -> Dict[str, Any]:
    raise ActionError(f"there is no well {well!r} on this plate; wells are A1 to H12", status=404)


@mapped.route("/crash")
def crash() -> str:
    raise KeyError("not one of the framework's exceptions")


@mapped.action
def count(by: int = 1) -> Dict[str, int]:
    """A hardware action (the default), to compare its busy reply with the page's."""
    return {"count": by}


@pytest.fixture
def plugin() -> Plugin:
    """The plugin the kit's hosts (``plugin_host``, ``ivoryos_app``) serve in this module."""
    return mapped


def test_a_plugin_route_gets_the_refusals_in_json_on_each_host(plugin_host: Any) -> None:
    client = plugin_host.client
    assert client.get(plugin_host.url("")).status_code == 200
    missing = client.get(plugin_host.url("weigh"))
    assert missing.status_code == 503, missing.get_data(as_text=True)
    body = missing.get_json()
    assert body["instrument"] == "balance" and body["loaded"] == [] and "'err_map'" in body["error"]
    assert "not on the deck" in body["error"]

    assert client.post(plugin_host.url("tare"), json={}).get_json() == {"ok": True}
    with plugin_host.deck_busy():
        busy = client.post(plugin_host.url("tare"), json={})
        action = client.post(plugin_host.url("actions/count"), json={})
    assert busy.status_code == 409, busy.get_data(as_text=True)
    assert busy.get_json()["busy"] is True and "hardware" not in busy.get_json()
    assert "Plugin 'err_map' cannot use the instruments now" in busy.get_json()["error"]
    # the action keeps its own sentence: it says how to declare one that runs during a workflow
    assert action.status_code == 409 and action.get_json()["hardware"] is True
    assert "@plugin.action(hardware=False)" in action.get_json()["error"]
    assert client.post(plugin_host.url("tare"), json={}).status_code == 200, "the page left the deck held"

    gate = seen["app"].extensions["ivoryos_plugin"].gate
    seen["app"].extensions["ivoryos_plugin"].gate = Gate.unverified("the run state cannot be read (test)")
    try:
        unverified = client.post(plugin_host.url("tare"), json={})
    finally:
        seen["app"].extensions["ivoryos_plugin"].gate = gate
    assert unverified.status_code == 503
    assert unverified.get_json()["unverified"] == "the run state cannot be read (test)"

    refused = client.get(plugin_host.url("wells/Z99"))
    assert refused.status_code == 404 and refused.get_json() == {
        "error": "there is no well 'Z99' on this plate; wells are A1 to H12"}


def test_in_ivoryos_a_plugin_route_gets_409_and_503_and_ivoryos_keeps_its_own_handlers(
        ivoryos_app: Flask, ivoryos_client: Any) -> None:
    missing = ivoryos_client.get("/ivoryos/err_map/weigh")
    assert missing.status_code == 503 and missing.get_json()["instrument"] == "balance"
    lock = ivoryos_app.extensions["ivoryos_plugin"].gate.lock  # IvoryOS's own runner lock (the adapter's probe)
    assert lock.acquire(timeout=5)
    try:  # as IvoryOS's runner holds it during a workflow
        busy = ivoryos_client.post("/ivoryos/err_map/tare", json={})
    finally:
        lock.release()
    assert busy.status_code == 409 and busy.get_json()["busy"] is True, busy.get_data(as_text=True)
    assert ivoryos_client.post("/ivoryos/err_map/tare", json={}).get_json() == {"ok": True}
    # the handlers are the plugin's Blueprint's: none of IvoryOS's routes answers these exceptions
    assert ivoryos_app.error_handler_spec["err_map"][None][DeckBusy] is errors.answer
    assert DeckBusy not in ivoryos_app.error_handler_spec[None][None]
    assert InstrumentUnavailable not in ivoryos_app.error_handler_spec[None][None]


def _app_with(plugin: Plugin, tmp_path: Path) -> Flask:
    return create_app([plugin], deck=make_deck(), data_dir=tmp_path, testing=True)


def test_the_mapping_is_scoped_to_the_plugin_and_to_its_exceptions(tmp_path: Path) -> None:
    app = _app_with(mapped, tmp_path / "one")

    def elsewhere() -> str:
        raise DeckBusy("err_map")

    app.add_url_rule("/elsewhere", "elsewhere", elsewhere)  # a route of the app, not of the plugin
    other = _app_with(mapped, tmp_path / "two")  # one plugin, two apps: each answers (installed once)
    try:
        client = login_client(app)
        with pytest.raises(KeyError, match="not one of the framework's exceptions"):
            client.get("/ivoryos/err_map/crash")  # any other exception is Flask's as before (raised in testing)
        with pytest.raises(DeckBusy):
            client.get("/elsewhere")
        assert login_client(other).get("/ivoryos/err_map/weigh").status_code == 503
    finally:
        stop(app)
        stop(other)


def test_a_plugin_keeps_its_own_handler(tmp_path: Path) -> None:
    own = Plugin("err_own", __name__, template_folder=None)
    own.add_url_rule("/", "main", lambda: own.instrument("balance"))

    @own.errorhandler(InstrumentUnavailable)
    def no_balance(exc: InstrumentUnavailable) -> Any:
        return {"mine": exc.name}, 424

    app = _app_with(own, tmp_path)
    try:
        reply = login_client(app).get("/ivoryos/err_own/")
        assert reply.status_code == 424 and reply.get_json() == {"mine": "balance"}
    finally:
        stop(app)


def test_an_action_or_step_that_raises_something_else_is_a_logged_500(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    failing = Plugin("err_fail", __name__, template_folder=None)
    failing.add_url_rule("/", "main", lambda: "page")

    @failing.action
    def jam() -> None:
        raise RuntimeError("plate jammed")

    @failing.step
    def stick() -> None:
        raise ValueError("stuck")

    app = _app_with(failing, tmp_path)
    try:
        client = login_client(app)
        with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.err_fail"):
            action = client.post("/ivoryos/err_fail/actions/jam", json={})
            step = client.post("/ivoryos/err_fail/steps/stick", json={})
        assert action.status_code == 500 and action.get_json() == {"error": "RuntimeError: plate jammed",
                                                                   "action": "jam"}
        assert step.status_code == 500 and step.get_json() == {"error": "ValueError: stuck", "step": "stick"}
        logged = [r for r in caplog.records if r.name == "ivoryos_plugin.err_fail" and r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in logged] == ["action 'jam' failed", "step 'stick' failed"]
        assert all(r.exc_info and r.exc_info[0] in (RuntimeError, ValueError) for r in logged)
    finally:
        stop(app)


@pytest.fixture
def bare() -> Iterator[Flask]:
    """A plain Flask app with the plugin's exceptions raised in a request (no host)."""
    app = Flask(__name__)
    with app.test_request_context("/"):
        yield app


@pytest.mark.parametrize("exc, status, fields", [
    (DeckBusy("p"), 409, {"busy": True}),
    (InstrumentUnavailable("pump", ["balance"], "p"), 503, {"instrument": "pump", "loaded": ["balance"]}),
    (errors.StepArgumentError("bad", {"x": ["not a number"]}), 400, {"errors": {"x": ["not a number"]}}),
    (errors.StepTimeout("slow", 2.5), 504, {"timeout": 2.5}),
    (errors.StepStillRunning("still"), 409, {"busy": False}),
    (ActionError("taken", status=409), 409, {}),
    (SettingsError("plugin 'p': settings file s.json is not valid JSON"), 500, {}),
], ids=["busy", "instrument", "step-arguments", "step-timeout", "step-still-running", "action-error", "settings"])
def test_the_table_outside_a_call(bare: Flask, exc: Exception, status: int, fields: Dict[str, Any]) -> None:
    reply = errors.reply_for(exc)
    assert reply is not None and reply.status_code == status
    assert reply.get_json() == {"error": str(exc), **fields}
    assert errors.reply_for(KeyError("x")) is None


class Knobs(BaseModel):
    speed: int = Field(1, ge=0)


def test_settings_json_and_history_refusals_come_from_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``settings.json``'s 400 and 500 and the history's 503 with ``Retry-After`` are the table's replies,
    each the body the views answered before (the plugin named, the fix); the settings form page shows
    its errors beside the fields (a page re-rendered, not an error reply)."""
    port = free_port()  # a PostgreSQL that is not there: the history cannot be reached
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", f"postgresql+psycopg://lab:pw@127.0.0.1:{port}/history")
    knobs = Plugin("err_set", __name__, template_folder=None, settings=Knobs)
    knobs.add_url_rule("/", "main", lambda: "page")
    app = create_app([knobs], data_dir=tmp_path / "data", testing=True)
    try:
        client = login_client(app)
        spec = app.error_handler_spec["err_set"][None]
        assert all(spec[cls] is errors.answer for cls in (SettingsValidationError, SettingsError, HistoryUnavailable))

        invalid = client.put("/ivoryos/err_set/settings.json", json={"speed": -1})
        assert invalid.status_code == 400 and invalid.get_json() == {
            "error": "Plugin 'err_set': invalid settings; nothing was saved.",
            "errors": {"speed": ["Input should be greater than or equal to 0"]}}
        form = client.post("/ivoryos/err_set/settings", data={"speed": "-1"})
        assert form.status_code == 400 and form.mimetype == "text/html"
        assert "Input should be greater than or equal to 0" in form.get_data(as_text=True)

        stored = tmp_path / "data" / "plugins" / "err_set" / "settings.json"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text("{not json")  # another process broke the file
        broken = client.put("/ivoryos/err_set/settings.json", json={"speed": 2})
        assert broken.status_code == 500 and list(broken.get_json()) == ["error"]
        assert broken.get_json()["error"].startswith(f"plugin 'err_set': settings file {stored} is not valid JSON")
        stored.unlink()

        with app.app_context():
            knobs.record_value("x", 1.0)
            store = app.extensions["ivoryos_plugin"].history()
            deadline = time.monotonic() + 10
            while not store.error and time.monotonic() < deadline:
                time.sleep(0.05)
        for path in ("history/x", "history/x.csv"):
            down = client.get(f"/ivoryos/err_set/{path}")
            assert down.status_code == 503 and down.headers["Retry-After"] == "5", down.get_data(as_text=True)
            message = down.get_json()["error"]
            assert list(down.get_json()) == ["error"] and ":pw@" not in message
            assert message.startswith(f"Plugin 'err_set': the history database postgresql+psycopg://lab:***@127.0.0.1:"
                                      f"{port}/history cannot be reached"), message
            assert message.endswith(". Recorded values are kept in memory and written when it answers; check that the "
                                    "database server runs and is reachable (IVORYOS_PLUGIN_HISTORY_URL names it), then "
                                    "try again."), message
    finally:
        stop(app)


def test_settings_and_history_replies_outside_a_plugin(bare: Flask) -> None:
    """Raised in a route of no Blueprint (an app that installed the table itself), the sentence is the
    exception's own, without a plugin's name."""
    invalid = errors.reply_for(SettingsValidationError("bad", {"speed": ["too low"]}))
    assert invalid is not None and invalid.status_code == 400
    assert invalid.get_json() == {"error": "invalid settings; nothing was saved.", "errors": {"speed": ["too low"]}}
    down = errors.reply_for(HistoryUnavailable("the history database db did not answer within 5 s"))
    assert down is not None and down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert down.get_json()["error"].startswith("the history database db did not answer within 5 s. Recorded values")
