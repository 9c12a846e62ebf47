"""``plugin_host``: one test, run on both IvoryOS generations, and ``plugin_server``: the plugin's app on a
real port (part of the opt-in pytest kit).

A test that asks for ``plugin_host`` runs twice, with the ids ``[ivoryos]`` and ``[edge]``:

- ``ivoryos``: the plugin on the IvoryOS 1.x stack as the kit has always served it (the dev host of
  ``plugin_app``: IvoryOS's URLs, Socket.IO namespace and runner lock), with the logged-in ``client``
  and the Socket.IO ``live`` client;
- ``edge``: the plugin on a real ivoryos-edge server in this process (127.0.0.1, a free port; see
  :mod:`ivoryos_plugin.hosts.edge.inprocess`), a new edge plugin per test on the test's ``deck``, with
  an HTTP client and a WebSocket live client that answer as the Flask ones do
  (:mod:`ivoryos_plugin.tools.testing.edge`). Skipped, saying how to
  install it, when the ``[edge]`` extra is not installed.

URLs are built from the host, never written out: ``plugin_host.url("actions/tare")``,
``plugin_host.asset("vendor/uPlot.iife.min.js")``, ``plugin_host.deck_url()``. The deck is held as a
run holds it with ``with plugin_host.deck_busy(): ...``::

    def test_tare(plugin_host):
        reply = plugin_host.client.post(plugin_host.url("actions/tare"), json={})
        assert reply.status_code == 200, reply.get_json()
"""
from __future__ import annotations

import contextlib
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterator, List, Optional, Type

import pytest

from ...core.clock import start_thread
from ...hosts.extras import EDGE_INSTALL, edge_missing
from .edge import EdgeClient, EdgeLive

if TYPE_CHECKING:
    from werkzeug.serving import WSGIRequestHandler

__all__ = ["HOSTS", "EDGE_MISSING", "PluginHost", "plugin_host", "serve_app", "plugin_server"]

#: the hosts ``plugin_host`` runs each test on (its parameter ids)
HOSTS = ("ivoryos", "edge")
#: why the edge parameter is skipped without the extra
EDGE_MISSING = f"ivoryos-edge is not installed, so this test does not run on the edge: {EDGE_INSTALL}"


class PluginHost:
    """The plugin under test on one host (``plugin_host``).

    :param name: ``"ivoryos"`` or ``"edge"``.
    :param plugin: the plugin.
    :param client: a client of the host (the Flask test client's calls).
    :param deck: the deck the host runs on (the ``deck`` fixture).
    :param prefix: where the plugin's URLs start (``/ivoryos/<name>`` or ``/plugins/<name>``).
    :param framework: where the framework's assets start.
    :param deck_json: the deck state's URL.
    :param health_json: the health information's URL.
    :param live: makes the live client (on first use).
    :param hold: holds the deck as a run does.
    :param stream: reads the first bytes of a streamed reply.
    :param instruments: the host's instrument mapping when it is not the deck module itself (the edge's)."""

    def __init__(self, name: str, plugin: Any, client: Any, deck: types.ModuleType, prefix: str, framework: str,
                 deck_json: str, health_json: str, live: Callable[[], Any], hold: Callable[[], ContextManager[None]],
                 stream: Callable[[str, int, float], bytes], instruments: Optional[Dict[str, Any]] = None) -> None:
        self.name = name
        self.plugin = plugin
        self.client = client
        self.deck = deck
        self.prefix = prefix
        self._framework = framework
        self._deck_json = deck_json
        self._health_json = health_json
        self._make_live = live
        self._live: Any = None
        self._hold = hold
        self._stream = stream
        self._instruments = instruments

    def url(self, path: str = "") -> str:
        """The URL path of ``path`` under the plugin (``url("actions/tare")``).

        :param path: relative to the plugin's prefix."""
        return f"{self.prefix}/{path.lstrip('/')}"

    def asset(self, filename: str) -> str:
        """The URL path of one of the framework's static files (``asset("vendor/uPlot.iife.min.js")``).

        :param filename: relative to the framework's ``static/``."""
        return f"{self._framework}/static/{filename.lstrip('/')}"

    def deck_url(self) -> str:
        """The URL path of the deck state (``{"busy", "verified", "reason", "run"}``)."""
        return self._deck_json

    def health_url(self) -> str:
        """The URL path of the health information as JSON (``"warnings"``, ``"failures"``...: the framework's
        ``status.json`` on IvoryOS 1.x, the plugin's ``health.json`` on the edge)."""
        return self._health_json

    @property
    def live(self) -> Any:
        """The page's live client, connected on first use: ``subscribe``, ``call``, ``received``,
        ``wait_for``."""
        if self._live is None:
            self._live = self._make_live()
        return self._live

    def add_instrument(self, name: str, instrument: Any) -> None:
        """Add an instrument to the running deck (the deck module, and the edge's instrument mapping).

        :param name: its name on the deck.
        :param instrument: the object."""
        setattr(self.deck, name, instrument)
        if self._instruments is not None:
            self._instruments[name] = instrument

    def deck_busy(self) -> ContextManager[None]:
        """Hold the deck as a run does (IvoryOS's runner lock; on the edge, a manual call in flight)."""
        return self._hold()

    def read_stream(self, path: str, size: int, timeout: float = 10.0) -> bytes:
        """The first ``size`` bytes (or fewer, when it ends) of a streamed reply, then close it.

        :param path: the URL path (``url("cameras/deck/stream.mjpg")``).
        :param size: how many bytes.
        :param timeout: seconds."""
        return self._stream(path, size, timeout)


