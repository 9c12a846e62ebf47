"""Checks on plugin names and metadata: pure logic, no Flask, no I/O.

Every error names the plugin, the bad value and the fix, and is raised at construction or
registration, never at the first request.
"""
from __future__ import annotations

import keyword
import re
from typing import Optional

from .versions import is_older

#: Blueprint names IvoryOS 1.7.2 registers itself: a plugin of that name replaces a built-in page.
RESERVED_NAMES = frozenset({"main", "auth", "library", "control", "design", "execute", "data"})

#: First path segments IvoryOS already serves under its URL prefix (plus ``plugins``, the
#: framework's own page): a plugin of that name registers, but its pages are unreachable.
COLLIDING_NAMES = frozenset({
    "agent", "customize-logo", "draft", "executions", "files", "help", "instruments", "static",
    "plugins",
})

#: ``Plugin(placement=...)`` -> IvoryOS 1.x's ``plugin_type``. IvoryOS 1.x has no right panel: a
#: ``right_panel`` plugin is a left panel there (a section of the framework's combined left panel, with a
#: warning at registration); ivoryos-edge shows it in its ``panel-right`` (docs/edge.md).
PLACEMENTS = {"tab": "tab", "left_panel": "left_panel", "right_panel": "left_panel"}

#: The ``plugin_type`` values IvoryOS 1.x itself knows.
IVORYOS_PLUGIN_TYPES = frozenset(PLACEMENTS.values())

#: The placements shown in a side panel (they need a ``widget`` endpoint).
PANEL_PLACEMENTS = frozenset({"left_panel", "right_panel"})

#: The entry point group IvoryOS plugins are installed under (``name = module:plugin``).
ENTRY_POINT_GROUP = "ivoryos.plugins"

_VERSION = re.compile(r"^\d+(\.\d+)*$")

#: The longest name ``ivoryos-plugin new`` and ``migrate`` accept for a new package. The name is
#: used in a folder, in files (``test_<name>.py``), in the distribution ``ivoryos-<name>-plugin`` and
#: in pip's files for it (``__editable___ivoryos_<name>_plugin_<version>_finder.py``, ~50 more
#: characters); file names stop at 255 bytes. 64 leaves room for all of them and stays readable in a
#: URL and an endpoint name.
MAX_PACKAGE_NAME = 64

#: Top-level module names that Python or pytest import by themselves: an installed package of
#: that name runs where nobody asked for it. ``__init__``, ``__main__`` and every other
#: double-underscore name are refused too (Python's own names).
SPECIAL_MODULES = {
    "sitecustomize": "is imported by every Python interpreter of the environment once installed",
    "usercustomize": "is imported by every Python interpreter of the environment once installed",
    "conftest": "is the name of pytest's own configuration modules: pytest imports each 'conftest' it finds",
}


class PluginError(Exception):
    """A plugin is declared or registered wrongly; the message says which plugin and the fix."""

    def __init__(self, plugin: str, message: str) -> None:
        """:param plugin: the plugin's name.
        :param message: what is wrong and how to fix it."""
        super().__init__(f"Plugin {plugin!r}: {message}")
        self.plugin = plugin


def suggest_name(name: str) -> str:
    """A valid name close to ``name``: ``'my-plugin'`` -> ``'my_plugin'``.

    :param name: the rejected name."""
    cleaned = re.sub(r"\W", "_", str(name)).strip("_") or "plugin"
    if cleaned[0].isdigit():
        cleaned = "p_" + cleaned
    if cleaned in RESERVED_NAMES or cleaned in COLLIDING_NAMES or keyword.iskeyword(cleaned):
        cleaned += "_plugin"
    return cleaned


def check_name(name: object) -> str:
    """Return ``name`` if it can name a plugin, else raise :class:`PluginError`.

    :param name: the proposed plugin name."""
    if not isinstance(name, str) or not name:
        raise PluginError(str(name), "the name must be a non-empty string, e.g. 'balance'.")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise PluginError(
            name,
            "the name must be a Python identifier (letters, digits and underscores, not starting "
            f"with a digit) because IvoryOS builds endpoints such as '{name}.main' from it; "
            f"use {suggest_name(name)!r}.",
        )
    if name in RESERVED_NAMES:
        raise PluginError(
            name,
            f"{name!r} is the name of an IvoryOS built-in page and would replace it; "
            f"choose another name, e.g. {suggest_name(name)!r}.",
        )
    if name in COLLIDING_NAMES:
        raise PluginError(
            name,
            f"the URL /ivoryos/{name}/ is already served by IvoryOS or ivoryos_plugin, so the "
            f"plugin's pages would be unreachable; choose another name, e.g. {suggest_name(name)!r}.",
        )
    return name


