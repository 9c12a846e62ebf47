"""History fails closed (security round three): a PostgreSQL that accepts connections but never
answers (frozen with SIGSTOP, postmaster and backends) costs a request at most a few seconds and
IvoryOS nothing (its login, pages and plugin actions keep working; its own database pool is never
the history's); every queued value is written once the database thaws; passwords never show; CSV
exports are safe to open in a spreadsheet and their file names safe in a header; ``?run=`` keeps one
host's run apart from another host's run of the same number."""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import http.client
import io
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import quote, unquote

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime.history import HistoryStore, HistoryUnavailable, mask_url
from ivoryos_plugin.runtime.history.views import attachment
from ivoryos_plugin.testing import serve_app
from support import PY, ROOT, Server, free_port, ivoryos_login, launch
from test_history import Postgres

PLUGINS = ROOT / "tests" / "plugins"
USER_SECRET = "userinfo-s3cret"
QUERY_SECRET = "query-s3cret"


# ------------------------------------------------------------------ a frozen PostgreSQL
@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.remove()


def _children(pid: int) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def frozen(pg: Postgres) -> Iterator[List[int]]:
    """SIGSTOP the postmaster (first: it forks no backend meanwhile) and every process it started
    (backends, checkpointer, writers): the kernel still accepts connections, nobody answers. SIGCONT
    all of them on the way out, whatever happened."""
    postmaster = int((pg.base / "data" / "postmaster.pid").read_text().split()[0])
    stopped: List[int] = []
    try:
        os.kill(postmaster, signal.SIGSTOP)
        stopped.append(postmaster)
        for pid in _children(postmaster):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        assert len(stopped) >= 4, f"the postmaster and its processes: {stopped}"
        deadline = time.monotonic() + 5
        while any(_state(pid) != "T" for pid in stopped):
            assert time.monotonic() < deadline, [(pid, _state(pid)) for pid in stopped]
            time.sleep(0.01)
        yield stopped
    finally:
        for pid in reversed(stopped):
            os.kill(pid, signal.SIGCONT)


def secret_url(pg: Postgres) -> str:
    """The cluster's URL with a password in the userinfo and one as a query parameter (the cluster
    trusts local connections: both are sent and ignored)."""
    return pg.url.replace("postgres@", f"postgres:{USER_SECRET}@") + f"?password={QUERY_SECRET}"