@contextlib.contextmanager
def serve_app(app: Any, request_handler: Optional[Type["WSGIRequestHandler"]] = None) -> Iterator[str]:
    """Serve ``app`` over real HTTP while the ``with`` lasts, for what a test client cannot do (a real
    browser, another process): Werkzeug's threaded server on 127.0.0.1 and a free port, in one of the
    framework's threads (``ivoryos_plugin-test-http``), shut down, closed and joined on exit::

        with serve_app(plugin_app) as base:
            page.goto(f"{base}/ivoryos/hello/")

    :param app: a WSGI app (``plugin_app``, ``ivoryos_app``).
    :param request_handler: the server's request handler class, a subclass of Werkzeug's
        ``WSGIRequestHandler`` (e.g. one whose ``log`` does nothing, for a test that sends many
        requests); Werkzeug's own when None.
    :returns: (yields) the base URL, ``http://127.0.0.1:<port>``."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=request_handler)
    thread = start_thread("test-http", server.serve_forever)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def plugin_server(plugin_app: Any) -> Iterator[str]:
    """``plugin_app`` served over real HTTP for the test (:func:`serve_app`): its base URL,
    ``http://127.0.0.1:<port>``; log a browser in with ``?token=`` and ``plugin_app.config["IVORYOS_PLUGIN_TOKEN"]``."""
    with serve_app(plugin_app) as base:
        yield base


def _read_first(chunks: Iterator[bytes], size: int, timeout: float) -> bytes:
    body = b""
    deadline = time.monotonic() + timeout
    for chunk in chunks:
        body += chunk
        if len(body) >= size or time.monotonic() > deadline:
            break
    return body[:size]


def _on_ivoryos(request: pytest.FixtureRequest, plugin: Any, deck: types.ModuleType) -> PluginHost:
    app = request.getfixturevalue("plugin_app")
    client = request.getfixturevalue("client")
    url_prefix = str(app.config.get("URL_PREFIX", "/ivoryos")).rstrip("/")

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        lock = app.extensions["ivoryos_plugin"].runner_lock  # as IvoryOS's runner holds it during a workflow
        assert lock.acquire(timeout=5), "the runner lock is held by something else"
        try:
            yield
        finally:
            lock.release()

    def stream(path: str, size: int, timeout: float) -> bytes:
        reply = client.get(path, buffered=False)
        try:
            assert reply.status_code == 200, reply.status_code
            return _read_first(iter(reply.response), size, timeout)
        finally:
            reply.close()

    return PluginHost("ivoryos", plugin, client, deck, f"{url_prefix}/{plugin.name}", f"{url_prefix}/plugins",
                      f"{url_prefix}/plugins/deck.json", f"{url_prefix}/plugins/status.json", lambda: request.getfixturevalue("live"), hold, stream)


@pytest.fixture(params=HOSTS)
def plugin_host(request: pytest.FixtureRequest, plugin: Any, deck: types.ModuleType, tmp_path: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginHost]:
    """The ``plugin`` fixture on each host in turn (``[ivoryos]``, ``[edge]``): the test runs twice.
    The edge run is skipped, saying how to install it, without the ``[edge]`` extra."""
    if request.param == "ivoryos":
        yield _on_ivoryos(request, plugin, deck)
        return
    if edge_missing() is not None:
        pytest.skip(EDGE_MISSING)
    from ...hosts.edge import inprocess

    edge = inprocess.shared(tmp_path_factory.getbasetemp() / "ivoryos_edge_in_process")
    served = edge.serve(plugin, deck, tmp_path / "edge" / "plugins")
    client = EdgeClient(edge.base)
    prefix = f"/plugins/{plugin.name}"
    lives: List[EdgeLive] = []

    def live() -> EdgeLive:
        lives.append(EdgeLive(edge.base.replace("http://", "ws://", 1) + f"{prefix}/live"))
        return lives[-1]

    def stream(path: str, size: int, timeout: float) -> bytes:
        with client.get(path, stream=True) as reply:
            assert reply.status_code == 200, reply.status_code
            return _read_first(reply.chunks(), size, timeout)

    try:
        yield PluginHost("edge", plugin, client, deck, prefix, f"{prefix}/_framework", f"{prefix}/deck.json",
                         f"{prefix}/health.json", live,
                         edge.hold, stream, instruments=edge.instruments)
    finally:
        for each in lives:
            each.close()
        client.close()
        edge.stop(served)
