"""The ivoryos-edge host: our plugins served by the next IvoryOS generation (FastAPI + uvicorn).

The only package that imports ``ivoryos_edge``, ``fastapi``, ``starlette`` or ``uvicorn``
(.importlinter). Reached through :mod:`ivoryos_plugin.edge`.
"""
from .builder import EdgePlugin, for_edge
from .gaps import unsupported

__all__ = ["EdgePlugin", "for_edge", "unsupported"]
