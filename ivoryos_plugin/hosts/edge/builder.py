"""``for_edge(plugin)``: a real ``ivoryos_edge.plugins.Plugin`` built from one of our plugins'
declarations, for ``ivoryos_edge.run(__name__, plugins=[for_edge(plugin)])`` or a deck file."""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Dict, Optional

from ivoryos_edge.plugins import Plugin as NativePlugin

from ...core.names import PluginError
from ...core.plugin import Plugin
from ...runtime.steps import install_on_deck
from . import runstate
from .gaps import EDGE_PLACEMENTS, unsupported
from .live import LiveChannel
from .routes import add_routes
from .runtime_app import RuntimeApp

log = logging.getLogger("ivoryos_plugin.edge")

#: our placements -> the edge's
PLACEMENTS = EDGE_PLACEMENTS
#: what the edge itself does not guard, said once at start and on health.json
UNGUARDED = ("ivoryos-edge has no login: anyone who can reach this edge can use these plugin pages, as they can "
             "use the edge's own (programs may send a bearer token, which is then checked)",
             "ivoryos-edge runs its own manual calls (POST /api/execute, the Instruments page) during a run: "
             "only this plugin's actions and steps are refused (409) while a run or a manual call holds the deck")
_SAID = threading.Event()


class EdgePlugin(NativePlugin):  # type: ignore[misc]
    """The edge plugin of one of ours: its router holds our routes; a panel shows the ``widget`` page.

    :param plugin: our plugin.
    :param runtime_app: its private runtime app."""

    def __init__(self, plugin: Plugin, runtime_app: RuntimeApp) -> None:
        super().__init__(plugin.title, id=plugin.name, placement=PLACEMENTS[plugin.placement])
        self.source = plugin
        self.runtime_app = runtime_app
        self.live: Optional[LiveChannel] = None  # set by build()

    def describe(self) -> Dict[str, Any]:
        """What ``GET /api/plugins`` lists: a panel opens our ``widget`` page when there is one."""
        info: Dict[str, Any] = super().describe()
        if self.placement != "tab" and self.source.declarations.route("widget") is not None:
            info["url"] = f"/plugins/{self.id}/widget"
        info["framework"] = "ivoryos_plugin"
        return info


_BUILT: "weakref.WeakKeyDictionary[Plugin, EdgePlugin]" = weakref.WeakKeyDictionary()
_BUILD_LOCK = threading.Lock()


def for_edge(plugin: Plugin) -> EdgePlugin:
    """An ``ivoryos_edge.plugins.Plugin`` serving ``plugin`` on ivoryos-edge: its pages, actions,
    settings, history, cameras, steps and live channel at ``/plugins/<name>/``. The same object is
    returned for the same plugin.

    :param plugin: one of our :class:`~ivoryos_plugin.Plugin` objects.
    :raises PluginError: ``plugin`` is not one of ours.

    Example::

        import ivoryos_edge
        from ivoryos_plugin.edge import for_edge
        from balance_dashboard import plugin as balance

        ivoryos_edge.run(__name__, plugins=[for_edge(balance)], host="127.0.0.1")
    """
    if not isinstance(plugin, Plugin):
        raise PluginError(getattr(plugin, "name", repr(plugin)),
                          f"for_edge() takes an ivoryos_plugin.Plugin, not {type(plugin).__name__}; pass a native "
                          "ivoryos_edge plugin to ivoryos_edge.run(plugins=[...]) as it is.")
    with _BUILD_LOCK:
        built = _BUILT.get(plugin)
        if built is not None:
            return built
        for problem in unsupported(plugin):
            log.warning("ivoryos_plugin: on ivoryos-edge: %s.", problem)
        edge = build(plugin)
        _BUILT[plugin] = edge
        return edge


def build(plugin: Plugin) -> EdgePlugin:
    """A new edge plugin of ``plugin`` (its own private app, runtime and live channel), not shared:
    :func:`for_edge` keeps one per plugin; the pytest kit builds one per test.

    :param plugin: one of our plugins."""
    rt = RuntimeApp(plugin)
    edge = EdgePlugin(plugin, rt)
    live = LiveChannel(rt, mirror=edge.publish)
    rt.runtime.hub.transport = live  # the hub's transport: publish, the streams and the acks go through it

    def health() -> Dict[str, Any]:
        gate = rt.ext.gate
        return {"plugin": rt.runtime.status(), "host": f"ivoryos-edge {runstate.edge_version()}",
                "login": "none: ivoryos-edge has no users", "deck": live.deck_state(),
                "hardware": {"verified": not gate.problem and gate.lock is not None, "problem": gate.problem},
                "failures": list(rt.ext.failures), "warnings": list(rt.ext.warnings), "unguarded": list(UNGUARDED),
                "viewers": len(live.clients)}

    add_routes(edge.router, rt, live, health)

    def start(instruments: Dict[str, Any]) -> None:
        rt.start(instruments)
        if plugin.declarations.steps:
            install_on_deck(plugin, rt.deck)  # type: ignore[arg-type]
        say_once(plugin.name)

    edge.on_start(start)
    edge.live = live
    return edge


def say_once(name: str) -> None:
    """Print, once per process, what the edge does not guard.

    :param name: the first plugin started."""
    if _SAID.is_set():
        return
    _SAID.set()
    for line in UNGUARDED:
        print(f" * ivoryos_plugin on ivoryos-edge: {line}.", flush=True)
