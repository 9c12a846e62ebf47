"""Typed actions: bad input is a 400 (or 413) with per-field errors and the function never runs;
faults are JSON errors; the return value is JSON."""
from __future__ import annotations

import json
from fractions import Fraction
from typing import Any, Dict, List, Literal

import pytest
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel

from ivoryos_plugin import ActionError, Plugin

CALLS: List[Dict[str, Any]] = []

calc = Plugin("calc", __name__, max_body=4096)


class Point(BaseModel):
    x: float
    y: float


@calc.route("/")
def main() -> str:
    return "calc"


@calc.action(hardware=False)
def scale(factor: float, points: List[Point], mode: Literal["abs", "rel"] = "abs", label: str = "") -> dict:
    CALLS.append({"factor": factor})
    return {"points": [{"x": p.x * factor, "y": p.y * factor} for p in points], "mode": mode, "label": label}


@calc.action(hardware=False)
def nothing() -> None:
    CALLS.append({})


@calc.action(hardware=False)
def refuse(why: str) -> None:
    raise ActionError(f"refused: {why}", status=409)


@calc.action(hardware=False)
async def later(n: int) -> dict:
    return {"n": n + 1}


@calc.action(hardware=False)
def broken() -> None:
    raise ZeroDivisionError("division by zero")


@calc.action(hardware=False)
def not_json() -> object:
    return object()


@pytest.fixture
def plugin() -> Plugin:
    CALLS.clear()
    return calc


GOOD = {"factor": 2, "points": [{"x": 1, "y": 2}]}


@pytest.mark.parametrize("body, field", [
    ({"points": []}, "factor"),                                      # missing
    ({**GOOD, "factor": "2"}, "factor"),                             # a string for a float
    ({**GOOD, "points": [{"x": 1}]}, "points"),                      # nested field missing
    ({**GOOD, "mode": "sideways"}, "mode"),                          # not a choice
    ({**GOOD, "label": 5}, "label"),                                 # a number for a string
    ({**GOOD, "colour": "red"}, "colour"),                           # an extra argument
    ({**GOOD, "factor": None}, "factor"),                            # null
], ids=["missing", "wrong-type", "nested", "choice", "number-for-string", "extra", "null"])
def test_bad_arguments_get_400_per_field_and_never_run(client: Any, body: dict, field: str) -> None:
    reply = client.post("/ivoryos/calc/actions/scale", json=body)
    assert reply.status_code == 400
    assert field in reply.get_json()["errors"], reply.get_json()
    assert CALLS == []


@pytest.mark.parametrize("data, content_type", [
    ("not json", "application/json"), ("[1, 2]", "application/json"), ('"text"', "application/json"),
    ("{\"factor\": 2,", "application/json"), ("factor=2", "application/x-www-form-urlencoded"),
    ("\xff\xfe", "application/octet-stream"),
], ids=["garbage", "array", "string", "truncated", "form", "binary"])
def test_bodies_that_are_not_a_json_object_get_400(client: Any, data: str, content_type: str) -> None:
    reply = client.post("/ivoryos/calc/actions/scale", data=data, content_type=content_type)
    assert reply.status_code == 400 and "error" in reply.get_json()
    assert CALLS == []


def test_a_huge_body_gets_413(client: Any) -> None:
    body = json.dumps({**GOOD, "label": "x" * 10_000})
    reply = client.post("/ivoryos/calc/actions/scale", data=body, content_type="application/json")
    assert reply.status_code == 413 and "4096 bytes" in reply.get_json()["error"]
    assert CALLS == []


def test_good_calls_return_json(client: Any) -> None:
    reply = client.post("/ivoryos/calc/actions/scale", json={**GOOD, "mode": "rel"})
    assert reply.status_code == 200
    assert reply.get_json() == {"points": [{"x": 2.0, "y": 4.0}], "mode": "rel", "label": ""}
    assert client.post("/ivoryos/calc/actions/nothing").get_json() == {"ok": True}
    assert client.post("/ivoryos/calc/actions/later", json={"n": 1}).get_json() == {"n": 2}


