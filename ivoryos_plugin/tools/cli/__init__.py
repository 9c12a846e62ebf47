"""``ivoryos-plugin``: run a plugin in the dev host, start the demo, scaffold, check, list, tokens.

:func:`main` is the command group (the console script ``ivoryos-plugin`` and
``python -m ivoryos_plugin.tools.cli``); each group of commands has its module: :mod:`.serve`
(``run``, ``demo``), :mod:`.package` (``new``, ``migrate``), :mod:`.check` (``list``, ``check``),
:mod:`.tokens` (``token create / list / revoke``); :mod:`.targets` turns a TARGET into plugins.
"""
from __future__ import annotations

import click

from .check import check, list_plugins
from .package import migrate, new, next_steps
from .serve import demo, run
from .targets import load_target, load_targets
from .tokens import token

__all__ = ["main", "load_target", "load_targets", "next_steps"]


@click.group()
@click.version_option(package_name="ivoryos-plugin-framework")
def main() -> None:
    """Build, run and check IvoryOS plugins."""


for _command in (run, demo, list_plugins, new, check, migrate, token):
    main.add_command(_command)
