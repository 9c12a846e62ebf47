"""The registry of open serial ports: one per process, keyed by the real device.

A pyserial URL names a device many ways: ``/dev/ttyUSB0``, a symlink to it, ``spy:///dev/ttyUSB0?file=log``,
``alt:///dev/ttyUSB0?class=PosixPollSerial``, ``hwgrep://USB``. :func:`device_key` resolves each to the
device itself (the character device's number, a file's inode, a network peer), so the registry can
tell that two URLs are one port. :func:`open_port` (used by :class:`~ivoryos_plugin.SerialDevice` and
:func:`~ivoryos_plugin.open_serial`) claims the device *before* opening it, so a second opener never
touches a port another part of the program holds (opening a tty reconfigures and flushes it), and
asks pyserial for an ``exclusive`` (``flock``) open where the platform has one, so other programs
are kept off too. The deck's instruments name their ports (:func:`adopt_instrument`), so a refusal
says who holds the port.

:func:`check_url` decides, before pyserial sees a URL, whether it names a serial port: a device path
that is a tty (a USB adapter, a built-in port, a simulator's pty) or ``loop://``, ``alt://`` and
``hwgrep://`` in their plain forms. Every other scheme (``spy://`` writes a file, ``socket://`` and
``rfc2217://`` connect to a host, ``cp2110://`` opens a HID device) is opened only when the code that
opens the port allows it by name (``allow=("socket",)``). Pure Python, no Flask.
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

__all__ = ["PortHeld", "PortRefused", "check_url", "allowed_schemes", "known_schemes", "printable", "device_key",
           "open_port", "holder_of", "adopt_instrument", "held"]

Key = Tuple[Hashable, ...]
#: URL schemes whose device is the path after ``scheme://`` (pyserial 3.5's spy and alt handlers)
PATH_SCHEMES = ("spy", "alt")
#: URL schemes whose device is a network peer
NET_SCHEMES = ("socket", "rfc2217")
#: URL schemes that are private to each opener (pyserial's loopback)
PRIVATE_SCHEMES = ("loop",)
#: URL schemes opened without being allowed, in their plain forms (no options but ``alt://``'s
#: ``class=`` and ``hwgrep://``'s ``n=``); ``alt`` and ``hwgrep`` must name a tty, as a device path must
DEFAULT_SCHEMES = ("loop", "alt", "hwgrep")
#: options of the default schemes that do more than name a port (allowed once the scheme is in ``allow``)
_RISKY_OPTIONS = {"loop": "options (?logging=...) reconfigure this program's logging",
                  "hwgrep": "&skip_busy opens every matching port to test it, the deck's instruments' ports too"}
#: what each other scheme of pyserial 3.5 does, said when it is refused
RISKS = {
    "spy": "it writes a hexdump of the traffic to a file the URL names (?file=...), truncating that file",
    "socket": "it opens a TCP connection to the host and port the URL names",
    "rfc2217": "it opens a TCP (RFC 2217) connection to the host and port the URL names",
    "cp2110": "it opens a USB HID device (Silicon Labs CP2110), not a serial port",
}


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


class PortRefused(ValueError):
    """A URL that does not name a port this opener may open, refused before pyserial saw it: no file,
    device or network peer was touched.

    :param url: the URL asked for.
    :param reason: what is wrong with it.
    :param fix: what to do instead."""

    def __init__(self, url: str, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; {fix}")
        self.url, self.reason, self.fix = url, reason, fix

    def __reduce__(self) -> Any:
        """Pickle with the constructor's arguments."""
        return type(self), (self.url, self.reason, self.fix)


def _scheme(url: str) -> str:
    """The scheme as pyserial's ``serial_for_url`` reads it: everything before the first ``://``."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _path_of(url: str) -> Optional[str]:
    """The device path a URL opens, or None when it is not a path (network, loopback, unknown)."""
    scheme = _scheme(url)
    if not scheme:
        return url
    if scheme in PATH_SCHEMES:
        parts = urlsplit(url)
        return parts.netloc + parts.path
    if scheme == "hwgrep":
        return _hwgrep(url)
    return None


def _hwgrep(url: str) -> Optional[str]:
    """The port ``hwgrep://regexp[&n=N]`` picks (pyserial 3.5's rule, without ``skip_busy``'s test opens)."""
    try:
        from serial.tools import list_ports

        regexp, *options = url[len("hwgrep://"):].split("&")
        skip = 0
        for option in options:
            name, _, value = option.partition("=")
            if name == "n" and value:
                skip = int(value) - 1
        found = [port for port, _desc, _hwid in sorted(list_ports.grep(regexp))]
        return found[skip] if 0 <= skip < len(found) else None
    except Exception:
        return None


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


def known_schemes() -> Tuple[str, ...]:
    """The URL schemes pyserial can open here (its ``protocol_<scheme>`` handler modules)."""
    import importlib
    import pkgutil

    import serial

    found: set[str] = set()
    for package in getattr(serial, "protocol_handler_packages", ["serial.urlhandler"]):
        try:
            paths = importlib.import_module(package).__path__
        except (ImportError, AttributeError):
            continue
        found.update(m.name[len("protocol_"):] for m in pkgutil.iter_modules(paths) if m.name.startswith("protocol_"))
    return tuple(sorted(found))


