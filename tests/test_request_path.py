"""The per-request work of the plugin routes' guard and headers (issue 25): what it adds to a response
and what it leaves alone, on a real app made by ``create_app`` and Flask's test client."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator

import pytest
from flask import Flask, Response, stream_with_context

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime.security import SECURITY_HEADERS

plugin = Plugin("pathprobe", __name__)


@plugin.route("/")
def main() -> str:
    # "İ" lowercases to two characters: an index into body.lower() is not an index into the body
    return "<!doctype html><html><head><title>İİİ</title></HEAD><body><p>page</p></body></html>"


@plugin.route("/own-headers")
def own_headers() -> Response:
    return Response("{}", mimetype="application/json",
                    headers={"Cache-Control": "max-age=5", "X-Frame-Options": "DENY"})


@plugin.route("/stream")
def stream() -> Response:
    def chunks() -> Iterator[str]:
        yield "<html><head></head><body>"
        yield "streamed</body></html>"
    return Response(stream_with_context(chunks()), mimetype="text/html")


@plugin.action(hardware=False)
def echo(n: int = 1) -> Dict[str, int]:
    return {"n": n}


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Flask]:
    made = create_app([plugin], data_dir=str(tmp_path))
    try:
        yield made
    finally:
        stop(made)


def logged_in(app: Flask) -> object:
    client = app.test_client()
    client.get(f"/ivoryos/?token={app.config['IVORYOS_PLUGIN_TOKEN']}")
    return client


def test_the_snippet_goes_before_the_head_end_in_any_case(app: Flask) -> None:
    page = logged_in(app).get("/ivoryos/pathprobe/").get_data(as_text=True)  # type: ignore[attr-defined]
    head, _, body = page.partition("</HEAD>")
    assert 'name="ivoryos-plugin-injected"' in head and 'name="csrf-token"' in head, page
    assert head.startswith("<!doctype html><html><head><title>İİİ</title>"), page
    assert body == "<body><p>page</p></body></html>", page


def test_a_declared_action_has_its_own_fixed_url_rule_and_everything_else_stays_as_declared(app: Flask) -> None:
    # Werkzeug finds /actions/echo by a dict lookup; /actions/<name> (the row of the table) serves the rest
    adapter = app.url_map.bind("localhost")
    rule, args = adapter.match("/ivoryos/pathprobe/actions/echo", "POST", return_rule=True)
    assert (rule.rule, rule.endpoint, args) == ("/ivoryos/pathprobe/actions/echo", "pathprobe.actions", {"name": "echo"})
    rule, args = adapter.match("/ivoryos/pathprobe/actions/nope", "POST", return_rule=True)
    assert (rule.rule, args) == ("/ivoryos/pathprobe/actions/<name>", {"name": "nope"})
    with app.test_request_context():
        from flask import url_for
        assert url_for("pathprobe.actions", name="echo") == "/ivoryos/pathprobe/actions/echo"
        assert url_for("pathprobe.actions", name="nope") == "/ivoryos/pathprobe/actions/nope"
    row = plugin.declarations.route("actions")
    assert row is not None and (row.rule, row.methods) == ("/actions/<name>", ("POST",))
    client = logged_in(app)
    csrf = client.get("/ivoryos/plugins/csrf.json").get_json()["csrf_token"]  # type: ignore[attr-defined]
    posted = {"headers": {"X-CSRFToken": csrf}, "json": {"n": 2}}
    assert client.post("/ivoryos/pathprobe/actions/echo", **posted).get_json() == {"n": 2}  # type: ignore[attr-defined]
    unknown = client.post("/ivoryos/pathprobe/actions/nope", **posted)  # type: ignore[attr-defined]
    assert unknown.status_code == 404 and "actions: echo" in unknown.get_json()["error"], unknown.get_data()
    assert client.get("/ivoryos/pathprobe/actions/echo").status_code == 405  # type: ignore[attr-defined]
    anonymous = app.test_client().post("/ivoryos/pathprobe/actions/echo", json={"n": 2})
    assert anonymous.status_code == 401, anonymous.get_data()


def test_a_routes_own_headers_are_kept_and_the_rest_added(app: Flask) -> None:
    reply = logged_in(app).get("/ivoryos/pathprobe/own-headers")  # type: ignore[attr-defined]
    assert reply.headers.getlist("Cache-Control") == ["max-age=5"]
    assert reply.headers.getlist("X-Frame-Options") == ["DENY"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self'" in reply.headers["Content-Security-Policy"]
    assert len(reply.headers.getlist("Content-Security-Policy")) == 1


@pytest.mark.parametrize("method, path, status", [("GET", "/ivoryos/pathprobe/", 200),
                                                   ("GET", "/ivoryos/pathprobe/no-such-page", 404),
                                                   ("DELETE", "/ivoryos/pathprobe/", 405)],
                         ids=["page", "not-found", "wrong-method"])
def test_every_reply_under_the_prefix_gets_each_header_once(app: Flask, method: str, path: str,
                                                             status: int) -> None:
    """The plugin's hook adds the headers to its replies, the app's hook to the errors that never reach
    the plugin's hooks (an unknown path, a wrong method); neither adds them twice."""
    reply = logged_in(app).open(path, method=method)  # type: ignore[attr-defined]
    assert reply.status_code == status
    assert {name: reply.headers.getlist(name) for name, _ in SECURITY_HEADERS} == {
        name: [value] for name, value in SECURITY_HEADERS}


