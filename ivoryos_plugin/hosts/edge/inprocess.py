"""One real ivoryos-edge server in this process, for the pytest kit (``plugin_host``'s ``"edge"``).

The edge keeps one FastAPI app per process (``ivoryos_edge.server.app``, its data folder fixed when it
is imported), as IvoryOS 1.x keeps one Flask app: the kit starts it once, on 127.0.0.1 and a free port
(uvicorn in a thread, the edge's own start-up and Origin/Host guard), and serves the plugin under test
on it, test after test. Each test gets a new edge plugin of its own (:func:`~.builder.build`: a fresh
runtime, settings and history in the test's folder), the test's deck as the edge's instruments (the
same objects), and the plugin's steps instrument on that deck, as the edge's queue sees it.

A test holds the deck as the edge itself does while it runs a manual call (:meth:`InProcessEdge.hold`:
a real ``POST /api/execute`` that waits), which is what the plugin's busy guard reads.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import uvicorn

from ...core.clock import start_thread
from ...core.plugin import Plugin
from .builder import EdgePlugin, build

#: the instrument a held deck's manual call runs on (present only while the deck is held)
HOLD_INSTRUMENT = "ivoryos_plugin_test_hold"
_SHARED: Dict[str, "InProcessEdge"] = {}
_LOCK = threading.Lock()


class _Hold:
    """What the held deck's manual call runs: it returns when the test lets go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> bool:
        """Hold the deck until released (at most a minute)."""
        self.entered.set()
        return self.release.wait(60)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class InProcessEdge:
    """The edge server of this process.

    :param folder: its data folder (used when this process has not imported the edge's server yet)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if "ivoryos_edge.server" not in sys.modules:
            with _env("IVORYOS_DATA_DIR", str(folder)), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # FastAPI's on_event, in the edge's module
                importlib.import_module("ivoryos_edge.server")
        self.server: Any = sys.modules["ivoryos_edge.server"]
        app = self.server.app
        #: the edge's instrument mapping (each test's deck, the same objects)
        self.instruments: Dict[str, Any] = {}
        app.state.instruments = self.instruments
        app.state.instrument_errors = []
        app.state.plugins = []
        app.state.plugin_errors = []
        app.state.deck_path = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.uvicorn = uvicorn.Server(config)
        self.thread = start_thread("test-edge", self._serve, sock)  # ivoryos_plugin-test-edge, a daemon
        deadline = time.monotonic() + 60
        while not self.uvicorn.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the in-process ivoryos-edge did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)

    def _serve(self, sock: socket.socket) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the edge's start-up (on_event)
            self.uvicorn.run(sockets=[sock])

    # ------------------------------------------------------------------ one plugin per test
    def _unmount(self, plugin_id: str) -> None:
        """Take the previous test's edge plugin of this id off the edge's app."""
        app = self.server.app
        prefix = f"/plugins/{plugin_id}"

        def ours(route: Any) -> bool:
            path = getattr(route, "path", None)
            if path is None:  # FastAPI keeps an included router whole, with its prefix
                path = getattr(getattr(route, "include_context", None), "prefix", "")
            return bool(path == prefix or str(path).startswith(prefix + "/"))

        app.router.routes[:] = [r for r in app.router.routes if not ours(r)]
        changed = getattr(app.router, "_mark_routes_changed", None)
        if callable(changed):  # FastAPI caches what it matches by a version of the route list
            changed()
        app.state.plugins = [p for p in app.state.plugins if p.get("id") != plugin_id]

    def serve(self, plugin: Plugin, deck: types.ModuleType, data_dir: Path) -> EdgePlugin:
        """Serve a new edge plugin of ``plugin`` on the deck's instruments, its data in ``data_dir``.

        :param plugin: the plugin under test.
        :param deck: the test's deck module (its globals are the instruments; the plugin's steps
            instrument is put on it, as the edge's deck holds it).
        :param data_dir: the plugin's data folder for this test.
        :raises RuntimeError: the plugin failed to start on the edge (its on_start raised)."""
        with _env("IVORYOS_PLUGIN_DATA", str(data_dir)):
            edge = build(plugin)
        self._unmount(edge.id)
        self.instruments.clear()
        self.instruments.update({k: v for k, v in vars(deck).items() if not k.startswith("__")})
        error = self.server.start_plugin(self.server.app, edge, self.instruments)
        if error is not None:
            self.stop(edge)
            raise RuntimeError(f"Plugin {plugin.name!r} did not start on the in-process ivoryos-edge: {error['error']}")
        self.server.app.state.plugins.append(edge.describe())
        steps = plugin.steps_instrument
        if plugin.declarations.steps and steps in self.instruments:
            setattr(deck, steps, self.instruments[steps])
        return edge

    def stop(self, edge: EdgePlugin) -> None:
        """Stop the test's edge plugin (workers, streams, ``on_stop``) and forget the deck.

        :param edge: from :meth:`serve`."""
        edge.runtime_app.ext.stop_all()
        self.instruments.clear()

    @contextlib.contextmanager
    def hold(self, timeout: float = 10.0) -> Iterator[None]:
        """Hold the deck as the edge does while it runs a manual call: a real ``POST /api/execute``
        that returns when the block ends.

        :param timeout: seconds to wait for the edge to start the call."""
        import httpx  # a dependency of ivoryos-edge

        holder = _Hold()
        self.instruments[HOLD_INSTRUMENT] = holder
        started = httpx.post(f"{self.base}/api/execute", timeout=timeout,
                                json={"module": HOLD_INSTRUMENT, "method": "hold", "args": {}})
        task: Optional[str] = started.json().get("task_id") if started.status_code == 200 else None
        try:
            if task is None or not holder.entered.wait(timeout):
                raise RuntimeError(f"the in-process ivoryos-edge did not start the holding call: {started.text}")
            yield
        finally:
            holder.release.set()
            deadline = time.monotonic() + timeout
            while task is not None and time.monotonic() < deadline:
                if httpx.get(f"{self.base}/api/execute/{task}", timeout=timeout).json().get("status") != "running":
                    break
                time.sleep(0.02)
            self.instruments.pop(HOLD_INSTRUMENT, None)


def shared(folder: Path) -> InProcessEdge:
    """This process's in-process edge, started on first use.

    :param folder: its data folder (the first caller's)."""
    with _LOCK:
        edge = _SHARED.get("edge")
        if edge is None or not edge.thread.is_alive():
            edge = _SHARED["edge"] = InProcessEdge(folder)
        return edge
