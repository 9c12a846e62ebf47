"""The pytest kit for plugin authors: opt in with ``pytest_plugins = ["ivoryos_plugin.testing"]``.

Fixtures: ``plugin_app`` (the standalone host around the plugin under test), ``client`` (logged
in, CSRF header added), ``anon_client``, ``live`` (a Socket.IO test client in the plugin's
namespace), ``deck`` (an empty deck module to put instruments on), ``sim_deck`` (a deck with the
simulated balance, pump and hotplate on real ptys), ``ivoryos_app`` / ``ivoryos_client`` (the
plugin inside a real in-process IvoryOS with an isolated data folder, logged in as admin) and
``plugin_host`` (each test run on both IvoryOS generations, ``[ivoryos]`` and ``[edge]``:
:mod:`ivoryos_plugin.tools.testing.hosts`), ``plugin_server`` (``plugin_app`` on a real port, for a
browser), and ``manual_clock`` (a clock the test moves by hand, for
the framework's workers, streams, cameras, serial devices and connections built with ``clock=``).

Your ``conftest.py`` provides the plugin under test::

    import pytest
    from my_plugin.plugin import plugin as my_plugin

    @pytest.fixture
    def plugin():
        return my_plugin
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio.test_client import SocketIOTestClient

from ...core.clock import ManualClock
from ...hosts import ivoryos as adapter
from .hosts import EDGE_MISSING, HOSTS, PluginHost, plugin_host, plugin_server, serve_app
from .waiting import wait_for_payloads

__all__ = ["CsrfClient", "LiveClient", "login_client", "make_deck", "deck", "sim_deck", "plugin_app", "client",
           "anon_client", "live", "ivoryos_app", "ivoryos_client", "plugin_host", "PluginHost", "HOSTS",
           "EDGE_MISSING", "ManualClock", "RecordingClock", "manual_clock", "plugin_server", "serve_app"]

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


class CsrfClient(FlaskClient):
    """A Flask test client that sends the session's CSRF token on unsafe methods, as a page does."""

    csrf_token: Optional[str] = None

    def open(self, *args: Any, **kwargs: Any) -> Any:
        """Flask's ``open``, adding ``X-CSRFToken`` to POST/PUT/PATCH/DELETE.

        :param args: as Flask's.
        :param kwargs: as Flask's."""
        method = str(kwargs.get("method", "GET")).upper()
        if method in UNSAFE and self.csrf_token:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token)
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


def login_client(app: Flask, prefix: str = "/ivoryos") -> CsrfClient:
    """A test client logged in to the standalone host (through its token) with CSRF set up.

    :param app: from :func:`ivoryos_plugin.create_app`.
    :param prefix: the URL prefix."""
    app.test_client_class = CsrfClient
    client: CsrfClient = app.test_client()  # type: ignore[assignment]
    client.get(f"{prefix}/?token={app.config['IVORYOS_PLUGIN_TOKEN']}")
    client.csrf_token = client.get(f"{prefix}/plugins/csrf.json").get_json()["csrf_token"]
    return client


def make_deck(name: str = "test_deck", **instruments: Any) -> types.ModuleType:
    """A deck module whose globals are ``instruments`` (add more with attribute assignment).

    :param name: the module's name.
    :param instruments: name -> instrument object."""
    module = types.ModuleType(name)
    for key, value in instruments.items():
        setattr(module, key, value)
    return module


class RecordingClock(ManualClock):
    """A :class:`~ivoryos_plugin.core.clock.ManualClock` that also keeps, in order, how long each wait
    on it asked for (:attr:`waited`): a restart delay, a period or a backoff is asserted exactly,
    which moving the clock alone cannot tell (a wait shorter than the step also ends)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        super().__init__(start)
        #: the seconds of each wait begun on this clock, in order
        self.waited: List[float] = []

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Note ``seconds``, then wait as :meth:`ManualClock.wait` does.

        :param event: the event that ends the wait early.
        :param seconds: clock seconds to wait at most."""
        self.waited.append(seconds)
        return super().wait(event, seconds)

    def step(self, seconds: Optional[float] = None, timeout: float = 5.0) -> float:
        """Once a thread waits on this clock, move the clock on by ``seconds`` (when None, by as much
        as the newest wait asked for: a retry delay the test need not know in advance).

        :param seconds: how far, or None.
        :param timeout: real seconds to wait for a thread to wait on the clock.
        :returns: how far the clock moved.
        :raises AssertionError: no thread waited on the clock within ``timeout``."""
        if not self.wait_for_waiters(1, timeout):
            raise AssertionError(f"nothing waited on the clock within {timeout} s (waits so far: {self.waited})")
        amount = self.waited[-1] if seconds is None else seconds
        self.advance(amount)
        return amount


