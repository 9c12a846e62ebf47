"""``ivoryos-plugin migrate``: turn a template-style plugin package (any plain-Blueprint package, the
official IvoryOS plugin template included) or a single HTML page into a framework plugin package
under a new name, beside the original (which is never changed).

The official template names its package and its distribution ``ivoryos_plugin``, the framework's
import name: installed as it is, its ``ivoryos_plugin/__init__.py`` replaces the framework's. The
migrated package has its own name, its own distribution (``ivoryos-<name>-plugin``), the
``ivoryos.plugins`` entry point, and generated tests; what could not be converted is listed.

The modules, by what they do: :mod:`.project` (a plugin project), :mod:`.html` (one page),
:mod:`.tree` (copying without following links out of the source, the staging folder),
:mod:`.source` (Python sources, no I/O), :mod:`.pages` (page templates, no I/O), :mod:`.metadata`
(the new ``pyproject.toml``), :mod:`.generated` (the tests written with the package).
"""
from __future__ import annotations

from .html import migrate_html
from .project import migrate_project
from .tree import MigrateError, Migration

__all__ = ["MigrateError", "Migration", "migrate_html", "migrate_project"]
