"""Which serial ports exist, and which ones a deck instrument already holds."""
import os
from typing import Any, Dict, Iterable, List, Optional

from serial.tools import list_ports

PORT_ATTRIBUTES = ("port", "url", "portstr")


def available_ports() -> List[Dict[str, str]]:
    """The machine's serial ports (pyserial's list_ports), for the page's picker."""
    return [{"device": p.device, "description": p.description or "", "hwid": p.hwid or ""}
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    if "://" in a or "://" in b:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def _ports_of(obj: Any, depth: int = 2) -> Iterable[str]:
    """Port names an instrument object holds: its own port/url attributes, or those of the
    serial objects it keeps (a SerialDevice, a serial.Serial), one level down."""
    for attr in PORT_ATTRIBUTES:
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            yield value
    if depth <= 1:
        return
    for value in list(getattr(obj, "__dict__", {}).values()):
        if value is not obj and hasattr(value, "__dict__") and not isinstance(value, type):
            yield from _ports_of(value, depth - 1)


def port_owner(url: str, instruments: Dict[str, Any]) -> Optional[str]:
    """The name of the deck instrument that holds ``url``, or None.

    :param url: a device path or a pyserial URL.
    :param instruments: the deck's instruments, name -> object."""
    for name, obj in instruments.items():
        if any(_same(url, held) for held in _ports_of(obj)):
            return name
    return None
