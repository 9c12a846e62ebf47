"""Run our plugins on ivoryos-edge (the next IvoryOS generation): ``pip install
'ivoryos-plugin-framework[edge]'``.

Three ways to register a plugin (docs/edge.md)::

    # 1. a deck script of the edge, with its own run()
    import ivoryos_edge
    from ivoryos_plugin.edge import for_edge
    ivoryos_edge.run(__name__, plugins=[for_edge(balance)])

    # 2. our run(): the edge's arguments, plus the installed plugins, bound to 127.0.0.1
    import ivoryos_plugin.edge
    ivoryos_plugin.edge.run(__name__)

    # 3. an edge deck file: "plugins": ["ivoryos_plugin.edge:balance"] (an entry point's name)

Importing this module imports neither ivoryos_edge nor FastAPI: each name is loaded on first use,
and an installed plugin is found by its entry-point name (``ivoryos_plugin.edge:<name>``) the same way.
Without the ``[edge]`` extra, each of them raises :class:`EdgeNotInstalled` (an ImportError) whose one
line names the missing module and ``pip install 'ivoryos-plugin-framework[edge]'``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

from .hosts.extras import EdgeNotInstalled, require_edge

__all__ = ["EdgeNotInstalled", "for_edge", "run"]

if TYPE_CHECKING:
    from .hosts.edge.builder import for_edge
    from .hosts.edge.launcher import run

_EXPORTS = {"for_edge": "ivoryos_plugin.hosts.edge.builder", "run": "ivoryos_plugin.hosts.edge.launcher"}


def __getattr__(name: str) -> Any:
    """``for_edge`` and ``run`` on first use; any other name is an installed plugin's entry point
    (``ivoryos.plugins``), as an edge deck file names it: ``"ivoryos_plugin.edge:<name>"``.

    :param name: a public name or an entry point's name.
    :raises EdgeNotInstalled: the ``[edge]`` extra is not installed (checked before anything is imported)."""
    if name.startswith("__"):
        raise AttributeError(f"module 'ivoryos_plugin.edge' has no attribute {name!r}")
    require_edge()
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    launcher = importlib.import_module("ivoryos_plugin.hosts.edge.launcher")
    return launcher.entry_point_plugin(name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
