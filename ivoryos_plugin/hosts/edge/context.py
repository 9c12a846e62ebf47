"""Run a plugin's view for a FastAPI request inside the private app's Flask request context, and
turn its reply into a Starlette one.

Not a WSGI bridge: FastAPI matches the route, the edge host guards it, and only the view itself
runs here, so ``request``, ``url_for``, ``render_template`` and the runtime's built-in views work as
they do on IvoryOS 1.x and give the same bodies. A streamed reply is iterated in a worker thread.
"""
from __future__ import annotations

import io
import sys
import weakref
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Iterable, List, Optional, Tuple

from flask import Flask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import Response as StarletteResponse
from starlette.responses import StreamingResponse
from werkzeug.wrappers import Response as WerkzeugResponse

if TYPE_CHECKING:
    from starlette.requests import Request


def environ_for(request: "Request", body: bytes) -> Dict[str, Any]:
    """The WSGI environ of ``request`` (its body already read).

    :param request: the edge's request.
    :param body: its body."""
    scope = request.scope
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("127.0.0.1", 0)
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_LENGTH":
            continue
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


Call = Callable[[], Any]


def run_view(app: Flask, environ: Dict[str, Any], view: Call,
             finish: Callable[[WerkzeugResponse], WerkzeugResponse]) -> WerkzeugResponse:
    """``view()`` in a request context of ``app``, made a response and passed through ``finish``
    (in the same context). Call it in a worker thread.

    :param app: the private app.
    :param environ: from :func:`environ_for`.
    :param view: the view, with its arguments bound.
    :param finish: what every reply gets (headers, the framework's scripts)."""
    with app.request_context(environ):
        try:
            response = app.make_response(view())
        except Exception as exc:  # an uncaught error is Flask's 500 page (or the app's error handler)
            response = app.make_response(app.handle_user_exception(exc))
        return finish(response)


def headers_of(response: WerkzeugResponse) -> List[Tuple[bytes, bytes]]:
    """The raw header list of a Werkzeug reply (names lower-case, as Starlette keeps them)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]


def _closer(response: WerkzeugResponse) -> Callable[[], None]:
    """``response.close`` once, however often it is called (its file, its ``call_on_close`` functions)."""
    closed: List[bool] = []

    def close() -> None:
        if not closed:
            closed.append(True)
            response.close()
    return close


async def _chunks(response: WerkzeugResponse, close: Callable[[], None]) -> AsyncIterator[bytes]:
    body: Iterable[Any] = response.response
    try:
        async for chunk in iterate_in_threadpool(iter(body)):
            yield chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8")
    finally:
        await run_in_threadpool(close)


def to_starlette(response: WerkzeugResponse,
                 add_headers: Optional[Callable[[List[Tuple[bytes, bytes]], str, bool], None]] = None) -> StarletteResponse:
    """The Starlette reply of a Werkzeug one (streamed replies stay streamed).

    :param response: what the view made.
    :param add_headers: called with the raw headers, the media type and whether the body was generated
        (not a file sent as it is), to add what every reply carries."""
    raw = headers_of(response)
    if add_headers is not None:
        add_headers(raw, response.mimetype or "", not response.direct_passthrough)
    if response.is_streamed or response.direct_passthrough:
        close = _closer(response)
        reply: StarletteResponse = StreamingResponse(_chunks(response, close), status_code=response.status_code)
        # a body never read (the client left before it, no body for the status) never runs _chunks' finally:
        # the file a view sent is then closed with the reply, not left to the garbage collector
        weakref.finalize(reply, close)
    else:
        reply = StarletteResponse(response.get_data(), status_code=response.status_code)
    reply.raw_headers = raw
    return reply