def allowed_schemes(allow: Iterable[str] = ()) -> Tuple[str, ...]:
    """Check an ``allow=`` argument and return the schemes it names, lower case, without ``://``.

    :param allow: scheme names, e.g. ``("socket",)`` or ``("spy", "socket")``.
    :raises ValueError: ``allow`` is one string, or names a scheme pyserial does not know (a typo).

    Example::

        allowed_schemes(("Socket://",))   # -> ("socket",)
    """
    if isinstance(allow, (str, bytes)):
        raise ValueError(f"allow={allow!r} is one string, not a tuple of schemes; write allow=({allow!r},)")
    names = tuple(dict.fromkeys(str(name).lower().removesuffix("://") for name in allow))
    known = known_schemes() if names else ()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"allow: unknown URL scheme {unknown[0]!r}; pyserial knows {', '.join(known)}")
    return names


def printable(url: str) -> str:
    """``url`` as it can be printed or logged: itself, or its repr when it holds a control character.

    :param url: a device path or pyserial URL."""
    return url if url.isprintable() else repr(url)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISBLK, "a block device (a disk)")):
        if test(mode):
            return name
    return "not a device"


def _linux_tty(rdev: int) -> Optional[bool]:
    """Whether the Linux character device ``rdev`` is a serial-like tty; None when this cannot be told."""
    major, minor = os.major(rdev), os.minor(rdev)
    if major == 5 or (major == 4 and minor < 64):  # /dev/tty, /dev/console, /dev/ptmx; virtual consoles
        return False
    if 136 <= major <= 143:  # Unix98 pty slaves (/dev/pts/N, the simulators): not in sysfs
        return True
    subsystem = f"/sys/dev/char/{major}:{minor}/subsystem"
    if os.path.lexists(subsystem):
        return os.path.basename(os.path.realpath(subsystem)) == "tty"
    return False if os.path.isdir("/sys/dev/char") else None


def _not_a_port(path: str) -> Optional[str]:
    """Why the device path ``path`` is not a serial port, or None when it is one or is absent (not
    plugged in yet: pyserial says "no such port" and reconnection waits for it)."""
    try:
        st = os.stat(path)  # follows symlinks: the device itself
    except ValueError:
        return f"{path!r} holds a NUL character"
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode):
        return f"{path!r} is {_kind(st.st_mode)}, not a serial port"
    if sys.platform.startswith("linux"):
        tty = _linux_tty(st.st_rdev)
        if tty is None:
            return f"{path!r} is a character device this system cannot confirm is a tty (no /sys/dev/char)"
        if not tty:
            return f"{path!r} is a character device but not a serial port (not a tty, or a console)"
    return None


def check_url(url: str, allow: Iterable[str] = ()) -> None:
    """Refuse a URL that is not a serial port this opener may open, before pyserial sees it.

    Opened without ``allow``: a device path that is a tty (or absent, not plugged in yet), ``loop://``,
    ``alt://<tty>?class=...`` and ``hwgrep://<regexp>[&n=N]`` (naming a tty). Other schemes
    (``spy``, ``socket``, ``rfc2217``, ``cp2110``, any handler added to pyserial) and the options
    ``loop://?logging=`` and ``hwgrep://...&skip_busy`` need their scheme in ``allow``. A path that
    exists and is not a tty (a regular file, a FIFO, ``/dev/null``, a console) and a URL with a
    control character are always refused.

    :param url: a device path or pyserial URL.
    :param allow: URL schemes the caller opens knowingly, e.g. ``("socket",)``.
    :raises PortRefused: the URL is refused; its message says why and what to do.
    :raises ValueError: ``allow`` names an unknown scheme.

    Example::

        check_url("/dev/ttyUSB0")                                  # a serial port: fine
        check_url("socket://10.0.0.7:4001", allow=("socket",))     # a serial-to-Ethernet adapter: allowed
        check_url("spy:///dev/ttyUSB0?file=/tmp/log")              # PortRefused: allow=("spy",) to open it
    """
    if not isinstance(url, str):
        raise PortRefused(repr(url), f"the port {url!r} is not a string", "pass a device path or pyserial URL")
    allowed = allowed_schemes(allow)
    bad = next((i for i, c in enumerate(url) if not c.isprintable()), None)
    if bad is not None:
        raise PortRefused(url, f"{url!r} holds a control character ({url[bad]!r} at position {bad})",
                          "a port's name has none: remove it")
    if not url.strip():
        raise PortRefused(url, "the port name is empty", "pass a device path (/dev/ttyUSB0) or loop://")
    scheme = _scheme(url)
    if scheme and scheme not in allowed and scheme not in DEFAULT_SCHEMES:
        if scheme not in known_schemes():
            raise PortRefused(url, f"invalid URL, protocol {scheme!r} not known",
                              f"pyserial knows {', '.join(s + '://' for s in known_schemes())}; for a device, "
                              "give its path")
        risk = RISKS.get(scheme, "it is not a serial port on this computer")
        raise PortRefused(url, f"the URL scheme {scheme}:// is not allowed here: {risk}",
                          f"pick a serial port (a device path, or loop:// to test); the author of the code that "
                          f'opens it can allow it with allow=("{scheme}",)')
    if scheme in _RISKY_OPTIONS and scheme not in allowed and (  # read as pyserial's handlers read them
            urlsplit(url).query if scheme == "loop" else
            any(o.split("=", 1)[0] == "skip_busy" for o in url.split("&")[1:])):
        raise PortRefused(url, f"{scheme}:// with these options is not allowed here: {_RISKY_OPTIONS[scheme]}",
                          f"drop them; the author of the code that opens the port can allow them with "
                          f'allow=("{scheme}",)')
    path = _path_of(url)
    if path:
        problem = _not_a_port(path)
        if problem is not None:
            raise PortRefused(url, problem, "pick a serial port: /dev/ttyUSB0, /dev/ttyACM0, a simulator's "
                              "/dev/pts/N (the page lists the ports it finds)")


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