def test_a_streamed_page_is_not_read_but_gets_the_headers(app: Flask) -> None:
    reply = logged_in(app).get("/ivoryos/pathprobe/stream")  # type: ignore[attr-defined]
    assert reply.get_data(as_text=True) == "<html><head></head><body>streamed</body></html>"
    assert reply.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Cache-Control" not in reply.headers  # HTML is not generated JSON or CSV


PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>•</title><SCRIPT src="/a.js"></SCRIPT></head>'
        '<body><form method="POST" action="/x"><input name="a"></form>'
        "<FORM METHOD='post' action=\"/y\"><input type=\"hidden\" NAME='csrf_token' value=\"t\"></FORM>"
        '<form action="/search"><input name="q"></form>'
        '<form method=post action="/z"><input name="CSRF_TOKEN"></form></body></html>')


def test_ivoryos_pages_get_the_token_in_each_post_form_without_one_and_the_tags_before_the_first_script() -> None:
    from ivoryos_plugin.hosts import ivoryos as adapter

    html = PAGE.encode()
    field = adapter.token_field("tok")
    points = adapter.form_token_points(html)
    head = adapter.head_tags_point(html)
    assert head is not None
    out = adapter.with_inserts(html, [*[(at, field) for at in points], (head, b"<meta name=x>")]).decode()
    assert out.count('name="csrf_token" value="tok"') == 2, out  # /x and /z (a field named CSRF_TOKEN is not it)
    assert '<form method="POST" action="/x"><input type="hidden" name="csrf_token" value="tok">' in out
    assert '<form method=post action="/z"><input type="hidden" name="csrf_token" value="tok">' in out
    assert '<meta name=x><SCRIPT src="/a.js">' in out and "<title>•</title>" in out
    assert adapter.forms_with_token(PAGE, "tok") == adapter.with_inserts(
        html, [(at, field) for at in points]).decode()
    assert adapter.page_with_head_tags("<p>a fragment</p>", "<meta>") == "<p>a fragment</p>"
    # where the page hook looks for the CSRF script and <meta> (the head only, not the whole page)
    assert adapter.head_end(html) == html.index(b"</head>") + len(b"</head>")
    assert adapter.head_end(b"<p>x</p></HEAD >") == len(b"<p>x</p></HEAD >")
    assert adapter.head_end(b"<p>a fragment</p>") is None


