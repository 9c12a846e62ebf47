"""WebSocket sessions on Werkzeug's development server (IvoryOS 1.x's and the dev host's), which
python-engineio serves through simple-websocket, end as the protocol says: no byte follows a
close frame, and no HTTP response is ever written into a WebSocket stream.

Two defects of that pair show when a browser leaves a page while its Socket.IO connection is
upgrading or closing (Chromium logs them against the page it leaves; 2 logins in 70 with headless
Chromium on the demo, measured):

- ``Invalid frame header``: the client's close frame arrives between Engine.IO's upgrade probe and
  its answer. The answer fails (OSError), python-engineio's driver passes the error up, and
  Werkzeug's server, seeing an app that failed, writes an HTTP 500 response into the WebSocket
  stream and logs a traceback.
- ``Data frame received after close``: simple-websocket writes from two threads without a lock.
  Its reader thread answers the client's close frame while Engine.IO's writer thread sends a packet
  it framed just before, so the packet follows the close frame (wsproto, underneath, is not thread
  safe either: python-hyper/wsproto#186).

:func:`end_sessions_cleanly` makes two process-wide touches, each probed first (verified on
simple-websocket :data:`SIMPLE_WEBSOCKET_VERIFIED` and python-engineio :data:`ENGINEIO_VERIFIED`):
one lock per connection around simple-websocket's writes and the event handling that changes its
state; and a session that ends with an error drops the connection as a session that ends well does
(``ConnectionError``, which Werkzeug's server closes without writing; see
:func:`ivoryos_plugin.runtime.libraries.close_dropped_connections`).
"""
from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any, Callable, Dict, List

log = logging.getLogger("ivoryos_plugin.live")

__all__ = ["ENGINEIO_VERIFIED", "SIMPLE_WEBSOCKET_VERIFIED", "end_sessions_cleanly"]

SIMPLE_WEBSOCKET_VERIFIED = "1.1.0"
ENGINEIO_VERIFIED = "4.15.1"
#: the attribute each simple-websocket connection keeps its write lock in
LOCK_ATTRIBUTE = "_ivoryos_plugin_writes"

# Process-wide on purpose: what is patched is a class of another library, shared by every app of the
# process, so whether the patch is on is one fact per process.
_lock = threading.Lock()
_state: Dict[str, str] = {}

#: (class attribute path, method, its parameters as verified) for each method touched
_EXPECTED = (
    ("Base", "send", ["self", "data"]),
    ("Base", "close", ["self", "reason", "message"]),
    ("Base", "_handle_events", ["self"]),
    ("SimpleWebSocketWSGI", "__call__", ["self", "environ", "start_response"]),
)


def end_sessions_cleanly() -> bool:
    """Serialize simple-websocket's writes per connection and drop a connection whose session
    failed, instead of answering it with an HTTP 500 inside the WebSocket stream. Idempotent and
    process-wide; a library that differs from the verified versions is left as it is (and logged).

    :returns: whether the touches are in place."""
    with _lock:
        if "websocket_sessions" in _state:
            return _state["websocket_sessions"] == "on"
        try:
            from engineio.async_drivers import _websocket_wsgi as driver
            from simple_websocket import ws as simple

            owners = {"Base": simple.Base, "SimpleWebSocketWSGI": driver.SimpleWebSocketWSGI}
            for owner, name, params in _EXPECTED:
                found = list(inspect.signature(getattr(owners[owner], name)).parameters)
                if found != params:
                    raise AttributeError(f"{owner}.{name}{tuple(found)}")
            if not callable(getattr(simple.Base, "__init__", None)):
                raise AttributeError("Base.__init__")
        except Exception as exc:
            _state["websocket_sessions"] = f"not installed: simple-websocket or python-engineio differs ({exc})"
            log.info("WebSocket sessions are left as simple-websocket and python-engineio end them (verified on %s "
                     "and %s): %s", SIMPLE_WEBSOCKET_VERIFIED, ENGINEIO_VERIFIED, exc)
            return False
        base = simple.Base
        base.__init__ = _with_a_lock(base.__init__)
        for name in ("send", "close", "_handle_events"):
            setattr(base, name, _serialized(getattr(base, name)))
        driver.SimpleWebSocketWSGI.__call__ = _dropping_failed_sessions(
            driver.SimpleWebSocketWSGI.__call__)
        _state["websocket_sessions"] = "on"
        return True


def _with_a_lock(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` giving the connection its write lock first (simple-websocket's constructor starts
    the reader thread as its last step)."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        setattr(self, LOCK_ATTRIBUTE, threading.RLock())  # re-entrant: close() may run inside the reader
        init(self, *args, **kwargs)

    return wrapper


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` holding the connection's write lock: a write, or the reader's handling of what
    came (which may write a close response and mark the connection closed), happens whole."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = getattr(self, LOCK_ATTRIBUTE, None)
        if lock is None:  # a connection opened before the touch: as it was
            return method(self, *args, **kwargs)
        with lock:
            return method(self, *args, **kwargs)

    return wrapper


def _dropping_failed_sessions(call: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's driver call, raising ``ConnectionError`` for a session that failed after the
    handshake on Werkzeug's server: the server then closes the connection without writing (a
    session that ends well already ends this way)."""

    @functools.wraps(call)
    def wrapper(self: Any, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        try:
            return call(self, environ, start_response)  # type: ignore[no-any-return]
        except ConnectionError:
            raise
        except Exception as exc:
            session = getattr(self, "ws", None)  # set once the handshake (the 101 response) is done
            if getattr(session, "mode", None) != "werkzeug":
                raise
            if isinstance(exc, OSError):  # the client left mid-session (an upgrade probe, a write)
                log.debug("a WebSocket session ended: %r; its connection is dropped", exc)
            else:
                log.warning("a WebSocket session failed; its connection is dropped", exc_info=True)
            raise ConnectionError(f"the WebSocket session ended: {exc!r}") from exc

    return wrapper
