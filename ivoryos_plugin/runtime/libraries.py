"""Other libraries' private names, touched from this one module of the runtime layer (IvoryOS's own
are in :mod:`ivoryos_plugin.hosts.ivoryos`). Each touch names the versions it was verified on and is
probed before it is made: a touch whose probe fails is not made, and what depends on it falls back
to the public way (or says why it cannot)."""
from __future__ import annotations

import inspect
import logging
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger("ivoryos_plugin")

__all__ = ["close_dropped_connections", "pending_socketio_handlers", "raw_socket", "before_request_first",
           "app_hooks", "hook_table", "csrf_expiry", "remember_csrf_token", "touches"]

#: Werkzeug's development server (IvoryOS's and the dev host's): ``WSGIRequestHandler.connection_dropped``
#: is called when the WSGI app raises ``ConnectionError``, which a finished WebSocket does
#: (python-engineio's simple-websocket driver, in Werkzeug mode).
WERKZEUG_VERIFIED = "3.1.9"

# Process-wide on purpose: what is patched here is a class of another library (Werkzeug's request
# handler), shared by every app of the process, so whether the patch is on is one fact per process.
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


#: Werkzeug's development server puts the request's connection in the WSGI environ as
#: ``werkzeug.socket`` (how simple-websocket and the camera sender reach it).
WERKZEUG_SOCKET_KEY = "werkzeug.socket"


def raw_socket(environ: Dict[str, Any]) -> Optional[socket.socket]:
    """The request's own connection when a streamed response may be written to it directly: Werkzeug's
    threaded development server (IvoryOS's and the dev host's), in blocking mode; None elsewhere (the
    caller then yields its chunks to the server). Verified on Werkzeug :data:`WERKZEUG_VERIFIED`.

    :param environ: the request's WSGI environ."""
    sock = environ.get(WERKZEUG_SOCKET_KEY)
    if (type(sock) is not socket.socket or not environ.get("wsgi.multithread") or not hasattr(socket, "MSG_DONTWAIT")
            or not str(environ.get("SERVER_SOFTWARE", "")).startswith("Werkzeug/")):
        return None
    if sock.gettimeout() is not None:  # Python would wait for room before each send, however flagged
        return None
    return sock


#: Flask keeps an app's hooks in dicts keyed by blueprint name (None: the app's own), documented as
#: internal ("its format may change at any time"). Verified on Flask 3.0 and 3.1.
FLASK_VERIFIED = "3.1"
HOOK_TABLES = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs", "url_value_preprocessors",
               "url_default_functions", "template_context_processors")


def hook_table(scaffold: Any, table: str) -> Dict[Optional[str], List[Any]]:
    """One of Flask's hook tables of an app or a Blueprint, the live dict (blueprint name or None ->
    the functions).

    :param scaffold: a Flask app or Blueprint.
    :param table: one of :data:`HOOK_TABLES`.
    :raises RuntimeError: this Flask keeps its hooks another way (the caller fails closed)."""
    found = getattr(scaffold, table, None)
    if table not in HOOK_TABLES or not isinstance(found, dict):
        raise RuntimeError(f"Flask's {table} is not a dict of hook lists here (verified on Flask {FLASK_VERIFIED}).")
    return found


def app_hooks(app: Any, table: str) -> List[Any]:
    """The app-wide hooks of one of Flask's tables (``before_request_funcs``...), the live list.

    :param app: a Flask app.
    :param table: one of :data:`HOOK_TABLES`.
    :raises RuntimeError: this Flask keeps its hooks another way (the caller fails closed)."""
    hooks = hook_table(app, table).setdefault(None, [])
    if not isinstance(hooks, list):
        raise RuntimeError(f"Flask's {table}[None] is not a list here (verified on Flask {FLASK_VERIFIED}).")
    return hooks


def before_request_first(app: Any, func: Any) -> None:
    """Run ``func`` before every other app-wide ``before_request`` hook (IvoryOS's own included).

    :param app: a Flask app.
    :param func: the hook.
    :raises RuntimeError: this Flask keeps its hooks another way."""
    app_hooks(app, "before_request_funcs").insert(0, func)


#: Flask-WTF signs its CSRF tokens with itsdangerous under this salt and keeps the request's signed
#: token in ``flask.g`` under the field name (verified on Flask-WTF 1.2 and 1.3.0). Probed once: a
#: token it made must read back with the salt, else the framework stops caching (every page signs).
FLASK_WTF_VERIFIED = "1.3.0"
FLASK_WTF_SALT = "wtf-csrf-token"


def csrf_expiry(token: str, secret: str, limit: float) -> float:
    """When a Flask-WTF token expires (epoch seconds).

    :param token: the signed token.
    :param secret: the CSRF secret.
    :param limit: ``WTF_CSRF_TIME_LIMIT`` (0: an hour from now).
    :raises Exception: the token does not read back (bad signature, another salt)."""
    from itsdangerous import URLSafeTimedSerializer

    _, signed = URLSafeTimedSerializer(secret, salt=FLASK_WTF_SALT).loads(token, return_timestamp=True)
    return float(signed.timestamp()) + float(limit) if limit else time.time() + 3600.0


def remember_csrf_token(field: str, token: str, secret: str, into: Any = None) -> bool:
    """Make Flask-WTF's ``generate_csrf()`` return ``token`` for the rest of the request (what it
    would cache itself), when the probe says this Flask-WTF signs as verified; inside a request.

    :param field: ``WTF_CSRF_FIELD_NAME``.
    :param token: a token Flask-WTF signed for this session.
    :param secret: the CSRF secret.
    :param into: the request's ``flask.g`` (default: looked up).
    :returns: whether it was remembered (False: the caller signs a fresh token)."""
    state = _state.get("flask_wtf_token_cache")  # (set once, whole: read without the lock, on every page)
    if state is None:
        try:
            csrf_expiry(token, secret, 0)
            state = "on"
        except Exception as exc:
            state = f"not installed: Flask-WTF signs differently ({type(exc).__name__})"
            log.info("Flask-WTF's tokens are signed on every page (verified on %s): %s", FLASK_WTF_VERIFIED, state)
        with _lock:
            _state["flask_wtf_token_cache"] = state
    if state != "on":
        return False
    if into is None:
        from flask import g

        into = g
    setattr(into, field, token)
    return True


def touches() -> Dict[str, str]:
    """Each touch made or refused so far in this process: name -> ``"on"`` or why not (the health
    JSON shows it)."""
    with _lock:
        return dict(_state)
