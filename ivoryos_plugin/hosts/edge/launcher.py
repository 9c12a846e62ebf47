"""``ivoryos_plugin.edge.run``: what ``ivoryos_plugin.run`` is for IvoryOS 1.x, for ivoryos-edge.

It takes ``ivoryos_edge.run``'s own arguments with the same meaning, accepts our plugins beside
native edge ones in ``plugins=``, adds the installed plugins (entry point group ``ivoryos.plugins``),
binds 127.0.0.1 unless told, keeps the edge's data in ``./ivoryos_data/edge`` unless told, leaves our
plugin objects out of the deck's instruments, prints each of these differences, then calls
``ivoryos_edge.run``.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from ...core.names import ENTRY_POINT_GROUP
from ...core.plugin import Plugin
from ..discovery import _entry_points, discover, resolve_entry_point
from .builder import EdgePlugin, for_edge

#: the groups a deck file's ``"ivoryos_plugin.edge:<name>"`` is looked up in, in order
GROUPS = (ENTRY_POINT_GROUP, "ivoryos_plugin.examples")
LOOPBACK = "127.0.0.1"


def entry_point_plugin(name: str) -> EdgePlugin:
    """The edge plugin of the installed plugin whose entry point is ``name`` (what an edge deck file
    names as ``"ivoryos_plugin.edge:<name>"``).

    :param name: the entry point's name.
    :raises AttributeError: no installed plugin has it (the edge reports it as that plugin's import error)."""
    known: List[str] = []
    for group in GROUPS:
        for ep, _ in _entry_points(group):
            known.append(ep.name)
            if ep.name == name:
                return for_edge(resolve_entry_point(ep.load(), name))
    raise AttributeError(f"ivoryos_plugin.edge: no installed plugin has the entry point {name!r} (groups "
                         f"{', '.join(GROUPS)}); installed: {', '.join(sorted(set(known))) or 'none'}. Install the "
                         "plugin (pip install -e ./my_plugin) or fix the name in the deck file.")


def _ours_in(module_name: Optional[str]) -> List[str]:
    module = sys.modules.get(module_name or "")
    if module is None:
        return []
    return [name for name, value in vars(module).items() if isinstance(value, Plugin)]


def prepare(module_name: Optional[str], plugins: Any, discover_plugins: bool = True) -> Dict[str, Any]:
    """The arguments ``ivoryos_edge.run`` gets, and the lines saying how they differ from what was given.

    :param module_name: the deck script's ``__name__``.
    :param plugins: our plugins, native edge plugins and the edge's static entries (one or a list).
    :param discover_plugins: add the installed plugins (``ivoryos.plugins``)."""
    given: Sequence[Any] = plugins if isinstance(plugins, (list, tuple)) else ([] if plugins is None else [plugins])
    converted: List[Any] = []
    names = set()
    lines: List[str] = []
    for item in given:
        if isinstance(item, Plugin):
            names.add(item.name)
            converted.append(for_edge(item))
        else:
            converted.append(item)
    errors: List[Dict[str, str]] = []
    if discover_plugins:
        found = discover(exclude=names)
        for plugin in found.plugins:
            if isinstance(plugin, Plugin):
                converted.append(for_edge(plugin))
                lines.append(f"installed plugin {plugin.name!r} added ({found.sources.get(plugin.name, '')})")
            else:
                errors.append({"plugin": plugin.name, "stage": "load",
                               "error": "a plain Flask Blueprint is a v1 plugin; only ivoryos_plugin.Plugin objects "
                                        "are served on ivoryos-edge"})
        for failure in found.failures:
            errors.append({"plugin": failure.name, "stage": failure.stage, "error": failure.error})
            lines.append(f"installed plugin {failure.name!r} failed ({failure.stage}): {failure.error}")
    ours = sum(isinstance(p, EdgePlugin) for p in converted)
    if ours:
        lines.append(f"{ours} ivoryos_plugin plugin(s) served as edge plugins (for_edge)")
    return {"plugins": converted, "plugin_errors": errors, "lines": lines, "exclude": _ours_in(module_name)}


def run(module_name: Optional[str] = None, port: Optional[int] = None, plugins: Any = None, *,
        host: Optional[str] = None, discover_plugins: bool = True, **kwargs: Any) -> None:
    """Start ivoryos-edge with our plugins: ``ivoryos_edge.run``'s arguments, with these differences
    (each printed at start): installed plugins are added, our plugins are accepted in ``plugins=``
    and left out of the deck's instruments, the server binds 127.0.0.1 unless ``host=`` (or
    ``$IVORYOS_HOST``) says otherwise, and the edge's data goes to ``./ivoryos_data/edge`` unless
    ``$IVORYOS_DATA_DIR`` names a folder.

    :param module_name: the deck script's ``__name__`` (its globals are the instruments).
    :param port: the port (``$IVORYOS_PORT`` or 8080).
    :param plugins: our plugins, native edge plugins, or a list of both.
    :param host: the interface to bind.
    :param discover_plugins: add the installed plugins (``ivoryos.plugins`` entry points).
    :param kwargs: ``ivoryos_edge.run``'s other arguments (``instruments``, ``exclude_names``...).

    Example::

        import ivoryos_plugin.edge
        from balance_dashboard import plugin as balance
        balance_1 = Balance()  # an instrument
        ivoryos_plugin.edge.run(__name__, plugins=[balance])
    """
    lines: List[str] = []
    if host is None and not os.environ.get("IVORYOS_HOST"):
        host = LOOPBACK
        lines.append("binds 127.0.0.1 (ivoryos_edge.run binds 0.0.0.0): pass host='0.0.0.0' to serve the network")
    if not (os.environ.get("IVORYOS_DATA_DIR") or os.environ.get("IVORYOS_EDGE_HOME")):
        folder = os.path.abspath(os.path.join("ivoryos_data", "edge"))
        os.environ["IVORYOS_DATA_DIR"] = folder
        lines.append(f"keeps the edge's data in {folder} (set IVORYOS_DATA_DIR to choose)")
    prepared = prepare(module_name, plugins, discover_plugins)
    lines.extend(prepared["lines"])
    exclude = list(kwargs.pop("exclude_names", None) or [])
    if prepared["exclude"]:
        exclude.extend(prepared["exclude"])
        lines.append(f"deck globals {', '.join(prepared['exclude'])} are plugins, not instruments")
    errors = list(kwargs.pop("plugin_errors", None) or []) + prepared["plugin_errors"]
    for line in lines:
        print(f" * ivoryos_plugin.edge.run: {line}", flush=True)
    from ivoryos_edge import run as edge_run  # imports the edge's server: its data folder is fixed now

    edge_run(module_name, port, prepared["plugins"], host=host, plugin_errors=errors,
             exclude_names=exclude or None, **kwargs)


def serve(plugins: Sequence[Any], deck: Any = None, *, port: int, data_dir: Optional[str] = None,
          plugin_errors: Sequence[Dict[str, str]] = (), banner: Sequence[str] = ()) -> None:
    """Serve ``plugins`` on ivoryos-edge at 127.0.0.1 (``ivoryos-plugin run --host edge`` and
    ``ivoryos-plugin demo --host edge``): the deck module's globals are the instruments.

    :param plugins: our plugins (and native edge ones).
    :param deck: the deck module (loaded by the caller), or None for an empty deck.
    :param port: the TCP port.
    :param data_dir: the edge's data folder (default ``./ivoryos_data/edge-PORT``).
    :param plugin_errors: plugins that failed to load, shown on the edge's plugin list.
    :param banner: lines printed once the arguments are known."""
    folder = os.path.abspath(data_dir or os.path.join("ivoryos_data", f"edge-{port}"))
    os.makedirs(folder, exist_ok=True)
    os.environ["IVORYOS_DATA_DIR"] = folder
    for line in banner:
        print(line, flush=True)
    print(f" * ivoryos-edge with ivoryos_plugin: http://127.0.0.1:{port}/ (data in {folder}; the edge has no login: "
          "it listens on 127.0.0.1 only)", flush=True)
    extra: Dict[str, Any] = {} if deck is not None else {"instruments": {}}
    run(deck.__name__ if deck is not None else None, port, list(plugins), host=LOOPBACK, discover_plugins=False,
        plugin_errors=list(plugin_errors), **extra)
