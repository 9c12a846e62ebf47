"""IvoryOS's session cookie is sent again only when the session changed (``hosts/cookie_sessions.py``).

IvoryOS's ``before_request`` sets ``session.permanent = False`` on every request, so under plain
``ivoryos.run`` every response re-signs the session and sends it, and a status poll that answers
after a form post undoes the post's change in the browser. The first tests run a real deck under
both launchers; the others a Flask app written the way IvoryOS writes its own (the same
``before_request``), with :class:`ChangedOnlySessions` installed as ``ivoryos_plugin.run`` does."""
from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from flask import Flask, jsonify, session
from flask.sessions import SecureCookieSessionInterface

from ivoryos_plugin.hosts.cookie_sessions import REFRESH_S, ChangedOnlySessions, keep_unchanged_sessions
from support import Server, ivoryos_login, launch

DECK = '''
import os


class Balance:
    """A deck instrument."""

    def weigh(self) -> float:
        """The mass in grams."""
        return 1.5


balance = Balance()

if __name__ == "__main__":
    port = int(os.environ["PORT"])
    if os.environ["LAUNCHER"] == "run":
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, port=port)
    else:
        import ivoryos
        from ivoryos_plugin import IvoryOSPlugins

        ivoryos.run(__name__, port=port, blueprint_plugins=[IvoryOSPlugins().blueprint()])
'''
STATUS = "/ivoryos/executions/status"


def content(cookie: str) -> Dict[str, Any]:
    """What a Flask session cookie holds (signed, not encrypted: readable without the key)."""
    payload = cookie.split(".")[1] if cookie.startswith(".") else cookie.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return dict(json.loads(zlib.decompress(raw) if cookie.startswith(".") else raw))


def sent_cookie(reply: requests.Response) -> Optional[str]:
    """The session cookie a reply sets, or None."""
    found = [c for c in reply.raw.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return found[0].split(";")[0][len("session="):] if found else None


@pytest.fixture(scope="module", params=["run", "ivoryos"])
def deck(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Server]]:
    """The deck under ``ivoryos_plugin.run`` or plain ``ivoryos.run``: (the launcher, its server)."""
    server = launch(DECK, tmp_path_factory.mktemp(request.param), name="deck.py", env={"LAUNCHER": request.param})
    try:
        yield request.param, server
    finally:
        server.stop()


@pytest.mark.server
def test_a_status_poll_that_changes_nothing_sends_no_cookie_and_undoes_no_change(deck: Tuple[str, Server]) -> None:
    launcher, server = deck
    browser = ivoryos_login(server.base)
    before = browser.cookies["session"]
    assert content(before).get("autofill") is False
    # a browser polls the status while the user turns autofill on: both requests carry the cookie as it was
    changed = requests.patch(f"{server.base}/ivoryos/draft/ui-state", json={"autofill": True},
                             headers={"Cookie": f"session={before}", "X-CSRFToken": browser.headers["X-CSRFToken"]})
    assert changed.status_code == 200, changed.text
    after_change = sent_cookie(changed)
    assert after_change is not None and content(after_change)["autofill"] is True
    poll = requests.get(f"{server.base}{STATUS}", headers={"Cookie": f"session={before}"})
    assert poll.status_code == 200, poll.text
    if launcher == "run":
        assert sent_cookie(poll) is None, "ivoryos_plugin.run sent an unchanged session again"
        assert "Cookie" in poll.headers.get("Vary", "")
        # the change stays: the browser's next request carries autofill on, and IvoryOS's designer shows it
        again = requests.get(f"{server.base}{STATUS}", headers={"Cookie": f"session={after_change}"})
        assert again.status_code == 200 and sent_cookie(again) is None
        draft = requests.get(f"{server.base}/ivoryos/draft", headers={"Cookie": f"session={after_change}"})
        assert draft.status_code == 200 and "toolbox-autofill active" in draft.text
    else:
        # plain ivoryos.run: the poll's reply carries the session as it was, which undoes the change
        undone = sent_cookie(poll)
        assert undone is not None and content(undone)["autofill"] is False


