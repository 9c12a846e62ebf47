"""``plugin_host``: one test, run on both IvoryOS generations (part of the opt-in pytest kit).

A test that asks for ``plugin_host`` runs twice, with the ids ``[ivoryos]`` and ``[edge]``:

- ``ivoryos``: the plugin on the IvoryOS 1.x stack as the kit has always served it (the dev host of
  ``plugin_app``: IvoryOS's URLs, Socket.IO namespace and runner lock), with the logged-in ``client``
  and the Socket.IO ``live`` client;
- ``edge``: the plugin on a real ivoryos-edge server in this process (127.0.0.1, a free port; see
  :mod:`ivoryos_plugin.hosts.edge.inprocess`), a new edge plugin per test on the test's ``deck``, with
  an HTTP client and a WebSocket live client that answer as the Flask ones do. Skipped, saying how to
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
import itertools
import json
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional

import pytest

from ..hosts.extras import EDGE_INSTALL, edge_missing

__all__ = ["HOSTS", "EDGE_MISSING", "PluginHost", "EdgeClient", "EdgeReply", "EdgeLive", "plugin_host"]

#: the hosts ``plugin_host`` runs each test on (its parameter ids)
HOSTS = ("ivoryos", "edge")
#: why the edge parameter is skipped without the extra
EDGE_MISSING = f"ivoryos-edge is not installed, so this test does not run on the edge: {EDGE_INSTALL}"


class EdgeReply:
    """An HTTP reply from the edge with the Flask test response's API (``status_code``, ``headers``,
    ``mimetype``, ``data``, ``get_data``, ``get_json``, ``json``), usable in ``with``.

    :param response: the httpx response."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code: int = response.status_code
        self.headers = response.headers

    @property
    def mimetype(self) -> str:
        """The media type, without its parameters."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip()

    @property
    def data(self) -> bytes:
        """The body."""
        return bytes(self.response.read())

    def get_data(self, as_text: bool = False) -> Any:
        """The body, as text with ``as_text``.

        :param as_text: decode it."""
        body = self.data
        return body.decode(self.response.encoding or "utf-8") if as_text else body

    def get_json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    @property
    def json(self) -> Any:
        """As :meth:`get_json`."""
        return self.get_json()

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (a stream)."""
        return iter(self.response.iter_raw())

    def close(self) -> None:
        """Close the reply (a stream ends)."""
        self.response.close()

    def __enter__(self) -> "EdgeReply":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EdgeClient:
    """An HTTP client of the edge with the Flask test client's calls: ``get/post/put/patch/delete/head
    (path, json=, data=, headers=, stream=)``; a path is relative to the edge's root.

    :param base: ``http://127.0.0.1:<port>``."""

    def __init__(self, base: str) -> None:
        import httpx  # a dependency of ivoryos-edge

        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30.0, follow_redirects=False)

    def open(self, method: str, path: str, *, json: Any = None, data: Any = None,
             headers: Optional[Dict[str, str]] = None, stream: bool = False) -> EdgeReply:
        """One request.

        :param method: the HTTP method.
        :param path: the URL path (with its query).
        :param json: a JSON body.
        :param data: a raw body.
        :param headers: more headers.
        :param stream: do not read the body yet (:meth:`EdgeReply.chunks`)."""
        content = data if isinstance(data, (bytes, str)) else None
        request = self.http.build_request(method, path, json=json, content=content,
                                          data=None if content is not None else data, headers=headers)
        response = self.http.send(request, stream=stream)
        return EdgeReply(response)

    def get(self, path: str, **kwargs: Any) -> EdgeReply:
        """``GET``.

        :param path: the path.
        :param kwargs: as :meth:`open`."""
        return self.open("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> EdgeReply:
        """``HEAD``."""
        return self.open("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> EdgeReply:
        """``POST``."""
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> EdgeReply:
        """``PUT``."""
        return self.open("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> EdgeReply:
        """``PATCH``."""
        return self.open("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> EdgeReply:
        """``DELETE``."""
        return self.open("DELETE", path, **kwargs)

    def close(self) -> None:
        """Close its connections."""
        self.http.close()


class EdgeLive:
    """The page's side of the plugin's live channel on the edge (its WebSocket), with the Socket.IO
    ``live`` client's calls: ``subscribe``, ``call``, ``received``, ``wait_for``.

    :param url: ``ws://127.0.0.1:<port>/plugins/<name>/live``."""

    def __init__(self, url: str) -> None:
        import websocket  # websocket-client, the kit's [test] extra

        self.ws = websocket.create_connection(url, timeout=10)
        self.seen: List[Dict[str, Any]] = []
        self._acks: Dict[int, Any] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True, name="ivoryos_plugin-test-live")
        self._reader.start()
        # one round trip: what the channel replays as a page connects (the last published values) has
        # arrived once this is answered, as the Socket.IO test client has it when it is connected
        self._ask({"op": "unsubscribe", "stream": ""}, 10.0)

    def _read(self) -> None:
        while self._open:
            try:
                text = self.ws.recv()
            except Exception:
                break
            if not text:
                break
            frame = json.loads(text)
            with self._cond:
                if frame.get("type") == "ack":
                    self._acks[frame.get("id")] = frame.get("data")
                else:
                    self.seen.append(frame)
                self._cond.notify_all()
        with self._cond:
            self._open = False
            self._cond.notify_all()

    def _ask(self, message: Dict[str, Any], timeout: float) -> Any:
        ident = next(self._ids)
        self.ws.send(json.dumps({**message, "id": ident}))
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0 or not self._open:
                    raise AssertionError(f"no acknowledgement of {message} within {timeout} s")
                self._cond.wait(left)
            return self._acks.pop(ident)

    def call(self, event: str, data: Any = None, timeout: float = 10.0) -> Any:
        """Emit ``event`` with ``data`` to a ``@plugin.on`` handler and return its acknowledgement.

        :param event: the event.
        :param data: the payload.
        :param timeout: seconds."""
        return self._ask({"op": "emit", "event": event, "data": data}, timeout)

    def subscribe(self, stream: str, timeout: float = 10.0) -> Dict[str, Any]:
        """Subscribe to a ``@plugin.stream``; returns the acknowledgement (``{"ok": True, "hz": ...}``).

        :param stream: the stream's name.
        :param timeout: seconds."""
        return dict(self._ask({"op": "subscribe", "stream": stream}, timeout) or {})

    def received(self, event: Optional[str] = None) -> List[Any]:
        """Every payload of ``event`` received so far, in order (``None``: every event, as
        ``{"name", "args"}``).

        :param event: an event's name, or None."""
        with self._cond:
            frames = [f for f in self.seen if f.get("type") == "event"]
        if event is None:
            return [{"name": f["event"], "args": [f.get("data")]} for f in frames]
        return [f.get("data") for f in frames if f["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> List[Any]:
        """Wait until ``count`` payloads of ``event`` arrived; returns them all (fails after ``timeout``).

        :param event: the event.
        :param count: how many.
        :param timeout: seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received(event)
            if len(got) >= count:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{event!r}: received {len(got)} of {count} within {timeout} s; got "
                                     f"{[f.get('event') or f.get('type') for f in self.seen][-20:]}")
            with self._cond:
                self._cond.wait(min(left, 0.1))

    def close(self) -> None:
        """Close the WebSocket."""
        self._open = False
        try:
            self.ws.close()
        finally:
            self._reader.join(5)


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
    from ..hosts.edge import inprocess

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