def within(seconds: float, call: Any) -> Any:
    """``call()`` in a thread of its own: its result (or its exception), or a failure when it has not
    returned after ``seconds`` (a call that hangs fails the test instead of hanging it)."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def clean(pg: Postgres) -> None:
    from ivoryos_plugin.runtime.history import samples

    store = HistoryStore(pg.url)
    try:
        with store.engine().begin() as conn:
            conn.execute(samples.delete())
    finally:
        store.stop()


def test_a_frozen_postgres_costs_a_read_seconds_and_loses_no_queued_value(postgres: Postgres) -> None:
    """The store alone: reads answer HistoryUnavailable within 5 s (then at once while it stays
    frozen), the health status within 5 s, the writer keeps every value queued meanwhile and
    writes each exactly once after SIGCONT."""
    clean(postgres)
    store = HistoryStore(secret_url(postgres))
    try:
        for i in range(100):
            store.record("frz", "s", i)
        assert store.flush() and store.query("frz", "s")["count"] == 100
        with frozen(postgres):
            for i in range(100, 300):
                store.record("frz", "s", i)
            timings = []
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(HistoryUnavailable, match="did not answer") as caught:
                    within(10, lambda: store.query("frz", "s"))
                timings.append(time.monotonic() - started)
                assert QUERY_SECRET not in str(caught.value) and USER_SECRET not in str(caught.value)
            assert timings[0] <= 5.0 and max(timings[1:]) <= 0.5, timings
            started = time.monotonic()
            status = within(10, lambda: store.status("frz"))
            assert time.monotonic() - started <= 5.0
            assert status["available"] is False and "did not answer" in status["unavailable"]
            assert status["queued"] == 200, "every value taken while frozen is kept"
            time.sleep(RETRY_PAST)  # the next read tries the database again, and is bounded again
            started = time.monotonic()
            with pytest.raises(HistoryUnavailable):
                within(10, lambda: store.last_run("frz", "s"))
            assert time.monotonic() - started <= 5.0
        deadline = time.monotonic() + 30
        while (store.error or store.status("frz")["queued"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.error == "" and store.status("frz")["available"] is True
        got = [p["value"] for p in store.query("frz", "s", max_points=10_000)["points"]]
        assert got == list(range(300)), "each value once, in order, after the thaw"
        assert store.counts.dropped == 0
    finally:
        store.stop()


RETRY_PAST = 5.2  # a little more than history.RETRY_S


class CuttingProxy:
    """A TCP relay to PostgreSQL on 127.0.0.1 that can drop what one side sends: the network
    failing between a COMMIT and its answer."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.drop_requests, self.drop_replies = threading.Event(), threading.Event()
        self.sockets: List[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, name="pg-proxy", daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            for source, sink, drop in ((client, server, self.drop_requests), (server, client, self.drop_replies)):
                pump = threading.Thread(target=self._pump, args=(source, sink, drop), name="pg-proxy-pump", daemon=True)
                self.threads.append(pump)
                pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, drop: threading.Event) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            if drop.is_set():
                continue
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(5)
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("lost", ["answer", "commit"], ids=["commit-applied-answer-lost", "commit-lost"])
def test_a_batch_whose_commit_got_no_answer_is_written_exactly_once(postgres: Postgres, lost: str) -> None:
    """The connection dies after the COMMIT was sent: either the server applied it and its answer
    was lost, or the COMMIT never arrived. The store cannot tell at the time; after the outage the
    writers table tells it, and each value is in the database exactly once."""
    from sqlalchemy import event

    clean(postgres)
    proxy = CuttingProxy(postgres.port)
    store = HistoryStore(postgres.url.replace(f":{postgres.port}/", f":{proxy.port}/"))
    store._stop.set()  # no writer thread: this test writes (flush) itself
    try:
        engine = store.engine()
        drop = proxy.drop_replies if lost == "answer" else proxy.drop_requests
        def cut(conn: Any) -> None:  # SQLAlchemy's commit event: just before the COMMIT is sent
            drop.set()

        event.listen(engine, "commit", cut)
        for i in range(500):
            store.record("doubt", "s", i)
        started = time.monotonic()
        assert store.flush(deadline=time.monotonic() + 2.0) is False, "no answer to the COMMIT"
        assert time.monotonic() - started <= 3.0
        assert store.status("doubt")["queued"] == 500 and store.counts.written == 0
        event.remove(engine, "commit", cut)
        drop.clear()  # the network is back
        for i in range(500, 600):
            store.record("doubt", "s", i)
        assert store.flush(), store.error
        assert store.counts.written == 600 and store.status("doubt")["queued"] == 0
        assert [p["value"] for p in store.query("doubt", "s", max_points=10_000)["points"]] == list(range(600))
    finally:
        store.stop()
        proxy.close()


# ------------------------------------------------------------------ IvoryOS with a frozen history database
DECK = '''
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor

sensor = Sensor()

if __name__ == "__main__":
    from flask import current_app
    from history_plugin import plugin as recorder_plugin
    from ivoryos_plugin import Plugin
    import ivoryos_plugin

    pools = Plugin("pools", __name__, template_folder=None)
    pools.add_url_rule("/", "main", lambda: "pools")

    @pools.action(hardware=False)
    def engines():
        store = current_app.extensions["ivoryos_plugin"].history()
        history = store.engine().pool
        theirs = list(current_app.extensions["sqlalchemy"].engines.values())
        return {{"ivoryos_engines": len(theirs), "shared": any(e.pool is history for e in theirs),
                 "history_pool": type(history).__name__}}

    ivoryos_plugin.run(__name__, plugins=[recorder_plugin, pools], port=int(os.environ["PORT"]))
'''


@pytest.fixture
def frozen_ivoryos(postgres: Postgres, tmp_path: Path) -> Iterator[Server]:
    clean(postgres)
    server = launch(DECK.format(plugins=str(PLUGINS)), tmp_path, "frozen_deck.py",
                    env={"IVORYOS_PLUGIN_HISTORY_URL": secret_url(postgres), "REC_HZ": "20"})
    try:
        yield server
    finally:
        server.stop()