def _shown(name: str) -> str:
    """``name`` as an error message shows it (a long one cut)."""
    return name if len(name) <= 40 else name[:37] + "..."


def check_module_name(name: str) -> str:
    """Return ``name`` if it can name a new top-level Python package (the name checks of
    :func:`check_name` aside), else raise :class:`PluginError` naming a name to use.

    Refused: names longer than :data:`MAX_PACKAGE_NAME`, the names Python or pytest import by
    themselves (:data:`SPECIAL_MODULES`), and double-underscore names (``__init__``, ``__main__``).

    :param name: the proposed package name."""
    if len(name) > MAX_PACKAGE_NAME:
        shorter = suggest_name(name)[:32].rstrip("_") or "plugin"
        raise PluginError(_shown(name), f"the name is {len(name)} characters long; a package name can have at most "
                                        f"{MAX_PACKAGE_NAME} (it names folders, files and the distribution, and a "
                                        f"file name stops at 255 bytes); choose a shorter name, e.g. {shorter!r}.")
    if name in SPECIAL_MODULES:
        raise PluginError(name, f"{name!r} {SPECIAL_MODULES[name]}; choose another name, e.g. {name + '_plugin'!r}.")
    if name.startswith("__") and name.endswith("__"):
        plain = name.strip("_") or "my"
        raise PluginError(name, f"double-underscore module names are Python's own ('__init__' marks a package, "
                                f"'__main__' is the program being run); choose another name, e.g. "
                                f"{plain + '_plugin'!r}.")
    return name


def check_instrument_name(plugin: str, name: str) -> str:
    """Return ``name`` if IvoryOS would show a deck global of that name as an instrument.

    IvoryOS 1.7.2 leaves out deck globals whose name starts with ``_`` or an uppercase letter.

    :param plugin: the plugin's name, for the message.
    :param name: the instrument's name (``steps_as``, or the plugin's name)."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or not name[0].islower():
        raise PluginError(plugin, f"steps_as={name!r}: the steps' instrument needs a name IvoryOS shows: a Python "
                                  "identifier starting with a lowercase letter, e.g. "
                                  f"{suggest_name(str(name)).lower()!r}.")
    return name


def check_placement(name: str, placement: str) -> str:
    """Return IvoryOS's ``plugin_type`` for ``placement`` or raise :class:`PluginError`.

    :param name: the plugin's name.
    :param placement: ``"tab"``, ``"left_panel"`` or ``"right_panel"`` (a left panel on IvoryOS 1.x)."""
    if placement not in PLACEMENTS:
        raise PluginError(name, f"placement={placement!r} is unknown; use 'tab', 'left_panel' or 'right_panel'.")
    return PLACEMENTS[placement]


def check_version(name: str, field: str, version: Optional[str]) -> Optional[str]:
    """Return ``version`` if it is numeric and dotted (``1.0.2``), else raise :class:`PluginError`.

    :param name: the plugin's name.
    :param field: the argument being checked, for the message.
    :param version: the version string, or None."""
    if version is None:
        return None
    if not isinstance(version, str) or not _VERSION.match(version):
        raise PluginError(name, f"{field}={version!r} is not a numeric dotted version; use e.g. '1.0.0'.")
    return version


def check_ivoryos_compatible(name: str, minimum: Optional[str], installed: Optional[str]) -> None:
    """Raise :class:`PluginError` when the installed IvoryOS is older than the plugin needs.

    :param name: the plugin's name.
    :param minimum: the plugin's ``min_ivoryos``, or None for any version.
    :param installed: the installed IvoryOS version, or None when it is not installed."""
    if minimum is None or installed is None:
        return
    if is_older(installed, minimum):
        raise PluginError(
            name,
            f"needs IvoryOS >= {minimum} but {installed} is installed; "
            f"upgrade with: pip install 'ivoryos>={minimum}'.",
        )


def required_endpoint(placement: str) -> str:
    """The endpoint IvoryOS's nav builds a link to for a plugin with this placement.

    :param placement: ``"tab"``, ``"left_panel"`` or ``"right_panel"`` (or IvoryOS's ``plugin_type``)."""
    return "widget" if placement in PANEL_PLACEMENTS else "main"
