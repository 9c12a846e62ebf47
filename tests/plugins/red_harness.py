"""Test-side helpers for the red team's tests (never loaded by the servers): start the red deck
in a host, log in, make tokens with the real CLI, read the journal and the health status, and a
hand-made Engine.IO polling client."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from support import ROOT, Server, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
CLI = Path(sys.executable).with_name("ivoryos-plugin")
DEV_TOKEN = "red-dev-token"
NS = "/ivoryos/red"
SIO_PATH = "/ivoryos/socket.io"
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin"}


def strict_json(text: str) -> Any:
    """Parse ``text`` as a browser's ``JSON.parse`` does (NaN and Infinity are not JSON)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


class RedServer:
    """A running red deck, its folders and a logged-in session."""

    def __init__(self, server: Server, mode: str) -> None:
        self.server, self.mode, self.base = server, mode, server.base
        self.data = server.cwd / "ivoryos_data" / "plugins"
        self.plugin_dir = server.cwd / "red_plugin"
        self.session = login(self.base, mode)

    def cli(self, *args: str) -> str:
        """``ivoryos-plugin token ARGS --data-dir <this server's data folder>``; its output."""
        done = subprocess.run([str(CLI), "token", *args, "--data-dir", str(self.data)], text=True,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def journal(self) -> List[Dict[str, Any]]:
        """The red plugin's journal: one entry per action or ``mark`` that ran."""
        path = self.data / "red" / "journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def status(self) -> Dict[str, Any]:
        """The health page's JSON (``/ivoryos/plugins/status.json``)."""
        reply = self.session.get(f"{self.base}/ivoryos/plugins/status.json", timeout=30)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def plugin_status(self, name: str) -> Dict[str, Any]:
        return next(p for p in self.status()["plugins"] if p["name"] == name)

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.session.cookies.items())


def login(base: str, mode: str) -> requests.Session:
    """A logged-in session (admin/admin, or the dev host's token) with the CSRF header set."""
    if mode != "standalone":
        return ivoryos_login(base)
    session = requests.Session()
    assert session.get(f"{base}/ivoryos/plugins/?token={DEV_TOKEN}").status_code == 200
    session.headers["X-CSRFToken"] = session.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
    return session


def start_red(directory: Path, mode: str, env: Optional[Dict[str, str]] = None, login_now: bool = True) -> Any:
    """Copy the red plugin into ``directory`` (tests add files to it) and start the red deck there.

    :param directory: the server's folder (its data folder goes there).
    :param mode: ``ivoryos``, ``standalone`` or ``run``.
    :param env: more environment (``RED_SLOW``, ``RED_RUN_KWARGS``...).
    :param login_now: return a :class:`RedServer` (logged in), else the bare :class:`Server`."""
    shutil.copytree(PLUGINS / "red_plugin", directory / "red_plugin",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    server = launch((PLUGINS / "red_deck.py").read_text(), directory, name="red_deck.py",
                    env={"PYTHONPATH": os.pathsep.join([str(directory), str(PLUGINS)]), "RED_HOST": mode,
                         "RED_TOKEN": DEV_TOKEN, **(env or {})})
    if not login_now:
        return server
    try:
        return RedServer(server, mode)
    except BaseException:
        server.stop()
        raise


class RawEngineIO:
    """A hand-made Engine.IO polling client: sends Socket.IO packets exactly as written, several in
    one HTTP request when asked (``send("42...", "41...")``), which no library client would do."""

    def __init__(self, base: str, cookie: Optional[str] = None, origin: Optional[str] = None,
                 host: Optional[str] = None) -> None:
        self.url = base + SIO_PATH + "/"
        self.http = requests.Session()
        if cookie:
            self.http.headers["Cookie"] = cookie
        if origin:
            self.http.headers["Origin"] = origin
        if host:
            self.http.headers["Host"] = host
        opened = self.http.get(self.url, params={"EIO": "4", "transport": "polling"}, timeout=30)
        self.status = opened.status_code
        self.sid = json.loads(opened.text[1:])["sid"] if opened.status_code == 200 else None

    def send(self, *packets: str) -> int:
        reply = self.http.post(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                               data="\x1e".join(packets).encode(), timeout=30)
        return reply.status_code

    def receive(self, timeout: float = 30) -> List[str]:
        reply = self.http.get(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                              timeout=timeout)
        return reply.text.split("\x1e") if reply.status_code == 200 else []

    def close(self) -> None:
        try:
            self.send("1")
        except requests.RequestException:
            pass
        self.http.close()
