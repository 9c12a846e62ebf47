"""Socket.IO handlers a plugin puts on the default namespace, where IvoryOS has its own: found by
running ``init_socketio`` against a scratch server and in the sources (:func:`socketio_problems`),
and how ``ivoryos_plugin.run`` treats those of an installed plugin (:func:`as_run_loads_it`)."""
from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from flask import Blueprint

from .sources import _parse


_DEFAULT_NAMESPACE_EVENT = re.compile(r"handles (?:Socket\.IO event )?'([^']+)' on the default namespace")


def as_run_loads_it(name: str, message: str) -> str:
    """The warning for a default-namespace Socket.IO handler of an installed plugin, as
    ``ivoryos_plugin.run`` (which loads installed plugins) treats it: accepted, IvoryOS's own handler
    for the event (if any) keeps answering and the plugin's runs after it (``guard_init_socketio``).

    :param name: the plugin's name.
    :param message: the finding of :func:`socketio_problems`."""
    found = _DEFAULT_NAMESPACE_EVENT.search(message)
    what = f"handles Socket.IO event {found.group(1)!r}" if found else "adds a class-based namespace"
    where = message.split(": ", 2)[1].split(" handles ")[0] if found and ".py:" in message else "init_socketio"
    return (f"Plugin {name!r}: {where} {what} on IvoryOS's default namespace '/'. ivoryos_plugin.run, which loads "
            "installed plugins, accepts it: IvoryOS's own handler for that event, if it has one, keeps answering and "
            "the plugin's runs after it (under plain ivoryos.run a 'connect' there replaces IvoryOS's). Move it to the "
            f"plugin's own namespace (namespace='/ivoryos/{name}'), or port the plugin to ivoryos_plugin.Plugin and "
            "use @plugin.on(...).")


def socketio_problems(obj: Blueprint, sources: List[Path], is_plugin: bool) -> Tuple[List[str], List[str]]:
    """Socket.IO handlers on the default namespace (found by running ``init_socketio`` against a
    scratch server, and in the sources), which would replace IvoryOS's own; ``(errors, warnings)``.

    :param obj: the plugin Blueprint.
    :param sources: its Python files.
    :param is_plugin: whether it is an ivoryos_plugin ``Plugin`` (its handlers are namespaced)."""
    from flask_socketio import SocketIO

    from ...core.plugin import Plugin
    from ...runtime.libraries import FLASK_SOCKETIO_VERIFIED, pending_socketio_handlers

    errors: List[str] = []
    warnings: List[str] = []
    events: Set[str] = set()
    fix = (f"pass namespace='/ivoryos/{obj.name}' (and connect the page's socket to it), or port the plugin to "
           "ivoryos_plugin.Plugin and use @plugin.on(...)")
    init = getattr(obj, "init_socketio", None)
    if init is not None and not is_plugin:
        probe = SocketIO()
        try:
            init(probe)
        except Exception as exc:
            warnings.append(f"Plugin {obj.name!r}: init_socketio raised {type(exc).__name__}: {exc} on a scratch "
                            "server, so its handlers were only checked in the source.")
        declared = pending_socketio_handlers(probe)
        if declared is None:
            warnings.append(f"Plugin {obj.name!r}: this Flask-SocketIO keeps its handlers where the check cannot read "
                            f"them (verified on {FLASK_SOCKETIO_VERIFIED}), so they were only checked in the source.")
        for declared_event, namespace in declared[0] if declared else []:
            if namespace in (None, "/") and declared_event not in events:
                events.add(declared_event)
                errors.append(f"Plugin {obj.name!r}: init_socketio handles {declared_event!r} on the default namespace '/', "
                              f"where IvoryOS has its own handlers (a 'connect' there replaces IvoryOS's); {fix}.")
        for namespace in declared[1] if declared else []:
            if namespace in (None, "/"):
                errors.append(f"Plugin {obj.name!r}: init_socketio adds a class-based namespace on '/', which replaces "
                              f"IvoryOS's handlers; {fix}.")
    module = sys.modules.get(obj.import_name)
    globals_ = vars(module) if module is not None else {}
    loaded = _loaded_modules(sources)
    defines_init = False
    for file in sources:
        tree = _parse(file)
        # a receiver is looked up in the module of the file it is in (a package may hold several plugins)
        names = dict(loaded.get(os.path.realpath(file), globals_))
        names.update({name: Plugin for name in _plugins_made(tree)})
        for node in ast.walk(tree) if tree is not None else []:
            if isinstance(node, ast.FunctionDef) and node.name == "init_socketio" and file.stem == obj.import_name.rpartition(".")[2]:
                defines_init = True
            event = _default_namespace_handler(node, names, Plugin)
            if event is not None and event not in events:
                events.add(event)
                errors.append(f"Plugin {obj.name!r}: {file.name}:{getattr(node, 'lineno', '?')} handles Socket.IO "
                              f"event {event!r} on the default namespace '/', where IvoryOS has its own handlers; "
                              f"{fix}.")
    if defines_init and init is None and not is_plugin:
        warnings.append(f"Plugin {obj.name!r}: the module defines init_socketio() but the blueprint has no "
                        "init_socketio attribute, so IvoryOS never calls it; add "
                        f"`{_global_name(globals_, obj) or 'bp'}.init_socketio = init_socketio`.")
    return errors, warnings


def _plugins_made(tree: Optional[ast.AST]) -> Set[str]:
    """The module-level names a file binds to ``Plugin(...)`` (a module of the package that was not
    imported for this check: another plugin of the same package)."""
    body = tree.body if isinstance(tree, ast.Module) else []
    return {t.id for n in body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and getattr(n.value.func, "id", getattr(n.value.func, "attr", "")) == "Plugin"
            for t in n.targets if isinstance(t, ast.Name)}


def _loaded_modules(sources: List[Path]) -> Dict[str, Dict[str, Any]]:
    """The globals of the imported modules among ``sources``, by real file path."""
    wanted = {os.path.realpath(f) for f in sources}
    found: Dict[str, Dict[str, Any]] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.realpath(file) in wanted:
            found[os.path.realpath(file)] = vars(module)
    return found


def _global_name(globals_: Dict[str, Any], obj: Any) -> Optional[str]:
    return next((k for k, v in globals_.items() if v is obj), None)


def _default_namespace_handler(node: ast.AST, globals_: Dict[str, Any], plugin_type: type) -> Optional[str]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    if node.func.attr not in ("on", "on_event") or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    receiver = node.func.value
    if isinstance(receiver, ast.Name) and (isinstance(globals_.get(receiver.id), plugin_type)
                                           or globals_.get(receiver.id) is plugin_type):
        return None
    for keyword in node.keywords:
        if keyword.arg == "namespace":
            value = keyword.value
            if not (isinstance(value, ast.Constant) and value.value in ("/", None)):
                return None
    if len(node.args) >= 3 or (node.func.attr == "on" and len(node.args) >= 2):
        return None  # a namespace given positionally
    return first.value
