"""API tokens: the ``ivoryos-plugin token`` CLI, hashed storage, scopes, revocation by another
process taking effect at once, and every way a token can be presented (header, Socket.IO auth).
The same checks against running servers are in test_security.py."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from flask import Flask
from flask.testing import FlaskClient

from support import ROOT
from ivoryos_plugin.runtime.tokens import TokenError, TokenStore

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from secure_plugin import plugin as secure_plugin  # noqa: E402

CLI = Path(sys.executable).with_name("ivoryos-plugin")
NS = "/ivoryos/secure"
RECORD = f"{NS}/actions/record"


def cli(*args: str, cwd: Path, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the real ``ivoryos-plugin token`` command."""
    full_env = {k: v for k, v in os.environ.items() if k != "IVORYOS_PLUGIN_DATA"}
    return subprocess.run([str(CLI), "token", *args], cwd=cwd, env={**full_env, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def plugin() -> Any:
    return secure_plugin


@pytest.fixture
def store(plugin_app: Flask) -> TokenStore:
    """The token store of the in-process dev host (``<data>/plugins/tokens.json``)."""
    return plugin_app.extensions["ivoryos_plugin"].tokens  # type: ignore[no-any-return]


def test_cli_stores_only_a_hash_readable_by_the_owner(tmp_path: Path) -> None:
    made = cli("create", "acquisition-pc", "--plugin", "secure", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ivp_") and len(token) > 40
    path = tmp_path / "ivoryos_data" / "plugins" / "tokens.json"  # the default data folder
    assert token not in path.read_text()
    [record] = json.loads(path.read_text())
    assert record["digest"] == hashlib.sha256(token.encode()).hexdigest()
    assert record["name"] == "acquisition-pc" and record["plugin"] == "secure"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = cli("list", cwd=tmp_path).stdout
    assert "acquisition-pc" in listed and "secure" in listed and token not in listed
    assert cli("revoke", "acquisition-pc", cwd=tmp_path).stdout.strip() == "Revoked acquisition-pc."
    assert cli("list", cwd=tmp_path).stdout.strip() == "No tokens."


def test_cli_data_folder_comes_from_the_option_or_the_environment(tmp_path: Path) -> None:
    assert cli("create", "a", "--data-dir", str(tmp_path / "opt"), cwd=tmp_path).returncode == 0
    assert cli("create", "b", cwd=tmp_path, env={"IVORYOS_PLUGIN_DATA": str(tmp_path / "env")}).returncode == 0
    assert [r["name"] for r in json.loads((tmp_path / "opt" / "tokens.json").read_text())] == ["a"]
    assert [r["name"] for r in json.loads((tmp_path / "env" / "tokens.json").read_text())] == ["b"]


@pytest.mark.parametrize("args,message", [
    (["create", "dup"], "a token named 'dup' exists; revoke it first"),
    (["create", "bad name"], "token name 'bad name' is not allowed"),
    (["create", "x", "--plugin", "not-a-plugin!"], "--plugin 'not-a-plugin!' is not a plugin name"),
    (["revoke", "nobody"], "no token named 'nobody'; see 'ivoryos-plugin token list'"),
], ids=["duplicate", "bad-name", "bad-scope", "unknown-revoke"])
def test_cli_errors_name_the_value_and_the_fix(tmp_path: Path, args: List[str], message: str) -> None:
    assert cli("create", "dup", cwd=tmp_path).returncode == 0
    failed = cli(*args, cwd=tmp_path)
    assert failed.returncode == 1 and message in failed.stderr, failed.stderr


def test_a_running_store_sees_another_process_create_and_revoke_at_once(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    mine = store.create("server-side")
    assert store.verify(mine) is not None
    theirs = cli("create", "from-cli", "--data-dir", str(tmp_path), cwd=tmp_path).stdout.strip()
    assert store.verify(theirs) is not None, "a token made by another process is not seen"
    assert cli("revoke", "server-side", "--data-dir", str(tmp_path), cwd=tmp_path).returncode == 0
    assert store.verify(mine) is None, "a token revoked by another process still works"
    assert store.verify(theirs) is not None


def test_a_corrupt_token_file_refuses_every_token_but_never_fails(tmp_path: Path, store: TokenStore,
                                                                  anon_client: FlaskClient) -> None:
    token = store.create("good")
    assert anon_client.post(RECORD, json={}, headers=bearer(token)).status_code == 200
    store.path.write_text('[{"name": "good", "digest": ')  # torn by a hand edit
    assert store.verify(token) is None
    reply = anon_client.post(RECORD, json={}, headers=bearer(token))
    assert reply.status_code == 401
    with pytest.raises(TokenError, match="token file .* is unreadable .* fix it or delete it"):
        store.create("another")
    failed = cli("list", "--data-dir", str(store.path.parent), cwd=tmp_path)
    assert failed.returncode == 1 and failed.stderr.startswith("Error: the token file ")
    assert "Traceback" not in failed.stderr


def bearer(token: str, scheme: str = "Bearer") -> Dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


@pytest.mark.parametrize("header,status", [
    ("Bearer {token}", 200),
    ("bearer {token}", 200),
    ("BEARER   {token}  ", 200),
    ("Bearer {token}x", 401),
    ("Bearer ivp_unknown", 401),
    ("Basic {token}", 401),
    ("Token {token}", 401),
    ("Bearer", 401),
    ("{token}", 401),
], ids=["standard", "lowercase", "spaces", "altered", "unknown", "basic-scheme", "other-scheme",
        "empty", "no-scheme"])
def test_bearer_header_forms(store: TokenStore, anon_client: FlaskClient, header: str, status: int) -> None:
    token = store.create("program")
    reply = anon_client.post(RECORD, json={"text": "t"}, headers={"Authorization": header.format(token=token)})
    assert reply.status_code == status, reply.get_data(as_text=True)


def test_scopes_and_csrf_exemption(store: TokenStore, client: FlaskClient, anon_client: FlaskClient) -> None:
    own, other, every = store.create("own", "secure"), store.create("other", "balance"), store.create("every")
    assert anon_client.post(RECORD, json={}, headers=bearer(own)).status_code == 200
    assert anon_client.post(RECORD, json={}, headers=bearer(every)).status_code == 200
    refused = anon_client.post(RECORD, json={}, headers=bearer(other))
    assert refused.status_code == 403
    assert refused.get_json()["error"] == ("Plugin 'secure': token 'other' is scoped to plugin 'balance', "
                                           "not 'secure'.")
    # a logged-in browser without the CSRF header is refused; the same request with a token is not
    raw = client.post(RECORD, json={}, headers={"X-CSRFToken": ""})
    assert raw.status_code == 400 and "CSRF" in raw.get_json()["error"]
    assert client.post(RECORD, json={}, headers={"X-CSRFToken": "", **bearer(own)}).status_code == 200


@pytest.mark.parametrize("auth,connected", [
    ({"token": "{good}"}, True),
    ({"token": "{scoped_other}"}, False),
    ({"token": "ivp_unknown"}, False),
    ({"token": ["{good}"]}, False),
    ({"token": {"token": "{good}"}}, False),
    ({"token": 12345}, False),
    ({"token": True}, False),
    ("{good}", False),
    (None, False),
], ids=["token", "other-scope", "unknown", "list", "dict", "int", "bool", "bare-string", "none"])
@pytest.mark.parametrize("error_handler", [False, True], ids=["plain", "app-error-handler"])
def test_socketio_auth_payloads(plugin_app: Flask, store: TokenStore, auth: Any, connected: bool,
                                error_handler: bool) -> None:
    """An app-wide ``on_error_default`` handler swallows exceptions of connect handlers; a malformed
    payload must still be refused, never accepted because the check raised."""
    socketio = plugin_app.extensions["socketio"]
    if error_handler:
        socketio.on_error_default(lambda exc: None)
    tokens = {"good": store.create("good"), "scoped_other": store.create("other", "balance")}
    payload = json.loads(json.dumps(auth).replace('"{good}"', json.dumps(tokens["good"])).replace(
        '"{scoped_other}"', json.dumps(tokens["scoped_other"])))
    sio = socketio.test_client(plugin_app, namespace=NS, auth=payload)
    try:
        assert sio.is_connected(NS) is connected
        if connected:
            assert sio.emit("mark", {"n": 1}, namespace=NS, callback=True)["lines"] >= 1
    finally:
        if sio.is_connected(NS):
            sio.disconnect(namespace=NS)
