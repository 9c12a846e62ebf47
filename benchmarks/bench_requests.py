"""Request overhead of the framework: a plugin page and a JSON action against a bare Flask
Blueprint doing the same work (login_required, the same template, the same JSON), in one app,
over real HTTP on loopback, interleaved. Prints the median latency ratios (target <= 1.05, issue 25).

It also times, interleaved with the two, the bare JSON route answering with the framework's security
headers (``SECURITY_HEADERS`` and ``Cache-Control: no-store``) to a request carrying the same
``X-CSRFToken`` header, which it does not check: the part of the JSON ratio that is the protection's
header lines on the wire (each costs both ends, ``requests`` parses each with the email parser), not
work in the server. It is printed, not a figure."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import requests
from flask import Blueprint, jsonify, render_template
from flask_login import login_required

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ThreadedServer, figure, finish, median  # noqa: E402
from ivoryos_plugin import Plugin, create_app  # noqa: E402
from ivoryos_plugin.runtime.security import SECURITY_HEADERS  # noqa: E402

HERE = Path(__file__).resolve().parent
ROWS = [{"name": f"sensor {i}", "value": i * 1.2345} for i in range(20)]
ROUNDS, PER_ROUND = 15, 40

plugin = Plugin("bench", __name__, template_folder=str(HERE / "templates"))


@plugin.route("/")
def main() -> str:
    return plugin.render("bench_page.html", base=plugin.runtime.ext.base_template, rows=ROWS)


@plugin.action(hardware=False)
def read(n: int = 3) -> dict:
    return {"values": [r["value"] for r in ROWS[:n]]}


bare = Blueprint("bare", __name__, template_folder=str(HERE / "templates"))


@bare.route("/")
@login_required
def bare_main() -> str:
    return render_template("bench_page.html", base="ivoryos_plugin/shell.html", rows=ROWS,
                           plugin=plugin)


@bare.route("/read", methods=["POST"])
@login_required
def bare_read() -> object:
    from flask import request

    n = int((request.get_json(silent=True) or {}).get("n", 3))
    return jsonify({"values": [r["value"] for r in ROWS[:n]]})


@bare.route("/read_with_headers", methods=["POST"])
@login_required
def bare_read_with_headers() -> object:
    reply = bare_read()
    for name, value in (*SECURITY_HEADERS, ("Cache-Control", "no-store")):
        reply.headers[name] = value  # type: ignore[attr-defined]
    return reply


def timed(session: requests.Session, method: str, url: str, **kw: object) -> float:
    start = time.perf_counter()
    reply = session.request(method, url, **kw)
    elapsed = time.perf_counter() - start
    assert reply.status_code == 200, (url, reply.status_code, reply.text[:200])
    return elapsed


def main_bench() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    data = tempfile.mkdtemp(prefix="bench_requests_")
    app = create_app([plugin], data_dir=data)
    app.register_blueprint(bare, url_prefix="/bare")
    server = ThreadedServer(app)
    session = requests.Session()
    token = app.config["IVORYOS_PLUGIN_TOKEN"]
    session.get(f"{server.base}/ivoryos/?token={token}")
    csrf = session.get(f"{server.base}/ivoryos/plugins/csrf.json").json()["csrf_token"]
    cases = {
        "page": (("GET", f"{server.base}/ivoryos/bench/", {}), ("GET", f"{server.base}/bare/", {})),
        "json": (("POST", f"{server.base}/ivoryos/bench/actions/read", {"json": {"n": 5}, "headers": {"X-CSRFToken": csrf}}),
                 ("POST", f"{server.base}/bare/read", {"json": {"n": 5}}),
                 # (printed only) the bare route with the protection's header lines, both ways
                 ("POST", f"{server.base}/bare/read_with_headers", {"json": {"n": 5}, "headers": {"X-CSRFToken": csrf}})),
    }
    samples: dict = {name: tuple([] for _ in requests_) for name, requests_ in cases.items()}
    for _ in range(50):  # warm-up
        for requests_ in cases.values():
            for method, url, kw in requests_:
                timed(session, method, url, **kw)
    for round_no in range(ROUNDS):
        for name, requests_ in cases.items():
            turn = list(enumerate(requests_))
            if round_no % 2:
                turn.reverse()
            for _ in range(PER_ROUND):
                for slot, (method, url, kw) in turn:
                    samples[name][slot].append(timed(session, method, url, **kw))
    server.stop()
    from ivoryos_plugin.hosts.devhost import stop

    stop(app)
    for name, (ours, anchor, *headers_only) in samples.items():
        print(f"{name}: framework median {median(ours) * 1e3:.3f} ms, bare Blueprint median "
              f"{median(anchor) * 1e3:.3f} ms ({len(ours)} requests each)")
        if headers_only:
            with_headers = median(headers_only[0])
            print(f"{name}: the bare Blueprint with the security header lines (5 in the reply, the CSRF token "
                  f"in the request) {with_headers * 1e3:.3f} ms: ratio {with_headers / median(anchor):.3f} to the "
                  f"bare Blueprint; the framework's ratio to it {median(ours) / with_headers:.3f}")
        figure(f"request_{name}_median_ratio", median(ours) / median(anchor), "<=1.05")
    os.environ.pop("IVORYOS_ACTIVE", None)
    finish()


if __name__ == "__main__":
    main_bench()
