"""The ivoryos-edge host: our plugins served by the next IvoryOS generation (FastAPI + uvicorn).

The only package that imports ``ivoryos_edge``, ``fastapi``, ``starlette`` or ``uvicorn``
(.importlinter). Reached through :mod:`ivoryos_plugin.edge`. Without the ``[edge]`` extra, importing it
raises :class:`~ivoryos_plugin.hosts.extras.EdgeNotInstalled` (an ImportError) that says how to install it.
"""
from ..extras import require_edge

require_edge()

from .builder import EdgePlugin, for_edge  # noqa: E402  (after the extra is known to be there)
from .gaps import unsupported  # noqa: E402

__all__ = ["EdgePlugin", "for_edge", "unsupported"]