def test_faults_are_json_errors(client: Any) -> None:
    refused = client.post("/ivoryos/calc/actions/refuse", json={"why": "door open"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "refused: door open"
    broken = client.post("/ivoryos/calc/actions/broken")
    assert broken.status_code == 500 and broken.get_json()["error"] == "ZeroDivisionError: division by zero"
    odd = client.post("/ivoryos/calc/actions/not_json")
    assert odd.status_code == 500 and "not JSON" in odd.get_json()["error"]
    unknown = client.post("/ivoryos/calc/actions/nope")
    assert unknown.status_code == 404 and "scale" in unknown.get_json()["error"]
    assert client.get("/ivoryos/calc/actions/scale").status_code == 405


@calc.action(hardware=False)
def lost_signal() -> dict:
    return {"reading": float("nan"), "unit": "g"}


def test_replies_are_written_as_jsonify_writes_them(client: Any) -> None:
    """Compact outside debug mode (indented in it), keys sorted, NaN as null: as ``jsonify`` writes the same value."""
    reply = client.post("/ivoryos/calc/actions/scale", json=GOOD)
    app = client.application
    with app.app_context():
        expected = app.json.response({"points": [{"x": 2.0, "y": 4.0}], "mode": "abs", "label": ""})
    assert reply.get_data(as_text=True) == expected.get_data(as_text=True) == \
        '{"label":"","mode":"abs","points":[{"x":2.0,"y":4.0}]}\n'
    assert client.post("/ivoryos/calc/actions/lost_signal").get_data(as_text=True) == '{"reading":null,"unit":"g"}\n'
    app.debug = True
    try:
        assert client.post("/ivoryos/calc/actions/lost_signal").get_data(as_text=True) == \
            '{\n  "reading": null,\n  "unit": "g"\n}\n'
    finally:
        app.debug = False


@calc.action(hardware=False)
def exotic() -> dict:
    return {"mass": Fraction(3, 2), "unit": "µg"}


class FractionProvider(DefaultJSONProvider):
    """An app's JSON provider that writes the fractions it uses as strings (its ``default``), as apps do for
    types Flask does not write."""

    @staticmethod
    def default(o: Any) -> Any:
        return str(o) if isinstance(o, Fraction) else DefaultJSONProvider.default(o)


class MarkingProvider(FractionProvider):
    """A provider with a ``dumps`` of its own (an orjson one, say): the replies are written by it."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return "/*ours*/" + super().dumps(obj, **kwargs)


class Unhashable:
    """A ``default`` that cannot be a dict key (a callable object with ``__eq__`` and no hash)."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other

    def __call__(self, o: Any) -> Any:
        return str(o) if isinstance(o, Fraction) else DefaultJSONProvider.default(o)


def test_replies_are_written_by_the_apps_json_provider(client: Any) -> None:
    """The app's provider's ``default``, ``ensure_ascii`` and ``sort_keys``, and a ``dumps`` of its own."""
    app = client.application
    plain = app.json
    try:
        app.json = FractionProvider(app)
        assert client.post("/ivoryos/calc/actions/exotic").get_data(as_text=True) == \
            '{"mass":"3/2","unit":"\\u00b5g"}\n'
        app.json.ensure_ascii, app.json.sort_keys = False, False
        assert client.post("/ivoryos/calc/actions/exotic").get_data(as_text=True) == '{"mass":"3/2","unit":"µg"}\n'
        app.json = MarkingProvider(app)
        assert client.post("/ivoryos/calc/actions/exotic").get_data(as_text=True) == \
            '/*ours*/{"mass":"3/2","unit":"\\u00b5g"}\n'
        app.json = DefaultJSONProvider(app)
        app.json.default = Unhashable()  # type: ignore[method-assign]
        assert client.post("/ivoryos/calc/actions/exotic").get_data(as_text=True) == \
            '{"mass":"3/2","unit":"\\u00b5g"}\n'
        assert client.post("/ivoryos/calc/actions/lost_signal").get_data(as_text=True) == '{"reading":null,"unit":"g"}\n'
    finally:
        app.json = plain


class Probe:
    """An instrument an action calls."""

    def touch(self) -> int:
        return 1


PROBE = Probe()


@calc.action(hardware=False)
def touch_probe() -> dict:
    return {"touched": PROBE.touch()}


def test_an_actions_instrument_calls_say_which_action_made_them(client: Any) -> None:
    from ivoryos_plugin.hardware.deck import observe

    seen: List[Dict[str, Any]] = []
    stop_observing = observe(PROBE, seen.append, instrument="probe")
    try:
        for _ in range(2):  # (the second call's marks are the ones the first made)
            assert client.post("/ivoryos/calc/actions/touch_probe").get_json() == {"touched": 1}
        PROBE.touch()
    finally:
        stop_observing()
    assert [e["source"] for e in seen] == ["plugin:calc action touch_probe"] * 2 + ["deck"]
