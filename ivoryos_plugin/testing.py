"""The pytest kit for plugin authors (public path of :mod:`ivoryos_plugin.tools.pytest_kit`).

Opt in from your project's top-level ``conftest.py`` (the scaffold's does)::

    pytest_plugins = ["ivoryos_plugin.testing"]

Installing the framework adds no fixture to other projects' test runs.
"""
from __future__ import annotations

from .tools.pytest_kit import *  # noqa: F401,F403  (the fixtures pytest collects from this module)
from .tools.pytest_kit import __all__  # noqa: F401
