"""A real ivoryos-edge server subprocess serving our plugins (the tests of issue 26).

``start_edge(folder, plugins=...)`` writes a deck script that builds the demo's simulated deck and
calls ``ivoryos_edge.run(__name__, plugins=[for_edge(...)], host="127.0.0.1", port=$PORT)`` with the
edge's data in ``folder`` (never the package's own folders), and waits until it listens. URLs are
built with :func:`url`, never written out."""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import requests
import websocket

from support import Server, launch

#: every example: (import path of its module, the plugin's name)
EXAMPLES = {"hello": "hello_plugin", "balance": "balance_dashboard", "plate_map": "plate_map",
            "run_monitor": "run_monitor", "serial_console": "serial_console", "deck_camera": "deck_camera.plugin"}


def deck_script(plugins: Iterable[str], before_run: str = "", runner: str = "edge") -> str:
    """A deck script serving ``plugins`` (example names) on the demo's simulated deck.

    :param plugins: keys of :data:`EXAMPLES`.
    :param before_run: code run just before the server starts.
    :param runner: ``"edge"`` (ivoryos_edge.run + for_edge) or ``"ours"`` (ivoryos_plugin.edge.run)."""
    imports = "\n".join(f"import {EXAMPLES[name]} as _mod_{name}" for name in plugins)
    listed = ", ".join(f"_mod_{name}.plugin" for name in plugins)
    if runner == "edge":
        call = (f"ivoryos_edge.run(__name__, plugins=[for_edge(p) for p in [{listed}]], host='127.0.0.1', "
                "port=int(os.environ['PORT']))")
    else:
        call = f"ivoryos_plugin.edge.run(__name__, port=int(os.environ['PORT']), plugins=[{listed}], discover_plugins=False)"
    return textwrap.dedent("""\
        import os
        import ivoryos_edge
        import ivoryos_plugin.edge
        from ivoryos_plugin.edge import for_edge
        from ivoryos_plugin.tools.demo_deck import balance, pump, hotplate
        {imports}

        if __name__ == "__main__":
        {before}
            {call}
        """).format(imports=imports, before=textwrap.indent(before_run or "pass", "    "), call=call)


def start_edge(folder: Path, plugins: Iterable[str] = tuple(EXAMPLES), before_run: str = "",
               runner: str = "edge", env: Optional[Dict[str, str]] = None) -> Server:
    """Start an ivoryos-edge subprocess serving ``plugins`` (example names), its data in ``folder``.

    :param folder: the test's folder (data, script, log).
    :param plugins: keys of :data:`EXAMPLES`.
    :param before_run: code run just before the server starts.
    :param runner: ``"edge"`` or ``"ours"``.
    :param env: more environment."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "edge-data"
    server = launch(deck_script(plugins, before_run, runner), folder, name="edge_deck.py",
                    env={"IVORYOS_DATA_DIR": str(data), "IVORYOS_PLUGIN_DATA": str(data / "plugins"), **(env or {})},
                    timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # listening is not started: the plugins answer once the edge has started
        try:
            if requests.get(f"{server.base}/api/plugins", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return server


def url(server: Server, plugin: str, path: str = "") -> str:
    """The URL of ``path`` under ``plugin``'s prefix on the edge (``/plugins/<name>/<path>``).

    :param server: the edge.
    :param plugin: the plugin's name.
    :param path: relative to its prefix."""
    return f"{server.base}/plugins/{plugin}/{path.lstrip('/')}"


def ws_url(server: Server, plugin: str, path: str = "live") -> str:
    """The WebSocket URL of ``path`` under ``plugin``'s prefix."""
    return url(server, plugin, path).replace("http://", "ws://", 1)


def receive_until(ws: Any, predicate: Any, timeout: float = 5.0) -> List[Dict[str, Any]]:
    """Read JSON frames from a websocket-client connection until ``predicate(frame)``; all read.

    :param ws: the connection.
    :param predicate: called with each frame.
    :param timeout: seconds in all."""
    seen: List[Dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # short reads: the server's pings are answered inside recv() and would restart a long timeout
        ws.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            frame = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            continue
        except Exception:
            break
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"no matching frame within {timeout} s; got {seen[-5:]}")
