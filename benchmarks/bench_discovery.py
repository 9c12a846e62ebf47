"""Discovery and registration of 1, 10 and 50 installed plugins (``discover()`` reading real
``*.dist-info/entry_points.txt`` files on sys.path, loading each in isolation, checking it, then
registering it) against importing and registering the same blueprints by hand, as a deck script
passing ``blueprint_plugins=[...]`` to IvoryOS does. Fresh modules and a fresh app every trial,
interleaved. Target at 50 plugins: ours <= 1.5 x hand + 100 ms, printed as the ratio
``ours / (1.5 * hand + 0.1 s)`` (target <= 1.0)."""
from __future__ import annotations

import gc
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from flask import Flask
from flask_socketio import SocketIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import figure, finish, median  # noqa: E402
from ivoryos_plugin.hosts.discovery import discover  # noqa: E402

GROUP = "ivoryos_plugin.bench_discovery"  # its own group: only the generated plugins are found
SIZES = (1, 10, 50)
TRIALS = {1: 21, 10: 15, 50: 11}
PLUGIN = '''
from ivoryos_plugin import Plugin

plugin = Plugin("{name}", __name__, title="Bench {i}", version="1.0.{i}")


@plugin.route("/")
def main():
    return "page {i}"


@plugin.action(hardware=False)
def ping(n: int = 1) -> dict:
    return {{"n": n}}


@plugin.stream("value", hz=2)
def value():
    return {{"v": {i}}}
'''


def make_site(root: Path, size: int) -> List[str]:
    """``size`` installed distributions (module + dist-info with an entry point) in ``root``."""
    root.mkdir(parents=True)
    modules = []
    for i in range(size):
        module, name = f"benchplug_{size}_{i}", f"bench_{size}_{i}"
        (root / f"{module}.py").write_text(PLUGIN.format(name=name, i=i))
        info = root / f"ivoryos_bench_{size}_{i}-1.0.{i}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ivoryos-bench-{size}-{i}\nVersion: 1.0.{i}\n"
                                       "Requires-Dist: ivoryos-plugin\nRequires-Dist: ivoryos>=1.7\n")
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {module}:plugin\n")
        modules.append(module)
    return modules


def fresh_app() -> tuple:
    """A new app with a Socket.IO server, as IvoryOS has."""
    app = Flask("bench_discovery")
    app.config.update(SECRET_KEY="bench", URL_PREFIX="/ivoryos")
    return app, SocketIO(app, async_mode="threading")


def register(app: Flask, socketio: Any, blueprints: List[Any]) -> None:
    """What IvoryOS 1.7.2's ``load_plugins`` does with ``blueprint_plugins``."""
    for blueprint in blueprints:
        if hasattr(blueprint, "init_socketio"):
            blueprint.init_socketio(socketio)
        app.register_blueprint(blueprint, url_prefix=f"/ivoryos/{blueprint.name}")


def ours(modules: List[str]) -> float:
    app, socketio = fresh_app()
    gc.collect()
    started = time.perf_counter()
    found = discover(GROUP)
    register(app, socketio, found.plugins)
    elapsed = time.perf_counter() - started
    assert len(found.plugins) == len(modules) and not found.failures, found.report()
    return elapsed


def hand(modules: List[str]) -> float:
    app, socketio = fresh_app()
    gc.collect()
    started = time.perf_counter()
    plugins = [importlib.import_module(module).plugin for module in modules]
    register(app, socketio, plugins)
    return time.perf_counter() - started


def forget(modules: List[str]) -> None:
    for module in modules:
        sys.modules.pop(module, None)


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bench_discovery_"))
    results: Dict[int, Dict[str, float]] = {}
    try:
        for size in SIZES:
            site = base / f"site{size}"
            modules = make_site(site, size)
            sys.path.insert(0, str(site))
            importlib.invalidate_caches()
            try:
                hand(modules)  # warm up: .pyc files, Flask's lazy imports
                forget(modules)
                timings: Dict[str, List[float]] = {"ours": [], "hand": []}
                runners: Dict[str, Callable[[List[str]], float]] = {"ours": ours, "hand": hand}
                for trial in range(TRIALS[size]):
                    for key in (("ours", "hand") if trial % 2 == 0 else ("hand", "ours")):
                        timings[key].append(runners[key](modules))
                        forget(modules)
            finally:
                sys.path.remove(str(site))
                importlib.invalidate_caches()
            results[size] = {key: median(values) for key, values in timings.items()}
            print(f"discovery {size:>2} plugins: ours {results[size]['ours'] * 1000:7.1f} ms, "
                  f"hand {results[size]['hand'] * 1000:7.1f} ms (medians of {TRIALS[size]})", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    big = results[50]
    figure("discovery_50_ratio_vs_hand_plus_100ms", big["ours"] / (1.5 * big["hand"] + 0.1), "<=1.0")
    finish()


if __name__ == "__main__":
    main()
