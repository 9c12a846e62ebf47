"""``ivoryos_plugin.run`` fixes IvoryOS's unsafe defaults: no Werkzeug debugger, a random
``SECRET_KEY`` kept in the data folder (sessions survive a restart, forged cookies do not work),
and a loud warning when IvoryOS listens on the network while admin/admin still works.

The server is a real deck script calling ``ivoryos_plugin.run(__name__, plugins=[...], port=...)``
on 127.0.0.1 (tests never bind another address: the warning is tested on ``harden`` itself)."""
from __future__ import annotations

import re
import sqlite3
import stat
import sys
import types
from pathlib import Path
from typing import Dict, Iterator, Optional

import bcrypt
import pytest
import requests
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from ivoryos_plugin.hosts.launcher import PUBLIC_DEFAULT_KEY, default_admin_active, harden, persistent_secret_key
from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from secure_plugin.harness import SecureServer, start_secure  # noqa: E402

NS = "/ivoryos/secure"
WARNING = "admin/admin is still valid"


def forged_cookie(key: str) -> str:
    """A Flask session cookie saying "admin is logged in", signed with ``key``."""
    app = Flask("forger")
    app.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    return str(serializer.dumps({"_user_id": "admin", "_fresh": True}))


def as_cookie(cookie: str) -> Dict[str, str]:
    return {"Cookie": f"session={cookie}", "Accept": "application/json"}


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """The secure deck under ``ivoryos_plugin.run`` (defaults: debug off, host 127.0.0.1)."""
    running = start_secure(tmp_path_factory.mktemp("run"), "run")
    try:
        yield running
    finally:
        running.server.stop()


@pytest.mark.server
def test_no_werkzeug_debugger(hardened: SecureServer) -> None:
    output = hardened.server.output()
    assert "Debug mode: off" in output and "Debugger PIN" not in output, output
    assert requests.get(f"{hardened.base}/console").status_code == 404
    resource = requests.get(f"{hardened.base}/?__debugger__=yes&cmd=resource&f=debugger.js", allow_redirects=False)
    assert "javascript" not in resource.headers.get("Content-Type", ""), "the debugger serves its files"
    crash = hardened.session.get(f"{hardened.base}{NS}/boom")
    assert crash.status_code == 500
    for leak in ("Traceback", "RuntimeError", "this route always fails", "Werkzeug Debugger", "__debugger__"):
        assert leak not in crash.text, f"the 500 page shows {leak!r}"


@pytest.mark.server
def test_no_network_warning_on_loopback(hardened: SecureServer) -> None:
    output = hardened.server.output()
    assert WARNING not in output and "Running on http://127.0.0.1:" in output, output


@pytest.mark.server
def test_secret_key_is_random_private_and_forged_cookies_fail(hardened: SecureServer) -> None:
    path = hardened.data / "secret_key"
    key = path.read_text().strip()
    assert key != PUBLIC_DEFAULT_KEY and len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    url = f"{hardened.base}{NS}/routes.json"
    assert requests.get(url, headers=as_cookie(forged_cookie(PUBLIC_DEFAULT_KEY))).status_code == 401
    # the control: the same forgery with the real key works, so the refusal above is the key's doing
    assert requests.get(url, headers=as_cookie(forged_cookie(key))).status_code == 200


@pytest.mark.server
def test_sessions_survive_a_restart_with_the_same_key(tmp_path: Path) -> None:
    first = start_secure(tmp_path, "run")
    try:
        cookie = str(first.session.cookies["session"])
        key = (first.data / "secret_key").read_text()
        assert requests.get(f"{first.base}{NS}/routes.json", headers=as_cookie(cookie)).status_code == 200
    finally:
        first.server.stop()
    config = types.SimpleNamespace(OUTPUT_FOLDER=str(tmp_path / "ivoryos_data"), SQLALCHEMY_DATABASE_URI="")
    assert default_admin_active(config), "IvoryOS's own database still has admin/admin"
    server = None
    try:
        server = start_secure(tmp_path, "run")
        assert (server.data / "secret_key").read_text() == key
        again = requests.get(f"{server.base}{NS}/routes.json", headers=as_cookie(cookie))
        assert again.status_code == 200, "the session did not survive the restart"
    finally:
        if server is not None:
            server.server.stop()
    with sqlite3.connect(tmp_path / "ivoryos_data" / "ivoryos.db") as db:
        db.execute('UPDATE "user" SET "hashPassword" = ? WHERE username = ?',
                   (bcrypt.hashpw(b"a better password", bcrypt.gensalt()).decode(), "admin"))
    assert not default_admin_active(config), "a changed admin password still counts as admin/admin"


