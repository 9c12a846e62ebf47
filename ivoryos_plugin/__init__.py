"""ivoryos_plugin: live, safe, tested IvoryOS plugin pages.

Example::

    from ivoryos_plugin import Plugin

    plugin = Plugin("hello", __name__, title="Hello")

    @plugin.route("/")
    def main():
        return plugin.render("hello.html")

Importing the package loads nothing but this module: each public name is imported on first use
(PEP 562), so ``import ivoryos_plugin`` never loads IvoryOS, the dev host, pyserial or redis.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from .core import binding as _binding

__version__ = "0.1.0"



def _host() -> "_binding.Host":
    """The layers above the declarations, reached through this seam (see core/binding.py) and
    imported only when a plugin first needs them."""
    from .hosts.binding import HOST

    return HOST


_binding.configure(_host)

#: public name -> the module that defines it
_EXPORTS: Dict[str, str] = {
    "ActionError": "ivoryos_plugin.core.specs",
    "DeckBusy": "ivoryos_plugin.hardware.deck",
    "DeckUnverified": "ivoryos_plugin.hardware.deck",
    "Discovery": "ivoryos_plugin.hosts.discovery",
    "InstrumentUnavailable": "ivoryos_plugin.hardware.deck",
    "IvoryOSPlugins": "ivoryos_plugin.runtime.attach",
    "Plugin": "ivoryos_plugin.core.plugin",
    "PluginError": "ivoryos_plugin.core.names",
    "Publisher": "ivoryos_plugin.hosts.socketio_live",
    "SerialDevice": "ivoryos_plugin.hardware.serial.device",
    "SerialDeviceError": "ivoryos_plugin.hardware.serial.device",
    "SettingsError": "ivoryos_plugin.runtime.settings",
    "SettingsValidationError": "ivoryos_plugin.runtime.settings",
    "Stop": "ivoryos_plugin.runtime.workers",
    "create_app": "ivoryos_plugin.hosts.devhost",
    "discover": "ivoryos_plugin.hosts.discovery",
    "open_serial": "ivoryos_plugin.hardware.serial.open",
    "publisher": "ivoryos_plugin.hosts.socketio_live",
    "run": "ivoryos_plugin.hosts.launcher",
    "stop_on_sigterm": "ivoryos_plugin.runtime.process",
}

__all__ = [
    "ActionError", "DeckBusy", "DeckUnverified", "Discovery", "InstrumentUnavailable", "IvoryOSPlugins", "Plugin",
    "PluginError", "Publisher", "SerialDevice", "SerialDeviceError", "SettingsError", "SettingsValidationError",
    "Stop", "create_app", "discover", "open_serial", "publisher", "run", "stop_on_sigterm",
]

if TYPE_CHECKING:
    from .core.names import PluginError
    from .core.plugin import Plugin
    from .core.specs import ActionError
    from .hardware.deck import DeckBusy, DeckUnverified, InstrumentUnavailable
    from .hardware.serial.device import SerialDevice, SerialDeviceError
    from .hardware.serial.open import open_serial
    from .hosts.devhost import create_app
    from .hosts.discovery import Discovery, discover
    from .hosts.launcher import run
    from .hosts.socketio_live import Publisher, publisher
    from .runtime.attach import IvoryOSPlugins
    from .runtime.process import stop_on_sigterm
    from .runtime.settings import SettingsError, SettingsValidationError
    from .runtime.workers import Stop


def __getattr__(name: str) -> Any:
    """Import a public name on first use.

    :param name: one of ``__all__``."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ivoryos_plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
