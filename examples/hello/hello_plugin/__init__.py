"""The hello example plugin."""
from .plugin import plugin

__all__ = ["plugin"]
