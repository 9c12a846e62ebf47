"""What arrives before a request is trusted: its ``Host`` header (DNS rebinding) and the size of its
body (``max_body``, whatever the framing)."""
from __future__ import annotations

import ipaddress
import os
import time
from typing import Any, Dict, FrozenSet, Iterable, Optional, Tuple
from urllib.parse import urlsplit

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

__all__ = ["HOSTS_KEY", "host_name", "allowed_host_names", "host_ok", "host_refusal", "host_allowed", "request_host_ok",
           "body_too_large"]

#: env and config key naming more Host names the server answers to (comma separated; ``*``: any)
HOSTS_KEY = "IVORYOS_PLUGIN_ALLOWED_HOSTS"
#: the most of an over-long chunked body read (and dropped) so the client gets its 413
DRAIN_BYTES, DRAIN_S = 64 << 20, 10.0


_HOSTS_CACHE: Tuple[Any, FrozenSet[str]] = (None, frozenset())


def host_name(host: str) -> str:
    """The name in a ``Host`` header, lowercased, without the port (``[::1]:80`` -> ``::1``).

    :param host: the header."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def allowed_host_names(config: Any, env: Optional[str] = None) -> FrozenSet[str]:
    """The Host names configured besides loopback and IP addresses: ``IVORYOS_PLUGIN_ALLOWED_HOSTS``
    (env, comma separated, and the app config, a list or a string), plus the hosts of
    ``IVORYOS_PLUGIN_ALLOWED_ORIGINS``; ``"*"`` in them allows any.

    :param config: the app's config (a mapping).
    :param env: the env value (default: ``os.environ``)."""
    global _HOSTS_CACHE
    env = os.environ.get(HOSTS_KEY, "") if env is None else env
    listed, origins = config.get(HOSTS_KEY), config.get("IVORYOS_PLUGIN_ALLOWED_ORIGINS")
    key = (env, repr(listed), repr(origins))
    if _HOSTS_CACHE[0] == key:
        return _HOSTS_CACHE[1]
    names = set(env.split(","))
    for value in (listed,) if isinstance(listed, str) else (listed or ()):
        names.update(str(value).split(","))
    for origin in (origins,) if isinstance(origins, str) else (origins or ()):
        origin = str(origin).strip()
        names.add("*" if origin == "*" else host_name(urlsplit(origin).netloc or origin))
    found = frozenset(host_name(n) if n.strip() != "*" else "*" for n in names if n.strip())
    _HOSTS_CACHE = (key, found)
    return found


def host_ok(host: str, extra: Iterable[str] = ()) -> bool:
    """Whether a request's ``Host`` names this server: ``localhost`` (and ``*.localhost``), any IP
    address (no DNS, so no rebinding), or a configured name.

    A DNS-rebinding page is served from the attacker's name resolved to this machine: its requests
    carry that name, so they are refused although the browser calls them same-origin.

    :param host: the ``Host`` header.
    :param extra: the configured names (:func:`allowed_host_names`)."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return bool(name) and (name in extra or "*" in extra)


def host_refusal(host: str) -> str:
    """The sentence a refused Host gets.

    :param host: the ``Host`` header."""
    return (f"the Host {host!r} is not a name of this server (a DNS-rebinding page would send it); if it "
            f"is one of yours, add {host_name(host)!r} to {HOSTS_KEY} (env, comma separated, or the app config).")


_HOSTS_OK: Dict[Tuple[str, FrozenSet[str]], bool] = {}  # (Host header, configured names) -> verdict, for the few Hosts a server sees


def host_allowed(host: str, config: Any) -> bool:
    """:func:`host_ok` against the names ``config`` allows (:func:`allowed_host_names`), remembered
    for the few Hosts a server sees.

    :param host: the ``Host`` header.
    :param config: the app's config."""
    names = allowed_host_names(config)
    key = (host, names)
    verdict = _HOSTS_OK.get(key)
    if verdict is None:
        if len(_HOSTS_OK) > 256:  # a client sending random Hosts cannot grow it
            _HOSTS_OK.clear()
        verdict = _HOSTS_OK[key] = host_ok(host, names)
    return bool(verdict)


def request_host_ok() -> bool:
    """Whether the current request's Host is allowed (:func:`host_ok`)."""
    return host_allowed(request.host, current_app.config)


# ------------------------------------------------------------------ bodies
def body_too_large(limit: int) -> bool:
    """Whether the request's body is longer than ``limit`` bytes, whatever its framing.

    A ``Content-Length`` is compared as it is; a chunked body (no length) is read, at most
    ``limit + 1`` bytes, into the request's cache (later reads and form parsing use it), and the rest
    of an over-long one is drained (bounded) so that the client gets its 413. A chunked body on a
    server that does not end the stream for the app (no ``wsgi.input_terminated``) cannot be
    measured, and Werkzeug would read it as empty: it counts as too large (fail closed).

    :param limit: the plugin's ``max_body``."""
    length = request.content_length
    if length is not None:
        return length > limit
    if request.environ.get("wsgi.input_terminated") is None:
        # no length and a stream the server does not end: Werkzeug reads nothing, so a chunked body
        # would be taken for an empty one (a step run with its defaults): refused, it cannot be measured
        return "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    request.max_content_length = limit + 1  # the stream stops one byte past the limit
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        data = b"x" * (limit + 1)
    if len(data) <= limit:
        return False
    _drain(request.environ["wsgi.input"])
    return True


def _drain(stream: Any) -> None:
    deadline, left = time.monotonic() + DRAIN_S, DRAIN_BYTES
    try:
        while left > 0 and time.monotonic() < deadline:
            chunk = stream.read(min(65536, left))
            if not chunk:
                return
            left -= len(chunk)
    except Exception:  # the client went away
        return
