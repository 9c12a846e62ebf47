"""Fuzzing the plugin routes that take input (actions, settings, a route for every method) with
generated bodies, headers, query strings and credentials: never a server error, a refused
credential is always refused, and a rejected request never changes a file on disk.

In process (the dev host app, exceptions propagate: a crash fails the test) for volume, then a
smaller batch against a real IvoryOS server."""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from secure_plugin import plugin as secure_plugin  # noqa: E402
from secure_plugin.harness import SecureServer, start_secure  # noqa: E402

NS = "/ivoryos/secure"
IN_PROCESS_EXAMPLES = {"routes": 800, "settings": 600}  # 1,400 in all
SERVER_EXAMPLES = 300
TARGETS = [  # (method, path, public)
    ("POST", f"{NS}/actions/record", False), ("POST", f"{NS}/actions/public_echo", True),
    ("POST", f"{NS}/actions/marks", False), ("POST", f"{NS}/actions/no_such_action", False),
    ("POST", f"{NS}/notes", False), ("PUT", f"{NS}/notes", False), ("PATCH", f"{NS}/notes", False),
    ("DELETE", f"{NS}/notes", False), ("GET", f"{NS}/notes", False), ("POST", f"{NS}/hook", True),
]
SETTINGS_TARGETS = [("POST", f"{NS}/settings", False), ("PUT", f"{NS}/settings.json", False),
                    ("PATCH", f"{NS}/settings.json", False), ("GET", f"{NS}/settings.json", False),
                    ("GET", f"{NS}/settings", False)]
CREDENTIALS = ["anonymous", "session", "session-without-csrf", "session-junk-csrf", "token",
               "token-other-plugin", "token-revoked", "junk-authorization"]
# half the requests carry a valid credential, so that the bodies reach the validation code
credentials = st.sampled_from(CREDENTIALS) | st.sampled_from(["session", "token"])
FIELDS = ["label", "limit", "mode", "enabled", "text", "times", "value", "csrf_token", "settings_version",
          "values", "__class__", "_private"]

visible = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.sampled_from(
    ["fast", "slow", "<script>alert(1)</script>", "../../etc/passwd", "1e309", "NaN", "", " "])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=5)
bodies = st.one_of(
    st.tuples(st.just("json"), objects | values),
    st.tuples(st.just("form"), st.dictionaries(st.sampled_from(FIELDS), visible, max_size=5)),
    st.tuples(st.just("raw"), st.binary(max_size=300)),
    st.tuples(st.just("none"), st.none()),
)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Accept", "X-CSRFToken", "X-CSRF-Token", "Origin", "Referer",
                     "X-Requested-With", "Content-Encoding", "X-Forwarded-For", "Cookie"]),
    st.sampled_from(["application/json", "text/html", "multipart/form-data; boundary=x",
                     "application/x-www-form-urlencoded", "null", "*/*"]) | visible, max_size=4)
queries = st.dictionaries(st.sampled_from(["token", "next", "name", "csrf_token"]) | st.text(max_size=6),
                          visible, max_size=3)


@dataclass
class Sent:
    """One generated request."""

    method: str
    path: str
    public: bool
    credential: str
    body: Tuple[str, Any]
    headers: Dict[str, str]
    query: Dict[str, str]
    prior: bool  # settings and the journal already written (else: a pristine data folder)

    def refused(self) -> bool:
        """Whether the credential must be refused whatever else the request holds."""
        if self.credential in ("token-other-plugin", "token-revoked"):
            return True
        if self.credential in ("session-without-csrf", "session-junk-csrf"):
            return self.method != "GET"
        if self.credential in ("anonymous", "junk-authorization"):
            return not self.public
        return False


def requests_for(targets: List[Tuple[str, str, bool]]) -> Any:
    """Requests to ``targets`` with generated credentials, bodies, headers and query strings."""
    return st.builds(lambda t, c, b, h, q, f: Sent(t[0], t[1], t[2], c, b, h, q, f), st.sampled_from(targets),
                     credentials, bodies, headers, queries, st.booleans())


def encode(sent: Sent, csrf: str, tokens: Dict[str, str]) -> Tuple[Dict[str, str], Optional[bytes], Any]:
    """Headers, raw body and form for ``sent`` (the credential's headers win over generated ones)."""
    out = {k: v for k, v in sent.headers.items() if not (k == "Cookie" and sent.credential.startswith("session"))}
    data: Optional[bytes] = None
    form = None
    kind, body = sent.body
    if kind == "json":
        data = json.dumps(body).encode()
        out.setdefault("Content-Type", "application/json")
    elif kind == "raw":
        data = body
    elif kind == "form":
        form = body
    if sent.credential == "session":
        out["X-CSRFToken"] = csrf
    elif sent.credential == "session-without-csrf":
        out["X-CSRFToken"] = ""  # and the kit's client adds none
    elif sent.credential == "session-junk-csrf":
        out["X-CSRFToken"] = sent.headers.get("X-CSRFToken", "junk") or "junk"
    elif sent.credential.startswith("token"):
        out["Authorization"] = "Bearer " + tokens[sent.credential]
    elif sent.credential == "junk-authorization":
        out["Authorization"] = "Bearer junk-" + sent.headers.get("Referer", "x")
    if form is not None and "application/x-www-form-urlencoded" not in out.get("Content-Type", ""):
        out.pop("Content-Type", None)  # let the client encode the form
    return out, data, form


