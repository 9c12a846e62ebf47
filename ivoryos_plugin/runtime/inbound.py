"""What arrives before a request is trusted: its ``Host`` header (DNS rebinding) and the size of its
body (``max_body``, whatever the framing).

The Host allow-list is not Flask 3.1's ``TRUSTED_HOSTS`` (issue 25 asked; Flask 3.1.3, Werkzeug 3.1.9,
verified with a test client on an app with Flask-SocketIO and ``TRUSTED_HOSTS = ["localhost",
".localhost", "lab.example"]``), because it refuses and lets through other requests than this check:
(1) it has no way to say "any IP address": ``127.0.0.1:5000``, ``[::1]:8000`` and ``10.0.0.5`` got 400,
while a lab reaches its server by address (no DNS name, so no rebinding), and listing every address of
every interface is not possible; (2) ``"*"`` is not a wildcard there (``x.example`` got 400 with
``["*"]``), and ``allowed_hosts="*"`` is this check's documented opt-out; (3) it is checked only when
Flask's request reads ``request.host``, so Flask-SocketIO's transport, a WSGI middleware in front of
Flask, answered ``/socket.io/?EIO=4&transport=polling`` with 200 for ``Host: evil.example`` (the
DNS-rebinding page this check exists for), where :class:`~ivoryos_plugin.hosts.hardening.host_header.HostHeaderCheck`
wraps the whole WSGI chain; (4) a name is compared as written: ``LAB.EXAMPLE`` and ``lab.example.`` got 400 where
:func:`host_header_name` folds case and the trailing dot."""
from __future__ import annotations

import ipaddress
import os
import time
from typing import Any, Dict, FrozenSet, Iterable, Optional, Tuple
from urllib.parse import urlsplit

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length

__all__ = ["ALLOWED_HOSTS_KEY", "HostHeaderVerdicts", "host_header_name", "allowed_host_names", "host_header_ok", "host_header_refusal", "host_header_allowed", "request_host_header_ok",
           "body_too_large"]

#: env and config key naming more Host names the server answers to (comma separated; ``*``: any)
ALLOWED_HOSTS_KEY = "IVORYOS_PLUGIN_ALLOWED_HOSTS"
#: config key of the origins allowed to post (their hosts are allowed Hosts too)
ORIGINS_KEY = "IVORYOS_PLUGIN_ALLOWED_ORIGINS"
#: the most of an over-long chunked body read (and dropped) so the client gets its 413
DRAIN_BYTES, DRAIN_S = 64 << 20, 10.0


def host_header_name(host: str) -> str:
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
    env = os.environ.get(ALLOWED_HOSTS_KEY, "") if env is None else env
    listed, origins = config.get(ALLOWED_HOSTS_KEY), config.get(ORIGINS_KEY)
    names = set(env.split(","))
    for value in (listed,) if isinstance(listed, str) else (listed or ()):
        names.update(str(value).split(","))
    for origin in (origins,) if isinstance(origins, str) else (origins or ()):
        origin = str(origin).strip()
        names.add("*" if origin == "*" else host_header_name(urlsplit(origin).netloc or origin))
    return frozenset(host_header_name(n) if n.strip() != "*" else "*" for n in names if n.strip())


def host_header_ok(host: str, extra: Iterable[str] = ()) -> bool:
    """Whether a request's ``Host`` names this server: ``localhost`` (and ``*.localhost``), any IP
    address (no DNS, so no rebinding), or a configured name.

    A DNS-rebinding page is served from the attacker's name resolved to this machine: its requests
    carry that name, so they are refused although the browser calls them same-origin.

    :param host: the ``Host`` header.
    :param extra: the configured names (:func:`allowed_host_names`)."""
    name = host_header_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return bool(name) and (name in extra or "*" in extra)


def host_header_refusal(host: str) -> str:
    """The sentence a refused Host gets.

    :param host: the ``Host`` header."""
    return (f"the Host {host!r} is not a name of this server (a DNS-rebinding page would send it); if it "
            f"is one of yours, add {host_header_name(host)!r} to {ALLOWED_HOSTS_KEY} (env, comma separated, or the app config).")


