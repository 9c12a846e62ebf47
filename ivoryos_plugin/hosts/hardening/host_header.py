"""The Host-header allow-list of IvoryOS's app under ``ivoryos_plugin.run``: WSGI middleware outside
everything (Flask-SocketIO's transport included) that answers 400 to a ``Host`` header that is not
this server's (a DNS-rebinding page), and the look for it in the app's WSGI chain that the probes
and the health page make. The verdicts themselves are :mod:`ivoryos_plugin.runtime.inbound`'s."""
from __future__ import annotations

from typing import Any, Dict, Optional

from flask import Flask, Response
from werkzeug.wrappers import Request as WerkzeugRequest

from ...runtime.inbound import HostHeaderVerdicts, host_header_allowed, host_header_refusal
from ...runtime.replies import prefers_json
from ...runtime.security import SECURITY_HEADERS

__all__ = ["HostHeaderCheck", "host_header_check_installed"]


class HostHeaderCheck:
    """WSGI middleware, outermost (Socket.IO's transport included): 400 for a Host that is not
    localhost, an IP address or configured (``IVORYOS_PLUGIN_ALLOWED_HOSTS``).

    :param wsgi_app: the app's WSGI callable.
    :param app: the Flask app (its config is read per request)."""

    def __init__(self, wsgi_app: Any, app: Flask) -> None:
        self.wsgi_app, self.app = wsgi_app, app
        ext = app.extensions.get("ivoryos_plugin")
        #: the app's remembered verdicts (None for an app the framework has not attached: worked out each time)
        self.verdicts: Optional[HostHeaderVerdicts] = getattr(ext, "host_header_verdicts", None)

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        """Answer the request, or refuse its Host.

        :param environ: the WSGI environ.
        :param start_response: the WSGI callable."""
        host = str(environ.get("HTTP_HOST") or "")
        verdicts = self.verdicts
        if verdicts.allowed(host, self.app.config) if verdicts is not None else host_header_allowed(host, self.app):
            return self.wsgi_app(environ, start_response)
        message = f"400 Bad Request: {host_header_refusal(host)}"
        if prefers_json(WerkzeugRequest(environ)):
            import json

            body, mimetype = json.dumps({"error": message}), "application/json"
        else:
            body, mimetype = message, "text/plain"
        response = Response(body, status=400, mimetype=mimetype, headers=dict(SECURITY_HEADERS))
        return response(environ, start_response)


def host_header_check_installed(app: Flask) -> bool:
    """Whether a :class:`HostHeaderCheck` is in the app's WSGI chain (it wraps Flask-SocketIO's middleware).

    :param app: the app."""
    layer: Any = app.wsgi_app
    for _ in range(16):
        if isinstance(layer, HostHeaderCheck):
            return True
        layer = getattr(layer, "wsgi_app", None)
        if layer is None:
            return False
    return False