# ------------------------------------------------------------------ harden() itself
def make_config(tmp_path: Path, key: Optional[str] = PUBLIC_DEFAULT_KEY) -> types.SimpleNamespace:
    """A stand-in for IvoryOS's Config with its data in ``tmp_path``."""
    return types.SimpleNamespace(SECRET_KEY=key, DEBUG=True, OUTPUT_FOLDER=str(tmp_path / "ivoryos_data"),
                                 SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'ivoryos_data' / 'ivoryos.db'}")


@pytest.mark.parametrize("host,warned", [
    ("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", False),
    ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("lab-pc.local", True),
], ids=lambda v: str(v))
def test_harden_warns_when_admin_admin_is_reachable_from_the_network(tmp_path: Path, host: str,
                                                                     warned: bool) -> None:
    config = make_config(tmp_path)
    warnings = harden(config, host)
    assert any(WARNING in w and host in w for w in warnings) is warned, warnings
    assert config.DEBUG is False


def test_harden_keeps_quiet_once_the_admin_password_changed(tmp_path: Path) -> None:
    (tmp_path / "ivoryos_data").mkdir()
    with sqlite3.connect(tmp_path / "ivoryos_data" / "ivoryos.db") as db:  # IvoryOS's user table layout
        db.execute('CREATE TABLE "user" (username VARCHAR(50) PRIMARY KEY, "hashPassword" VARCHAR(255), settings TEXT)')
        db.execute('INSERT INTO "user" VALUES (?, ?, NULL)', ("admin", bcrypt.hashpw(b"admin", bcrypt.gensalt()).decode()))
    assert any(WARNING in w for w in harden(make_config(tmp_path), "0.0.0.0"))
    with sqlite3.connect(tmp_path / "ivoryos_data" / "ivoryos.db") as db:
        db.execute('UPDATE "user" SET "hashPassword" = ?', (bcrypt.hashpw(b"s3cret", bcrypt.gensalt()).decode(),))
    assert not any(WARNING in w for w in harden(make_config(tmp_path), "0.0.0.0"))


def test_harden_replaces_only_the_public_key_and_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVORYOS_PLUGIN_DATA", raising=False)
    first, second = make_config(tmp_path), make_config(tmp_path)
    harden(first, "127.0.0.1")
    harden(second, "127.0.0.1")
    assert first.SECRET_KEY == second.SECRET_KEY != PUBLIC_DEFAULT_KEY
    assert (tmp_path / "ivoryos_data" / "plugins" / "secret_key").read_text() == first.SECRET_KEY
    own = make_config(tmp_path, key="set-by-the-lab")
    harden(own, "127.0.0.1")
    assert own.SECRET_KEY == "set-by-the-lab"
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("IVORYOS_PLUGIN_DATA", str(elsewhere))
    moved = make_config(tmp_path / "other")
    harden(moved, "127.0.0.1")
    assert (elsewhere / "secret_key").read_text() == moved.SECRET_KEY
    assert persistent_secret_key(elsewhere) == moved.SECRET_KEY


def test_harden_warns_about_the_debugger_on_the_network(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert any("debug=True" in w for w in harden(config, "0.0.0.0", debug=True))
    assert config.DEBUG is True  # asked for explicitly
    assert not any("debug=True" in w for w in harden(make_config(tmp_path), "127.0.0.1", debug=True))


def test_the_documented_warning_is_the_one_printed(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    shown = [b for b in re.findall(r"```text\n(.*?)```", doc, flags=re.S) if WARNING in b]
    assert shown == [harden(make_config(tmp_path), "0.0.0.0")[0] + "\n"], "docs/security.md shows another warning"