def test_the_page_hook_remembers_each_pages_token_places_by_its_bytes() -> None:
    # what the page hook works out of a page alone is remembered for its very bytes (issue 25): the
    # same page again gets the same places, any other page its own, and the table stays bounded
    import types

    from ivoryos_plugin.hosts.hardening import pages
    from ivoryos_plugin.hosts import ivoryos as adapter

    from ivoryos_plugin.hosts.page_memo import PageMemo

    hooks = types.SimpleNamespace(_points=PageMemo(pages.PAGES_KEPT, pages.PAGE_BYTES))
    points = pages.PageHook.page_points
    html = PAGE.encode()
    found = points(hooks, html)  # type: ignore[arg-type]
    assert found == (tuple(adapter.form_token_points(html)), adapter.head_tags_point(html), False)
    assert len(found[0]) == 2 and len(hooks._points) == 1 and hooks._points.get(html) is found
    assert points(hooks, bytes(bytearray(html))) is found  # type: ignore[arg-type]  # equal bytes: remembered
    with_script = html.replace(b"</head>", b'<meta name="csrf-token" content="t"><script src="/p/ivoryos_csrf.js">'
                                           b'</script></head>')
    assert points(hooks, with_script) == (  # type: ignore[arg-type]
        tuple(adapter.form_token_points(with_script)), None, False)  # the script is there: no head tags
    with_meta = html.replace(b"</head>", b'<meta name="csrf-token" content="t"></head>')
    assert points(hooks, with_meta)[2] is True  # type: ignore[arg-type]
    assert points(hooks, b"<p>a fragment</p>") == ((), None, False)  # type: ignore[arg-type]
    login = html.replace(b"/x", b"/login")
    points(hooks, login, remember=False)  # type: ignore[arg-type]  # a page that is never the same twice
    assert hooks._points.get(login) is None
    for n in range(pages.PAGES_KEPT + 3):
        page = html.replace(b"<title>", f"<!-- {n} --><title>".encode())
        assert points(hooks, page)[0] == tuple(adapter.form_token_points(page))  # type: ignore[arg-type]
        assert len(hooks._points) <= pages.PAGES_KEPT


@pytest.mark.parametrize("method,path,headers,json_wanted", [
    ("GET", "/page", {}, False),
    ("GET", "/page", {"Accept": "*/*"}, False),
    ("GET", "/page", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, False),
    ("GET", "/page", {"Accept": "application/json"}, True),
    ("GET", "/page", {"Accept": "application/json, text/html;q=0.5"}, True),
    ("GET", "/status.json", {}, True),
    ("POST", "/page", {"Accept": "text/html"}, True),
    ("GET", "/page", {"Content-Type": "application/json"}, True),
], ids=["no-accept", "any", "browser", "json", "json-first", "json-path", "post", "json-body"])
def test_one_answer_to_html_or_json(method: str, path: str, headers: Dict[str, str], json_wanted: bool) -> None:
    from werkzeug.wrappers import Request as WerkzeugRequest
    from werkzeug.test import EnvironBuilder

    from ivoryos_plugin.runtime.replies import prefers_json, wants_json

    app = Flask("html_or_json")
    with app.test_request_context(path, method=method, headers=headers):
        from flask import request

        assert wants_json() is json_wanted
        accept_only = "application/json" in headers.get("Accept", "")
        assert prefers_json() is accept_only
        assert prefers_json(WerkzeugRequest(EnvironBuilder(path=path, headers=list(headers.items())).get_environ())) is accept_only
        assert wants_json(request) is json_wanted


def test_a_page_memo_answers_for_the_exact_bytes_only() -> None:
    # the memo finds a page by a fingerprint (its length and its ends), then compares the bytes: a page
    # with the same length and ends but another middle is never given the other page's answer
    from ivoryos_plugin.hosts.page_memo import EDGE, PageMemo

    memo: PageMemo[str] = PageMemo(keep=4, largest=1 << 20)
    page = b"<head>" + b"a" * 4000 + b"<form method=post>" + b"z" * 4000
    twin = page.replace(b"<form method=post>", b"<form method=get>!")  # same length, same ends
    assert len(twin) == len(page) and twin[:EDGE] == page[:EDGE] and twin[-EDGE:] == page[-EDGE:]
    memo.put(page, "post form")
    assert memo.get(bytes(bytearray(page))) == "post form"  # equal bytes, another object: found
    assert memo.get(twin) is None  # the same fingerprint, other bytes: not this page's answer
    memo.put(twin, "get form")
    assert memo.get(twin) == "get form" and memo.get(page) is None and len(memo) == 1  # the twin replaced it
    assert memo.get(page, extra="/other/") is None  # another extra key: another entry
    memo.put(page, "post form", extra="/other/")
    assert memo.get(page, extra="/other/") == "post form" and memo.get(twin) == "get form"
    memo.put(b"x" * (2 << 20), "too large")
    assert memo.get(b"x" * (2 << 20)) is None  # larger than kept
    for n in range(10):  # bounded
        memo.put(page + str(n).encode(), str(n))
        assert len(memo) <= 4
