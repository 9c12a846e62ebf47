"""The tutorial plugin (examples/hello) in both hosts: plain ``ivoryos.run`` in a server
subprocess, and the standalone dev host started by ``ivoryos-plugin run``."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import requests

from support import ROOT, ivoryos_login
from test_docs import readme_deck

TUTORIAL_DECK = readme_deck()  # the README's own deck script, run as written


@pytest.fixture
def ivoryos_hello(start_server):
    return start_server(TUTORIAL_DECK, name="tutorial_deck.py")


@pytest.mark.server
def test_plain_ivoryos_run_serves_the_plugin_behind_its_login(ivoryos_hello) -> None:
    base = ivoryos_hello.base
    anon = requests.get(f"{base}/ivoryos/hello/", allow_redirects=False)
    assert anon.status_code == 302 and "/ivoryos/auth/login" in anon.headers["Location"]
    refused = requests.post(f"{base}/ivoryos/hello/actions/greet", json={"name": "x"})
    assert refused.status_code == 401 and "login required" in refused.json()["error"]
    anon_json = requests.get(f"{base}/ivoryos/hello/", headers={"Accept": "application/json"})
    assert anon_json.status_code == 401

    session = ivoryos_login(base)
    page = session.get(f"{base}/ivoryos/hello/")
    assert page.status_code == 200
    html = page.text
    assert "ivoryos_logo.png" in html and "navbar" in html, "the page does not extend IvoryOS's base.html"
    assert "ivp-shell" not in html
    assert re.search(r'id="instruments">counter<', html), "the page does not see the deck's instruments"
    home = session.get(f"{base}/ivoryos/")
    assert 'href="/ivoryos/hello/"' in home.text, "the plugin is missing from IvoryOS's nav"
    assert '<meta name="csrf-token"' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert "/ivoryos/plugins/static/vendor/socket.io.min.js" in scripts
    assert scripts.index("/ivoryos/plugins/static/vendor/socket.io.min.js") < scripts.index(
        "/ivoryos/plugins/static/ivoryos_plugin.js")
    client_js = session.get(f"{base}/ivoryos/plugins/static/vendor/socket.io.min.js")
    assert client_js.status_code == 200 and "Socket.IO" in client_js.text[:400]
    assert session.post(f"{base}/ivoryos/hello/actions/greet", json={"name": "Ada"}).json() == {
        "message": "Hello, Ada!"}
    no_csrf = requests.post(f"{base}/ivoryos/hello/actions/greet", json={"name": "x"},
                            cookies=session.cookies)
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.json()["error"]


@pytest.mark.server
def test_standalone_host_from_the_cli(start_server) -> None:
    exe = Path(sys.executable).with_name("ivoryos-plugin")
    assert exe.exists(), "the ivoryos-plugin console script is not installed"
    server = start_server(f"""
        import os, sys
        sys.argv = ["ivoryos-plugin", "run", "hello_plugin.plugin:plugin", "--port", os.environ["PORT"],
                    "--deck", {str(ROOT / 'examples' / 'demo_deck_min.py')!r}]
        from ivoryos_plugin.tools.cli import main
        main()
    """, name="dev_host.py")
    deadline = time.monotonic() + 10
    while "token=" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    match = re.search(r"(http://127\.0\.0\.1:\d+/ivoryos/)\?token=(\S+)", server.output())
    assert match, server.output()
    base_url, token = match.groups()
    assert f":{server.port}/" in base_url
    anon = requests.get(f"{server.base}/ivoryos/hello/", allow_redirects=False)
    assert anon.status_code == 302 and "/ivoryos/auth/login" in anon.headers["Location"]
    assert requests.get(f"{server.base}/ivoryos/hello/", headers={"Accept": "application/json"}).status_code == 401
    assert requests.get(f"{server.base}/ivoryos/hello/?token=wrong", allow_redirects=False).status_code == 302
    session = requests.Session()
    page = session.get(f"{base_url}?token={token}")
    assert page.status_code == 200 and page.url.endswith("/ivoryos/hello/")
    assert "ivp-shell" in page.text and "ivoryos_logo.png" not in page.text
    assert re.search(r'id="instruments">counter<', page.text)
    assert '<a class="ivp-link active" href="/ivoryos/hello/">Hello</a>' in page.text
    assert session.get(f"{server.base}/ivoryos/plugins/static/vendor/socket.io.min.js").status_code == 200
    bearer = requests.post(f"{server.base}/ivoryos/hello/actions/greet", json={"name": "Bo"},
                           headers={"Authorization": f"Bearer {token}"})
    assert bearer.json() == {"message": "Hello, Bo!"}
    assert server.stop() == 0 or server.proc.returncode in (0, 143, -15)


def test_standalone_login_form(tmp_path) -> None:
    from hello_plugin import plugin

    from ivoryos_plugin import create_app
    from ivoryos_plugin.hosts.devhost import stop

    app = create_app([plugin], data_dir=tmp_path, token="secret-token", testing=True)
    try:
        client = app.test_client()
        form = client.get("/ivoryos/auth/login?next=/ivoryos/hello/")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True)).group(1)
        wrong = client.post("/ivoryos/auth/login", data={"token": "nope", "csrf_token": csrf, "next": "/ivoryos/hello/"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.get_data(as_text=True)
        forged = client.post("/ivoryos/auth/login", data={"token": "secret-token", "next": "/ivoryos/hello/"})
        assert forged.status_code == 401 and "CSRF" in forged.get_data(as_text=True)
        right = client.post("/ivoryos/auth/login", data={"token": "secret-token", "csrf_token": csrf,
                                                         "next": "/ivoryos/hello/"})
        assert right.status_code == 302 and right.headers["Location"] == "/ivoryos/hello/"
        assert client.get("/ivoryos/hello/").status_code == 200
        evil = client.post("/ivoryos/auth/login", data={"token": "secret-token", "csrf_token": csrf,
                                                        "next": "//evil.example"})
        assert evil.headers["Location"] == "/ivoryos/"
    finally:
        stop(app)


def test_the_dev_host_picks_up_an_edited_template(tmp_path) -> None:
    import types

    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts.devhost import stop
    from ivoryos_plugin.testing import login_client

    (tmp_path / "templates").mkdir()
    page = tmp_path / "templates" / "edit_me.html"
    page.write_text("{% extends plugin_base %}{% block body %}first{% endblock %}")
    module = types.ModuleType("edit_me_plugin")
    module.__file__ = str(tmp_path / "edit_me_plugin.py")
    import sys
    sys.modules["edit_me_plugin"] = module
    plugin = Plugin("edit_me", "edit_me_plugin", template_folder=str(tmp_path / "templates"))
    plugin.add_url_rule("/", "main", lambda: plugin.render("edit_me.html"))
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
    try:
        client = login_client(app)
        assert b"first" in client.get("/ivoryos/edit_me/").data
        time.sleep(0.05)
        page.write_text("{% extends plugin_base %}{% block body %}second{% endblock %}")
        assert b"second" in client.get("/ivoryos/edit_me/").data
    finally:
        stop(app)
        sys.modules.pop("edit_me_plugin", None)
