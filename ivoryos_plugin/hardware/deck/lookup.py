"""Finding instruments on the deck module (IvoryOS's rule), and naming the serial ports they hold
in the port registry. Pure Python, no Flask."""
from __future__ import annotations

import logging
import sys
import types
from typing import Any, Dict, Iterable, List, Optional

from ..serial import registry

logger = logging.getLogger("ivoryos_plugin.deck")

__all__ = ["InstrumentUnavailable", "deck_instruments", "get_instrument", "claim_deck_ports"]


class InstrumentUnavailable(LookupError):
    """An instrument a plugin needs is not on the deck, or no deck is loaded."""

    def __init__(self, name: str, loaded: Iterable[str] = (), plugin: Optional[str] = None,
                 deck_loaded: bool = True) -> None:
        """:param name: the instrument asked for.
        :param loaded: the names of the deck's instruments.
        :param plugin: the plugin asking, named in the message.
        :param deck_loaded: False when IvoryOS has no deck at all."""
        self.name, self.loaded, self.plugin = name, sorted(loaded), plugin
        self.deck_loaded = deck_loaded
        who = f"Plugin {plugin!r}: instrument" if plugin else "Instrument"
        if deck_loaded:
            super().__init__(f"{who} {name!r} is not on the deck; loaded: "
                             f"{', '.join(self.loaded) or '(none)'}. "
                             "Check the deck script or the plugin's settings.")
        else:
            super().__init__(f"{who} {name!r} is unavailable: no deck is loaded. Start "
                             "IvoryOS with a deck script (ivoryos.run(__name__)).")

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (self.name, self.loaded, self.plugin, self.deck_loaded)


#: Server objects a deck script may hold that are never instruments (wrapping their methods in
#: instrument locks would break the web server): (module, class name), looked up only if imported.
_SERVER_TYPES = (("flask", "Blueprint"), ("flask.sansio.app", "App"), ("flask_socketio", "SocketIO"),
                 ("socketio", "Server"), ("engineio", "Server"))


def _is_excluded(value: object) -> bool:
    """True for what IvoryOS skips on a deck (``flask.Blueprint``, ``logging.Logger``) and for web
    server objects (a Flask app, a Socket.IO server) that a deck script may hold.

    :param value: a deck global."""
    if isinstance(value, logging.Logger):
        return True
    for module, name in _SERVER_TYPES:
        cls = getattr(sys.modules.get(module), name, None)  # not imported: value cannot be one
        if isinstance(cls, type) and isinstance(value, cls):
            return True
    return False


def deck_instruments(deck: Optional[types.ModuleType]) -> Dict[str, object]:
    """The deck's instruments by name, by IvoryOS 1.7.2's rule (``generate_interface_schema``):
    globals whose type is not builtin, whose name starts neither with ``_`` nor an uppercase
    letter, and that are no ``flask.Blueprint`` or ``logging.Logger`` — nor a Flask app or a
    Socket.IO server, which plugins must never wrap.

    :param deck: the deck module, or None when none is loaded (gives ``{}``)."""
    if deck is None:
        return {}
    return {name: value for name, value in vars(deck).items()
            if type(value).__module__ != "builtins" and not name[:1].isupper()
            and not name.startswith("_") and not _is_excluded(value)}


def claim_deck_ports(deck: Optional[types.ModuleType]) -> Dict[str, List[str]]:
    """Register the serial ports the deck's instruments hold in the port registry, under the
    instruments' names, so no plugin opens them under another URL (:mod:`.serial.registry`).

    :param deck: the deck module, or None.
    :returns: instrument name -> the URLs of its ports (instruments without ports left out)."""
    found: Dict[str, List[str]] = {}
    for name, obj in deck_instruments(deck).items():
        try:
            urls = registry.adopt_instrument(name, obj)
        except Exception:  # an instrument that cannot be inspected keeps its ports unnamed
            logger.exception("cannot read the serial ports of the deck's instrument %r", name)
            continue
        if urls:
            found[name] = urls
    return found


def get_instrument(deck: Optional[types.ModuleType], name: str,
                   plugin: Optional[str] = None) -> object:
    """The deck's own instrument object called ``name`` (the same object, never a copy).

    :param deck: the deck module, or None when none is loaded.
    :param name: the instrument's global name in the deck script.
    :param plugin: the plugin asking, named in the error.
    :raises InstrumentUnavailable: no deck, or no such instrument on it."""
    instruments = deck_instruments(deck)
    if name not in instruments:
        raise InstrumentUnavailable(name, instruments, plugin, deck_loaded=deck is not None)
    return instruments[name]
