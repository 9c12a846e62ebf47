"""The pytest kit for plugin authors, one feature in one folder (its public path is
:mod:`ivoryos_plugin.testing`; opt in with ``pytest_plugins = ["ivoryos_plugin.testing"]``).

- :mod:`.kit`: the fixtures (``plugin_app``, ``client``, ``live``, ``deck``, ``ivoryos_app``, ...);
- :mod:`.hosts`: ``plugin_host`` (one test on both IvoryOS generations) and ``plugin_server``;
- :mod:`.edge`: ``plugin_host``'s clients of a plugin on ivoryos-edge;
- :mod:`.waiting`: the wait both live clients' ``wait_for`` share.

Importing this folder imports none of them (pytest, Flask and the edge's clients load with the module
that needs them). The old flat modules ``ivoryos_plugin.tools.pytest_kit``, ``pytest_hosts`` and
``pytest_edge`` still import, with a :class:`DeprecationWarning` (:func:`deprecated_path`); they go in
the next release."""
from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any, Callable

__all__ = ["deprecated_path"]


def deprecated_path(old: str, moved: ModuleType) -> Callable[[str], Any]:
    """Called once by an old module of the kit as it is imported: warn, with one
    :class:`DeprecationWarning` pointing at the line that imported ``old``, that it is now ``moved``;
    return the old module's ``__getattr__``, which gives the moved module's other names (its private
    ones too) as the old module had them.

    :param old: the old module's name (its ``__name__``).
    :param moved: the module it moved to."""
    warnings.warn(f"{old} is now {moved.__name__} (or import the kit's public path, ivoryos_plugin.testing): the "
                  "pytest kit is one folder; the old path goes in the next release.", DeprecationWarning, stacklevel=3)

    def __getattr__(name: str) -> Any:
        return getattr(moved, name)

    return __getattr__
