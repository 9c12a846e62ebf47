"""The plate map example plugin: a live 96-well plate coloured as the deck's pump dispenses."""
from .plugin import plugin

__all__ = ["plugin"]
