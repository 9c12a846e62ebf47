"""Request overhead of the framework: a plugin page and a JSON action against a bare Flask
Blueprint doing the same work (login_required, the same template, the same JSON), in one app,
over real HTTP on loopback, interleaved. Prints the median latency ratios (target <= 1.05, issue 25)."""
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
                 ("POST", f"{server.base}/bare/read", {"json": {"n": 5}})),
    }
    samples = {name: ([], []) for name in cases}
    for _ in range(50):  # warm-up
        for ours, anchor in cases.values():
            timed(session, ours[0], ours[1], **ours[2])
            timed(session, anchor[0], anchor[1], **anchor[2])
    for round_no in range(ROUNDS):
        for name, (ours, anchor) in cases.items():
            pair = [(0, ours), (1, anchor)] if round_no % 2 == 0 else [(1, anchor), (0, ours)]
            for _ in range(PER_ROUND):
                for slot, (method, url, kw) in pair:
                    samples[name][slot].append(timed(session, method, url, **kw))
    server.stop()
    from ivoryos_plugin.hosts.devhost import stop

    stop(app)
    for name, (ours, anchor) in samples.items():
        print(f"{name}: framework median {median(ours) * 1e3:.3f} ms, bare Blueprint median "
              f"{median(anchor) * 1e3:.3f} ms ({len(ours)} requests each)")
        figure(f"request_{name}_median_ratio", median(ours) / median(anchor), "<=1.05")
    os.environ.pop("IVORYOS_ACTIVE", None)
    finish()


if __name__ == "__main__":
    main_bench()
