"""IvoryOS's own pages under ``ivoryos_plugin.run`` against plain ``ivoryos.run``: the same deck, two
server subprocesses on loopback, each logged in as admin, the pages requested interleaved (the order
of the two servers alternating every round). Prints the median latency ratio per page and the worst
one (target <= 1.05): what the wrapper adds to each of IvoryOS's requests (the hardening's request
guard, headers, the framework's hooks) should cost what a dict lookup costs.

The measurement runs twice, with fresh servers: once with ``ivoryos_plugin.run``'s server started
(and logged in, and warmed up) first, once with plain ``ivoryos.run``'s first. On these machines the
server started first answered slower even when both servers ran the same code: in eight such A/A runs
(2026-12-07, BENCHMARKS.md), 31 of the 32 page ratios, first over second, were above 1 (0.989 to
1.044), so one order alone would add that to the ratio. A page's ratio is the geometric mean of its
two orders' median ratios; both are printed.

Then it measures the same again with plain ``ivoryos.run``'s app given the session cookie handling
``ivoryos_plugin.run`` installs (``hosts/cookie_sessions.py``: IvoryOS's session is no longer signed
and sent again unchanged on every response). ``ivoryos_plugin.run`` saves that work on every request,
which offsets part of what its hooks cost; the second figure, ``ivoryos_pages_hooks_only_worst_median_ratio``
(target <= 1.05 as well), is the cost of the hooks alone.

Run: ``python benchmarks/bench_ivoryos_pages.py`` (about two minutes)."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import figure, finish, free_port, median  # noqa: E402

ROUNDS, PER_ROUND, WARM_UP = 12, 25, 40
PAGES = ("/ivoryos/", "/ivoryos/draft", "/ivoryos/instruments/", "/ivoryos/executions/status")

DECK = '''
import os


class Thermometer:
    """A deck instrument (what IvoryOS lists and builds its forms from)."""

    def __init__(self):
        self.celsius = 21.5

    def read(self) -> float:
        """The temperature."""
        return self.celsius

    def set_point(self, celsius: float = 25.0, ramp_s: int = 10) -> dict:
        """Ramp to a temperature."""
        self.celsius = celsius
        return {{"celsius": celsius, "ramp_s": ramp_s}}


thermometer = Thermometer()
sensor = Thermometer()

if __name__ == "__main__":
    port = int(os.environ["PORT"])
    if {ours!r}:
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, host="127.0.0.1", port=port)
    else:
        import ivoryos

        def with_our_sessions():  # the wrapper's session cookie handling on plain's app too
            from ivoryos.socket_handlers import socketio
            from ivoryos_plugin.hosts.cookie_sessions import keep_unchanged_sessions

            serve = socketio.run

            def run(app, *args, **kwargs):
                keep_unchanged_sessions(app)
                return serve(app, *args, **kwargs)

            socketio.run = run

        if os.environ.get("PLAIN_WITH_OUR_SESSIONS"):
            with_our_sessions()
        del with_our_sessions  # (IvoryOS reads the deck's globals: nothing more may be left there)
        ivoryos.run(__name__, host="127.0.0.1", port=port, debug=False)
'''


def start(ours: bool, folder: Path, same_sessions: bool = False) -> Tuple[subprocess.Popen, str]:
    """A deck server in ``folder`` (its own ivoryos_data), listening on a free port.

    :param same_sessions: plain ``ivoryos.run`` gets the session cookie handling ``ivoryos_plugin.run``
        installs (``hosts/cookie_sessions.py``), so that only the wrapper's per-request hooks differ."""
    port = free_port()
    (folder / "deck.py").write_text(DECK.format(ours=ours))
    env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    if same_sessions:
        env["PLAIN_WITH_OUR_SESSIONS"] = "1"
    env.pop("IVORYOS_ACTIVE", None)
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "deck.py"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the {'wrapped' if ours else 'plain'} server died:\n{(folder / 'server.log').read_text()}")
        try:
            requests.get(f"{base}/ivoryos/auth/login", timeout=2)
            return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not listen within 90 s:\n{(folder / 'server.log').read_text()}")