def _timed(call: Any) -> Tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


@pytest.mark.server
def test_ivoryos_keeps_working_while_the_history_database_is_frozen(postgres: Postgres,
                                                                     frozen_ivoryos: Server) -> None:
    base = f"{frozen_ivoryos.base}/ivoryos"
    s = ivoryos_login(frozen_ivoryos.base)
    engines = s.post(f"{base}/pools/actions/engines", json={}).json()
    assert engines["ivoryos_engines"] >= 1 and engines["shared"] is False, engines
    deadline = time.monotonic() + 30
    while s.get(f"{base}/recorder/history/count", timeout=10).json().get("count", 0) < 20:
        assert time.monotonic() < deadline, "the recorder writes to PostgreSQL"
        time.sleep(0.3)
    with frozen(postgres):
        before = s.post(f"{base}/recorder/actions/produced", json={}).json()["n"]
        # 25 readers at once (more than IvoryOS's pool of 5 + 10 connections), CSV and JSON, plus the health JSON
        urls = [f"{base}/recorder/history/count" + (".csv" if i % 3 == 0 else "") for i in range(25)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=26) as pool:
            reads = [pool.submit(_timed, lambda url=url: s.get(url, timeout=15)) for url in urls]
            health = pool.submit(_timed, lambda: s.get(f"{base}/plugins/status.json", timeout=15))
            time.sleep(0.5)
            login_s, fresh = _timed(lambda: ivoryos_login(frozen_ivoryos.base))  # IvoryOS's own login and database
            page_s, page = _timed(lambda: fresh.get(f"{base}/", timeout=15))
            action_s, action = _timed(lambda: fresh.post(f"{base}/recorder/actions/produced", json={}, timeout=15))
            results = [r.result() for r in reads]
            health_s, status = health.result()
        assert login_s <= 6.0 and page.status_code == 200 and page_s <= 6.0, (login_s, page.status_code, page_s)
        assert action.status_code == 200 and action.json()["n"] > before and action_s <= 6.0, (action.text, action_s)
        slowest = max(elapsed for elapsed, _ in results)
        assert slowest <= 5.0, f"history answered after {slowest:.1f} s"
        for _, reply in results:
            assert reply.status_code == 503, reply.text
            message = reply.json()["error"]
            assert message.startswith("Plugin 'recorder': the history database postgresql+psycopg://postgres:***@")
            assert "password=***" in message and "IVORYOS_PLUGIN_HISTORY_URL" in message, message
            assert USER_SECRET not in reply.text and QUERY_SECRET not in reply.text
            assert reply.headers["Retry-After"] == "5"
        assert health_s <= 5.0 and status.status_code == 200, (health_s, status.status_code)
        recorder = next(p for p in status.json()["plugins"] if p["name"] == "recorder")
        assert recorder["history"]["available"] is False and recorder["history"]["unavailable"], recorder["history"]
        assert USER_SECRET not in status.text and QUERY_SECRET not in status.text
        assert recorder["history"]["database"].endswith("/history?password=***")
        time.sleep(3.0)  # the recorder keeps producing: its values are queued
        during = s.post(f"{base}/recorder/actions/produced", json={}).json()["n"]
        queued = s.get(f"{base}/plugins/status.json", timeout=10).json()
        assert next(p for p in queued["plugins"] if p["name"] == "recorder")["history"]["queued"] > 0
    deadline = time.monotonic() + 40
    while True:
        reply = s.get(f"{base}/recorder/history/count?max_points=100000", timeout=10)
        values = [p["value"]["value"] for p in reply.json().get("points", [])] if reply.status_code == 200 else []
        if values and values[-1] >= during:
            break
        assert time.monotonic() < deadline, (reply.status_code, reply.text[:300])
        time.sleep(0.5)
    assert values == list(range(1, len(values) + 1)), "no value queued while frozen is lost or doubled"
    health = s.get(f"{base}/plugins/status.json", timeout=10).json()
    history = next(p for p in health["plugins"] if p["name"] == "recorder")["history"]
    assert history["available"] is True and history["dropped"] == 0 and history["gaps"][-1]["ended"] is not None
    log = frozen_ivoryos.output()
    assert "cannot write to postgresql+psycopg://postgres:***@" in log, log[-3000:]
    assert USER_SECRET not in log and QUERY_SECRET not in log


