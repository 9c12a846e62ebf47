"""Other libraries' private names, touched from this one module of the runtime layer (IvoryOS's own
are in :mod:`ivoryos_plugin.hosts.ivoryos`). Each touch names the versions it was verified on and is
probed before it is made: a touch whose probe fails is not made, and what depends on it falls back
to the public way (or says why it cannot)."""
from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger("ivoryos_plugin")

__all__ = ["close_dropped_connections", "pending_socketio_handlers", "touches"]

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


#: Flask-SocketIO keeps the handlers declared on a ``SocketIO()`` that has no app yet in two lists,
#: ``handlers`` (``(event, handler, namespace)``) and ``namespace_handlers`` (class-based namespaces),
#: until ``init_app`` hands them to the server.
FLASK_SOCKETIO_VERIFIED = "5.7.0"


def pending_socketio_handlers(socketio: Any) -> Optional[Tuple[List[Tuple[str, Optional[str]]], List[Optional[str]]]]:
    """What was declared on a Flask-SocketIO server that has no app yet (``ivoryos-plugin check`` runs
    a plain plugin's ``init_socketio`` against one): ``([(event, namespace)], [class namespace])``, or
    None when this Flask-SocketIO keeps them elsewhere (the caller then reads the sources only).

    :param socketio: a ``flask_socketio.SocketIO()`` made without an app."""
    handlers, classes = getattr(socketio, "handlers", None), getattr(socketio, "namespace_handlers", None)
    if not isinstance(handlers, list) or not isinstance(classes, list):
        return None
    try:
        events = [(str(event), namespace) for event, _handler, namespace in handlers]
    except (TypeError, ValueError):  # another shape than (event, handler, namespace)
        return None
    return events, [getattr(handler, "namespace", "/") for handler in classes]


def touches() -> Dict[str, str]:
    """Each touch made or refused so far in this process: name -> ``"on"`` or why not (the health
    JSON shows it)."""
    with _lock:
        return dict(_state)
