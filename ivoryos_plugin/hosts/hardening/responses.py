"""The headers ``ivoryos_plugin.run`` puts on every response of IvoryOS's app (the headers hook):
a Content-Security-Policy (:func:`content_security_policy`), frame options, nosniff, a referrer
policy and ``no-store`` on generated JSON and CSV; and the served uploads (the uploads hook): a file
from IvoryOS's logo folder is a download, never sniffed, never a page."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from flask import Response, request

from ...runtime.extension import Extension
from ...runtime.security import BASELINE_CSP, NO_STORE_TYPES, SECURITY_HEADERS

__all__ = ["CSP", "UPLOAD_HEADERS", "content_security_policy", "HeaderHook", "UploadHook"]

CSP = "Content-Security-Policy"
#: what an uploaded file in IvoryOS's logo folder is served with: never a page, never sniffed
UPLOAD_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Content-Disposition", "attachment"),
                  (CSP, "default-src 'none'; sandbox"))
#: the security headers :meth:`HeaderHook.add_headers` adds when a response has none (the CSP is set apart)
_ADDED_HEADERS = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS if name != CSP)
_OWN_NAMES = frozenset({*(lowered for lowered, _, _ in _ADDED_HEADERS), CSP.lower()})
_NO_STORE = ("Cache-Control", "no-store")
_HOST_SOURCE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def content_security_policy(host: str, origins: Sequence[str] = ()) -> str:
    """The Content-Security-Policy of IvoryOS's pages (and the plugins' pages) under ``ivoryos_plugin.run``.

    IvoryOS's templates run inline scripts and ``onclick=`` handlers, so scripts may be inline (and,
    as inline scripts can anyway, ``eval``: Plotly's WebGL traces, Vue or Alpine.js on a plugin page,
    browser test tools need it); they come from this server only: the CDN libraries are served
    locally (``hosts/offline.py``). No other site frames a page, no plugin object runs, forms post
    only here.

    :param host: the request's ``Host`` (its WebSocket URLs are allowed; an odd value is left out).
    :param origins: CDN origins still needed (libraries without a local copy)."""
    extra = "".join(f" {origin}" for origin in origins)
    sockets = f" ws://{host} wss://{host}" if _HOST_SOURCE.fullmatch(host or "") else ""
    return "; ".join([
        "default-src 'self'", f"script-src 'self' 'unsafe-inline' 'unsafe-eval'{extra}", f"style-src 'self' 'unsafe-inline'{extra}",
        f"font-src 'self' data:{extra}", "img-src 'self' data: blob:", f"connect-src 'self'{sockets}",
        "worker-src 'self' blob:", "frame-src 'self'", "frame-ancestors 'self'", "object-src 'none'",
        "base-uri 'self'", "form-action 'self'"])


class HeaderHook:
    """The headers hook (:meth:`add_headers`) of one hardened app, with the headers it made per Host.

    :param ext: the app's framework state.
    :param origins: CDN origins the pages still need (no local copy)."""

    def __init__(self, ext: Extension, origins: Sequence[str] = ()) -> None:
        self.ext, self.origins = ext, tuple(origins)
        self._policies: Dict[str, str] = {}  # Host -> its Content-Security-Policy
        self._pairs: Dict[str, Tuple[Tuple[str, str], ...]] = {}  # Host -> the headers of :meth:`header_pairs`

    def add_headers(self, response: Response) -> Response:
        """Every response of IvoryOS's app: frame options, nosniff, referrer policy, the CSP (a
        route's own CSP is kept; the plugins' baseline is replaced), ``no-store`` on generated JSON and CSV.

        :param response: any response of the app."""
        req = request._get_current_object()  # type: ignore[attr-defined]  # (the proxy looked up once)
        headers = response.headers
        present = {name.lower() for name, _ in headers}  # one pass over its list, not one per header added
        raw = getattr(headers, "_list", None)  # Werkzeug's list of (name, value) pairs (verified on 3.1)
        # the usual case, none of them set: the pairs made once per Host, appended as they are (each
        # Headers.add checks its value again, which costs more than the rest of this hook)
        pairs: Optional[List[Tuple[str, str]]] = raw if present.isdisjoint(_OWN_NAMES) and type(raw) is list else None
        if pairs is not None:
            pairs.extend(self.header_pairs(req.host))
        else:
            for lowered, name, value in _ADDED_HEADERS:
                if lowered not in present:
                    headers.add(name, value)
            if "content-security-policy" not in present or headers.get(CSP) == BASELINE_CSP:
                headers[CSP] = self.policy(req.host)
        if ("cache-control" not in present and response.mimetype in NO_STORE_TYPES and not response.direct_passthrough
                and response.status_code < 400
                and (req.method == "GET" or self.ext.plugin_of_path(req.path) is not None)):
            # (what a cache could keep: an error, or IvoryOS's answer to a POST, is not kept anyway, and a
            # no-store body its scripts never read keeps the request open in the browser)
            if pairs is not None:
                pairs.append(_NO_STORE)  # (a constant: not checked again)
            else:
                headers.add(*_NO_STORE)
        return response

    def header_pairs(self, host: str) -> Tuple[Tuple[str, str], ...]:
        """The security headers of a response that has none of them, the CSP for ``host``, made once per Host.

        :param host: the request's ``Host``."""
        found = self._pairs.get(host)
        if found is None:
            if len(self._pairs) >= 64:  # a client sending odd Hosts cannot grow it
                self._pairs.clear()
            found = self._pairs[host] = (*((name, value) for _, name, value in _ADDED_HEADERS),
                                         (CSP, self.policy(host)))
        return found

    def policy(self, host: str) -> str:
        """:func:`content_security_policy` for a request's ``Host``, made once per Host.

        :param host: the request's ``Host``."""
        found = self._policies.get(host)
        if found is None:
            if len(self._policies) >= 64:  # a client sending odd Hosts cannot grow it
                self._policies.clear()
            found = self._policies[host] = content_security_policy(host, self.origins)
        return found


class UploadHook:
    """The uploads hook (:meth:`serve_upload`) of one hardened app.

    :param logo_path: the URL path of IvoryOS's logo folder (None: not found, nothing to do)."""

    def __init__(self, logo_path: Optional[str]) -> None:
        self.logo_path = logo_path

    def serve_upload(self, response: Response) -> Response:
        """A file from IvoryOS's logo folder: a download, never sniffed, never a page (an image
        still shows in an ``<img>``).

        :param response: any response of the app."""
        if self.logo_path and request.path.startswith(self.logo_path):
            for name, value in UPLOAD_HEADERS:
                response.headers[name] = value
        return response
