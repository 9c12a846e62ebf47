"""``ivoryos-plugin demo``: real IvoryOS with the example plugins, and every installed plugin, on a
simulated deck.

The examples are installed under their own entry point group, :data:`EXAMPLES_GROUP`, which only
the demo loads: installing them never adds them to a lab's own IvoryOS (``ivoryos_plugin.run``
loads ``ivoryos.plugins`` only). The deck is a script whose globals are the instruments (by default
the bundled ``ivoryos_plugin/tools/demo_deck.py``: a balance, a pump and a hotplate simulated on
real ptys). Each demo keeps its data (IvoryOS's database and workflows, the plugins' settings and
recorded history) in a folder of its own, ``./ivoryos_data/demo-<port>`` unless ``--data DIR`` says
otherwise, so two demos on two ports never see each other's values; it serves at
``http://127.0.0.1:8000/ivoryos/`` (log in as admin / admin). The demo runs until Ctrl-C or
SIGTERM, then stops the plugins and the simulators.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
import webbrowser
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Dict, List, Optional, Tuple, Union

from .ports import port_problem

DEFAULT_DECK = Path(__file__).resolve().parent / "demo_deck.py"
LOGIN = ("admin", "admin")  # IvoryOS creates this account on first start
#: The entry point group of the repository's example plugins (examples/*/pyproject.toml): the demo's only.
EXAMPLES_GROUP = "ivoryos_plugin.examples"


class DemoError(RuntimeError):
    """The demo cannot start (the message says why and what to do)."""


def default_data(port: int) -> Path:
    """The demo's data folder when ``--data`` is not given: one per port, ``./ivoryos_data/demo-<port>``.

    :param port: the demo's TCP port."""
    return Path("ivoryos_data") / f"demo-{port}"


def demo_config(folder: Path, port: int) -> Any:
    """IvoryOS's config with every path it keeps data at (its ``OUTPUT_FOLDER`` and the folders,
    files and SQLite database under it) moved into ``folder``, and a session cookie named after the
    port (a browser sends one cookie jar to every port of 127.0.0.1: two demos must not log each
    other out).

    :param folder: the demo's data folder (absolute).
    :param port: the demo's port."""
    from ..hosts import ivoryos as adapter

    config = adapter.get_config()
    old, new = str(config.OUTPUT_FOLDER).rstrip(os.sep), str(folder)
    for key in [k for k in dir(config) if k.isupper()]:
        value = getattr(config, key)
        if not isinstance(value, str):
            continue
        if value == old or value.startswith(old + os.sep):
            setattr(config, key, new + value[len(old):])
        elif value.startswith(f"sqlite:///{old}{os.sep}"):  # not a database named by IVORYOS_DB_URI
            setattr(config, key, f"sqlite:///{new}{value[len('sqlite:///') + len(old):]}")
    config.SESSION_COOKIE_NAME = f"ivoryos_demo_{port}"
    config.REMEMBER_COOKIE_NAME = f"ivoryos_demo_{port}_remember"
    return config


def _library_folders() -> List[str]:
    """Where Python's own modules and the installed packages live, and the framework itself."""
    paths = sysconfig.get_paths()
    found = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    found.add(os.path.realpath(Path(__file__).resolve().parents[1]))
    return sorted(found)


def own_frames(exc: BaseException, limit: int = 2) -> List[str]:
    """The innermost ``limit`` frames of ``exc``'s traceback that are the user's own code (not the
    framework's, not an installed package's, not Python's), one line each: ``File "deck.py", line 4,
    in make: balance = Balance(PORT)``.

    :param exc: the exception.
    :param limit: at most this many frames."""
    import traceback

    libraries = _library_folders()
    lines: List[str] = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.realpath(frame.filename)
        if frame.filename.startswith("<") or any(path.startswith(folder + os.sep) for folder in libraries):
            continue
        code = f": {frame.line.strip()}" if frame.line else ""
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}{code}')
    return lines[-limit:]


