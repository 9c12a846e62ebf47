"""Security by default, proven against real servers: plain ``ivoryos.run`` and the standalone dev
host, each serving the probe and secure test plugins plus every installed plugin.

The route matrix is not a list written here: the secure plugin's ``routes.json`` lists every URL
rule of every plugin blueprint in the running app, so a new example plugin is covered as soon as
it is installed. Tokens are made and revoked with the real ``ivoryos-plugin token`` CLI while the
server runs."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
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


@pytest.fixture(scope="module", params=["ivoryos", "standalone"])
def secure(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """One server per host kind for the module."""
    running = start_secure(tmp_path_factory.mktemp(request.param), request.param)
    try:
        yield running
    finally:
        running.server.stop()


# ---------------------------------------------------------------- the catalog
@dataclass
class Call:
    """One request to one plugin route, and what an authorised caller gets back.

    ``expect`` None means "whatever the plugin's own view answers" (the probe and example plugins
    change as they grow): then only the guard's refusals count as wrong. The secure plugin's
    routes must answer exactly ``expect``."""

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
        return [Call(plugin, endpoint, method, path.replace("<name>", name), spec["public"],
                     200 if own else None, json=sample_arguments(spec["schema"]))
                for name, spec in sorted(info["actions"].items())]
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
    return [Call(plugin, endpoint, method, path, public, expect, json={} if method != "GET" else None)]


@pytest.fixture(scope="module")
def calls(secure: SecureServer) -> List[Call]:
    found = catalog(secure)
    assert {c.plugin for c in found} >= {"probe", "secure", "hello"}, "routes.json misses plugins"
    return found


@pytest.fixture(scope="module")
def tokens(secure: SecureServer, calls: List[Call]) -> Dict[str, str]:
    """Tokens made with the real CLI while the server runs: ``all``, one per plugin, and a revoked
    one. The CLI commands run at the same time: none of their writes may be lost."""
    commands = {"all": ["create", "all-plugins"], "revoked": ["create", "soon-revoked"]}
    for plugin in sorted({c.plugin for c in calls}):
        commands[plugin] = ["create", f"only-{plugin}", "--plugin", plugin]
    made = dict(zip(commands, secure.cli_many(list(commands.values()))))
    listing = secure.cli("list")
    for key, args in commands.items():
        assert re.search(rf"^{re.escape(args[1])}\s+{args[3] if len(args) > 3 else '[(]all plugins[)]'}\s",
                         listing, re.M), f"{args[1]} is missing from:\n{listing}"
        assert made[key].startswith("ivp_") and made[key] not in listing
    notes = f"{secure.base}{NS}/notes"
    assert requests.get(notes, headers=bearer(made["revoked"])).status_code == 200
    assert "Revoked soon-revoked" in secure.cli("revoke", "soon-revoked")
    refused = requests.get(notes, headers=bearer(made["revoked"]))  # at once: no restart, no delay
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    return made


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
    if want == 400 and "CSRF" not in reply.text:
        return f"400 but not for CSRF: {text}"
    if got != 500:  # the debugger page of plain ivoryos.run (debug on) is not ours to decorate
        bad = {k: reply.headers.get(k) for k, v in HEADERS.items() if reply.headers.get(k) != v}
        if bad:
            return f"security headers wrong: {bad}"
    return None


@pytest.mark.server
@pytest.mark.parametrize("credential", CREDENTIALS)
def test_every_plugin_route_answers_each_credential_as_it_should(
        secure: SecureServer, calls: List[Call], tokens: Dict[str, str], credential: str) -> None:
    failures = []
    for call in calls:
        reply = send(secure, tokens, call, credential)
        why = problem(call, credential, reply)
        if why:
            failures.append(f"{call} [{call.plugin}.{call.endpoint}]: {why}")
    assert not failures, f"{len(failures)} of {len(calls)} requests as {credential}:\n" + "\n".join(failures)


@pytest.mark.server
def test_the_matrix_covers_every_method_of_every_route(calls: List[Call]) -> None:
    seen = {(c.plugin, c.endpoint, c.method) for c in calls}
    for wanted_route in [("secure", "notes", m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")] + [
            ("secure", "settings", "POST"), ("secure", "settings_json", "PUT"), ("secure", "public", "GET"),
            ("probe", "actions", "POST"), ("hello", "actions", "POST"), ("hello", "main", "GET")]:
        assert wanted_route in seen, f"{wanted_route} is not exercised"
    actions = {c.path.rsplit("/", 1)[1] for c in calls if c.plugin == "secure" and c.endpoint == "actions"}
    assert actions == {"record", "public_echo", "marks"}


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


REFUSED = {
    "anonymous": {},
    "foreign-origin": {"cookie": True, "origin": "http://evil.example"},
    "null-origin": {"cookie": True, "origin": "null"},
    "unknown-token": {"token": "ivp_" + "B" * 43},
    "revoked-token": {"token": "revoked"},
    "other-plugin-token": {"token": "probe"},
    "token-not-a-string": {"token": ["ivp_x"]},
}
ACCEPTED = {
    "session": {"cookie": True},
    "session-same-origin": {"cookie": True, "origin": "SELF"},
    "session-allowed-origin": {"cookie": True, "origin": ALLOWED_ORIGIN},
    "token-all-plugins": {"token": "all"},
    "token-this-plugin": {"token": "secure"},
}


def resolve(options: Dict[str, Any], secure: SecureServer, tokens: Dict[str, str]) -> Dict[str, Any]:
    """Replace token names by the tokens and SELF by the server's own origin."""
    out = dict(options)
    if isinstance(out.get("token"), str) and out["token"] in tokens:
        out["token"] = tokens[out["token"]]
    if out.get("origin") == "SELF":
        out["origin"] = secure.base
    return out


