"""Security round two, HTTP (issue 13, items 2 and 6 to 10) against real servers: plain
``ivoryos.run`` and the dev host, each serving the red team's deck (``tests/plugins/red_deck.py``).

2. every route under a plain Blueprint plugin's URL prefix is guarded (nested blueprints and
   routes its setup adds to the app included);
6. JSON nested ~1,000 deep is a 400, never a 500;
7. NaN and Infinity are refused (400), and no reply contains them;
8. ``max_body`` holds for chunked bodies too (413, nothing runs);
9. symlinks in ``public/`` and ``static/`` are not followed out of their folder;
10. 404 and 405 answers under a plugin's prefix carry the security headers."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support import ROOT

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import HEADERS, NS, RedServer, start_red, strict_json  # noqa: E402

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module", params=["ivoryos", "standalone"])
def red(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp(request.param), request.param)
    try:
        yield running
    finally:
        running.server.stop()


def plain_log(red: RedServer) -> str:
    path = red.server.cwd / "red_plain.log"
    return path.read_text() if path.exists() else ""


def settings_file(red: RedServer) -> bytes:
    path = red.data / "red" / "settings.json"
    return path.read_bytes() if path.exists() else b""


# ------------------------------------------------------------------ 2. plain plugins by prefix
@pytest.mark.server
@pytest.mark.parametrize("path", ["/ivoryos/redplain/child/secret", "/ivoryos/redplain/raw"], ids=["nested", "app-route"])
def test_every_route_under_a_plain_plugins_prefix_is_guarded(red: RedServer, path: str) -> None:
    before = plain_log(red)
    get = requests.get(red.base + path, headers=JSON, allow_redirects=False)
    post = requests.post(red.base + path, headers=JSON, json={}, allow_redirects=False)
    assert (get.status_code, post.status_code) == (401, 401), (get.text, post.text)
    assert "redplain" in get.json()["error"] and "login" in get.json()["error"]
    page = requests.get(red.base + path, headers={"Accept": "text/html"}, allow_redirects=False)
    assert page.status_code == 302 and "/auth/login" in page.headers["Location"]
    assert plain_log(red) == before, "an anonymous request ran a plain plugin's route"
    for reply in (get, post, page):
        assert {k: reply.headers.get(k) for k in HEADERS} == HEADERS
    no_csrf = requests.post(red.base + path, cookies=red.session.cookies, headers=JSON, json={})
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.text, "a logged-in POST without the CSRF token ran"
    assert plain_log(red) == before
    assert red.session.get(red.base + path).status_code == 200  # the control: logged in, it runs
    assert red.session.post(red.base + path, json={}).status_code == 200
    assert plain_log(red).count("\n") == before.count("\n") + 2


# ------------------------------------------------------------------ 6. deep nesting
DEEP = "[" * 1000 + "]" * 1000  # 2 kB


@pytest.mark.server
@pytest.mark.parametrize("method,path,body", [
    ("PUT", f"{NS}/settings.json", '{"tags": %s}' % DEEP),
    ("PATCH", f"{NS}/settings.json", DEEP),
    ("POST", f"{NS}/actions/record", '{"items": %s}' % DEEP),
    ("POST", f"{NS}/actions/record", DEEP),
], ids=["settings-put", "settings-patch-bare", "action-argument", "action-bare"])
def test_deeply_nested_json_is_a_400(red: RedServer, method: str, path: str, body: str) -> None:
    on_disk, journal = settings_file(red), red.journal()
    reply = red.session.request(method, red.base + path, data=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text[:300]
    assert "nest" in reply.json()["error"] and "red" in reply.json()["error"], reply.json()
    assert settings_file(red) == on_disk and red.journal() == journal


# ------------------------------------------------------------------ 7. NaN and Infinity
@pytest.mark.server
@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999", '"NaN"', '"inf"'])
def test_nan_and_infinity_are_refused_and_never_served(red: RedServer, raw: str) -> None:
    on_disk, journal = settings_file(red), red.journal()
    for method, path, body in [("PATCH", f"{NS}/settings.json", '{"gain": %s}' % raw),
                               ("POST", f"{NS}/actions/record", '{"value": %s}' % raw)]:
        reply = red.session.request(method, red.base + path, data=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, f"{method} {path} {body}: {reply.status_code} {reply.text[:200]}"
        assert "finite" in reply.text or (raw.startswith('"') and "actions" in path), reply.text
    form = red.session.post(f"{red.base}{NS}/settings", data={"gain": raw.strip('"'), "label": "red"})
    assert form.status_code == 400, f"the settings form took {raw}"
    assert settings_file(red) == on_disk and red.journal() == journal
    current = red.session.get(f"{red.base}{NS}/settings.json")
    strict_json(current.text)  # what JSON.parse accepts


@pytest.mark.server
def test_an_action_returning_nan_still_answers_json(red: RedServer) -> None:
    reply = red.session.post(f"{red.base}{NS}/actions/reading", json={})
    assert reply.status_code == 200
    assert strict_json(reply.text) == {"reading": None, "peak": None, "ok": True}


# ------------------------------------------------------------------ 8. chunked bodies
def chunks(head: bytes, size: int) -> Iterator[bytes]:
    """``head`` then ``size`` bytes of JSON whitespace, 64 KiB at a time (``requests`` sends it chunked)."""
    yield head
    sent = 0
    while sent < size:
        piece = min(65536, size - sent)
        yield b" " * piece
        sent += piece


@pytest.mark.server
@pytest.mark.parametrize("method,path,head", [
    ("POST", f"{NS}/actions/record", b'{"text": "chunked"}'),
    ("PATCH", f"{NS}/settings.json", b'{"label": "chunked"}'),
], ids=["action", "settings"])
def test_max_body_holds_for_chunked_bodies(red: RedServer, method: str, path: str, head: bytes) -> None:
    on_disk, journal = settings_file(red), red.journal()
    reply = red.session.request(method, red.base + path, data=chunks(head, 3 << 20),
                                headers={"Content-Type": "application/json"}, timeout=60)
    assert reply.status_code == 413, reply.text[:300]
    assert "red" in reply.json()["error"] and "max_body" in reply.json()["error"]
    assert settings_file(red) == on_disk and red.journal() == journal, "the cut-off body was used"
    fits = red.session.request(method, red.base + path, data=chunks(head, 1000),
                               headers={"Content-Type": "application/json"}, timeout=60)
    assert fits.status_code == 200, fits.text[:300]  # the control: a small chunked body is fine


# ------------------------------------------------------------------ 9. symlinks
@pytest.mark.server
def test_symlinks_out_of_public_and_static_are_not_served(red: RedServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("OUTSIDE-THE-PACKAGE")
    links = {"public/to_secret.txt": "../secret.txt", "public/to_static.js": "../static/app.js",
             "public/to_outside.txt": str(outside), "static/to_outside.txt": str(outside),
             "static/to_secret.txt": "../secret.txt"}
    for name, target in links.items():
        link = red.plugin_dir / name
        if not link.is_symlink():
            os.symlink(target, link)
    for name in links:
        folder, _, file = name.partition("/")
        for cookies in (None, red.session.cookies):
            reply = requests.get(f"{red.base}{NS}/{folder}/{file}", cookies=cookies, headers=JSON)
            if cookies is None and folder == "static":
                assert reply.status_code == 401
                continue
            assert reply.status_code == 404, f"{name} -> {links[name]}: {reply.status_code} {reply.text[:80]}"
            for secret in ("SECRET", "OUTSIDE", "STATIC-LOGIN-ONLY"):
                assert secret not in reply.text
    assert requests.get(f"{red.base}{NS}/public/readme.txt").status_code == 200  # the control
    inner = red.plugin_dir / "public" / "inner_link.txt"
    if not inner.is_symlink():
        os.symlink("readme.txt", inner)
    assert requests.get(f"{red.base}{NS}/public/inner_link.txt").text.startswith("public:"), \
        "a link that stays inside the folder is served"


# ------------------------------------------------------------------ 10. error answers' headers
@pytest.mark.server
@pytest.mark.parametrize("method,path,status", [
    ("GET", f"{NS}/no-such-page", 404), ("DELETE", f"{NS}/", 405), ("GET", f"{NS}/actions/record", 405),
    ("GET", "/ivoryos/plugins/no-such-page", 404),
], ids=["404", "405-page", "405-action", "framework-404"])
def test_error_answers_under_a_plugin_prefix_carry_the_headers(red: RedServer, method: str, path: str,
                                                               status: int) -> None:
    for cookies in (None, red.session.cookies):
        reply = requests.request(method, red.base + path, cookies=cookies, headers=JSON, allow_redirects=False)
        if cookies is None and reply.status_code in (401, 302):
            pass  # refused before routing: fine, as long as the headers are there
        else:
            assert reply.status_code == status, reply.text[:200]
        assert {k: reply.headers.get(k) for k in HEADERS} == HEADERS, (method, path, dict(reply.headers))