def code_failure(what: str, exc: BaseException, fix: str) -> str:
    """A failure of the user's code (a deck script, a plugin) in at most four lines: what failed with
    the exception, its own innermost frames (the framework's are left out), and the fix.

    :param what: what failed, e.g. ``the deck script deck.py``.
    :param exc: the exception it raised.
    :param fix: the last line: what to do."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > 200:
        message = message[:197] + "..."
    head = f"{what} raised {type(exc).__name__}" + (f": {message}" if message else "")
    return "\n".join([head, *own_frames(exc), fix])


def load_deck_or_explain(path: Path, command: str) -> ModuleType:
    """Import the deck script, or raise :class:`DemoError` with :func:`code_failure`'s short account.

    :param path: the deck script.
    :param command: how it was started, for the fix line."""
    from ..hosts.devhost import load_deck

    try:
        return load_deck(path)
    except BaseException as exc:  # a deck may even call sys.exit
        if isinstance(exc, KeyboardInterrupt):
            raise
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
        raise DemoError(code_failure(
            f"the deck script {shown} failed while loading, so {command} did not start: it", exc,
            f"Fix the deck; python {shown} shows its whole traceback.")) from None


def demo_plugins() -> Tuple[List[Any], List[Dict[str, str]]]:
    """The plugins the demo serves: every installed one (``ivoryos.plugins``), then the examples
    (:data:`EXAMPLES_GROUP`) whose names are not taken; each loaded in isolation.

    :returns: (the plugins, the failures as the health page shows them)."""
    from ..hosts.discovery import discover

    installed = discover()
    examples = discover(EXAMPLES_GROUP, exclude=[p.name for p in installed.plugins])
    failures = [f.as_dict() for f in installed.failures + examples.failures]
    return installed.plugins + examples.plugins, failures


def in_ci() -> bool:
    """Whether we run under CI (env ``CI`` set to anything but empty/0/false/no): no browser there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def demo_url(bind: str, port: int) -> str:
    """The address to open: ``http://127.0.0.1:8000/ivoryos/`` (a wildcard address shown as loopback).

    :param bind: the address IvoryOS binds.
    :param port: its port."""
    shown = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/ivoryos/"