@pytest.mark.server
@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_socketio_refuses(secure: SecureServer, tokens: Dict[str, str], kind: str) -> None:
    before = secure.marks()
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio_connect(secure, **resolve(REFUSED[kind], secure, tokens))
    assert secure.marks() == before


@pytest.mark.server
@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_socketio_accepts_and_events_reach_the_handler(secure: SecureServer, tokens: Dict[str, str],
                                                       kind: str) -> None:
    before = secure.marks()
    client = sio_connect(secure, **resolve(ACCEPTED[kind], secure, tokens))
    try:
        assert client.call("mark", {"from": kind}, namespace=NS, timeout=10)["lines"] >= 1
    finally:
        client.disconnect()
    assert secure.marks() == before + 1


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


RAW = {  # how the client tries to join the namespace before emitting into it
    "anonymous": (None, None, {}),
    "unknown-token": (None, None, {"token": "ivp_" + "C" * 43}),
    "token-not-a-string": (None, None, {"token": {"nested": "ivp_x"}}),
    "foreign-origin": ("cookie", "http://evil.example", {}),
    "never-joined": (None, None, None),
    "logged-in (control)": ("cookie", None, {}),
}


@pytest.mark.server
@pytest.mark.parametrize("kind", list(RAW))
def test_events_of_a_refused_client_never_reach_a_handler(secure: SecureServer, kind: str) -> None:
    cookie, origin, auth = RAW[kind]
    accepted = kind.endswith("(control)")
    before = secure.marks()
    raw = RawEngineIO(secure.base, secure.cookie() if cookie else None, origin)
    if raw.refused:  # the dev host's Engine.IO applies the same origin policy before any packet
        assert not accepted and secure.mode == "standalone"
        assert secure.marks() == before
        return
    try:
        if auth is not None:
            raw.send(f"40{NS},{json.dumps(auth)}")
            answer = [p for p in raw.receive() if p.startswith(f"4")][0]
            assert answer.startswith(f"40{NS}," if accepted else f"44{NS},"), answer
        raw.send("40/")  # the default namespace (IvoryOS's own handler accepts anyone)
        raw.send(f'42{NS},7["mark",{{"from":"{kind}"}}]')  # an event with ack id 7
        raw.send(f'42{NS},["mark",{{"from":"{kind}"}}]')
        time.sleep(1.0)
        raw.send("40/ivoryos/nothing-here,")  # any packet: makes the next poll return at once
        packets = raw.receive()
    finally:
        raw.close()
    acks = [p for p in packets if p.startswith(f"43{NS},7")]
    if accepted:
        assert acks and secure.marks() == before + 2, "the raw client cannot even reach the handler"
    else:
        assert not acks, f"the handler answered a refused client: {acks}"
        assert secure.marks() == before, "an event from a refused client reached the handler"


