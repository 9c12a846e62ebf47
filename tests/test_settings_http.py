"""Settings over HTTP, in the standalone host (the pytest kit's ``client``) and in a real IvoryOS
server: the form, ``settings.json``, random invalid payloads, concurrent writers, a failed migration.
(The store's own properties are tested in test_settings_store.py.)"""
from __future__ import annotations

import html
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from support import ROOT, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))

from life_plugin import BAD_V1_SETTINGS, LifeSettings, make_life, make_migrating, read_events  # noqa: E402
from life_plugin.forms import parse_form  # noqa: E402

from ivoryos_plugin import create_app  # noqa: E402
from ivoryos_plugin.hosts.devhost import stop  # noqa: E402
from ivoryos_plugin.testing import login_client  # noqa: E402

DEFAULTS = LifeSettings().model_dump(mode="json")
FIELDS = list(LifeSettings.model_fields)
MIGRATION_REASON = re.compile(r"plugin 'migrating': migrating settings file \S+settings\.json from version 1 to 2 "
                              r"failed: KeyError: 'speed'\. Fix the migration migrations\[2\] or the file; it was "
                              r"left unchanged\.")


@pytest.fixture
def plugin() -> Any:
    """The plugin under test for the pytest kit's ``plugin_app`` and ``client``."""
    return make_life()


class Reply:
    """What a user sees of one response, from either host."""

    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text

    def json(self) -> Any:
        return json.loads(self.text)


class Target:
    """The life plugin's settings in one host: requests, the stored file, the change events."""

    def __init__(self, kind: str, data_dir: Path, client: Any = None, base: str = "") -> None:
        self.kind, self.data_dir, self.client, self.base = kind, data_dir, client, base
        self.file = data_dir / "settings.json"

    def send(self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None,
             form: Optional[Dict[str, str]] = None) -> Reply:
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        if self.kind == "standalone":
            if form is not None:
                token, self.client.csrf_token = self.client.csrf_token, None  # the form's own token only
                try:
                    reply = self.client.open(path, method=method, data=form)
                finally:
                    self.client.csrf_token = token
            else:
                reply = self.client.open(path, method=method, data=data, content_type="application/json")
            return Reply(reply.status_code, reply.get_data(as_text=True))
        if form is not None:
            reply = self.client.request(method, self.base + path, data=form, headers={"X-CSRFToken": None})
        else:
            reply = self.client.request(method, self.base + path, data=data,
                                        headers={"Content-Type": "application/json"})
        return Reply(reply.status_code, reply.text)

    def get(self, path: str) -> Reply:
        return self.send("GET", path)

    def changes(self) -> List[str]:
        return [e for e in read_events(self.data_dir) if e.startswith("change ")]

    def fresh_client(self) -> Any:
        """Another logged-in client, for another thread."""
        if self.kind == "standalone":
            return login_client(self.client.application)
        return ivoryos_login(self.base)


class IvoryosServer:
    def __init__(self, server: Any, root: Path) -> None:
        self.server, self.root, self.base = server, root, server.base
        self.session = ivoryos_login(server.base)


@pytest.fixture(scope="module")
def ivoryos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IvoryosServer]:
    """A real IvoryOS (``ivoryos_plugin.run``) with ``life`` and ``migrating``, whose stored settings
    need a migration that fails."""
    root = tmp_path_factory.mktemp("ivoryos_settings")
    seeded = root / "ivoryos_data" / "plugins" / "migrating"
    seeded.mkdir(parents=True)
    (seeded / "settings.json").write_bytes(BAD_V1_SETTINGS)
    code = (PLUGINS / "life_plugin" / "life_deck.py").read_text()
    server = launch(code, root, name="life_deck.py", env={"PYTHONPATH": str(PLUGINS), "LIFE_HOST": "ivoryos_plugin",
                                                          "LIFE_PLUGINS": "life,migrating"})
    try:
        yield IvoryosServer(server, root)
    finally:
        server.stop()


