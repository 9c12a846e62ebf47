"""Test plugins for the lifecycle, worker, settings and health tests.

Each ``make_*`` factory builds a fresh :class:`~ivoryos_plugin.Plugin`, so every in-process test
registers its own; :mod:`life_plugin.servers` builds module-level ones for server subprocesses.
Hooks and workers write what happens to ``<data_dir>/events.log`` (one line per event), which a
test reads after the server has exited.
"""
from __future__ import annotations

import enum
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, Field

from ivoryos_plugin import Plugin, Stop

EVENTS = "events.log"
_LOCK = threading.Lock()


def record(plugin: Plugin, line: str) -> None:
    """Append ``line`` to the plugin's events file (thread-safe, flushed at once).

    :param plugin: the plugin whose data folder holds the file.
    :param line: one event."""
    with _LOCK:
        with open(plugin.data_dir / EVENTS, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_events(data_dir: Path) -> List[str]:
    """The events recorded in ``data_dir`` (empty when none).

    :param data_dir: a plugin's data folder."""
    path = Path(data_dir) / EVENTS
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


class Mode(str, enum.Enum):
    """How hard to drive the motor."""

    gentle = "gentle"
    fast = "fast"


class LifeSettings(BaseModel):
    """Every kind of field the settings form renders."""

    rate_hz: float = Field(5.0, gt=0, le=50, description="Readings per second.")
    count: int = Field(3, ge=1, le=10, description="Samples averaged per reading.")
    unit: Literal["g", "mg", "kg"] = Field("g", description="Display unit.")
    mode: Mode = Field(Mode.gentle, description="How hard to drive the motor.")
    label: str = Field("balance", min_length=1, max_length=40, description="Shown on the page.")
    enabled: bool = Field(True, description="Read at all.")


def _main_page(plugin: Plugin) -> None:
    @plugin.route("/")
    def main() -> str:
        return plugin.render("life.html")


def make_life(name: str = "life", *, tick_every: float = 0.05, stubborn: bool = False,
              release: Optional[threading.Event] = None) -> Plugin:
    """A plugin with settings, start/stop hooks, a periodic and a loop worker.

    :param name: the plugin's name.
    :param tick_every: the periodic worker's period.
    :param stubborn: add a worker that ignores stop (until ``release`` is set, or forever).
    :param release: lets a stubborn worker end, so in-process tests leak no thread."""
    plugin = Plugin(name, __name__, title="Life", version="1.2.3", description="lifecycle probe",
                    settings=LifeSettings)
    plugin.ticks = {"n": 0}  # type: ignore[attr-defined]
    plugin.changes = []  # type: ignore[attr-defined]
    _main_page(plugin)

    @plugin.action(hardware=False)
    def state() -> Dict[str, Any]:
        return {"ticks": plugin.ticks["n"], "settings": plugin.settings.model_dump(mode="json")}  # type: ignore[attr-defined]

    @plugin.action(hardware=False)
    def note(text: str) -> Dict[str, str]:
        plugin.logger.info("note: %s", text)
        return {"logged": text}

    @plugin.stream("weight", hz=lambda: plugin.settings.rate_hz)  # type: ignore[attr-defined]
    def weight() -> Dict[str, float]:
        return {"grams": plugin.instrument("scale").weigh()}

    @plugin.on_start
    def start(deck: Any) -> None:
        record(plugin, f"start pid={os.getpid()} deck={getattr(deck, '__name__', None)}")
        plugin.logger.info("life started on deck %s", getattr(deck, "__name__", None))

    @plugin.on_stop
    def stop() -> None:
        record(plugin, "stop")
        plugin.logger.info("life on_stop ran")

    @plugin.on_settings_change
    def changed(old: LifeSettings, new: LifeSettings) -> None:
        plugin.changes.append((old, new))  # type: ignore[attr-defined]
        record(plugin, f"change {old.label} -> {new.label}")

    @plugin.worker(every=tick_every)
    def tick() -> None:
        plugin.ticks["n"] += 1  # type: ignore[attr-defined]
        if plugin.ticks["n"] == 1:  # type: ignore[attr-defined]
            record(plugin, "tick")

    @plugin.worker
    def loop(stop: Stop) -> None:
        record(plugin, "loop-start")
        while stop.sleep(0.05):
            pass
        record(plugin, "loop-exit")

    if stubborn:
        @plugin.worker
        def deaf(stop: Stop) -> None:
            record(plugin, "deaf-start")
            while not (release is not None and release.is_set()):
                time.sleep(0.05)  # ignores stop on purpose
            record(plugin, "deaf-exit")

    return plugin


def make_crashy(name: str = "crashy", *, backoff: float = 0.1, max_backoff: float = 10.0,
                max_crashes: int = 4, window: float = 60.0, loop: bool = False) -> Plugin:
    """A plugin whose worker ``flaky`` always raises; ``plugin.calls`` holds its call times.

    :param name: the plugin's name.
    :param backoff: the first restart delay.
    :param max_backoff: the longest restart delay.
    :param max_crashes: crashes in ``window`` that suspend the worker.
    :param window: the crash-counting window.
    :param loop: a loop worker given ``stop`` (else periodic, every 0.05 s)."""
    plugin = Plugin(name, __name__, title="Crashy", version="0.0.1")
    calls: List[float] = []
    plugin.calls = calls  # type: ignore[attr-defined]
    _main_page(plugin)
    options: Dict[str, Any] = {"backoff": backoff, "max_backoff": max_backoff, "max_crashes": max_crashes,
                               "window": window}

    def fail() -> None:
        calls.append(time.monotonic())
        raise RuntimeError(f"sensor unplugged (call {len(calls)})")

    if loop:
        @plugin.worker(**options)
        def flaky(stop: Stop) -> None:
            while stop.sleep(0.01):
                fail()
    else:
        @plugin.worker(every=0.05, **options)
        def flaky() -> None:  # noqa: F811 - one of the two is declared
            fail()

    return plugin


def make_refusing(name: str = "refusing", *, answer: Any = "no balance on this deck") -> Plugin:
    """A plugin whose ``on_start`` refuses by returning ``answer`` (a string or False).

    :param name: the plugin's name.
    :param answer: what ``on_start`` returns."""
    plugin = Plugin(name, __name__, title="Refusing", version="0.2.0")
    _main_page(plugin)

    @plugin.action(hardware=False)
    def ping() -> Dict[str, bool]:
        return {"pong": True}

    @plugin.on_start
    def check_deck(deck: Any) -> Any:
        return answer

    @plugin.on_stop
    def stop() -> None:
        record(plugin, "stop")

    @plugin.worker(every=0.05)
    def never() -> None:
        record(plugin, "never")

    return plugin


def make_broken(name: str = "broken") -> Plugin:
    """A plugin whose ``on_start`` raises.

    :param name: the plugin's name."""
    plugin = Plugin(name, __name__, title="Broken", version="0.3.0")
    _main_page(plugin)

    @plugin.on_start
    def load_calibration(deck: Any) -> None:
        raise FileNotFoundError("calibration.csv is missing")

    return plugin


def make_homing(name: str = "homing") -> Plugin:
    """A plugin whose ``on_start`` homes a stage: it records ``homing``, then waits until the file named
    by ``$LIFE_HOMED`` exists (20 s at most), as an axis does until it finds its end stop, and records
    ``homed``.

    :param name: the plugin's name."""
    plugin = Plugin(name, __name__, title="Homing", version="0.4.0")
    _main_page(plugin)

    @plugin.on_start
    def home(deck: Any) -> None:
        record(plugin, "homing")
        end_stop = os.environ.get("LIFE_HOMED", "")
        deadline = time.monotonic() + 20
        while end_stop and not os.path.exists(end_stop) and time.monotonic() < deadline:
            time.sleep(0.02)
        record(plugin, "homed")

    return plugin


class MigratedSettings(BaseModel):
    """Version 2 of a layout whose migration from version 1 fails."""

    speed_rpm: int = Field(100, ge=0, le=1000, description="Stirrer speed.")


def _rename_speed(values: Dict[str, Any]) -> Dict[str, Any]:
    values["speed_rpm"] = values.pop("speed") * 60  # KeyError when the file lacks "speed"
    return values


def make_migrating(name: str = "migrating") -> Plugin:
    """A plugin at settings version 2 whose migration to 2 raises on a file without ``speed``.

    :param name: the plugin's name."""
    plugin = Plugin(name, __name__, title="Migrating", version="2.0.0", settings=MigratedSettings,
                    settings_version=2, migrations={2: _rename_speed})
    _main_page(plugin)
    return plugin


BAD_V1_SETTINGS = b'{\n  "settings_version": 1,\n  "values": {"velocity": 3}\n}\n'
