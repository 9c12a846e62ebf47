"""The ivoryos-edge host: our plugins served by the next IvoryOS generation (FastAPI + uvicorn).

The only package that imports ``ivoryos_edge``, ``fastapi``, ``starlette`` or ``uvicorn``
(.importlinter). Reached through :mod:`ivoryos_plugin.edge`. Without the ``[edge]`` extra, importing it
raises an ImportError that says how to install it.
"""
from ..extras import edge_problem

_PROBLEM = edge_problem()
if _PROBLEM is not None:
    raise ImportError(_PROBLEM, name=__name__)

from .builder import EdgePlugin, for_edge  # noqa: E402  (after the extra is known to be there)
from .gaps import unsupported  # noqa: E402

__all__ = ["EdgePlugin", "for_edge", "unsupported"]