@pytest.fixture(params=["standalone", "ivoryos"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The life plugin's settings in the standalone host, or in the real IvoryOS (reset to defaults)."""
    if request.param == "standalone":
        client = request.getfixturevalue("client")
        return Target("standalone", tmp_path / "ivoryos_data" / "plugins" / "life", client=client)
    server: IvoryosServer = request.getfixturevalue("ivoryos_server")
    found = Target("ivoryos", server.root / "ivoryos_data" / "plugins" / "life", client=server.session,
                   base=server.base)
    assert found.send("PUT", "/ivoryos/life/settings.json", {}).status == 200
    return found


def assert_base(kind: str, page: str) -> None:
    if kind == "standalone":
        assert 'class="ivp-shell"' in page and "ivoryos_logo.png" not in page, "not the standalone shell"
    else:
        assert "ivoryos_logo.png" in page and "navbar" in page and "ivp-shell" not in page, \
            "the page does not extend IvoryOS's base.html"


# ---------------------------------------------------------------------------------- the form
def test_the_form_renders_every_field_in_the_host_base(target: Target) -> None:
    reply = target.get("/ivoryos/life/settings")
    assert reply.status == 200
    assert_base(target.kind, reply.text)
    assert "<title>Life · settings</title>" in reply.text
    form = parse_form(reply.text)
    c = form.controls
    assert form.csrf, "the form has no CSRF token"
    assert {k: (v["tag"], v.get("type")) for k, v in c.items()} == {
        "rate_hz": ("input", "number"), "count": ("input", "number"), "unit": ("select", None),
        "mode": ("select", None), "label": ("input", "text"), "enabled": ("input", "checkbox")}
    assert (c["rate_hz"]["min"], c["rate_hz"]["max"], c["rate_hz"]["step"], c["rate_hz"]["value"]) == (
        "0", "50", "any", "5.0")
    assert (c["count"]["min"], c["count"]["max"], c["count"]["step"], c["count"]["value"]) == ("1", "10", "1", "3")
    assert (c["label"]["minlength"], c["label"]["maxlength"], c["label"]["value"]) == ("1", "40", "balance")
    assert "checked" in c["enabled"]
    assert form.options["unit"] == [{"value": "g", "selected": True, "label": "g"},
                                    {"value": "mg", "selected": False, "label": "mg"},
                                    {"value": "kg", "selected": False, "label": "kg"}]
    assert [(o["value"], o["label"], o["selected"]) for o in form.options["mode"]] == [
        ("gentle", "gentle", True), ("fast", "fast", False)]
    assert form.help == {"rate_hz": "Readings per second.", "count": "Samples averaged per reading.",
                         "unit": "Display unit.", "mode": "How hard to drive the motor.",
                         "label": "Shown on the page.", "enabled": "Read at all."}


def test_a_form_post_invalid_then_valid(target: Target) -> None:
    before = target.file.read_bytes() if target.file.exists() else None
    changes = len(target.changes())
    csrf = parse_form(target.get("/ivoryos/life/settings").text).csrf
    assert csrf
    typed = {"rate_hz": "0", "count": "4", "unit": "kg", "mode": "fast", "label": "typed", "csrf_token": csrf}
    forged = target.send("POST", "/ivoryos/life/settings", form={k: v for k, v in typed.items() if k != "csrf_token"})
    assert forged.status == 400 and "CSRF" in forged.text
    refused = target.send("POST", "/ivoryos/life/settings", form=typed)
    assert refused.status == 400
    assert_base(target.kind, refused.text)
    form = parse_form(refused.text)
    assert "Not saved: fix the fields below." in refused.text
    assert form.errors == {"rate_hz": "Input should be greater than 0"}
    assert (form.controls["rate_hz"]["value"], form.controls["label"]["value"]) == ("0", "typed"), \
        "the refused form lost what the user typed"
    assert [o["value"] for o in form.options["unit"] if o["selected"]] == ["kg"]
    assert (target.file.read_bytes() if target.file.exists() else None) == before
    assert len(target.changes()) == changes

    saved = target.send("POST", "/ivoryos/life/settings", form={**typed, "rate_hz": "7.5", "label": "south"})
    assert saved.status == 200 and "Saved." in saved.text
    stored = json.loads(target.file.read_bytes())
    assert stored == {"settings_version": 0, "values": {"rate_hz": 7.5, "count": 4, "unit": "kg", "mode": "fast",
                                                       "label": "south", "enabled": False}}
    assert target.changes()[changes:] == ["change balance -> south"]
    assert "checked" not in parse_form(saved.text).controls["enabled"]


# --------------------------------------------------------------------------- settings.json
def test_a_valid_put_saves_and_fires_on_settings_change_once(target: Target) -> None:
    changes = len(target.changes())
    wanted = {"rate_hz": 12.5, "count": 7, "unit": "mg", "mode": "fast", "label": "north", "enabled": False}
    put = target.send("PUT", "/ivoryos/life/settings.json", wanted)
    assert put.status == 200 and put.json() == {"settings_version": 0, "values": wanted}
    assert json.loads(target.file.read_bytes()) == {"settings_version": 0, "values": wanted}
    got = target.get("/ivoryos/life/settings.json").json()
    assert got["values"] == wanted and got["settings_version"] == 0
    assert got["schema"]["properties"]["rate_hz"]["exclusiveMinimum"] == 0
    assert target.send("POST", "/ivoryos/life/actions/state", {}).json()["settings"] == wanted, \
        "plugin.settings does not see the saved values"
    assert target.changes()[changes:] == ["change balance -> north"]

    again = target.send("PUT", "/ivoryos/life/settings.json", {"values": wanted})
    assert again.status == 200
    assert target.changes()[changes:] == ["change balance -> north"], "saving the same values fired a change"
    patch = target.send("PATCH", "/ivoryos/life/settings.json", {"count": 8})
    assert patch.status == 200 and patch.json()["values"] == {**wanted, "count": 8}
    assert len(target.changes()) == changes + 2


JSON_LEAF = (st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats() | st.text(max_size=12))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _invalid(field: str, value: Any) -> bool:
    try:
        LifeSettings.model_validate({**DEFAULTS, field: json.loads(json.dumps(value))})
    except ValidationError:
        return True
    return False


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


@st.composite
def invalid_payloads(draw: st.DrawFn) -> Tuple[str, bytes, Optional[str]]:
    """``(method, body, the field the 400 must name or None)``: each body is invalid."""
    method = draw(st.sampled_from(["PUT", "PATCH"]))
    kind = draw(st.sampled_from(["field", "unknown", "not-an-object", "not-json"]))
    others = {k: DEFAULTS[k] for k in draw(st.sets(st.sampled_from(FIELDS)))}
    if kind == "not-json":
        return method, draw(st.binary(max_size=40).filter(lambda raw: not _parses(raw))), None
    if kind == "not-an-object":
        value = draw(JSON_VALUE.filter(lambda v: not isinstance(v, dict)))
        return method, json.dumps(value).encode(), "_"
    if kind == "unknown":
        field = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS and k != "values"))
        body: Dict[str, Any] = {**others, field: draw(JSON_VALUE)}
    else:
        field = draw(st.sampled_from(FIELDS))
        value = draw(JSON_VALUE.filter(lambda v: _invalid(field, v)))
        body = {**{k: v for k, v in others.items() if k != field}, field: value}
    if draw(st.booleans()):
        body = {"values": body}
    return method, json.dumps(body).encode(), field


