"""The echo protocol, for concurrency tests: ``ECHO <int>`` answered with the number."""
from __future__ import annotations

from typing import Any, Optional

from .base import HandlerResult, PtySimulator, Reply, UnknownCommand

__all__ = ["EchoSimulator"]


class EchoSimulator(PtySimulator):
    """Echo protocol for concurrency tests: ``ECHO <int>`` -> ``<int>``, ``ID?`` -> ``SIM-ECHO``.

    Anything else -> ``ERR unknown command`` and counts in ``garbled``.

    :param name: see :class:`PtySimulator`.
    :param delay: seconds the device takes per ``ECHO`` (busy meanwhile).
    :param kw: see :class:`PtySimulator`.
    """

    ident = "SIM-ECHO"

    def __init__(self, name: Optional[str] = "echo", *, delay: float = 0.0, **kw: Any) -> None:
        """Configure the echo device.

        :param name: see the class docstring.
        :param delay: see the class docstring.
        :param kw: see the class docstring.
        """
        super().__init__(name, **kw)
        self.delay = delay

    def handle(self, command: str) -> HandlerResult:
        """Answer ``ECHO <int>`` with the number.

        :param command: the command line.
        """
        verb, _, arg = command.partition(" ")
        if verb == "ECHO":
            try:
                value = str(int(arg))
            except ValueError:
                raise UnknownCommand(command) from None
            return Reply(value, self.delay) if self.delay else value
        return super().handle(command)
