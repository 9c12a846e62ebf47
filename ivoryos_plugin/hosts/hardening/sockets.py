"""The gate of IvoryOS's default Socket.IO namespace under ``ivoryos_plugin.run``: a client comes
in only with an allowed Host header, this server's origin (or one listed), and a logged-in session
or an API token. :mod:`.install` puts it in front of IvoryOS's own connect handler through the
adapter (:func:`~ivoryos_plugin.hosts.ivoryos.guard_default_namespace`)."""
from __future__ import annotations

import logging
from typing import Any, Optional

from flask import Flask, request

from ...runtime.connections import Connection
from ...runtime.extension import Extension
from ...runtime.inbound import host_header_refusal, request_host_header_ok
from ...runtime.security import AuthError, authenticate, origin_ok

log = logging.getLogger("ivoryos_plugin")

__all__ = ["socket_check"]


def socket_check(app: Flask, ext: Extension) -> Any:
    """The default namespace's gate: this server's Host and origin, and a logged-in session (or token).

    :param app: IvoryOS's app.
    :param ext: its framework state."""
    def check(sid: str, environ: Any, auth: Any) -> Optional[str]:
        with app.request_context(environ):
            try:
                if not request_host_header_ok():
                    return f"IvoryOS's Socket.IO: {host_header_refusal(request.host)}"
                origin = request.headers.get("Origin")
                if not origin_ok(origin, request.host, app.config.get("IVORYOS_PLUGIN_ALLOWED_ORIGINS")):
                    return (f"IvoryOS's Socket.IO: origin {origin!r} is not allowed; add it to "
                            "IVORYOS_PLUGIN_ALLOWED_ORIGINS if it is yours.")
                token = auth.get("token") if isinstance(auth, dict) else None
                principal = authenticate(None, token)
            except AuthError as exc:
                return f"unauthorized: IvoryOS's Socket.IO: {exc}"
            except Exception as exc:  # an error never lets a client in
                log.exception("refusing a client of IvoryOS's Socket.IO: the credential check failed")
                return f"unauthorized: IvoryOS's Socket.IO: the credential check failed ({type(exc).__name__})"
            if principal is None:
                return ("unauthorized: IvoryOS's Socket.IO needs a logged-in session (ivoryos_plugin.run; "
                        "allow_anonymous_socket=True turns this off)")
            ext.connections.add(Connection(
                sid=sid, namespace="/", token=principal.token, session_id=principal.session_id,
                user=principal.name if principal.via == "session" else None, session_at=principal.session_at))
        return None

    return check