@pytest.fixture
def manual_clock() -> RecordingClock:
    """A clock that moves only when the test says so, for the objects a test builds with ``clock=``.

    A thread waiting on it (a worker's ``stop.sleep``, a stream's next tick, a reconnect delay) wakes
    when the test has moved it far enough, so the test asserts counts and order, never a rate measured
    by sleeping::

        runner = WorkerRunner(spec, logger, clock=manual_clock)
        runner.start()
        manual_clock.wait_for_waiters()   # the worker ran once and waits for its period
        manual_clock.advance(spec.every)  # ... and runs once more
        assert manual_clock.waited == [spec.every, spec.every]"""
    return RecordingClock()


@pytest.fixture
def deck(request: pytest.FixtureRequest) -> types.ModuleType:
    """The deck the hosts (``plugin_app``, ``client``, ``live``, ``ivoryos_app``) run on: an empty
    deck module to put instruments on (``deck.balance = Balance(port)``), or, in a test that asks
    for ``sim_deck`` too, that simulated deck."""
    if "sim_deck" in request.fixturenames:
        return request.getfixturevalue("sim_deck")  # type: ignore[no-any-return]
    return make_deck()


@pytest.fixture
def sim_deck() -> Iterator[types.ModuleType]:
    """A deck with a simulated balance, pump and hotplate, each on a real pty (stopped afterwards)."""
    from ...hardware.sim import start_all, stop_all
    from ...hardware.sim import Balance, Hotplate, Pump

    sims = start_all()
    drivers = {"balance": Balance(sims["balance"].port), "pump": Pump(sims["pump"].port),
               "hotplate": Hotplate(sims["hotplate"].port)}
    module = make_deck("sim_deck", **drivers)
    module.simulators = sims  # type: ignore[attr-defined]
    try:
        yield module
    finally:
        for driver in drivers.values():
            driver.close()
        stop_all(sims)


@pytest.fixture
def plugin_app(plugin: Any, deck: types.ModuleType, tmp_path: Path) -> Iterator[Flask]:
    """The standalone host around the ``plugin`` fixture, with the ``deck`` fixture as its deck."""
    from ...hosts.devhost import create_app, stop

    app = create_app([plugin], deck=deck, data_dir=tmp_path / "ivoryos_data", testing=True)
    try:
        yield app
    finally:
        stop(app)


@pytest.fixture
def client(plugin_app: Flask) -> CsrfClient:
    """A logged-in test client of ``plugin_app`` that sends CSRF tokens like a page."""
    return login_client(plugin_app)


@pytest.fixture
def anon_client(plugin_app: Flask) -> FlaskClient:
    """An anonymous test client of ``plugin_app``."""
    return plugin_app.test_client()


