"""Pages left open for days (issue 27): a CSRF token is valid for its session's life, not for an hour.

The 2-hour soak found it: after 60 minutes every POST of its clients, which fetched their token once as
a page does when it loads, answered 400 ("The CSRF token has expired"), on IvoryOS's own run controls
and on the plugins' actions alike. The token here is signed two hours in the past with the app's own
key, as Flask-WTF signs it (no waiting): accepted by default on the dev host and inside real IvoryOS;
refused when the app sets ``WTF_CSRF_TIME_LIMIT`` itself."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from ivoryos_plugin import Plugin
from ivoryos_plugin.testing import CsrfClient, client, deck, ivoryos_app, ivoryos_client, plugin_app  # noqa: F401

AGE_S = 2 * 3600


@pytest.fixture(scope="module")
def plugin() -> Plugin:
    made = Plugin("long_open", __name__)

    @made.route("/")
    def main() -> str:
        return "open for days"

    @made.action(hardware=False)
    def ping() -> str:
        return "pong"

    return made


class _TwoHoursAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - AGE_S


def old_token(app: Flask, client: Any) -> str:
    """A token for the client's session, signed two hours ago with the app's CSRF key and Flask-WTF's salt."""
    field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    with client.session_transaction() as session:
        raw = session[field]
    secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
    return URLSafeTimedSerializer(secret, salt="wtf-csrf-token", signer=_TwoHoursAgo).dumps(raw)


@pytest.fixture(params=["dev host", "ivoryos"])
def host(request: pytest.FixtureRequest) -> Iterator[tuple]:
    if request.param == "dev host":
        app = request.getfixturevalue("plugin_app")
        client = request.getfixturevalue("client")  # logged in; it read its token as a page does
    else:
        app = request.getfixturevalue("ivoryos_app")
        client = request.getfixturevalue("ivoryos_client")
    limit = app.config.get("WTF_CSRF_TIME_LIMIT")
    yield app, client
    app.config["WTF_CSRF_TIME_LIMIT"] = limit


def post_ping(app: Flask, client: Any, token: str) -> Any:
    return client.post(f"{app.config.get('URL_PREFIX', '/ivoryos')}/long_open/actions/ping", json={},
                       headers={"X-CSRFToken": token})


def test_a_token_two_hours_old_still_works(host: tuple) -> None:
    app, client = host
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    if isinstance(client, CsrfClient):
        client.csrf_token = None  # only the header this test sends
    reply = post_ping(app, client, old_token(app, client))
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_json() == "pong"


def test_an_app_that_sets_a_limit_keeps_it(host: tuple) -> None:
    app, client = host
    if isinstance(client, CsrfClient):
        client.csrf_token = None
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    reply = post_ping(app, client, old_token(app, client))
    assert reply.status_code == 400 and "expired" in reply.get_data(as_text=True), reply.get_data(as_text=True)