def login(base: str) -> requests.Session:
    """A session logged in as admin/admin (with the login form's CSRF token when it has one)."""
    session = requests.Session()
    page = session.get(f"{base}/ivoryos/auth/login").text
    form = {"username": "admin", "password": "admin"}
    found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"', page)
    if found:
        form["csrf_token"] = found.group(1)
    reply = session.post(f"{base}/ivoryos/auth/login", data=form)
    if reply.status_code != 200 or not reply.url.rstrip("/").endswith("/ivoryos"):
        raise SystemExit(f"login failed at {base}: {reply.status_code} {reply.url}")
    return session


def timed(session: requests.Session, url: str) -> float:
    began = time.perf_counter()
    reply = session.get(url)
    took = time.perf_counter() - began
    if reply.status_code != 200:
        raise SystemExit(f"{url}: {reply.status_code} {reply.text[:200]}")
    return took


def measure(first: str, same_sessions: bool = False) -> Dict[str, Dict[str, List[float]]]:
    """One measurement with fresh servers, the one labelled ``first`` started, logged in and warmed up
    first: every page's latencies per server (``"ours"``, ``"plain"``).

    :param first: ``"ours"`` or ``"plain"``.
    :param same_sessions: plain's app gets our session cookie handling too (see :func:`start`)."""
    procs: List[subprocess.Popen] = []
    order = (first, "plain" if first == "ours" else "ours")
    with tempfile.TemporaryDirectory(prefix="bench_ivoryos_pages_") as root:
        try:
            servers = {}
            for label in order:
                folder = Path(root) / label
                folder.mkdir()
                proc, base = start(label == "ours", folder, same_sessions)
                procs.append(proc)
                servers[label] = (login(base), base)
            samples: Dict[str, Dict[str, List[float]]] = {page: {"ours": [], "plain": []} for page in PAGES}
            for _ in range(WARM_UP):
                for page in PAGES:
                    for session, base in servers.values():
                        timed(session, base + page)
            for round_no in range(ROUNDS):
                turn = order if round_no % 2 == 0 else order[::-1]
                for page in PAGES:
                    for _ in range(PER_ROUND):
                        for label in turn:
                            session, base = servers[label]
                            samples[page][label].append(timed(session, base + page))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
    return samples


def worst_ratio(same_sessions: bool) -> float:
    """Measure with each server started first once; print every page's ratios and the worst page; that
    page's ratio (the geometric mean of its two orders' median ratios).

    :param same_sessions: plain's app gets our session cookie handling too."""
    halves = {first: measure(first, same_sessions) for first in ("ours", "plain")}
    ratios = {}
    for page in PAGES:
        each = []
        for first, samples in halves.items():
            ours, plain = median(samples[page]["ours"]), median(samples[page]["plain"])
            each.append(ours / plain)
            print(f"{page:<30} {first:>5} started first: ivoryos_plugin.run {ours * 1e3:7.3f} ms   ivoryos.run "
                  f"{plain * 1e3:7.3f} ms   ratio {ours / plain:.3f}   ({len(samples[page]['ours'])} requests each)")
        ratios[page] = math.sqrt(each[0] * each[1])
        print(f"{page:<30} ratio, both orders (geometric mean): {ratios[page]:.3f}")
    worst = max(ratios, key=lambda page: ratios[page])
    print(f"worst page: {worst}")
    return ratios[worst]


def main() -> None:
    print("ivoryos_plugin.run against plain ivoryos.run:")
    figure("ivoryos_pages_worst_median_ratio", worst_ratio(False), "<=1.05")
    # part of what ivoryos_plugin.run saves is IvoryOS's session cookie, no longer signed and sent
    # again unchanged on every response (hosts/cookie_sessions.py); with plain given the same, what
    # is left is the cost of the wrapper's own hooks on each request
    print("the same, with plain ivoryos.run given ivoryos_plugin.run's session cookie handling:")
    figure("ivoryos_pages_hooks_only_worst_median_ratio", worst_ratio(True), "<=1.05")
    finish()


if __name__ == "__main__":
    main()