class LiveClient(SocketIOTestClient):  # type: ignore[misc]
    """Flask-SocketIO's test client in the plugin's namespace, with helpers for streams and events.

    :param app: the app.
    :param socketio: its ``SocketIO``.
    :param namespace: the plugin's namespace (``/ivoryos/<name>``).
    :param flask_test_client: the logged-in test client whose session cookie it uses."""

    def __init__(self, app: Flask, socketio: Any, namespace: str, flask_test_client: FlaskClient) -> None:
        super().__init__(app, socketio, namespace=namespace, flask_test_client=flask_test_client)
        self.namespace = namespace
        self.seen: List[Dict[str, Any]] = []

    def call(self, event: str, data: Any = None) -> Any:
        """Emit ``event`` with ``data`` in the plugin's namespace and return the handler's ack.

        :param event: the event (a ``@plugin.on`` handler's).
        :param data: the payload."""
        return self.emit(event, data, namespace=self.namespace, callback=True)

    def subscribe(self, stream: str) -> Dict[str, Any]:
        """Subscribe to a ``@plugin.stream``; returns the ack (``{"ok": True, "hz": ...}``).

        :param stream: the stream's name."""
        return dict(self.call("subscribe", {"stream": stream}) or {})

    def received(self, event: Optional[str] = None) -> List[Any]:
        """Every payload received so far (of ``event``, or all as ``{"name", "args"}``), in order.

        :param event: an event name, or None for everything."""
        self.seen.extend(self.get_received(self.namespace))
        if event is None:
            return [{"name": e["name"], "args": e["args"]} for e in self.seen]
        return [e["args"][0] if len(e["args"]) == 1 else e["args"] for e in self.seen if e["name"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> List[Any]:
        """Wait until ``count`` payloads of ``event`` arrived and return them all (fails after ``timeout``).

        :param event: the event (a stream's name, or a ``publish``-ed event).
        :param count: how many to wait for.
        :param timeout: seconds."""
        return wait_for_payloads(event, count, timeout, lambda: self.received(event),
                                 lambda: [e["name"] for e in self.seen], lambda left: time.sleep(0.02))


@pytest.fixture
def live(plugin_app: Flask, client: CsrfClient, plugin: Any) -> Iterator[LiveClient]:
    """A Socket.IO test client connected to the plugin's namespace as the logged-in user.

    ``live.subscribe("weight")``, ``live.wait_for("weight", count=3)``, ``live.call("ping", data)``."""
    socketio = plugin_app.extensions["socketio"]
    namespace = f"{plugin_app.config['URL_PREFIX']}/{plugin.name}"
    sio = LiveClient(plugin_app, socketio, namespace, client)
    try:
        yield sio
    finally:
        if sio.is_connected(namespace):
            sio.disconnect(namespace=namespace)


# ---------------------------------------------------------------- in-process IvoryOS
_IVORYOS: Dict[str, Any] = {}


def _ivoryos_process_app(root: Path) -> Any:
    """IvoryOS's module-level app, created once per process with its data under ``root``."""
    if "app" not in _IVORYOS:
        _IVORYOS.update(adapter.in_process_app(root, make_deck))
    return _IVORYOS["app"]


@pytest.fixture
def ivoryos_app(plugin: Any, deck: types.ModuleType, tmp_path: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The plugin inside a real in-process IvoryOS (one per test process, data in a temp folder).

    IvoryOS keeps one app per process: the plugin is registered the first time it is asked for,
    then each test gets a fresh start of it (``on_start`` again, workers stopped after the test),
    its own plugin data folder, and sees the ``deck`` fixture as the deck (IvoryOS's own pages see
    the instruments the deck had when the test started)."""
    from ...core.plugin import Plugin
    from ...hosts.discovery import protect_plain
    from ...runtime.attach import add_plugin, attach
    from ...runtime.steps import install_on_deck

    app = _ivoryos_process_app(tmp_path_factory.getbasetemp() / "ivoryos_in_process")
    shared = _IVORYOS["deck"]
    for key in [k for k in vars(shared) if not k.startswith("__")]:
        delattr(shared, key)
    for key, value in vars(deck).items():
        if not key.startswith("__"):
            setattr(shared, key, value)
    if isinstance(plugin, Plugin):
        install_on_deck(plugin, shared)  # its workflow steps stay the deck's instrument, test after test
    registered = app.blueprints.get(plugin.name)
    if registered is not None and registered is not plugin:
        raise pytest.UsageError(
            f"ivoryos_app: another plugin object named {plugin.name!r} is already registered in this test "
            "process's IvoryOS (IvoryOS cannot unregister a blueprint); give test plugins distinct names.")
    if registered is None:
        adapter.allow_late_blueprints(app)  # IvoryOS's app is process-wide; allow late plugins in tests
    ext = attach(app)
    ext.deck_getter = lambda: deck
    ext.data_root = tmp_path / "plugins"
    if registered is None:
        if not isinstance(plugin, Plugin):
            protect_plain(app, plugin)
        # attach(app) above registered the framework's own blueprint: IvoryOS loads the plugin alone
        _IVORYOS["plugins"].extend(_IVORYOS["load_plugins"]([plugin], app, _IVORYOS["socketio"]))
    runtime = ext.runtimes.get(plugin.name)
    if registered is not None and runtime is not None and runtime._started:
        add_plugin(ext, plugin, runtime.namespace)  # a fresh runtime: started at once, as ext is started
        runtime = ext.runtimes[plugin.name]
    ext.ensure_started()
    try:
        yield app
    finally:
        if runtime is not None:
            runtime.stop()
        ext.deck_getter = adapter.deck


@pytest.fixture
def ivoryos_client(ivoryos_app: Flask) -> CsrfClient:
    """A test client of the in-process IvoryOS, logged in as admin/admin, sending CSRF tokens."""
    ivoryos_app.test_client_class = CsrfClient
    client: CsrfClient = ivoryos_app.test_client()  # type: ignore[assignment]
    login = f"{ivoryos_app.config['URL_PREFIX']}/auth/login"
    form = {"username": "admin", "password": "admin"}
    # as a browser does: the login form's csrf_token field, when the host puts one in it (ivoryos_plugin.run)
    found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"', client.get(login).get_data(as_text=True))
    if found:
        form["csrf_token"] = found.group(1)
    client.post(login, data=form)
    client.csrf_token = client.get(f"{ivoryos_app.config['URL_PREFIX']}/plugins/csrf.json").get_json()["csrf_token"]
    return client
