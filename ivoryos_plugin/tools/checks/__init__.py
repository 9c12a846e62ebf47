"""``ivoryos-plugin check``: find the mistakes users would otherwise meet at runtime, before they do.

Checks, each reported with the fix: the plugin's name (valid, not IvoryOS's, not taken twice), the
endpoint IvoryOS's nav links to, that a ``Plugin``'s routes register (on a scratch app), templates
that are rendered, extended or included, the entry point,
the package metadata, the IvoryOS version, Socket.IO handlers on the default namespace (which
replace IvoryOS's own), and, with the ``[edge]`` extra installed, what ivoryos-edge cannot serve.

The modules, by what they do: :mod:`.targets` (a path or the installed plugins: :func:`check_path`,
:func:`check_installed`), :mod:`.plugin` (the checks on one plugin object), :mod:`.project` (the
project's metadata, read without running it), :mod:`.sources` (its Python files and templates),
:mod:`.handlers` (Socket.IO handlers on the default namespace), :mod:`.collision` (the name the
framework shares with the official plugin template), :mod:`.report` (the findings).
"""
from __future__ import annotations

from .plugin import check_object, registration_problem
from .report import ERROR, OK, WARNING, Finding, Report
from .targets import check_installed, check_path, isolated_import

__all__ = ["ERROR", "OK", "WARNING", "Finding", "Report", "check_installed", "check_object", "check_path",
           "isolated_import", "registration_problem"]