class HostHeaderVerdicts:
    """One app's Host verdicts, remembered for the few Hosts a server sees (its extension keeps one, as
    ``ext.host_header_verdicts``): the configured names are worked out again only when the config that
    names them changes (the environment's ``IVORYOS_PLUGIN_ALLOWED_HOSTS`` is read then, and at the first
    request: reading it costs more than the rest of a verdict), and a client sending random Hosts cannot
    grow the table past 256."""

    def __init__(self) -> None:
        self._names_key: Any = None
        self._names: FrozenSet[str] = frozenset()
        #: (the config's two values, the names made from them): the names are reused while the config holds
        #: the very same values, each None or a string (which cannot change in place); one tuple, swapped whole
        self._state: Tuple[Any, Any, Optional[FrozenSet[str]]] = (None, None, None)
        self._verdicts: Dict[Tuple[str, FrozenSet[str]], bool] = {}

    def names(self, config: Any) -> FrozenSet[str]:
        """:func:`allowed_host_names` of ``config``, remembered while its values stay the same.

        :param config: the app's config."""
        listed, origins = config.get(ALLOWED_HOSTS_KEY), config.get(ORIGINS_KEY)
        state = self._state
        if state[2] is not None and listed is state[0] and origins is state[1]:
            return state[2]
        # (the values themselves, a list copied as a tuple: an edit in place is seen, and no repr per request)
        key = (os.environ.get(ALLOWED_HOSTS_KEY, ""), _frozen(listed), _frozen(origins))
        names = self._names
        if key != self._names_key:
            names = allowed_host_names(config, key[0])
            self._names, self._names_key = names, key
        immutable = all(value is None or isinstance(value, str) for value in (listed, origins))
        self._state = (listed, origins, names) if immutable else (None, None, None)
        return names

    def allowed(self, host: str, config: Any) -> bool:
        """:func:`host_header_ok` against the names ``config`` allows.

        :param host: the ``Host`` header.
        :param config: the app's config."""
        names = self.names(config)
        key = (host, names)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) > 256:
                self._verdicts.clear()
            verdict = self._verdicts[key] = host_header_ok(host, names)
        return verdict


def _frozen(value: Any) -> Any:
    """A config value as :meth:`HostHeaderVerdicts.names` compares it: a list, tuple or set as a tuple of
    its items (a copy: a list edited in place differs from it), anything else but a string as its repr."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return (type(value).__name__, *(v if isinstance(v, str) else repr(v) for v in value))
    return value if value is None or isinstance(value, str) else (type(value).__name__, repr(value))


def host_header_allowed(host: str, app: Any) -> bool:
    """:func:`host_header_ok` against the names ``app``'s config allows, remembered in the app's extension
    (:class:`HostHeaderVerdicts`); worked out afresh for an app the framework has not attached.

    :param host: the ``Host`` header.
    :param app: the Flask app."""
    ext = app.extensions.get("ivoryos_plugin")
    verdicts = getattr(ext, "host_header_verdicts", None)
    if verdicts is None:
        return host_header_ok(host, allowed_host_names(app.config))
    return bool(verdicts.allowed(host, app.config))


def request_host_header_ok() -> bool:
    """Whether the current request's Host is allowed (:func:`host_header_ok`)."""
    return host_header_allowed(request.host, current_app)


# ------------------------------------------------------------------ bodies
def body_too_large(limit: int, req: Any = None) -> bool:
    """Whether the request's body is longer than ``limit`` bytes, whatever its framing.

    A ``Content-Length`` is compared as it is; a chunked body (no length) is read, at most
    ``limit + 1`` bytes, into the request's cache (later reads and form parsing use it), and the rest
    of an over-long one is drained (bounded) so that the client gets its 413. A chunked body on a
    server that does not end the stream for the app (no ``wsgi.input_terminated``) cannot be
    measured, and Werkzeug would read it as empty: it counts as too large (fail closed).

    :param limit: the plugin's ``max_body``.
    :param req: the current request, when the caller has it at hand (default: Flask's ``request``)."""
    req = request if req is None else req
    environ = req.environ
    given = environ.get("CONTENT_LENGTH")
    if given and given.isascii() and given.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        return int(given) > limit  # (the usual case: what get_content_length reads from these digits)
    length = get_content_length(environ)  # request.content_length's answer, read from the environ
    if length is not None:
        return length > limit
    if environ.get("wsgi.input_terminated") is None:
        # no length and a stream the server does not end: Werkzeug reads nothing, so a chunked body
        # would be taken for an empty one (a step run with its defaults): refused, it cannot be measured
        return "chunked" in req.headers.get("Transfer-Encoding", "").lower()
    req.max_content_length = limit + 1  # the stream stops one byte past the limit
    try:
        data = req.get_data(cache=True)
    except RequestEntityTooLarge:
        data = b"x" * (limit + 1)
    if len(data) <= limit:
        return False
    _drain(environ["wsgi.input"])
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