# ------------------------------------------------------------------ static files
TRAVERSALS = {
    "dotdot": "../secret.txt",
    "dotdot-from-subfolder": "nested/../../secret.txt",
    "encoded-slash": "..%2fsecret.txt",
    "encoded-dots": "%2e%2e/secret.txt",
    "encoded-all": "%2e%2e%2fsecret.txt",
    "encoded-upper": "%2E%2E%2Fsecret.txt",
    "double-encoded": "%252e%252e%252fsecret.txt",
    "double-encoded-slash": "..%252fsecret.txt",
    "backslash": "..%5csecret.txt",
    "absolute": "%2fetc%2fpasswd",
    "deep": "../" * 12 + "etc/passwd",
    "sibling-folder": "..%2f{other}%2f{other_file}",
    "plugin-source": "..%2f__init__.py",
}


def raw_get(base: str, path: str, cookie: Optional[str]) -> http.client.HTTPResponse:
    """GET ``path`` exactly as written (requests and urllib3 would normalise ``..`` away)."""
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    reply = conn.getresponse()
    reply.body = reply.read()  # type: ignore[attr-defined]
    conn.close()
    return reply


@pytest.mark.server
@pytest.mark.parametrize("folder", ["static", "public"])
@pytest.mark.parametrize("attack", list(TRAVERSALS))
def test_path_traversal_never_leaves_the_folder(secure: SecureServer, folder: str, attack: str) -> None:
    other, other_file = ("public", "readme.txt") if folder == "static" else ("static", "app.js")
    cookie = secure.cookie() if folder == "static" else None  # public/ needs no login
    good = raw_get(secure.base, f"{NS}/{folder}/{'app.js' if folder == 'static' else 'readme.txt'}", cookie)
    assert good.status == 200  # the control: the folder itself is served
    path = f"{NS}/{folder}/" + TRAVERSALS[attack].format(other=other, other_file=other_file)
    reply = raw_get(secure.base, path, cookie)
    if reply.status == 308:  # Werkzeug merges the slashes of "static//etc/passwd": still inside the folder
        target = reply.getheader("Location", "").split(str(secure.server.port), 1)[-1]
        assert target.startswith(f"{NS}/{folder}/"), target
        reply = raw_get(secure.base, target, cookie)
    body = reply.body  # type: ignore[attr-defined]
    assert reply.status == 404, f"{path}: {reply.status} {body[:200]!r}"
    leaked = [SECRET.encode(), b"root:x:0", (secure.plugin_dir / other / other_file).read_bytes(),
              b"def routes_json"]
    assert not any(marker in body for marker in leaked), f"{path} leaked a file: {body[:200]!r}"


@pytest.mark.server
@pytest.mark.parametrize("folder,name,login", [("static", "app.js", True), ("public", "readme.txt", False)],
                         ids=["static", "public"])
def test_plugin_files_revalidate_so_edits_show_at_once(secure: SecureServer, folder: str, name: str,
                                                       login: bool) -> None:
    client = secure.session if login else requests.Session()
    url = f"{secure.base}{NS}/{folder}/{name}"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    if not login:
        assert requests.get(f"{secure.base}{NS}/static/app.js", allow_redirects=False).status_code == 302
    edited = first.content + f"\n/* edited {time.time()} */\n".encode()
    (secure.plugin_dir / folder / name).write_bytes(edited)
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.content == edited, "the edit is not served"


# ---------------------------------------------------------------- escaping
@pytest.mark.server
def test_a_script_in_a_setting_is_shown_escaped(secure: SecureServer) -> None:
    attack = '"><script>alert("pwned")</script>'
    url = f"{secure.base}{NS}/settings.json"
    saved = secure.session.put(url, json={"label": attack})
    assert saved.status_code == 200 and saved.json()["values"]["label"] == attack
    try:
        for page in ("/", "/settings"):
            html = secure.session.get(f"{secure.base}{NS}{page}").text
            assert "<script>alert(" not in html, f"{page} renders the setting unescaped"
            assert "&lt;script&gt;alert(" in html, f"{page} does not show the setting at all"
        as_json = secure.session.get(url)
        assert as_json.headers["Content-Type"].startswith("application/json")
        assert as_json.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        assert secure.session.put(url, json={"label": "bench"}).status_code == 200