def test_random_invalid_payloads_get_400_and_leave_the_file_byte_identical(target: Target) -> None:
    assert target.send("PUT", "/ivoryos/life/settings.json", {"label": "before-fuzz", "count": 9}).status == 200
    stored = target.file.read_bytes()
    changes = len(target.changes())
    seen: List[str] = []

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(invalid_payloads())
    def check(payload: Tuple[str, bytes, Optional[str]]) -> None:
        method, body, field = payload
        seen.append(method)
        reply = target.send(method, "/ivoryos/life/settings.json", raw=body)
        assert reply.status == 400, (body, reply.text)
        answer = reply.json()
        assert "Plugin 'life'" in answer["error"]
        if field is not None:
            assert field in answer["errors"], (body, answer)
        assert target.file.read_bytes() == stored, f"{method} {body!r} changed the stored file"

    check()
    assert len(seen) >= 200
    assert len(target.changes()) == changes, "an invalid payload fired on_settings_change"
    assert target.get("/ivoryos/life/settings.json").json()["values"]["label"] == "before-fuzz"


def test_concurrent_writers_never_lose_an_update(target: Target) -> None:
    start = target.get("/ivoryos/life/settings.json").json()["values"]["label"]
    changes = len(target.changes())
    replies: List[Tuple[str, int]] = []
    lock = threading.Lock()

    def put_many(client: Any, thread: int) -> None:
        mine = Target(target.kind, target.data_dir, client=client, base=target.base)
        for i in range(10):
            label = f"t{thread}-{i}"
            status = mine.send("PUT", "/ivoryos/life/settings.json", {"label": label, "count": 1 + thread}).status
            with lock:
                replies.append((label, status))

    def patch_many(client: Any, field: str, values: List[Any]) -> None:
        mine = Target(target.kind, target.data_dir, client=client, base=target.base)
        for value in values:
            status = mine.send("PATCH", "/ivoryos/life/settings.json", {field: value}).status
            with lock:
                replies.append((f"{field}={value}", status))

    clients = [target.fresh_client() for _ in range(4)]
    threads = [threading.Thread(target=put_many, args=(clients[n], n)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(status for _, status in replies) == [200] * 40
    pairs = [line[len("change "):].split(" -> ") for line in target.changes()[changes:]]
    news = [new for _, new in pairs]
    olds = [old for old, _ in pairs]
    written = [label for label, _ in replies]
    assert sorted(news) == sorted(written), "a saved PUT did not fire exactly one change"
    assert len(set(olds)) == len(olds), f"two writers replaced the same settings: {sorted(olds)}"
    assert set(olds) <= set(written) | {start}
    final = json.loads(target.file.read_bytes())["values"]["label"]
    assert set(written) - set(olds) == {final}, "the changes do not form one chain ending in the stored value"

    replies.clear()
    clients = [target.fresh_client() for _ in range(3)]
    jobs = [("count", list(range(1, 11))), ("rate_hz", [float(n) for n in range(1, 11)]),
            ("label", [f"p{n}" for n in range(10)])]
    threads = [threading.Thread(target=patch_many, args=(clients[n], *jobs[n])) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [status for _, status in replies] == [200] * 30
    values = json.loads(target.file.read_bytes())["values"]
    assert (values["count"], values["rate_hz"], values["label"]) == (10, 10.0, "p9"), \
        f"a concurrent PATCH lost another's change: {values}"


# -------------------------------------------------------------------------- failed migration
def test_a_migration_that_raises_suspends_the_plugin_standalone(tmp_path: Path) -> None:
    stored = tmp_path / "plugins" / "migrating" / "settings.json"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(BAD_V1_SETTINGS)
    plugin = make_migrating()
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    try:
        client = login_client(app)
        assert stored.read_bytes() == BAD_V1_SETTINGS
        for path in ("/ivoryos/migrating/", "/ivoryos/migrating/settings", "/ivoryos/migrating/settings.json"):
            reply = client.get(path)
            assert reply.status_code == 503, path
            assert MIGRATION_REASON.fullmatch(reply.get_json()["reason"]), reply.get_json()
        assert client.put("/ivoryos/migrating/settings.json", json={"speed_rpm": 5}).status_code == 503
        (status,) = client.get("/ivoryos/plugins/status.json").get_json()["plugins"]
        assert status["state"] == "suspended" and MIGRATION_REASON.fullmatch(status["reason"])
        page = html.unescape(client.get("/ivoryos/plugins/").get_data(as_text=True))
        assert MIGRATION_REASON.search(page) and 'data-state="suspended"' in page
    finally:
        stop(app)
    assert stored.read_bytes() == BAD_V1_SETTINGS, "the failed migration touched the file"


@pytest.mark.server
def test_a_migration_that_raises_suspends_the_plugin_in_ivoryos(ivoryos_server: IvoryosServer) -> None:
    base, session = ivoryos_server.base, ivoryos_server.session
    stored = ivoryos_server.root / "ivoryos_data" / "plugins" / "migrating" / "settings.json"
    for path in ("/ivoryos/migrating/", "/ivoryos/migrating/settings", "/ivoryos/migrating/settings.json"):
        reply = session.get(base + path)
        assert reply.status_code == 503 and MIGRATION_REASON.fullmatch(reply.json()["reason"]), path
    assert session.put(f"{base}/ivoryos/migrating/settings.json", json={"speed_rpm": 5}).status_code == 503
    assert stored.read_bytes() == BAD_V1_SETTINGS
    page = session.get(f"{base}/ivoryos/plugins/")
    assert page.status_code == 200 and "ivoryos_logo.png" in page.text
    assert MIGRATION_REASON.search(html.unescape(page.text))
    assert requests.get(f"{base}/ivoryos/life/settings.json").status_code == 401
