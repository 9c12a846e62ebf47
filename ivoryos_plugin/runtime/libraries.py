"""Other libraries' private names, touched from this one module of the runtime layer (IvoryOS's own
are in :mod:`ivoryos_plugin.hosts.ivoryos`). Each touch names the versions it was verified on and is
probed before it is made: a touch whose probe fails is not made, and what depends on it falls back
to the public way (or says why it cannot)."""
from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Dict

log = logging.getLogger("ivoryos_plugin")

__all__ = ["close_dropped_connections", "touches"]

#: Werkzeug's development server (IvoryOS's and the dev host's): ``WSGIRequestHandler.connection_dropped``
#: is called when the WSGI app raises ``ConnectionError``, which a finished WebSocket does
#: (python-engineio's simple-websocket driver, in Werkzeug mode).
WERKZEUG_VERIFIED = "3.1.9"

_lock = threading.Lock()
_state: Dict[str, str] = {}


def close_dropped_connections() -> bool:
    """Make Werkzeug's development server close a connection its app dropped, instead of reading the
    rest of it as a new HTTP request. Without it, a WebSocket client that closes gracefully makes
    the server log ``400 Bad request syntax`` (the client's close frame read as a request line).

    Idempotent and process-wide (the server's request handler class is shared): a dropped
    connection is never read again whichever app served it.

    :returns: whether the touch is in place."""
    with _lock:
        if "werkzeug_dropped_connections" in _state:
            return _state["werkzeug_dropped_connections"] == "on"
        try:
            from werkzeug.serving import WSGIRequestHandler

            original = WSGIRequestHandler.connection_dropped
            params = list(inspect.signature(original).parameters)
            if params != ["self", "error", "environ"] or not hasattr(WSGIRequestHandler, "handle_one_request"):
                raise AttributeError(f"connection_dropped{tuple(params)}")
        except Exception as exc:
            _state["werkzeug_dropped_connections"] = f"not installed: Werkzeug differs ({exc})"
            log.info("Werkzeug's dropped connections are left as they are (verified on %s): %s",
                     WERKZEUG_VERIFIED, exc)
            return False

        def connection_dropped(self: Any, error: BaseException, environ: Any = None) -> None:
            self.close_connection = True  # what is left on the socket is not a request
            original(self, error, environ)

        connection_dropped.__wrapped__ = original  # type: ignore[attr-defined]
        WSGIRequestHandler.connection_dropped = connection_dropped  # type: ignore[method-assign]
        _state["werkzeug_dropped_connections"] = "on"
        return True


def touches() -> Dict[str, str]:
    """Each touch made or refused so far in this process: name -> ``"on"`` or why not (the health
    JSON shows it)."""
    with _lock:
        return dict(_state)