def open_browser_when_up(url: str, bind: str, port: int, timeout: float = 60.0) -> threading.Thread:
    """Open ``url`` in a web browser once something listens on the port (in a daemon thread).

    :param url: the page to open.
    :param bind: the address the server binds.
    :param port: its port.
    :param timeout: give up after this many seconds."""
    from ..core.clock import start_thread

    target = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind

    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((target, port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            return
        try:
            webbrowser.open(url)
        except Exception:  # no browser on this machine: the URL is printed anyway
            pass

    return start_thread("demo-browser", wait_then_open)  # the framework's one way to start a thread


def _stop_deck(module: Optional[ModuleType]) -> None:
    """Stop what the deck started: its ``shutdown()`` if it has one, then any simulator still running."""
    from ..hardware import sim

    stop = getattr(module, "shutdown", None)
    if callable(stop):
        try:
            stop()
        except Exception as exc:
            print(f" * the deck's shutdown() failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    sim.stop_all()


def _simulators(module: ModuleType) -> Any:
    from ..hardware import sim

    found = getattr(module, "SIMULATORS", None)
    return dict(found) if isinstance(found, dict) else dict(sim._started)


def _banner(url: str, module: ModuleType, deck_path: Path, data: Path) -> None:
    from ..hardware.deck import deck_instruments

    names = ", ".join(deck_instruments(module)) or "no instruments"
    lines = [f" * IvoryOS demo: {url}",
             f" * log in as {LOGIN[0]} / {LOGIN[1]}",
             f" * deck: {deck_path} ({names})"]
    lines += [f" * simulated {name} on {s.port}" for name, s in _simulators(module).items()]
    lines += [f" * data (this demo's own; --data DIR to choose): {data}", " * stop with Ctrl-C"]
    print("\n".join(lines), flush=True)


class _Stop(KeyboardInterrupt):
    """SIGTERM, delivered as Ctrl-C is (the server loop ends on it and cleanup runs)."""


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop()


def _run_fresh(bind: str, port: int, open_browser: bool, deck: Optional[str], data: Optional[Path]) -> int:
    """Run the demo in a new interpreter (IvoryOS is a process-wide singleton, fixed at import)."""
    cmd = [sys.executable, "-m", "ivoryos_plugin.tools.cli", "demo", "--bind", bind, "--port", str(port)]
    if not open_browser:
        cmd.append("--no-browser")
    if deck:
        cmd += ["--deck", str(Path(deck).resolve())]
    if data is not None:
        cmd += ["--data", str(Path(data).resolve())]
    env = {k: v for k, v in os.environ.items() if k != "IVORYOS_ACTIVE"}
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def run_demo(bind: str = "127.0.0.1", port: int = 8000, open_browser: bool = True,
             deck: Union[None, str, Path] = None, data: Union[None, str, Path] = None, *, edge: bool = False,
             host: Optional[str] = None) -> None:
    """Serve IvoryOS with every installed plugin on a simulated deck until Ctrl-C or SIGTERM.

    Prints the URL and the login, opens a browser (not with ``open_browser=False`` nor when env
    ``CI`` is set), and at the end stops the plugins and the deck's simulators. When IvoryOS is
    already imported in this process, the demo runs in a fresh interpreter instead.

    :param bind: the address to listen on (loopback by default).
    :param port: the TCP port.
    :param open_browser: open the IvoryOS page in a web browser once it is up.
    :param deck: a deck script (its globals are the instruments); default the bundled simulated deck.
    :param data: the demo's data folder (IvoryOS's database, the plugins' settings and history);
        default :func:`default_data`, one per port.
    :param edge: serve the demo on ivoryos-edge instead (at 127.0.0.1; the ``[edge]`` extra).
    :param host: the older spelling of both (``"edge"``, else an address to bind), with a
        :class:`DeprecationWarning`; it goes in the next release.
    :raises DemoError: the port is taken (checked before anything is printed or started), the data
        folder cannot be created, or the deck script raised (its own frames, the fix).

    Example::

        from ivoryos_plugin.tools.demo import run_demo
        run_demo(port=8001, open_browser=False)
    """
    if host is not None or bind == "edge":
        warnings.warn("run_demo(host=...) is now run_demo(bind=...), and run_demo(host='edge') run_demo(edge=True): "
                      "'host' names the app that serves plugins; the old spelling goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        edge, bind = (True, "127.0.0.1") if (host or bind) == "edge" else (edge, host or bind)
    if edge:
        _run_on_edge(port, open_browser, deck, data)
        return
    if "ivoryos" in sys.modules or os.environ.get("IVORYOS_ACTIVE"):
        code = _run_fresh(bind, port, open_browser, str(deck) if deck else None, Path(data) if data else None)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            raise SystemExit(code)
        return
    from ..runtime.attach import IvoryOSPlugins, stop_all_apps
    from ..runtime.quiet import quiet_access_log
    from ..hosts.launcher import run

    problem = port_problem(bind, port)
    if problem:
        raise DemoError(problem)  # before the banner: it must not say the demo is up
    folder = Path(data if data is not None else default_data(port)).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot use {folder} as the demo's data folder: {exc.strerror or exc}; pass "
                        "--data DIR with a folder you can write to.") from None
    deck_path = Path(deck).resolve() if deck else DEFAULT_DECK
    module: Optional[ModuleType] = None
    trapped = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if trapped else None
    try:
        module = load_deck_or_explain(deck_path, "the demo")  # first: nothing printed yet if it fails
        plugins, failures = demo_plugins()
        for failure in failures:
            print(f" * plugin {failure['name']!r} not loaded ({failure['stage']}): {failure['error']}",
                  file=sys.stderr, flush=True)
        config = demo_config(folder, port)
        url = demo_url(bind, port)
        _banner(url, module, deck_path, folder)
        if open_browser and not in_ci():
            open_browser_when_up(url, bind, port)
        quiet_access_log(transport=True)  # the terminal shows requests, not Socket.IO's polling
        run(module.__name__, plugins=plugins, discover=False, host=bind, port=port, templates_dir=None,
            config=config, extension=IvoryOSPlugins(failures=failures))  # the health page names them too
    except KeyboardInterrupt:
        pass
    finally:
        if trapped:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        if module is not None:  # else nothing started: the error says why
            print(" * stopping the demo", flush=True)
        try:
            stop_all_apps()
        finally:
            _stop_deck(module)
            if trapped:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    print(" * demo stopped", flush=True)


def _run_on_edge(port: int, open_browser: bool, deck: Union[None, str, Path], data: Union[None, str, Path]) -> None:
    """``ivoryos-plugin demo --host edge``: the same simulated deck and plugins on ivoryos-edge (127.0.0.1).

    :param port: the TCP port.
    :param open_browser: open the edge's page once it is up.
    :param deck: a deck script, or the bundled simulated deck.
    :param data: the edge's data folder (default ``./ivoryos_data/demo-edge-PORT``).
    :raises EdgeNotInstalled: the ``[edge]`` extra is not installed (before anything starts)."""
    from ..hosts.extras import require_edge

    require_edge()
    from ..hosts.edge.launcher import serve

    problem = port_problem("127.0.0.1", port, "ivoryos-plugin demo --host edge")
    if problem:
        raise DemoError(problem)
    deck_path = Path(deck).resolve() if deck else DEFAULT_DECK
    module = load_deck_or_explain(deck_path, "the demo")
    try:
        plugins, failures = demo_plugins()
        errors = [{"plugin": f["name"], "stage": f["stage"], "error": f["error"]} for f in failures]
        url = f"http://127.0.0.1:{port}/"
        if open_browser and not in_ci():
            open_browser_when_up(url, "127.0.0.1", port)
        folder = Path(data) if data is not None else Path("ivoryos_data") / f"demo-edge-{port}"
        serve(plugins, module, port=port, data_dir=str(folder), plugin_errors=errors,
              banner=[f" * demo on ivoryos-edge: {url} (deck {deck_path.name}: {', '.join(sorted(_simulators(module) or {}))})"])
    except KeyboardInterrupt:
        pass
    finally:
        _stop_deck(module)
