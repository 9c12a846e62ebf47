"""The balance dashboard example plugin: a live weight chart with tare and unit controls."""
from .plugin import plugin

__all__ = ["plugin"]
