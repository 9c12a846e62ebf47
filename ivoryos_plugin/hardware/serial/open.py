"""Opening a port: :func:`open_serial` (by path or pyserial URL, never raising), the opener that
:class:`~.device.SerialDevice` shares with it (:func:`_open_url`: through the port registry, the
URL checked first), and :func:`_explain`, which says in plain words why a port could not be opened
and what to do."""
from __future__ import annotations

import errno
import logging
from typing import Any, Iterable, Optional

import serial

from . import registry, urls

__all__ = ["open_serial"]

logger = logging.getLogger("ivoryos_plugin.serial")


def _open_url(url: str, kw: dict[str, Any], owner: Any = None, label: Optional[str] = None,
              allow: Iterable[str] = ()) -> tuple[Optional[serial.SerialBase], Optional[BaseException]]:
    """Open ``url`` through the port registry (:func:`registry.open_port`: the URL checked, one opener
    per real device, ``exclusive`` where the platform has it), returning ``(port, None)`` or ``(None, error)``.

    :param url: a device path or pyserial URL.
    :param kw: keyword arguments for :func:`serial.serial_for_url`.
    :param owner: who will hold the port (a :class:`SerialDevice`), for the registry.
    :param label: how a refused opener is told who holds it.
    :param allow: URL schemes allowed beyond serial ports and ``loop://``.
    """
    try:
        return registry.open_port(url, kw, owner=owner, label=label, allow=allow), None
    except Exception as exc:  # PortRefused, PortHeld, SerialException, OSError, ValueError for bad URLs...
        return None, exc


def open_serial(url: str, *, allow: Iterable[str] = (), **kw: Any) -> Optional[serial.SerialBase]:
    """Open a serial port by path or URL; never raises (but for a misspelt ``allow``).

    :param url: a device path (``/dev/ttyUSB0``, a pty), ``loop://``, ``alt://``, ``hwgrep://``, or a
        URL of a scheme named in ``allow``.
    :param allow: the pyserial URL schemes beyond serial ports this call may open, e.g.
        ``("socket",)`` for a serial-to-Ethernet adapter; ``spy``, ``socket``, ``rfc2217`` and
        ``cp2110`` are refused without it (they write files or reach the network).
    :param kw: passed to :func:`serial.serial_for_url` (``baudrate``, ``timeout``...).
    :returns: the open port, or ``None`` after logging the url and the error (also when another part
        of this program holds the same device under any URL: see :mod:`ivoryos_plugin.hardware.serial.registry`).
    :raises ValueError: ``allow`` names a scheme pyserial does not know.

    Example::

        port = open_serial("socket://10.0.0.7:4001", allow=("socket",), timeout=1)
    """
    allowed = urls.allowed_schemes(allow)
    port, exc = _open_url(url, kw, allow=allowed)
    if port is None:
        logger.error("could not open serial port %s: %s", urls.printable(url), exc)
    return port


def _explain(exc: Optional[BaseException]) -> tuple[str, str]:
    """Say in plain words why a port could not be opened, and what to do: ``(what, fix)``.

    :param exc: the error from :func:`serial.serial_for_url`.
    """
    if isinstance(exc, urls.PortRefused):
        return exc.reason, exc.fix
    if isinstance(exc, registry.PortHeld):
        return ("the port is in use by another program", f"close that program (or its connection to the port) "
                f"first: it is held by {exc.holder}, opened as {exc.held_url}, in this process")
    code = getattr(exc, "errno", None)
    if code in (errno.EBUSY, errno.EWOULDBLOCK, errno.EAGAIN):  # EWOULDBLOCK: pyserial's exclusive=True flock
        return "the port is in use by another program", "close that program (or its connection to the port) first"
    if code == errno.ENOENT:
        return "no such port", "check the instrument is plugged in and the path is right"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied", "add your user to the port's group (e.g. dialout) or fix its permissions"
    return str(exc), "check the instrument, the URL and the port settings"
