"""Tests for ``ivoryos_plugin.runtime.settings``: persistence, validation, crash safety, locking,
migrations and HTML form description. Real files under ``tmp_path``; real subprocesses."""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, SecretStr

ROOT = Path(__file__).resolve().parents[1]

from ivoryos_plugin.runtime.settings import store as settings_mod  # noqa: E402
from ivoryos_plugin.runtime.settings import (  # noqa: E402
    SettingsError,
    SettingsStore,
    SettingsValidationError,
)
from ivoryos_plugin.runtime.settings.forms import coerce_form, form_fields  # noqa: E402


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


class Demo(BaseModel):
    speed: int = Field(default=10, ge=0, le=100, description="Motor speed in rpm")
    ratio: float = 0.5
    enabled: bool = True
    mode: Literal["a", "b"] = "a"
    color: Color = Color.RED
    name: str = Field(default="pump", description="Display name", max_length=20)
    token: SecretStr = SecretStr("")
    counter: int = 0
    note: Optional[str] = None


class Counter(BaseModel):
    n: int = 0
    blob: str = ""


def _store(tmp_path: Path, **kw: Any) -> SettingsStore[Demo]:
    return SettingsStore(Demo, tmp_path / "demo.json", plugin_name="demo", **kw)


def _write(path: Path, version: int, values: Dict[str, Any]) -> bytes:
    raw = json.dumps({"settings_version": version, "values": values}).encode()
    path.write_bytes(raw)
    return raw


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


CHILD_PRELUDE = """
import sys, time
from pathlib import Path
from pydantic import BaseModel
from ivoryos_plugin.runtime.settings import SettingsStore

class Counter(BaseModel):
    n: int = 0
    blob: str = ""

store = SettingsStore(Counter, Path(sys.argv[1]), plugin_name="child")
"""