def tree_hash(root: Path) -> str:
    """A hash of every file (name and content) under ``root``; logs are not state and are left out."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(".log"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


PRIOR = [Sent("PUT", f"{NS}/settings.json", False, "session", ("json", {"label": "earlier"}), {}, {}, False),
         Sent("POST", f"{NS}/actions/record", False, "session", ("json", {"text": "earlier"}), {}, {}, False)]


def make_pristine(root: Path) -> None:
    """Delete what requests wrote under ``root`` (keeping logs and the token file)."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and not path.name.endswith(".log") and not path.name.startswith("tokens.json"):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def check(sent: Sent, status: int, before: str, after: str) -> None:
    """The properties every generated request must have."""
    assert status < 500, f"{status} for {sent}"
    if sent.refused():
        assert status in (302, 400, 401, 403), f"a refused credential got {status}: {sent}"
    if status >= 400 or sent.refused():
        assert before == after, f"a rejected request ({status}) changed the data folder: {sent}"


def fuzz(send: Callable[[Sent], int], data: Path, targets: List[Tuple[str, str, bool]], count: int) -> int:
    """Run ``count`` generated requests through ``send``; how many ran."""
    ran: List[int] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(sent=requests_for(targets))
    def one(sent: Sent) -> None:
        ran.append(1)
        make_pristine(data)  # every example starts from a known state, so a failure replays
        if sent.prior:
            for earlier in PRIOR:
                assert send(earlier) == 200
        before = tree_hash(data)
        status = send(sent)
        check(sent, status, before, tree_hash(data))

    one()
    return len(ran)


# ----------------------------------------------------------------- in process
@pytest.fixture
def plugin() -> Any:
    return secure_plugin


@pytest.fixture
def in_process(plugin_app: Flask, client: Any, anon_client: Any) -> Iterator[Callable[[Sent], int]]:
    """``send(sent) -> status`` through Flask test clients of the dev host."""
    store = plugin_app.extensions["ivoryos_plugin"].tokens
    tokens = {"token": store.create("fuzz"), "token-other-plugin": store.create("other", "balance"),
              "token-revoked": store.create("revoked")}
    store.revoke("revoked")

    def send(sent: Sent) -> int:
        headers, data, form = encode(sent, client.csrf_token, tokens)
        user = client if sent.credential.startswith("session") else anon_client
        reply = user.open(sent.path, method=sent.method, headers=headers, query_string=sent.query,
                          data=form if form is not None else data)
        return int(reply.status_code)

    yield send


@pytest.mark.parametrize("name,targets", [("routes", TARGETS), ("settings", SETTINGS_TARGETS)],
                         ids=["actions-and-routes", "settings"])
def test_fuzz_in_process(in_process: Callable[[Sent], int], plugin_app: Flask, name: str,
                         targets: List[Tuple[str, str, bool]]) -> None:
    data = Path(plugin_app.config["OUTPUT_FOLDER"]) / "plugins"
    ran = fuzz(in_process, data, targets, IN_PROCESS_EXAMPLES[name])
    assert ran >= IN_PROCESS_EXAMPLES[name]


# --------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    running = start_secure(tmp_path_factory.mktemp("fuzz"), "ivoryos")
    try:
        yield running
    finally:
        running.server.stop()


@pytest.mark.server
def test_fuzz_a_real_ivoryos(server: SecureServer) -> None:
    tokens = {"token": server.cli("create", "fuzz"), "token-other-plugin": server.cli("create", "o", "--plugin", "probe"),
              "token-revoked": server.cli("create", "revoked")}
    server.cli("revoke", "revoked")
    http = requests.Session()

    def send(sent: Sent) -> int:
        headers, data, form = encode(sent, server.session.headers["X-CSRFToken"], tokens)
        headers = {k: v.strip() for k, v in headers.items()}  # requests refuses to send edge spaces
        cookies = server.session.cookies if sent.credential.startswith("session") else None
        reply = http.request(sent.method, server.base + sent.path, headers=headers, params=sent.query,
                             data=form if form is not None else data, cookies=cookies,
                             allow_redirects=False, timeout=60)
        http.cookies.clear()
        return int(reply.status_code)

    ran = fuzz(send, server.data, TARGETS + SETTINGS_TARGETS, SERVER_EXAMPLES)
    assert ran >= SERVER_EXAMPLES
