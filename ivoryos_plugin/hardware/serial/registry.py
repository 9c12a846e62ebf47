"""The registry of open serial ports: one per process, keyed by the real device.

A pyserial URL names a device many ways: ``/dev/ttyUSB0``, a symlink to it, ``spy:///dev/ttyUSB0?file=log``,
``alt:///dev/ttyUSB0?class=PosixPollSerial``, ``hwgrep://USB``. :func:`device_key` resolves each to the
device itself (the character device's number, a file's inode, a network peer), so the registry can
tell that two URLs are one port. :func:`open_port` (used by :class:`~ivoryos_plugin.SerialDevice` and
:func:`~ivoryos_plugin.open_serial`) checks the URL (:func:`.urls.check_url`), then claims the device
*before* opening it, so a second opener never touches a port another part of the program holds
(opening a tty reconfigures and flushes it), and asks pyserial for an ``exclusive`` (``flock``) open
where the platform has one, so other programs are kept off too. The deck's instruments name their
ports (:func:`adopt_instrument`), so a refusal (:class:`PortHeld`) says who holds it. Pure Python, no Flask.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from .urls import NET_SCHEMES, PRIVATE_SCHEMES, _path_of, _scheme, check_url

__all__ = ["PortHeld", "device_key", "open_port", "holder_of", "adopt_instrument", "held"]

Key = Tuple[Hashable, ...]


class PortHeld(OSError):
    """The device behind a URL is already open in this process (an ``EBUSY`` :class:`OSError`).

    :param url: the URL asked for.
    :param holder: who holds the device (a device or instrument name).
    :param held_url: the URL the holder opened it with."""

    def __init__(self, url: str, holder: str, held_url: str) -> None:
        super().__init__(errno.EBUSY, f"{url} is the port that {holder} holds (as {held_url})")
        self.url, self.holder, self.held_url = url, holder, held_url

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (self.url, self.holder, self.held_url)


def _file_key(path: str) -> Key:
    try:
        st = os.stat(path)  # follows symlinks: the device itself
    except ValueError:  # a NUL in the path: opens nothing
        return ("path", path)
    except OSError:
        return ("path", os.path.realpath(path))
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return ("device", st.st_rdev)
    return ("file", st.st_dev, st.st_ino)


def device_key(url: str) -> Optional[Key]:
    """The device behind ``url``, whatever the scheme; None for a port private to its opener (``loop://``).

    :param url: a device path or pyserial URL."""
    scheme = _scheme(url)
    if scheme in PRIVATE_SCHEMES:
        return None
    path = _path_of(url)
    if path:
        return _file_key(path)
    if scheme in NET_SCHEMES:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
        try:
            host = str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)[0][4][0])
        except (OSError, UnicodeError):
            pass
        return ("net", host, port)
    return ("url", url)


def key_of_open(port: Any) -> Optional[Key]:
    """The device of an open pyserial port read from its file descriptor (None without one).

    :param port: a ``serial.SerialBase``."""
    try:
        st = os.fstat(port.fileno())
    except Exception:
        return None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return ("device", st.st_rdev)
    return None


@dataclass
class _Entry:
    url: str
    label: str
    owner: "weakref.ref[Any]"
    port: Optional["weakref.ref[Any]"] = None  # None while the open is in progress
    extra: List[Key] = field(default_factory=list)

    def alive(self) -> bool:
        if self.owner() is None:
            return False
        if self.port is None:
            return True
        port = self.port()
        return port is not None and bool(getattr(port, "is_open", False))


_LOCK = threading.Lock()
_ENTRIES: Dict[Key, _Entry] = {}
_LABELS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def _ref(obj: Any) -> "weakref.ref[Any]":
    try:
        return weakref.ref(obj)
    except TypeError:  # not weak-referenceable: pinned by a closure for as long as the entry lives
        return lambda: obj  # type: ignore[return-value]


def _label(entry: _Entry) -> str:
    owner = entry.owner()
    if owner is not None:
        try:
            return _LABELS.get(owner) or entry.label
        except TypeError:
            return entry.label
    return entry.label


def _claim(key: Key, url: str, owner: Any, label: str) -> _Entry:
    with _LOCK:
        found = _ENTRIES.get(key)
        if found is not None and found.alive() and found.owner() is not owner:
            raise PortHeld(url, _label(found), found.url)
        entry = _Entry(url=url, label=label, owner=_ref(owner))
        _ENTRIES[key] = entry
        return entry


def _release(keys: Iterable[Key], entry: _Entry) -> None:
    with _LOCK:
        for key in keys:
            if _ENTRIES.get(key) is entry:
                del _ENTRIES[key]


def open_port(url: str, kw: Dict[str, Any], *, owner: Any = None, label: Optional[str] = None,
              allow: Iterable[str] = ()) -> Any:
    """Check ``url`` (:func:`check_url`), claim the device behind it, then open it with
    ``serial.serial_for_url(url, **kw)``.

    ``exclusive=True`` is added on POSIX (pyserial ``flock``s the port: other programs are kept
    off too) unless ``kw`` says otherwise. The claim lasts while the returned port is open.

    :param url: a device path or pyserial URL.
    :param kw: keyword arguments for ``serial.serial_for_url``.
    :param owner: who holds the port (a :class:`SerialDevice`); default: the port itself.
    :param label: how refusals name the holder (default: the URL).
    :param allow: URL schemes beyond serial ports and ``loop://`` that may be opened (see :func:`check_url`).
    :raises PortRefused: the URL is not a port this caller may open (nothing was touched).
    :raises PortHeld: another part of this process holds the device (nothing was opened).
    :raises Exception: whatever pyserial raises (the claim is dropped)."""
    check_url(url, allow)
    import serial

    kw = dict(kw)
    if os.name == "posix" and _scheme(url) not in PRIVATE_SCHEMES + NET_SCHEMES:
        kw.setdefault("exclusive", True)
    key = device_key(url)
    if key is None:  # loop://: a port of its own
        return serial.serial_for_url(url, **kw)
    holder: Any = owner if owner is not None else object()
    entry = _claim(key, url, holder, label or url)
    try:
        port = serial.serial_for_url(url, **kw)
    except BaseException:
        _release([key], entry)
        raise
    if owner is None:
        entry.owner = _ref(port)
    entry.port = _ref(port)
    actual = key_of_open(port)
    if actual is not None and actual != key:  # a URL that resolved one way and opened another
        try:
            _claim(actual, url, entry.owner(), label or url)
        except PortHeld:
            _release([key], entry)
            port.close()
            raise
        with _LOCK:
            _ENTRIES[actual] = entry
            entry.extra.append(actual)
    return port


def holder_of(url: str) -> Optional[str]:
    """Who holds the device behind ``url`` in this process, or None.

    :param url: a device path or pyserial URL."""
    key = device_key(url)
    with _LOCK:
        found = _ENTRIES.get(key) if key is not None else None
        return _label(found) if found is not None and found.alive() else None


def held() -> Dict[str, str]:
    """Every open port: the URL it was opened with -> its holder."""
    with _LOCK:
        return {e.url: _label(e) for e in {id(e): e for e in _ENTRIES.values()}.values() if e.alive()}


def _serial_objects(obj: Any, depth: int) -> Iterable[Any]:
    """``obj`` and the objects it keeps (``depth`` levels down) that may hold a port."""
    yield obj
    if depth <= 0:
        return
    try:
        values = list(vars(obj).values())
    except TypeError:
        return
    for value in values:
        if value is not obj and not isinstance(value, (type, str, bytes, int, float, bool)) and value is not None:
            yield from _serial_objects(value, depth - 1)


def adopt_instrument(name: str, obj: Any) -> List[str]:
    """Name the ports a deck instrument holds after it, and register the raw pyserial ports it
    opened itself (without the framework's helpers), so nothing else in the process opens them.

    :param name: the instrument's deck name.
    :param obj: the instrument.
    :returns: the URLs of its ports."""
    serial_module = sys.modules.get("serial")
    base = getattr(serial_module, "SerialBase", None)
    found: List[str] = []
    with _LOCK:
        entries = list(_ENTRIES.items())
    for candidate in _serial_objects(obj, 2):
        for _key, entry in entries:
            if entry.owner() is candidate and entry.alive():
                try:
                    _LABELS[candidate] = f"{entry.label}, the deck's instrument {name!r}"
                except TypeError:
                    pass
                found.append(entry.url)
        if isinstance(base, type) and isinstance(candidate, base) and getattr(candidate, "is_open", False):
            url = str(getattr(candidate, "portstr", None) or getattr(candidate, "port", "") or "")
            key = key_of_open(candidate) or (device_key(url) if url else None)
            if key is None:
                continue
            with _LOCK:
                current = _ENTRIES.get(key)
                if current is None or not current.alive():
                    _ENTRIES[key] = _Entry(url=url, label=f"the deck's instrument {name!r}", owner=_ref(candidate),
                                           port=_ref(candidate))
                    found.append(url)
    return found
