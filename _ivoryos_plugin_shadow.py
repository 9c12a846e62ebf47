"""Name the cause when another package named ``ivoryos_plugin`` shadows the framework.

The official IvoryOS plugin template names its package ``ivoryos_plugin``, the framework's import
name. A deck started inside a checkout of the template (``python deck.py``) imports the template's
package: Python puts the script's folder first on ``sys.path``. ``ivoryos_plugin.run(__name__)``
then fails with ``AttributeError: module 'ivoryos_plugin' has no attribute 'run'``, which names
neither the cause nor the fix.

The framework's distribution installs ``ivoryos-plugin-framework-shadow.pth``, whose one line
imports this module when Python starts (as setuptools' ``distutils-precedence.pth`` does). It puts
one finder first on ``sys.meta_path`` that looks at one name only, ``ivoryos_plugin``: when the
package an import finds there is not the framework installed beside this module, that package
still loads and works as it is, and a framework name it lacks (``run``, ``Plugin``...) is an
``AttributeError`` that says which folder shadows the framework and how to fix it. Nothing else
changes, and nothing here imports the framework (that would hide the template from the deck).

Kept apart from the ``ivoryos_plugin`` package on purpose: importing anything inside it would
import the framework at start-up. ``ivoryos_plugin.tools.collision`` words the same cause for
``ivoryos-plugin check`` and the dev host.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import Any, Callable, List, Optional, Sequence

PACKAGE = "ivoryos_plugin"
#: the framework this module was installed with: the ``ivoryos_plugin`` folder beside it
FRAMEWORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), PACKAGE)
#: the framework's public names (``ivoryos_plugin.__all__``): asking a shadowing package for one
#: of them gets the explanation
NAMES = frozenset({
    "ActionError", "DeckBusy", "DeckUnverified", "Discovery", "InstrumentUnavailable", "Plugin", "PluginError",
    "Publisher", "SerialDevice", "SerialDeviceError", "SettingsError", "SettingsValidationError", "Stop",
    "create_app", "discover", "open_serial", "publisher", "run", "stop_on_sigterm",
})


def explain(name: str, package_dir: str, framework: str = FRAMEWORK, start: Optional[str] = None) -> str:
    """The one-line message for a framework name missing from a package that shadows the framework.

    :param name: the attribute asked for (``run``).
    :param package_dir: the shadowing package's folder.
    :param framework: the framework's package folder.
    :param start: the folder the script was started from (``sys.path[0]``), when known."""
    project = os.path.dirname(package_dir)
    parent = os.path.dirname(project) or project
    started_here = start is not None and os.path.realpath(start or os.curdir) == os.path.realpath(project)
    why = ("the folder this script was started from, which Python searches first" if started_here
           else "a folder Python searches before the framework's")
    return (f"module 'ivoryos_plugin' has no attribute {name!r}: the package in {package_dir} (the official plugin "
            f"template's, named like the framework) shadows the framework ivoryos_plugin ({framework}): it is in "
            f"{project}, {why}. Fix: start the deck from another folder, or give the template a name of its own: "
            f"ivoryos-plugin migrate {project} --name my_plugin --dir {parent} (a copy; this folder stays as it is), "
            "then import my_plugin in the deck.")


def _missing(package_dir: str, start: Optional[str]) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        if name in NAMES:
            raise AttributeError(explain(name, package_dir, start=start))
        raise AttributeError(f"module 'ivoryos_plugin' has no attribute {name!r}")

    return __getattr__


class _Loader(importlib.abc.Loader):
    """The shadowing package's own loader, which also gives the loaded module the explanation."""

    def __init__(self, loader: Any, package_dir: str, start: Optional[str]) -> None:
        self._loader, self._package_dir, self._start = loader, package_dir, start

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        if "__getattr__" not in vars(module):
            module.__getattr__ = _missing(self._package_dir, self._start)  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, is_package...: the original's
        return getattr(self._loader, name)


class ShadowFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``; answers for ``ivoryos_plugin`` only, and only when what the other
    finders find there is not the framework beside this module."""

    _ivoryos_plugin_shadow = True

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != PACKAGE:
            return None
        spec: Optional[importlib.machinery.ModuleSpec] = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or getattr(finder, "_ivoryos_plugin_shadow", False) or find is None:
                continue
            try:
                spec = find(fullname, path, target)
            except Exception:
                return None  # let the import system report it as it would
            if spec is not None:
                break
        origin = getattr(spec, "origin", None)
        if spec is None or spec.loader is None or not isinstance(origin, str):
            return None
        package_dir = os.path.dirname(os.path.abspath(origin))
        if os.path.realpath(package_dir) == os.path.realpath(FRAMEWORK):
            return None  # the framework: imported as usual
        start = sys.path[0] if sys.path else None
        spec.loader = _Loader(spec.loader, package_dir, start)
        return spec


def install(meta_path: Optional[List[Any]] = None) -> None:
    """Put the finder first on ``meta_path`` (``sys.meta_path``) once.

    :param meta_path: the list to change (tests give their own)."""
    paths = sys.meta_path if meta_path is None else meta_path
    if not any(getattr(f, "_ivoryos_plugin_shadow", False) for f in paths):
        paths.insert(0, ShadowFinder())


if os.path.isdir(FRAMEWORK):  # installed beside the framework (site-packages, or its source checkout)
    install()
