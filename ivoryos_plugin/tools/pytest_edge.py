"""Deprecated: the old path of :mod:`ivoryos_plugin.tools.testing.edge` (the edge's clients), now in the
pytest kit's folder; import :mod:`ivoryos_plugin.testing` (the kit's public path) instead. This module
gives the same objects for one release, with a :class:`DeprecationWarning` on import, and goes in the next."""
from __future__ import annotations

from .testing import deprecated_path
from .testing import edge as _moved
from .testing.edge import *  # noqa: F401,F403  (the same objects; pytest collects fixtures from here too)
from .testing.edge import __all__  # noqa: F401

__getattr__ = deprecated_path(__name__, _moved)