# ----------------------------------------------------------------- basics
def test_defaults_when_no_file_and_nothing_written(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.load() == Demo()
    assert store.current == Demo()
    assert list(tmp_path.iterdir()) == []


def test_update_persists_and_merges(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old, new = store.update({"speed": 42, "mode": "b"})
    assert old == Demo() and new.speed == 42 and new.mode == "b"
    _, newer = store.update({"ratio": 0.25})
    assert (newer.speed, newer.mode, newer.ratio) == (42, "b", 0.25)
    fresh = _store(tmp_path).load()
    assert fresh == newer
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert doc["settings_version"] == 0 and doc["values"]["speed"] == 42


def test_replace_resets_missing_fields_to_defaults(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.update({"speed": 42, "name": "x"})
    _, new = store.replace({"ratio": 2.0})
    assert new == Demo(ratio=2.0)


def test_secret_and_enum_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.update({"token": "s3cret", "color": "blue"})
    loaded = _store(tmp_path).load()
    assert loaded.token.get_secret_value() == "s3cret" and loaded.color is Color.BLUE


def test_other_store_changes_are_not_lost(tmp_path: Path) -> None:
    a, b = _store(tmp_path), _store(tmp_path)
    a.load()
    b.update({"speed": 77})
    _, new = a.update({"name": "other"})
    assert (new.speed, new.name) == (77, "other")


def test_on_change_called_and_failure_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Any] = []
    store = _store(tmp_path, on_change=lambda old, new: seen.append((old.speed, new.speed)))
    store.update({"speed": 5})
    assert seen == [(10, 5)]

    def boom(old: Demo, new: Demo) -> None:
        raise RuntimeError("callback broke")

    store.on_change = boom
    with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.settings"):
        store.update({"speed": 6})
    assert "callback" in caplog.text
    assert _store(tmp_path).load().speed == 6


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("payload, fields", [
    ({"speed": 101}, {"speed"}),
    ({"speed": "fast"}, {"speed"}),
    ({"mode": "c", "bogus": 1}, {"mode", "bogus"}),
    ({"enabled": [1]}, {"enabled"}),
    (["speed", 3], {"__root__"}),
], ids=["out-of-bounds", "wrong-type", "literal-and-unknown", "list-for-bool", "non-dict"])
def test_invalid_update_reports_fields(tmp_path: Path, payload: Any, fields: set) -> None:
    store = _store(tmp_path)
    store.update({"speed": 1})
    before = (tmp_path / "demo.json").read_bytes()
    with pytest.raises(SettingsValidationError) as info:
        store.update(payload)
    assert set(info.value.errors) == fields
    assert all(info.value.errors.values())
    assert "demo" in str(info.value)
    assert (tmp_path / "demo.json").read_bytes() == before
    assert store.current.speed == 1


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
_containers = (st.lists(_json_values, max_size=3)
               | st.dictionaries(st.text(max_size=4), _json_values, max_size=3))


def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


_bad_entries = st.one_of(
    st.tuples(st.just("speed"), st.integers().filter(lambda v: not 0 <= v <= 100)),
    st.tuples(st.just("speed"), st.text(max_size=8).filter(_not_number) | _containers | st.none()),
    st.tuples(st.just("ratio"), st.text(max_size=8).filter(_not_number) | _containers | st.none()),
    st.tuples(st.just("enabled"), st.integers().filter(lambda v: v not in (0, 1)) | _containers | st.none()),
    st.tuples(st.just("mode"), st.text(max_size=5).filter(lambda v: v not in ("a", "b")) | _containers),
    st.tuples(st.just("color"), st.text(max_size=5).filter(lambda v: v not in ("red", "blue"))),
    st.tuples(st.just("name"), st.text(min_size=21, max_size=30) | _containers | st.integers()),
    st.tuples(st.text(min_size=1, max_size=10).filter(lambda k: k not in Demo.model_fields), _json_values),
)


@st.composite
def _invalid_payloads(draw: st.DrawFn) -> Any:
    """An invalid payload and the error keys it must produce."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_json_scalars | st.lists(_json_values, max_size=3)), {"__root__"}
    bad = dict(draw(st.lists(_bad_entries, min_size=1, max_size=3)))
    good = draw(st.fixed_dictionaries({}, optional={"speed": st.integers(0, 100), "ratio": st.floats(0, 1)}))
    return {**good, **bad}, set(bad)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_invalid_payloads())
def test_random_invalid_payloads_never_touch_file(tmp_path: Path, case: Any) -> None:
    payload, expected = case
    path = tmp_path / "demo.json"
    store = SettingsStore(Demo, path, plugin_name="demo")
    if not path.exists():
        store.update({"speed": 3, "token": "t"})
    before = path.read_bytes()
    with pytest.raises(SettingsValidationError) as info:
        store.update(payload)
    assert expected <= set(info.value.errors)
    assert all(isinstance(m, str) for msgs in info.value.errors.values() for m in msgs)
    assert all(info.value.errors.values())
    assert path.read_bytes() == before
    assert store.current.speed == 3


# --------------------------------------------------------------- failures
def test_corrupt_json_names_file_and_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_bytes(b'{"settings_version": 0, "values": {"speed": ')
    store = _store(tmp_path)
    with pytest.raises(SettingsError, match="demo.json"):
        store.load()
    with pytest.raises(SettingsError):
        store.update({"speed": 1})
    assert path.read_bytes() == b'{"settings_version": 0, "values": {"speed": '


@pytest.mark.parametrize("content", [b"[]", b'{"values": {}}', b'{"settings_version": "1", "values": {}}',
                                     b'{"settings_version": 0, "values": []}'],
                         ids=["list", "no-version", "string-version", "list-values"])
def test_bad_layout_raises(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "demo.json").write_bytes(content)
    with pytest.raises(SettingsError, match="settings_version"):
        _store(tmp_path).load()


def test_stored_invalid_value_raises_validation_error(tmp_path: Path) -> None:
    raw = _write(tmp_path / "demo.json", 0, {"speed": 500})
    with pytest.raises(SettingsValidationError) as info:
        _store(tmp_path).load()
    assert "speed" in info.value.errors
    assert (tmp_path / "demo.json").read_bytes() == raw


# ------------------------------------------------------------- migrations
def _rename_spd(values: dict) -> dict:
    values["speed"] = values.pop("spd")
    return values


def _percent_to_ratio(values: dict) -> dict:
    values["ratio"] = values.pop("ratio_percent") / 100
    return values


def test_migration_v0_to_v2_written_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "demo.json"
    _write(path, 0, {"spd": 5, "ratio_percent": 25})
    calls: List[int] = []
    writes: List[Path] = []

    def step1(values: dict) -> dict:
        calls.append(1)
        return _rename_spd(values)

    def step2(values: dict) -> dict:
        calls.append(2)
        return _percent_to_ratio(values)

    def counting_write(path: Path, data: bytes) -> None:
        writes.append(path)
        real_write(path, data)

    migrations = {1: step1, 2: step2}
    real_write = settings_mod.atomic_write
    monkeypatch.setattr(settings_mod, "atomic_write", counting_write)
    loaded = _store(tmp_path, version=2, migrations=migrations).load()
    assert (loaded.speed, loaded.ratio) == (5, 0.25)
    assert calls == [1, 2] and writes == [path]
    doc = json.loads(path.read_text())
    assert doc["settings_version"] == 2 and doc["values"]["speed"] == 5
    assert _store(tmp_path, version=2, migrations=migrations).load() == loaded
    assert calls == [1, 2] and writes == [path]


@pytest.mark.parametrize("step", [1, 2], ids=["first-step", "second-step"])
def test_failing_migration_leaves_file_identical(tmp_path: Path, step: int) -> None:
    raw = _write(tmp_path / "demo.json", 0, {"spd": 5, "ratio_percent": 25})

    def broken(values: dict) -> dict:
        raise KeyError("missing_field")

    migrations = {1: _rename_spd, 2: _percent_to_ratio}
    migrations[step] = broken
    store = SettingsStore(Demo, tmp_path / "demo.json", version=2, migrations=migrations,
                          plugin_name="pump-plugin")
    with pytest.raises(SettingsError, match=rf"pump-plugin.*version {step - 1} to {step}.*missing_field"):
        store.load()
    assert (tmp_path / "demo.json").read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["demo.json"]


def test_migrated_values_failing_validation_leave_file(tmp_path: Path) -> None:
    raw = _write(tmp_path / "demo.json", 0, {"spd": 5000})
    store = _store(tmp_path, version=1, migrations={1: _rename_spd})
    with pytest.raises(SettingsValidationError, match="migrating from version 0 to 1") as info:
        store.load()
    assert "speed" in info.value.errors
    assert (tmp_path / "demo.json").read_bytes() == raw


def test_newer_version_raises(tmp_path: Path) -> None:
    raw = _write(tmp_path / "demo.json", 3, {"speed": 5})
    with pytest.raises(SettingsError, match="version 3, newer"):
        _store(tmp_path, version=2).load()
    assert (tmp_path / "demo.json").read_bytes() == raw


def test_migration_keys_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1..1"):
        _store(tmp_path, version=1, migrations={0: _rename_spd})


# ------------------------------------------------------ crash & concurrency
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_saves_never_tears_file(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    # The child reports each completed save; the parent kills it after a random one while
    # it keeps saving, so the kill lands at an arbitrary point of a later save.
    script = CHILD_PRELUDE + textwrap.dedent("""
        for i in range(1, 101):
            store.update({"n": i, "blob": "x" * ((i * 397) % 5000)})
            print(i, flush=True)
    """)
    rng = random.Random(1234)
    for _round in range(8):
        kill_after = rng.randint(1, 95)
        child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                                 env=_child_env())
        assert child.stdout is not None
        for _ in range(kill_after):
            assert child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.002))
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        child.stdout.close()
        doc = json.loads(path.read_bytes())  # never torn, never empty
        value = Counter.model_validate(doc["values"])
        assert kill_after <= value.n <= 100
        assert value.blob == "x" * ((value.n * 397) % 5000)
        assert SettingsStore(Counter, path).load() == value
    stale = tmp_path / ".counter.json.leftover.tmp"
    stale.write_bytes(b'{"settings_version": 0, "val')
    store = SettingsStore(Counter, path)
    store.load()
    _, new = store.update({"n": 1000})
    assert SettingsStore(Counter, path).load().n == 1000 == new.n
    assert not stale.exists()


def test_threads_modify_without_lost_updates(tmp_path: Path) -> None:
    store = _store(tmp_path)
    other = _store(tmp_path)  # a second store on the same file, as another plugin instance would

    def work(s: SettingsStore[Demo]) -> None:
        for _ in range(25):
            s.modify(lambda cur: {"counter": cur.counter + 1})

    threads = [threading.Thread(target=work, args=(store if i % 2 else other,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _store(tmp_path).load().counter == 200


def test_two_processes_modify_without_lost_updates(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    go = tmp_path / "go"
    script = CHILD_PRELUDE + textwrap.dedent("""
        go = Path(sys.argv[2])
        while not go.exists():
            time.sleep(0.001)
        for _ in range(50):
            store.modify(lambda cur: {"n": cur.n + 1})
    """)
    children = [subprocess.Popen([sys.executable, "-c", script, str(path), str(go)], env=_child_env())
                for _ in range(2)]
    go.touch()
    for child in children:
        assert child.wait(timeout=60) == 0
    assert SettingsStore(Counter, path).load().n == 100


# ------------------------------------------------------------------ forms
def test_form_fields_describe_each_type() -> None:
    specs = {s.name: s for s in form_fields(Demo(speed=20, token=SecretStr("hidden")))}
    speed = specs["speed"]
    assert (speed.input_type, speed.step, speed.min, speed.max) == ("number", "1", 0, 100)
    assert (speed.value, speed.default, speed.help, speed.label) == (20, 10, "Motor speed in rpm", "Speed")
    assert (specs["ratio"].input_type, specs["ratio"].step) == ("number", "any")
    assert specs["enabled"].input_type == "checkbox" and specs["enabled"].value is True
    assert specs["mode"].input_type == "select" and [v for v, _ in specs["mode"].choices] == ["a", "b"]
    assert specs["color"].choices == [("red", "RED"), ("blue", "BLUE")] and specs["color"].value == "red"
    assert specs["name"].input_type == "text" and specs["name"].help == "Display name"
    assert specs["name"].max_length == 20
    assert specs["token"].input_type == "password" and specs["token"].value == ""
    assert specs["note"].optional and not specs["note"].required


def test_form_fields_bounds_from_gt_lt_and_required() -> None:
    class Bounds(BaseModel):
        count: int = Field(gt=0, lt=10)
        level: float = Field(default=0.5, gt=0.0, le=1.0)

    specs = {s.name: s for s in form_fields(Bounds)}
    assert (specs["count"].min, specs["count"].max, specs["count"].required) == (1, 9, True)
    assert (specs["level"].min, specs["level"].max, specs["level"].value) == (0.0, 1.0, 0.5)


def test_coerce_form_then_update(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.update({"token": "keep-me", "enabled": True})
    form = {"speed": " 30 ", "ratio": "0.75", "mode": "b", "color": "blue", "name": "p2", "token": "",
            "note": "", "csrf_token": "abc"}
    values = coerce_form(Demo, form)
    assert values == {"speed": 30, "ratio": 0.75, "enabled": False, "mode": "b", "color": "blue",
                      "name": "p2", "note": None}
    _, new = store.update(values)
    assert new.token.get_secret_value() == "keep-me" and new.enabled is False
    with pytest.raises(SettingsValidationError) as info:
        store.update(coerce_form(Demo, {"speed": "", "ratio": "abc", "enabled": "on"}))
    assert set(info.value.errors) == {"speed", "ratio"}