# ------------------------------------------------------------------ passwords
@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://lab:pw1@db.example/history", "postgresql+psycopg://lab:***@db.example/history"),
    ("postgresql+psycopg://lab@db.example/history?password=pw1",
     "postgresql+psycopg://lab@db.example/history?password=***"),
    ("postgresql+psycopg://lab@db.example/history?sslmode=require&PASSWORD=pw1&passwd=pw2&pwd=pw3&sslpassword=pw4",
     "postgresql+psycopg://lab@db.example/history?PASSWORD=***&passwd=***&pwd=***&sslmode=require&sslpassword=***"),
    ("postgresql+psycopg://lab:p%40w1@db.example/history?password=a&password=b",
     "postgresql+psycopg://lab:***@db.example/history?password=***"),
    ("not a url://lab:pw1@host/x?password=pw2", "not a url://lab:***@host/x?password=***"),
], ids=["userinfo", "query", "every-name", "repeated", "unparsable"])
def test_mask_url_hides_every_password(url: str, shown: str) -> None:
    masked = mask_url(url)
    assert masked == shown
    assert not any(secret in masked for secret in ("pw1", "pw2", "pw3", "pw4", "p%40w1", "p@w1"))


def test_a_password_in_the_query_never_reaches_the_log_or_the_health_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A database that is down: the log's error line and the health JSON name it masked."""
    url = f"postgresql+psycopg://lab:{USER_SECRET}@127.0.0.1:{free_port()}/history?password={QUERY_SECRET}"
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", url)
    plugin = Plugin("masked", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
    from ivoryos_plugin.testing import login_client

    try:
        with caplog.at_level(logging.ERROR, logger="ivoryos_plugin.history"), app.app_context():
            plugin.record_value("x", 1.0)
            store = app.extensions["ivoryos_plugin"].history()
            deadline = time.monotonic() + 10
            while not store.error and time.monotonic() < deadline:
                time.sleep(0.05)
        client = login_client(app)
        status = client.get("/ivoryos/plugins/status.json")
        reply = client.get("/ivoryos/masked/history/x")
    finally:
        stop(app)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"cannot write to postgresql+psycopg://lab:***@127.0.0.1" in logged and "password=***" in logged, logged
    history = next(p for p in status.get_json()["plugins"] if p["name"] == "masked")["history"]
    assert history["database"].endswith("/history?password=***") and history["available"] is False
    assert reply.status_code == 503 and "password=***" in reply.get_json()["error"]
    for text in (logged, status.get_data(as_text=True), reply.get_data(as_text=True)):
        assert USER_SECRET not in text and QUERY_SECRET not in text


# ------------------------------------------------------------------ CSV and Content-Disposition over real HTTP
class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, str]]:
    """The dev host on a real Werkzeug server in a thread (the server a dev host runs), with a
    bearer token; recorded series with hostile names and hostile text values."""
    plugin = Plugin("csvp", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path_factory.mktemp("csv") / "data", token="csv-token", testing=True)
    with app.app_context():
        for name in NAMES.values():
            plugin.record_value(name, 1.0)
        for value in CELLS:
            plugin.record_value("cells", value)
    try:
        with serve_app(app, request_handler=_Quiet) as base:
            yield base.removeprefix("http://"), "csv-token"
    finally:
        stop(app)


NAMES = {"quote": 'we"ight', "crlf": "a\r\nSet-Cookie: x=1", "nul": "a\x00b", "latin1": "gewicht-\u00e9",
         "cyrillic": "\u0432\u0435\u0441", "emoji": "scale-\U0001f600", "semicolon": "a; filename=evil.exe",
         "backslash": "a\\\"b", "percent": "100%25"}
CELLS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain", "-7", 12.5,
         -3.25, -4, {"value": 1}, ["=a"]]


