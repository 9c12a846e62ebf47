"""Security by default, proven against real servers: plain ``ivoryos.run`` and the standalone dev
host, each serving the probe and secure test plugins plus every installed plugin.

The route matrix is not a list written here: the secure plugin's ``routes.json`` lists every URL
rule of every plugin blueprint in the running app, so a new example plugin is covered as soon as
it is installed. Tokens are made and revoked with the real ``ivoryos-plugin token`` CLI while the
server runs. The helpers are in ``tests/plugins/secure_plugin/harness.py``."""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
import socketio

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from secure_plugin.harness import (ALLOWED_ORIGIN, CREDENTIALS, NS, SECRET, Call, RawEngineIO,  # noqa: E402
                                   SecureServer, bearer, catalog, problem, raw_get, send, sio_connect,
                                   start_secure)


@pytest.fixture(scope="module", params=["ivoryos", "standalone"])
def secure(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """One server per host kind for the module."""
    running = start_secure(tmp_path_factory.mktemp(request.param), request.param)
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture(scope="module")
def calls(secure: SecureServer) -> List[Call]:
    """The catalog, each call's ``expect`` set to (or checked against) a logged-in session's answer."""
    found = catalog(secure)
    assert {c.plugin for c in found} >= {"probe", "secure", "hello"}, "routes.json misses plugins"
    for call in found:
        reply = send(secure, {}, call, "session")
        refused = problem(call, "session", reply) if call.expect is None else None
        assert refused is None, f"{call}: a logged-in session with the CSRF token is {refused}"
        assert call.expect in (None, reply.status_code), f"{call}: {reply.status_code} {reply.text[:300]}"
        call.expect = reply.status_code
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


REFUSED: Dict[str, Dict[str, Any]] = {
    "anonymous": {},
    "foreign-origin": {"cookie": True, "origin": "http://evil.example"},
    "null-origin": {"cookie": True, "origin": "null"},
    "unknown-token": {"token": "ivp_" + "B" * 43},
    "revoked-token": {"token": "revoked"},
    "other-plugin-token": {"token": "probe"},
    "token-not-a-string": {"token": ["ivp_x"]},
}
ACCEPTED: Dict[str, Dict[str, Any]] = {
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
            answer = [p for p in raw.receive() if p.startswith("4")][0]
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


@pytest.mark.server
def test_pages_and_generated_forms_carry_a_working_csrf_token(secure: SecureServer) -> None:
    page = secure.session.get(f"{secure.base}{NS}/").text
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert meta, "the page has no CSRF meta tag for ivoryos_plugin.js"
    form = secure.session.get(f"{secure.base}{NS}/settings").text
    field = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert field, "the settings form has no CSRF field"
    values = {"label": "from the form", "limit": "12", "mode": "slow", "enabled": "on"}
    url = f"{secure.base}{NS}/settings"
    forged = requests.post(url, data=values, cookies=secure.session.cookies)  # no header, no field
    assert forged.status_code == 400 and "CSRF" in forged.text
    for token in (field.group(1), meta.group(1)):  # as a browser submits the form, and as the JS does
        saved = requests.post(url, data={**values, "csrf_token": token}, cookies=secure.session.cookies)
        assert saved.status_code == 200 and "Saved." in saved.text
    assert secure.session.get(f"{url}.json").json()["values"]["label"] == "from the form"
    assert secure.session.put(f"{url}.json", json={"label": "bench", "limit": 10, "mode": "fast"}).status_code == 200


hostcheck = Plugin("hostcheck", __name__)


@hostcheck.route("/", endpoint="main")
def hostcheck_page() -> str:
    return "hostcheck"


def test_a_plugin_route_refuses_a_host_that_is_not_a_name_of_this_server(tmp_path: Path) -> None:
    """DNS rebinding at the plugin's own guard (what plain ``ivoryos.run`` and the dev host rely on): a
    foreign Host is a 400 naming the setting, each time (the verdict is remembered); a name added to
    ``IVORYOS_PLUGIN_ALLOWED_HOSTS`` is let in, and refused again once the config drops it."""
    app = create_app([hostcheck], data_dir=str(tmp_path))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {app.config['IVORYOS_PLUGIN_TOKEN']}"}

    def status(host: str) -> int:
        reply = client.get("/ivoryos/hostcheck/", headers={**auth, "Host": host})
        if reply.status_code == 400:
            error = reply.get_json()["error"]
            assert error.startswith("Plugin 'hostcheck': the Host") and "IVORYOS_PLUGIN_ALLOWED_HOSTS" in error
        return int(reply.status_code)

    try:
        assert [status("rebind.test"), status("rebind.test"), status("rebind.test:8000")] == [400, 400, 400]
        assert [status("127.0.0.1:8000"), status("localhost"), status("[::1]:80")] == [200, 200, 200]
        app.config["IVORYOS_PLUGIN_ALLOWED_HOSTS"] = "rebind.test"
        assert [status("rebind.test"), status("rebind.test:8000"), status("other.test")] == [200, 200, 400]
        app.config["IVORYOS_PLUGIN_ALLOWED_HOSTS"] = None
        assert status("rebind.test") == 400
    finally:
        stop(app)
