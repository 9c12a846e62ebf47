"""Serial ports: thread-safe, self-healing line-oriented devices, and the rules for opening a port.

The modules, by what they do: :mod:`.urls` (the URL policy: which device paths and pyserial URLs may
be opened, checked before pyserial sees them), :mod:`.registry` (the one registry of open ports in
this process, keyed by the real device), :mod:`.open` (:func:`open_serial`, and the opener
:class:`SerialDevice` shares), :mod:`.reader` (the reader thread), :mod:`.device`
(:class:`SerialDevice` and its errors).

Each name below is imported on first use (PEP 562), so the deck layer can reach the registry
without loading pyserial.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

#: public name -> the module that defines it
_EXPORTS: Dict[str, str] = {
    "SerialDevice": "device", "SerialDeviceError": "device", "SerialDeviceTimeout": "device",
    "open_serial": "open",
    "PortHeld": "registry", "adopt_instrument": "registry", "device_key": "registry", "held": "registry",
    "holder_of": "registry", "open_port": "registry",
    "PortRefused": "urls", "allowed_schemes": "urls", "check_url": "urls", "known_schemes": "urls",
    "printable": "urls",
}

__all__ = [
    "PortHeld", "PortRefused", "SerialDevice", "SerialDeviceError", "SerialDeviceTimeout", "adopt_instrument",
    "allowed_schemes", "check_url", "device_key", "held", "holder_of", "known_schemes", "open_port", "open_serial",
    "printable",
]

if TYPE_CHECKING:
    from .device import SerialDevice, SerialDeviceError, SerialDeviceTimeout
    from .open import open_serial
    from .registry import PortHeld, adopt_instrument, device_key, held, holder_of, open_port
    from .urls import PortRefused, allowed_schemes, check_url, known_schemes, printable


def __getattr__(name: str) -> Any:
    """Import a public name on first use.

    :param name: one of ``__all__``."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