def _get(address: str, token: str, path: str) -> Tuple[int, Dict[str, str], bytes]:
    """GET ``path`` as the bytes given (http.client, no normalising), at most 10 s."""
    conn = http.client.HTTPConnection(address, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


@pytest.mark.parametrize("name", list(NAMES.values()), ids=list(NAMES))
def test_a_hostile_series_name_gives_a_safe_content_disposition(served: Tuple[str, str], name: str) -> None:
    address, token = served
    status, headers, body = _get(address, token, "/ivoryos/csvp/history/" + quote(name, safe="") + ".csv")
    if "\x00" in name and status == 404:  # (the framework refuses a path holding a NUL before any view)
        assert "NUL" in body.decode() and "content-disposition" not in headers
        name_header = attachment(f"csvp-{name}.csv")
        assert "\x00" not in name_header and name_header.startswith('attachment; filename="csvp-a_b.csv"')
        return
    assert status == 200, body[:300]
    disposition = headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "\x00" not in disposition
    assert "set-cookie" not in headers
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in fallback), disposition
    assert disposition.startswith(f'attachment; filename="{fallback}"')
    assert disposition.count(";") == (2 if "filename*" in disposition else 1), disposition
    real = unquote(disposition.split("filename*=UTF-8''", 1)[1]) if "filename*" in disposition else fallback
    expected = "".join("_" if ord(c) < 32 or c == "\x7f" else c for c in f"csvp-{name}.csv")
    assert real == expected
    assert body.decode().splitlines()[0] == "t,time,value,run,step,data"


def test_csv_cells_that_a_spreadsheet_would_run_are_prefixed(served: Tuple[str, str]) -> None:
    address, token = served
    status, headers, body = _get(address, token, "/ivoryos/csvp/history/cells.csv")
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="csvp-cells.csv"'
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == ["t", "time", "value", "run", "step", "data"]
    got = [row[2] for row in rows[1:]]
    assert got == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tTAB", "'\rCR", "plain",
                   "'-7", "12.5", "-3.25", "-4", "1", '["=a"]'], got
    assert [row[5] for row in rows[1:]][-2:] == ['{"value": 1}', ""]  # a dict's whole reading, as JSON
    for row in rows[1:]:  # the cells the framework writes itself: numbers and times
        assert float(row[0]) > 0 and row[1][:2] == "20"


# ------------------------------------------------------------------ ?run= is one host's run
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_run_keeps_one_hosts_run_apart_from_another_hosts_run_of_the_same_number(
        backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        clean(pg)
        url = pg.url
    other = HistoryStore(url)  # IvoryOS on another machine writing to the same database
    other.machine = "another-lab-pc"
    try:
        for i in range(5):
            other.record("runp", "s", {"value": 100 + i, "host": "other"}, run={"run_id": 7, "step": 1})
        other.record("runp", "s", {"value": 999, "host": "other"}, run={"run_id": 9, "step": 1})
        assert other.flush()
    finally:
        other.stop()
    monkeypatch.setenv("IVORYOS_PLUGIN_HISTORY_URL", url)
    plugin = Plugin("runp", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    app = create_app([plugin], data_dir=tmp_path / "data", testing=True)
    from ivoryos_plugin.testing import login_client

    try:
        store = app.extensions["ivoryos_plugin"].history()
        for i in range(3):
            store.record("runp", "s", {"value": i, "host": "mine"}, run={"run_id": 7, "step": 2})
        store.record("runp", "s", {"value": 50, "host": "mine"})
        client = login_client(app)
        body = client.get("/ivoryos/runp/history/s?run=7").get_json()
        assert [p["value"]["value"] for p in body["points"]] == [0, 1, 2], body
        assert body["last_run"] == 7, "the other host's run 9 is not this host's newest"
        csv_rows = client.get("/ivoryos/runp/history/s.csv?run=7").get_data(as_text=True).splitlines()[1:]
        assert len(csv_rows) == 3 and all('"mine"' in row for row in csv_rows), csv_rows
        everything = client.get("/ivoryos/runp/history/s").get_json()
        assert everything["count"] == 10, "without ?run= every host's values are there"
    finally:
        stop(app)
