"""The run_monitor example plugin."""
from .plugin import plugin

__all__ = ["plugin"]
