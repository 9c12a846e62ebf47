"""The name the framework shares with the official IvoryOS plugin template: ``ivoryos_plugin`` is the
framework's import name, and the template's package *and* distribution name.

Measured with pip 23-26 (docs/packaging.md): installing the template into an environment that has
the framework under its old distribution name ``ivoryos-plugin`` uninstalled the framework
("Successfully uninstalled ivoryos-plugin"), since pip normalises ``ivoryos_plugin`` to the same
name. The framework's distribution is now ``ivoryos-plugin-framework``, so pip keeps it; but both
ship a package ``ivoryos_plugin``, and pip writes the template's ``ivoryos_plugin/__init__.py`` over
the framework's without a word. These checks say so, with the fix (``ivoryos-plugin migrate``)."""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import List, Optional

from ..core.versions import normalize
from .checks_source import FRAMEWORK_DIST, TEMPLATE_DIST

PACKAGE = "ivoryos_plugin"
_REINSTALL = f"pip install --force-reinstall --no-deps {FRAMEWORK_DIST}"


def project_problems(root: Path, distribution: str) -> List[str]:
    """A plugin project that would collide with the framework: a package folder ``ivoryos_plugin``
    (not the framework's own) or the distribution name ``ivoryos_plugin`` / ``ivoryos-plugin``.

    :param root: the project folder.
    :param distribution: its distribution name ('' when unknown)."""
    fix = (f"Fix: ivoryos-plugin migrate {root} --name my_plugin (it writes a copy under the new name, with its own "
           "distribution and entry point, and leaves this folder as it is).")
    problems = []
    for base in (root, root / "src"):
        folder = base / PACKAGE
        if (folder / "__init__.py").is_file() and not (folder / "core" / "plugin.py").is_file():
            problems.append(f"the package {folder} is named {PACKAGE!r}, the framework's import name (the official "
                            "plugin template's default): installed, its __init__.py replaces the framework's; on "
                            f"sys.path (a deck started in this folder), it hides the framework. {fix}")
    if distribution and normalize(distribution) == TEMPLATE_DIST:
        problems.append(f"the distribution name {distribution!r} is the official plugin template's (pip reads it as "
                        f"{TEMPLATE_DIST!r}); each plugin needs its own, or pip replaces one with the other. {fix}")
    return problems


def _ships_package(dist: metadata.Distribution) -> bool:
    top = (dist.read_text("top_level.txt") or "").split()
    return PACKAGE in top or any(str(f).replace("\\", "/") == f"{PACKAGE}/__init__.py" for f in (dist.files or []))


def installed_problems() -> List[str]:
    """Installed distributions, other than the framework, that install a package ``ivoryos_plugin``,
    and an ``ivoryos_plugin`` package that is not the framework's (replaced or shadowed)."""
    problems: List[str] = []
    seen = set()
    for dist in metadata.distributions():
        name = str(dist.metadata["Name"] or "")
        key = normalize(name)
        if key in seen or key == normalize(FRAMEWORK_DIST):
            continue
        seen.add(key)
        if _ships_package(dist):
            problems.append(f"the distribution {name} {dist.version} installs a package {PACKAGE!r} (the official "
                            "plugin template's layout), over the framework's files. Fix: pip uninstall -y "
                            f"{name} && {_REINSTALL}; then ivoryos-plugin migrate <its project folder> --name my_plugin "
                            "and pip install the result.")
    problem = framework_problem()
    if problem:
        problems.append(problem)
    return problems


def framework_problem() -> Optional[str]:
    """Why the imported ``ivoryos_plugin`` is not the framework's package, or None."""
    package = sys.modules.get(PACKAGE)
    file = getattr(package, "__file__", None)
    if package is None:
        return None
    if file is None:
        return (f"{PACKAGE}/__init__.py is missing (uninstalling a plugin package named {PACKAGE!r} removed it), so "
                f"'import {PACKAGE}' gives no framework. Fix: {_REINSTALL}")
    if getattr(package, "_EXPORTS", None) is None:
        return (f"'import {PACKAGE}' loads {file}, which is not the framework's: a plugin package named {PACKAGE!r} "
                "replaced its __init__.py, or a folder of that name comes first on sys.path (a deck started inside a "
                f"template checkout). Fix: {_REINSTALL} (or start the deck elsewhere), then ivoryos-plugin migrate "
                "<the plugin's folder> --name my_plugin.")
    return None
