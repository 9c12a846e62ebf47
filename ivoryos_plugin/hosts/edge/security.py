"""Who may call a plugin's routes on the edge, and what every reply carries.

ivoryos-edge has no users, no login and no CSRF tokens: it lets a browser in by its Origin and Host
headers (``ivoryos_edge.origin_guard``, which runs before any of our routes, WebSockets included) and
lets every program on the machine in. On top of it, our routes:

- take a bearer token when one is sent (``Authorization: Bearer ivp_...``, the same tokens as on
  IvoryOS 1.x, ``ivoryos-plugin token create``): an unknown, revoked or out-of-scope one is a 401/403;
- are never reachable from another site, reads included: a request whose ``Origin`` is not this host,
  or that a browser marks as coming from another site (``Sec-Fetch-Site: cross-site`` / ``same-site``),
  is a 403 (the edge's own guard lets foreign *reads* through, and its CORS lets pages on any port of
  this computer read);
- refuse a body over ``max_body`` before it is read (413), and answer 503 while the plugin is not running;
- carry the same headers as on 1.x (``X-Frame-Options``, the baseline CSP, ``nosniff``, ``no-store`` on JSON).

There is no login to claim: a person who can reach the edge can use its pages, as they can use the
edge's own. The start-up lines and docs/edge.md say so.
"""
from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, List, Optional, Tuple
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from ...runtime.security import NO_STORE_TYPES, SECURITY_HEADERS

if TYPE_CHECKING:
    from starlette.datastructures import Headers

    from ...runtime.extension import Extension

#: what a browser says of a request from another site (Fetch Metadata)
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def error(status: int, message: str, **extra: object) -> JSONResponse:
    """A JSON error as the framework answers one on 1.x: ``{"error": sentence, ...}``, with the headers.

    :param status: the HTTP status.
    :param message: what is wrong and the fix.
    :param extra: more fields."""
    reply = JSONResponse({"error": message, **extra}, status_code=status)
    add_headers(reply.raw_headers, "application/json")
    return reply


#: :data:`SECURITY_HEADERS` as raw header pairs, encoded once (the same on every reply)
RAW_SECURITY_HEADERS: Tuple[Tuple[bytes, bytes], ...] = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS)
NO_STORE = (b"cache-control", b"no-store")


def add_headers(raw: List[Tuple[bytes, bytes]], mimetype: str, generated: bool = True) -> None:
    """Add the security headers (and ``no-store`` on generated JSON and CSV) that are not set yet,
    as on 1.x (``runtime.security.security_headers``: a header the route set itself is kept).

    :param raw: a reply's raw header list (names lower-case, as Starlette keeps them), changed in place.
    :param mimetype: the reply's media type.
    :param generated: False for a file sent as it is (no ``no-store``, as on 1.x)."""
    present = {name for name, _ in raw}
    for pair in RAW_SECURITY_HEADERS:
        if pair[0] not in present:
            raw.append(pair)
    if generated and mimetype in NO_STORE_TYPES and NO_STORE[0] not in present:
        raw.append(NO_STORE)


def foreign(headers: "Headers") -> Optional[str]:
    """Why a request comes from another site, or None when it comes from this edge's pages or from a
    program (no Origin, no Fetch Metadata).

    :param headers: the request's headers."""
    origin = headers.get("origin")
    host = (headers.get("host") or "").strip().lower()
    if origin and origin != "null" and urlsplit(origin).netloc.lower() != host:
        return f"origin {origin!r} is not this edge ({host})"
    if origin == "null":
        return "origin 'null' (a sandboxed frame or a file) is not this edge"
    site = (headers.get("sec-fetch-site") or "").lower()
    if site in FOREIGN_SITES:
        return f"the browser says this request comes from another site (Sec-Fetch-Site: {site})"
    return None


def check_token(ext: "Extension", plugin: str, headers: "Headers",
                token: Optional[str] = None) -> Optional[JSONResponse]:
    """The refusal of a bad bearer token, or None (no token, or a good one).

    :param ext: the plugin's framework state (its token store).
    :param plugin: the plugin's name.
    :param headers: the request's headers.
    :param token: a token sent another way (the live channel's first message)."""
    header = headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    if not token:
        return None
    if ext.dev_token and hmac.compare_digest(token.encode(), ext.dev_token.encode()):
        return None
    record = ext.tokens.verify(token)
    if record is None:
        return error(401, f"Plugin {plugin!r}: the bearer token is unknown or revoked; create one with "
                          "'ivoryos-plugin token create NAME'.")
    if record.plugin and record.plugin != plugin:
        return error(403, f"Plugin {plugin!r}: token {record.name!r} is scoped to plugin {record.plugin!r}, "
                          f"not {plugin!r}.")
    return None


def refusal(ext: "Extension", plugin: str, headers: "Headers", path: str) -> Optional[JSONResponse]:
    """Before every request to one of the plugin's routes: the refusal, or None to serve it.

    :param ext: the plugin's framework state.
    :param plugin: the plugin's name.
    :param headers: the request's headers.
    :param path: the request's path."""
    if "\x00" in path:
        return error(404, f"Plugin {plugin!r}: no such page: the path holds a NUL character (%00).")
    why = foreign(headers)
    if why is not None:
        return error(403, f"Plugin {plugin!r}: refused: {why}. Open the page from this edge itself.")
    return check_token(ext, plugin, headers)


def too_large(plugin: str, limit: int) -> JSONResponse:
    """The 413 of a body over ``max_body`` (the words of 1.x).

    :param plugin: the plugin's name.
    :param limit: its ``max_body``."""
    return error(413, f"Plugin {plugin!r}: the body is larger than {limit} bytes (max_body); send less, or raise "
                      "Plugin(max_body=...).")


def meta_json(plugin: str, prefix: str) -> str:
    """The page's ``<meta name="ivoryos-plugin">`` for the edge: the live channel is a WebSocket.

    :param plugin: the plugin's name.
    :param prefix: its URL prefix (``/plugins/<name>``)."""
    return json.dumps({"name": plugin, "namespace": prefix, "transport": "websocket", "live": f"{prefix}/live",
                       "actions": f"{prefix}/actions/", "deck": f"{prefix}/deck.json"})
