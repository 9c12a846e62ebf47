"""ivoryos_plugin: live, safe, tested IvoryOS plugin pages.

Example::

    from ivoryos_plugin import Plugin

    plugin = Plugin("hello", __name__, title="Hello")

    @plugin.route("/")
    def main():
        return plugin.render("hello.html")
"""
from .actions import ActionError
from .deck import DeckBusy, InstrumentUnavailable
from .discovery import Discovery, discover
from .host import create_app
from .launcher import run
from .live import Publisher, publisher
from .names import PluginError
from .plugin import Plugin
from .serialio import SerialDevice, SerialDeviceError, open_serial
from .settings import SettingsError, SettingsValidationError
from .workers import Stop

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "DeckBusy",
    "Discovery",
    "InstrumentUnavailable",
    "Plugin",
    "PluginError",
    "Publisher",
    "SerialDevice",
    "SerialDeviceError",
    "SettingsError",
    "SettingsValidationError",
    "Stop",
    "create_app",
    "discover",
    "open_serial",
    "publisher",
    "run",
]