# ------------------------------------------------------------------ IvoryOS's way, in one process
def ivoryos_style_app(clock: Any = None) -> Flask:
    """An app that treats the session the way IvoryOS 1.7.2 does (``session.permanent = False`` in its
    ``before_request``, nested dicts it changes in place), with the interface ``ivoryos_plugin.run`` installs."""
    app = Flask("ivoryos_style")
    app.secret_key = "k" * 32
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if clock is None:
        assert keep_unchanged_sessions(app)  # (Flask's own interface: replaced)
    else:
        app.session_interface = ChangedOnlySessions(clock)

    @app.before_request
    def before_request() -> None:
        session.permanent = False  # (what IvoryOS's app.py does on every request)

    @app.route("/login")
    def login() -> Any:
        session["_user_id"] = "admin"
        session["card_order"], session["autofill"] = {}, False
        return jsonify(ok=True)

    @app.route("/status")
    def status() -> Any:
        return jsonify(user=session.get("_user_id"))

    @app.route("/order/<name>")
    def order(name: str) -> Any:
        session["card_order"][name] = ["tare", "weigh"]  # in place: the session is not told
        return jsonify(ok=True)

    @app.route("/logout")
    def logout() -> Any:
        session.clear()
        return jsonify(ok=True)

    @app.route("/remember")
    def remember() -> Any:
        session.permanent = True
        return jsonify(ok=True)

    return app


def cookies_of(reply: Any) -> List[str]:
    return [c for c in reply.headers.getlist("Set-Cookie") if c.startswith("session=")]


def test_an_unchanged_session_is_not_sent_again_and_a_changed_one_is() -> None:
    app = ivoryos_style_app()
    client = app.test_client()
    first = client.get("/login")
    assert len(cookies_of(first)) == 1 and "SameSite=Lax" in cookies_of(first)[0]
    for _ in range(3):
        reply = client.get("/status")
        assert reply.get_json() == {"user": "admin"}
        assert cookies_of(reply) == [] and "Cookie" in reply.headers.get("Vary", "")
    changed = client.get("/order/balance")  # a change inside a nested value counts
    assert len(cookies_of(changed)) == 1
    value = cookies_of(changed)[0].split(";")[0][len("session="):]
    assert content(value)["card_order"] == {"balance": ["tare", "weigh"]}
    assert cookies_of(client.get("/status")) == []
    ended = client.get("/logout")  # cleared: the cookie is deleted, as Flask does
    assert len(cookies_of(ended)) == 1 and "Expires=Thu, 01 Jan 1970" in cookies_of(ended)[0]
    assert client.get("/status").get_json() == {"user": None}


def test_an_unchanged_session_is_sent_again_once_its_cookie_is_old() -> None:
    now = [1_000.0]
    app = ivoryos_style_app(clock=lambda: now[0])
    client = app.test_client()
    client.get("/login")
    signed_at = float(content_time(client))
    now[0] = signed_at + REFRESH_S - 1
    assert cookies_of(client.get("/status")) == []
    now[0] = signed_at + REFRESH_S + 1  # older than REFRESH_S: signed again (PERMANENT_SESSION_LIFETIME never reached)
    assert len(cookies_of(client.get("/status"))) == 1


def content_time(client: Any) -> int:
    """When the client's session cookie was signed (itsdangerous's timestamp)."""
    from itsdangerous.encoding import base64_decode, bytes_to_int

    cookie = client.get_cookie("session")
    assert cookie is not None
    return int(bytes_to_int(base64_decode(cookie.value.rsplit(".", 2)[-2])))


def test_a_permanent_session_and_a_forged_cookie_are_flasks() -> None:
    app = ivoryos_style_app()
    app.before_request_funcs[None].clear()  # (no permanent = False on each request)
    client = app.test_client()
    client.get("/login")
    client.get("/remember")
    refreshed = client.get("/status")  # permanent: Flask sends it on every request (its expiry rolls)
    assert len(cookies_of(refreshed)) == 1 and "Expires=" in cookies_of(refreshed)[0]
    forged = app.test_client()
    forged.set_cookie("session", client.get_cookie("session").value[:-4] + "AAAA")  # a bad signature
    assert forged.get("/status").get_json() == {"user": None}


def test_only_flasks_own_interface_is_replaced() -> None:
    app = Flask("own_sessions")

    class Own(SecureCookieSessionInterface):
        pass

    app.session_interface = Own()
    assert keep_unchanged_sessions(app) is False and type(app.session_interface) is Own
    plain = Flask("plain_sessions")
    assert keep_unchanged_sessions(plain) is True and isinstance(plain.session_interface, ChangedOnlySessions)
