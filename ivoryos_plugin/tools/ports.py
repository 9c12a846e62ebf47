"""Whether a server can listen on an address and port, and the fix when it cannot: a taken port
names a free one, an address this machine does not have names ``--bind`` (used by ``ivoryos-plugin
run`` and ``demo`` before anything starts)."""
from __future__ import annotations

import errno
import socket
from typing import Optional

__all__ = ["port_problem"]

#: what ``bind`` says when the address, not the port, is wrong (not this machine's)
ADDRESS_ERRNOS = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL})


def port_problem(bind: str, port: int, command: str = "ivoryos-plugin demo") -> Optional[str]:
    """Why a server could not listen on ``bind:port``, with the fix (a free port, or ``--bind`` for an
    address this machine does not have); None if it can.

    :param bind: the address to bind.
    :param port: the TCP port.
    :param command: the command the fix repeats with ``--port <a free one>`` or ``--bind``."""
    family, shown = socket.AF_INET6 if ":" in bind else socket.AF_INET, bind if bind.isprintable() else repr(bind)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug binds
        try:
            probe.bind((bind, port))
        except OSError as exc:
            if isinstance(exc, (socket.gaierror, UnicodeError)) or exc.errno in ADDRESS_ERRNOS:
                return (f"cannot listen on {shown}:{port}: {exc.strerror or exc}: {shown} is not an address of this "
                        f"machine. Give --bind one it has: {command} --bind 127.0.0.1 (this machine only), or --bind "
                        "0.0.0.0 (every interface: other machines then reach the login page)")
            free = next((p for p in range(port + 1, min(port + 50, 65536)) if _free(bind, p, family)), port + 1)
            return (f"cannot listen on {shown}:{port}: {exc.strerror or exc} (another IvoryOS, demo or dev host "
                    f"still running?). Stop it, or use another port: {command} --port {free}")
    return None


def _free(bind: str, port: int, family: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError:
            return False
    return True
