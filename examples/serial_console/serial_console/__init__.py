"""The serial_console example plugin."""
from .plugin import plugin

__all__ = ["plugin"]
