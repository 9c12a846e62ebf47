"""The framework's optional extras: whether one is installed, found without importing it.

The ``[edge]`` extra (ivoryos-edge, with FastAPI, Starlette and uvicorn) is what the edge host needs;
without it nothing else changes, and everything that reaches for the edge (``ivoryos_plugin.edge``,
``ivoryos-plugin run/demo --host edge``, ``check``'s edge lines, the pytest kit's ``[edge]`` runs) says
how to install it.
"""
from __future__ import annotations

import importlib.util
from typing import Optional

#: how to install what the edge host needs
EDGE_INSTALL = "pip install 'ivoryos-plugin-framework[edge]'"
#: the modules the edge host imports
EDGE_MODULES = ("ivoryos_edge", "fastapi", "starlette", "uvicorn")


def edge_missing() -> Optional[str]:
    """The first module of the ``[edge]`` extra that is not installed, or None when all are."""
    for name in EDGE_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


class EdgeNotInstalled(ImportError):
    """The ``[edge]`` extra is not installed: the message names the missing module and the install command.

    Raised by :func:`require_edge`, so by ``ivoryos_plugin.edge.for_edge``/``run``, an installed
    plugin's ``ivoryos_plugin.edge:<name>``, ``import ivoryos_plugin.hosts.edge`` and
    ``run_demo(edge=True)``; the CLI turns it into one ``Error:`` line and exit status 2."""


def require_edge() -> None:
    """Return when the ``[edge]`` extra is installed, else raise :class:`EdgeNotInstalled` naming what is
    missing and the fix (found without importing the extra).

    :raises EdgeNotInstalled: a module of the extra cannot be found."""
    missing = edge_missing()
    if missing is not None:
        raise EdgeNotInstalled(_problem(missing), name=missing)


def _problem(missing: str) -> str:
    return (f"ivoryos_plugin's ivoryos-edge host needs the [edge] extra, and {missing!r} is not installed: "
            f"{EDGE_INSTALL}")


def edge_problem() -> Optional[str]:
    """Why the edge host cannot be used here, with the fix, or None when it can."""
    missing = edge_missing()
    return None if missing is None else _problem(missing)
