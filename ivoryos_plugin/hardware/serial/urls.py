"""Which pyserial URLs this program opens: the URL policy, applied before pyserial sees a URL.

:func:`check_url` decides whether a URL names a serial port: a device path that is a tty (a USB
adapter, a built-in port, a simulator's pty) or ``loop://``, ``alt://`` and ``hwgrep://`` in their
plain forms. Every other scheme (``spy://`` writes a file, ``socket://`` and ``rfc2217://`` connect to
a host, ``cp2110://`` opens a HID device) is opened only when the code that opens the port allows it
by name (``allow=("socket",)``, checked by :func:`allowed_schemes`); a refusal is a
:class:`PortRefused` that says why and what to do. Also here: how a URL is read (its scheme, the
device path it opens) and printed. Pure Python, no Flask.
"""
from __future__ import annotations

import os
import stat
import sys
from typing import Any, Iterable, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["PortRefused", "check_url", "allowed_schemes", "known_schemes", "printable"]

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
