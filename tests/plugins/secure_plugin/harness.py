"""Test-side helpers for the security tests (never loaded by the servers): start the secure
deck in a host, list every plugin route of the running app with a valid request for each, send
it as a given credential and judge the answer, and the Socket.IO and raw HTTP clients."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests
import socketio

from support import ROOT, Server, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"
CLI = Path(sys.executable).with_name("ivoryos-plugin")
DEV_TOKEN = "secure-dev-token"
ALLOWED_ORIGIN = "http://allowed.example:8443"
OWN = ("secure",)  # every route of the security test plugin must give exactly the expected status
NS = "/ivoryos/secure"
SIO_PATH = "/ivoryos/socket.io"
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN",
           "Referrer-Policy": "same-origin"}
SECRET = "SECRET-OUTSIDE-THE-FOLDERS"


# ------------------------------------------------------------------ the servers
class SecureServer:
    """A running server with the secure deck, its data folder and a logged-in session."""

    def __init__(self, server: Server, mode: str) -> None:
        self.server, self.mode, self.base = server, mode, server.base
        self.data = server.cwd / "ivoryos_data" / "plugins"
        self.plugin_dir = server.cwd / "secure_plugin"
        self.session = login(self.base, mode)

    def cli(self, *args: str) -> str:
        """Run ``ivoryos-plugin token ARGS --data-dir <this server's data folder>``; its output."""
        return self.cli_many([list(args)])[0]

    def cli_many(self, commands: List[List[str]]) -> List[str]:
        """Run several ``ivoryos-plugin token`` commands at the same time; their outputs."""
        procs = [subprocess.Popen([str(CLI), "token", *args, "--data-dir", str(self.data)], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
        outputs = []
        for args, proc in zip(commands, procs):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"ivoryos-plugin token {' '.join(args)}: {err}"
            outputs.append(out.strip())
        return outputs

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.session.cookies.items())

    def marks(self) -> int:
        """How many ``mark`` events reached the secure plugin's handler (counted on disk)."""
        reply = self.session.post(f"{self.base}{NS}/actions/marks", json={})
        assert reply.status_code == 200, reply.text
        return int(reply.json()["marks"])


def login(base: str, mode: str) -> requests.Session:
    """A session logged in to ``base`` (admin/admin, or the dev host's token), CSRF header set."""
    if mode != "standalone":
        return ivoryos_login(base)
    session = requests.Session()
    assert session.get(f"{base}/ivoryos/?token={DEV_TOKEN}").status_code == 200
    session.headers["X-CSRFToken"] = session.get(f"{base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
    return session


def start_secure(directory: Path, mode: str) -> SecureServer:
    """Copy the secure plugin into ``directory`` (tests edit its files) and start its deck there.

    :param directory: the server's working directory (its data folder goes there).
    :param mode: ``ivoryos``, ``standalone`` or ``run`` (see the deck's docstring)."""
    shutil.copytree(PLUGINS / "secure_plugin", directory / "secure_plugin",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    server = launch((PLUGINS / "secure_plugin" / "deck.py").read_text(), directory, name="secure_deck.py",
                    env={"PYTHONPATH": os.pathsep.join([str(directory), str(PLUGINS)]), "SECURE_HOST": mode,
                         "SECURE_TOKEN": DEV_TOKEN, "SECURE_ORIGINS": ALLOWED_ORIGIN})
    try:
        return SecureServer(server, mode)
    except BaseException:
        server.stop()
        raise

# ---------------------------------------------------------------- the catalog
@dataclass
class Call:
    """One request to one plugin route, and what an authorised caller gets back.

    The secure plugin's routes have a fixed ``expect``. The probe's and the examples' grow with
    them (and some answer 409, 500 or 503 on purpose), so theirs is what a logged-in session with
    the CSRF token gets (see :func:`calls`); every credential that is let through must get the same."""

    plugin: str
    endpoint: str
    method: str
    path: str
    public: bool
    expect: Optional[int]
    json: Any = None
    form: Optional[Dict[str, str]] = None

    @property
    def unsafe(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def sample_value(prop: Dict[str, Any]) -> Any:
    """A valid value for a JSON-schema property (defaults first)."""
    if "default" in prop:
        return prop["default"]
    if "const" in prop:
        return prop["const"]
    if prop.get("enum"):
        return prop["enum"][0]
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return sample_value(option)
    low = prop.get("minimum", prop.get("exclusiveMinimum", 0))
    return {"integer": int(low) + 1, "number": float(low) + 1.0, "string": "x" * prop.get("minLength", 1),
            "boolean": False, "array": [], "object": {}}.get(prop.get("type", ""), None)


def sample_arguments(schema: Dict[str, Any]) -> Dict[str, Any]:
    """Values for an action's required arguments."""
    return {name: sample_value(schema["properties"][name]) for name in schema.get("required", [])}


def catalog(server: SecureServer) -> List[Call]:
    """Every (route, method) of every plugin blueprint of the running app, with a valid request."""
    listing = server.session.get(f"{server.base}{NS}/routes.json").json()
    calls: List[Call] = []
    for rule in listing["rules"]:
        info = listing["plugins"][rule["plugin"]]
        for method in rule["methods"]:
            calls += samples(server, rule, method, info, rule["plugin"] in OWN)
    return calls


def samples(server: SecureServer, rule: Dict[str, Any], method: str, info: Dict[str, Any],
            own: bool) -> List[Call]:
    """The requests that exercise one (rule, method)."""
    plugin, endpoint, path = rule["plugin"], rule["endpoint"], rule["rule"]
    public = endpoint in info["public_endpoints"]
    if endpoint == "actions":
        # /actions/<name> for each action, and each action's own fixed rule (/actions/tare: its name a default)
        named = [rule["defaults"]["name"]] if "<name>" not in path else sorted(info["actions"])
        return [Call(plugin, endpoint, method, path.replace("<name>", name), info["actions"][name]["public"],
                     200 if own else None, json=sample_arguments(info["actions"][name]["schema"]))
                for name in named]
    if endpoint in ("static", "public") and rule["arguments"] == ["filename"]:
        files = info[endpoint]
        path = path.replace("<path:filename>", files[0] if files else "no-such-file.txt")
        return [Call(plugin, endpoint, method, path, public, 200 if files else 404)]
    if endpoint in ("settings", "settings_json") and method != "GET":
        values = server.session.get(f"{server.base}/ivoryos/{plugin}/settings.json").json()["values"]
        expect = 200 if own else None
        if endpoint == "settings":
            form = {k: ("on" if v is True else str(v)) for k, v in values.items() if v not in (False, None)}
            return [Call(plugin, endpoint, method, path, public, expect, form=form)]
        return [Call(plugin, endpoint, method, path, public, expect, json=values)]
    for argument in rule["arguments"]:
        path = re.sub(r"<(?:[^<>:]+:)?%s>" % argument, "x", path)
    expect = (500 if endpoint == "boom" else 200) if own else None
    if endpoint == "run_step":
        expect = None  # POST .../steps/x: the test plugins declare no step x (404); only the auth matters
    return [Call(plugin, endpoint, method, path, public, expect, json={} if method != "GET" else None)]

def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


# ---------------------------------------------------------------- the matrix
CREDENTIALS = ["anonymous-browser", "anonymous-program", "session", "session-without-csrf",
               "session-wrong-csrf", "token-all-plugins", "token-this-plugin", "token-other-plugin",
               "token-revoked", "token-unknown"]


def send(secure: SecureServer, tokens: Dict[str, str], call: Call, credential: str) -> requests.Response:
    """Send ``call`` as ``credential``: cookies and CSRF header, or a bearer token, or nothing."""
    headers = {"Accept": "text/html" if credential == "anonymous-browser" else "application/json"}
    cookies = None
    if credential.startswith("session"):
        cookies = secure.session.cookies
        csrf = {"session": secure.session.headers["X-CSRFToken"], "session-wrong-csrf": "IjEi.forged"}
        if credential in csrf:
            headers["X-CSRFToken"] = csrf[credential]
    elif credential.startswith("token"):
        others = sorted(t for t in tokens if t not in ("all", "revoked", call.plugin))
        token = {"token-all-plugins": tokens["all"], "token-this-plugin": tokens.get(call.plugin, ""),
                 "token-other-plugin": tokens[others[0]], "token-revoked": tokens["revoked"],
                 "token-unknown": "ivp_" + "A" * 43}[credential]
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(call.method, secure.base + call.path, headers=headers, cookies=cookies,
                            json=call.json, data=call.form, allow_redirects=False, timeout=60)


def wanted(call: Call, credential: str) -> Optional[int]:
    """The status ``credential`` must get (None: the plugin's own answer, not a guard refusal)."""
    if credential == "token-other-plugin":
        return 403
    if credential in ("token-revoked", "token-unknown"):
        return 401
    if credential.startswith("anonymous") and not call.public:
        page = credential == "anonymous-browser" and not call.unsafe and not call.path.endswith(".json")
        return 302 if page else 401  # a browser is sent to the login page, a program gets 401
    if credential in ("session-without-csrf", "session-wrong-csrf") and call.unsafe:
        return 400
    return call.expect


def problem(call: Call, credential: str, reply: requests.Response) -> Optional[str]:
    """Why ``reply`` is wrong, or None."""
    want, got = wanted(call, credential), reply.status_code
    text = reply.text[:160].replace("\n", " ")
    if want is None:  # the plugin's own answer (a 409, a 503 for a missing instrument...), never the guard's
        refused = got in (401, 403) or (got == 302 and "/auth/login" in reply.headers.get("Location", "")) \
            or (got == 400 and "CSRF" in reply.text)
        return f"refused by the guard: {got} {text}" if refused else None
    if got != want:
        return f"got {got}, want {want}: {text}"
    if want == 302 and "/auth/login" not in reply.headers.get("Location", ""):
        return f"redirected to {reply.headers.get('Location')!r}, not to the login page"
    if credential.startswith("session-w") and call.unsafe and "CSRF" not in reply.text:
        return f"400 but not for CSRF: {text}"
    if got != 500:  # the debugger page of plain ivoryos.run (debug on) is not ours to decorate
        bad = {k: reply.headers.get(k) for k, v in HEADERS.items() if reply.headers.get(k) != v}
        if bad:
            return f"security headers wrong: {bad}"
    return None

# -------------------------------------------------------------------- Socket.IO
def sio_connect(secure: SecureServer, *, cookie: bool = False, token: Any = None,
                origin: Optional[str] = None) -> socketio.Client:
    """A python-socketio client in the secure plugin's namespace (raises if refused)."""
    # websocket-client sends the server's own Origin unless told another one (a header would be a second Origin)
    client = socketio.Client(reconnection=False, websocket_extra_options={"origin": origin} if origin else {})
    headers = {"Cookie": secure.cookie()} if cookie else {}
    try:
        client.connect(secure.base, socketio_path=SIO_PATH, namespaces=[NS], headers=headers,
                       auth={"token": token} if token is not None else None, wait_timeout=10,
                       transports=["websocket"])
    except BaseException:
        client.disconnect()
        raise
    return client


class RawEngineIO:
    """A hand-made Engine.IO polling client: it sends Socket.IO packets a library would refuse to
    send (events in a namespace it failed to join)."""

    def __init__(self, base: str, cookie: Optional[str], origin: Optional[str]) -> None:
        self.url = base + SIO_PATH + "/"
        self.http = requests.Session()
        if cookie:
            self.http.headers["Cookie"] = cookie
        if origin:
            self.http.headers["Origin"] = origin
        opened = self.http.get(self.url, params={"EIO": "4", "transport": "polling"}, timeout=30)
        self.refused = opened.status_code == 400 and "origin" in opened.text  # by Engine.IO itself
        if not self.refused:
            assert opened.status_code == 200 and opened.text.startswith("0"), opened.text
            self.sid = json.loads(opened.text[1:])["sid"]

    def send(self, packet: str) -> None:
        reply = self.http.post(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                               data=packet.encode(), timeout=30)
        assert reply.text.lower() == "ok", reply.text

    def receive(self) -> List[str]:
        reply = self.http.get(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid},
                              timeout=60)
        return reply.text.split("\x1e")

    def close(self) -> None:
        self.send("1")
        self.http.close()


def raw_get(base: str, path: str, cookie: Optional[str]) -> http.client.HTTPResponse:
    """GET ``path`` exactly as written (requests and urllib3 would normalise ``..`` away)."""
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    reply = conn.getresponse()
    reply.body = reply.read()  # type: ignore[attr-defined]
    conn.close()
    return reply
