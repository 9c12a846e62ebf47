"""Finding and loading plugins: the ``ivoryos.plugins`` entry point group, each plugin loaded in
isolation (one broken plugin never stops the others: neither at import nor while the host registers
it), and plain Blueprints accepted as they are.

The modules, by what they do: :mod:`.entry_points` (:func:`discover`), :mod:`.checks` (what an entry
point gives, and whether it can be registered), :mod:`.registration` (:func:`register_plugin`,
:func:`protect_plain`), :mod:`.isolation` (a plugin that fails while the host registers it fails
alone), :mod:`.failures` (the report of a plugin that could not be loaded).
"""
from __future__ import annotations

from .checks import check_endpoint, check_plugin, plain_endpoints, resolve_entry_point
from .entry_points import GROUP, Discovery, _entry_points, discover
from .failures import Failure
from .isolation import isolate_registration
from .registration import protect_plain, register_plugin

#: ``_entry_points`` too: ``check --installed`` and the edge launcher list the group as ``discover`` does
__all__ = ["GROUP", "Discovery", "Failure", "check_endpoint", "check_plugin", "discover", "isolate_registration",
           "plain_endpoints", "protect_plain", "register_plugin", "resolve_entry_point", "_entry_points"]
