"""A plugin's routes as FastAPI routes of its edge plugin, one per row of ``plugin.declarations``
(the author's pages and the framework's built-in routes alike), plus the edge's own: the framework's
assets, ``deck.json``, ``health.json``, the camera streams and the live channel.

Each route is guarded here (:mod:`.security`), then its view runs in the private app's Flask request
context (:mod:`.context`): the runtime's views answer as on IvoryOS 1.x (the same 400, 409, 413 and
503 bodies). The view runs through the private app's URL map, so the request is the plugin Blueprint's
and an exception of the framework's (a busy deck, a missing instrument...) gets the reply of the
handler the Blueprint carries (:mod:`ivoryos_plugin.runtime.errors`), in the author's pages as in the
actions. A camera's MJPEG stream is served natively (an async generator, one capture for all).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional

from flask import url_for
from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.responses import Response as StarletteResponse
from werkzeug.wrappers import Response as WerkzeugResponse

from ...core.declarations import Builtin, RouteRow
from ...runtime import payloads
from ...runtime.cameras import BOUNDARY, NO_FRAME_END_S
from ...runtime.security import SAFE_METHODS
from . import context, security
from .runtime_app import FRAMEWORK

if TYPE_CHECKING:
    from fastapi import APIRouter

    from .live import LiveChannel
    from .runtime_app import RuntimeApp

Endpoint = Callable[[Request], Awaitable[StarletteResponse]]
_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_TYPES = {None: "", "string": "", "default": "", "path": ":path", "int": ":int", "float": ":float", "uuid": ":uuid"}


def starlette_path(rule: str) -> str:
    """A Werkzeug rule in Starlette's syntax: ``/files/<path:name>`` -> ``/files/{name:path}``.

    :param rule: the rule (relative to the plugin's prefix)."""
    def convert(match: "re.Match[str]") -> str:
        kind = match.group(1)
        return "{" + match.group(2) + _TYPES.get(kind, "") + "}"

    return _CONVERTER.sub(convert, rule)


def page_snippet(rt: "RuntimeApp") -> str:
    """The tags every HTML page of the plugin gets on the edge: its meta (the live channel is a
    WebSocket) and the framework's script (no Socket.IO client: it is not used here).

    :param rt: the plugin's private runtime app (called in its request context)."""
    meta = escape(security.meta_json(rt.name, rt.prefix))
    script = escape(url_for("plugins.static", filename="ivoryos_plugin.js"))
    return (f'<meta name="ivoryos-plugin-injected" content="1">\n<meta name="csrf-token" content="">\n'
            f'<meta name="ivoryos-plugin" content="{meta}">\n<script src="{script}"></script>\n')


def finisher(rt: "RuntimeApp") -> Callable[[WerkzeugResponse], WerkzeugResponse]:
    """What every reply made in the Flask context gets there: NaN-free JSON, and on HTML pages the
    framework's tags (the headers of 1.x are added to its raw headers: :func:`.security.add_headers`).

    :param rt: the plugin's private runtime app."""
    def finish(response: WerkzeugResponse) -> WerkzeugResponse:
        streamed = response.direct_passthrough or response.is_streamed
        if response.mimetype == "application/json" and not streamed:
            fixed = payloads.dumps_finite(response.get_data(as_text=True))
            if fixed is not None:
                response.set_data(fixed + "\n")
        if response.mimetype == "text/html" and not streamed and response.status_code < 300:
            body = response.get_data(as_text=True)
            lower = body.lower()
            marker = lower.find("</head>")
            if marker == -1:
                marker = lower.find("<body")
            if marker != -1 and 'name="ivoryos-plugin-injected"' not in body:
                response.set_data(body[:marker] + page_snippet(rt) + body[marker:])
        return response

    return finish


async def read_body(request: Request, limit: Optional[int]) -> Optional[bytes]:
    """The request's body, or None when it is longer than ``limit`` (whatever its framing).

    :param request: the request.
    :param limit: the most bytes accepted, or None for any."""
    length = request.headers.get("content-length")
    if limit is not None and length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks: List[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if limit is not None and size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        pass
    return b"".join(chunks)


def flask_route(rt: "RuntimeApp", limited: bool) -> Endpoint:
    """A route whose view runs in the Flask request context (the row's own view, through the app's
    URL map: the author's page or the runtime's built-in view).

    :param rt: the plugin's private runtime app.
    :param limited: whether the body is limited by ``max_body``."""
    finish = finisher(rt)

    async def endpoint(request: Request) -> StarletteResponse:
        refused = security.refusal(rt.ext, rt.name, request.headers, request.url.path)
        if refused is not None:
            return refused
        unsafe = request.method not in SAFE_METHODS
        body = await read_body(request, rt.plugin.max_body if limited and unsafe else None)
        if body is None:
            return security.too_large(rt.name, rt.plugin.max_body)
        runtime = rt.runtime
        if runtime.state != "running":
            reason = runtime.current_reason()
            return security.error(503, f"Plugin {rt.name!r} is {runtime.state}: {reason}", state=runtime.state,
                                  reason=reason)
        environ = context.environ_for(request, body)
        response = await run_in_threadpool(context.run_view, rt.app, environ, rt.app.dispatch_request, finish)
        return context.to_starlette(response, security.add_headers)

    return endpoint


def camera_stream(rt: "RuntimeApp") -> Endpoint:
    """``GET .../cameras/<camera>/stream.mjpg``: the newest frame for each viewer, one capture for all.

    :param rt: the plugin's private runtime app."""
    async def endpoint(request: Request) -> StarletteResponse:
        refused = security.refusal(rt.ext, rt.name, request.headers, request.url.path)
        if refused is not None:
            return refused
        name = request.path_params.get("camera", "")
        cameras = rt.runtime.cameras.cameras
        camera = cameras.get(name)
        if camera is None:
            return security.error(404, f"Plugin {rt.name!r} has no camera {name!r}; cameras: "
                                       f"{', '.join(sorted(cameras)) or 'none'}.")
        camera.watch()

        async def frames() -> AsyncIterator[bytes]:
            last = 0
            try:
                while True:
                    frame = await run_in_threadpool(camera.next_frame, last, NO_FRAME_END_S)
                    if frame is None:
                        return  # no signal: the page helper reconnects
                    last = frame.seq
                    yield frame.wire
            finally:
                camera.leave()

        reply = StreamingResponse(frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                  headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        security.add_headers(reply.raw_headers, "multipart/x-mixed-replace")
        return reply

    return endpoint


def json_route(rt: "RuntimeApp", answer: Callable[[], Dict[str, Any]]) -> Endpoint:
    """A guarded GET answering ``answer()`` (computed in a worker thread) as JSON.

    :param rt: the plugin's private runtime app.
    :param answer: the reply's body."""
    async def endpoint(request: Request) -> StarletteResponse:
        refused = security.refusal(rt.ext, rt.name, request.headers, request.url.path)
        if refused is not None:
            return refused
        reply = JSONResponse(payloads.finite(await run_in_threadpool(answer)))
        security.add_headers(reply.raw_headers, "application/json")
        return reply

    return endpoint


def add_routes(router: "APIRouter", rt: "RuntimeApp", live: "LiveChannel",
               health: Callable[[], Dict[str, Any]]) -> List[str]:
    """Put the plugin's routes on the edge plugin's router.

    :param router: ``ivoryos_edge.plugins.Plugin.router`` (the edge mounts it at ``/plugins/<id>``).
    :param rt: the plugin's private runtime app.
    :param live: its live channel.
    :param health: what ``health.json`` answers.
    :returns: the paths added (relative to the prefix)."""
    added: List[str] = []

    def add(path: str, endpoint: Endpoint, methods: List[str]) -> None:
        # a Starlette route, not a FastAPI one: the endpoint takes the request and answers a reply
        # itself, so FastAPI's per-request dependency solving and reply serialising would be work for
        # nothing (the edge's middleware, its Origin/Host guard included, runs all the same)
        router.add_route(path, endpoint, methods=methods, include_in_schema=False)
        added.append(path)

    add("/deck.json", json_route(rt, live.deck_state), ["GET"])
    add("/health.json", json_route(rt, health), ["GET"])
    add(f"/{FRAMEWORK}/static/{{filename:path}}", flask_route(rt, limited=False), ["GET", "HEAD"])
    rows: List[RouteRow] = list(rt.plugin.declarations.routes)
    for row in rows:
        path = starlette_path(row.rule)
        if row.builtin is Builtin.CAMERA_STREAM:
            add(path, camera_stream(rt), ["GET"])
            continue
        methods = sorted(set(row.methods) | ({"HEAD"} if "GET" in row.methods else set()))
        add(path, flask_route(rt, limited=row.policy.body_limited), methods)
    router.add_api_websocket_route("/live", live.serve)
    added.append("/live")
    return added
