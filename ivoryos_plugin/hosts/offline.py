"""IvoryOS's pages on an offline lab network: its CDN libraries served from the framework's own files.

IvoryOS 1.7.2's templates load Bootstrap, Bootstrap Icons, jQuery, jQuery UI, highlight.js, Plotly,
socket.io, CodeMirror, SortableJS and vis-timeline from CDNs. The framework installs the same
versions from the npm registry (``npm ci`` copies them into ``ivoryos_plugin/static/vendor/``), and
an app-wide ``after_request`` hook rewrites those CDN URLs in every HTML response of the app,
IvoryOS's own pages included, to ``/ivoryos/plugins/static/vendor/...``.

Only URLs whose local copy exists are rewritten (a missing one is logged once, with the fix), and a
rewritten tag loses its ``integrity``/``crossorigin`` attributes (they describe the CDN's copy).
Turn it off with ``app.config["IVORYOS_PLUGIN_OFFLINE_ASSETS"] = False``.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Dict, FrozenSet, Match, Optional, Set

from flask import Flask, Response, current_app, url_for

from .ivoryos import CDN_ASSETS

CONFIG_KEY = "IVORYOS_PLUGIN_OFFLINE_ASSETS"
VENDOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "vendor")

log = logging.getLogger("ivoryos_plugin.offline")
_LOGGED: Set[FrozenSet[str]] = set()  # what was reported missing (once per process)
_HOSTS = tuple(sorted({url.split("/", 3)[2] for url in CDN_ASSETS}))
#: a script or link tag; the leading "<" is outside the group, so the scan skips to each "<" (5 x faster
#: on IvoryOS's pages than trying both alternatives at every character)
_TAG = re.compile(r"<(?:(script\b[^>]*>)(\s*</script>)?|link\b[^>]*>)", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)(\s*=\s*)(["'])(https?://[^"']+)\3""", re.IGNORECASE)
_SCRIPT_SRC = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_SRI_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.IGNORECASE)


def available_assets(vendor_dir: str = VENDOR_DIR) -> Dict[str, str]:
    """The CDN URLs whose local copy exists: URL -> path under ``static/vendor/``.

    :param vendor_dir: the folder ``npm ci`` fills (``ivoryos_plugin/static/vendor``)."""
    return {url: rel for url, rel in CDN_ASSETS.items() if os.path.isfile(os.path.join(vendor_dir, rel))}


def rewrite_html(html: str, local: Dict[str, str], base: str) -> str:
    """Point the ``<script src>``/``<link href>`` tags that load a known CDN URL at the local copy.

    A rewritten tag loses ``integrity`` and ``crossorigin``; a script the page already loads from the
    same local file (the framework injects the Socket.IO client into plugin pages) is dropped.

    :param html: the page.
    :param local: CDN URL -> path under ``vendor/`` (from :func:`available_assets`).
    :param base: the URL of the vendor folder, ending in ``/`` (``/ivoryos/plugins/static/vendor/``).

    Example::

        >>> rewrite_html('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>',
        ...              {"https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js"}, "/v/")
        '<script src="/v/jquery/jquery.min.js"></script>'
    """
    if not any(host in html for host in _HOSTS):
        return html
    first: Dict[str, int] = {}  # each script src on the page -> where it is first loaded
    for script in _SCRIPT_SRC.finditer(html):
        first.setdefault(script.group(1), script.start())

    def replace(match: Match[str]) -> str:
        tag = "<" + match.group(1) if match.group(1) is not None else match.group(0)
        found = _URL_ATTR.search(tag)
        if found is None or found.group(4) not in local:
            return match.group(0)
        target = base + local[found.group(4)]
        is_script = match.group(1) is not None
        if is_script and first.get(target, len(html)) < match.start() and match.group(2) is not None:
            return ""  # the page already loaded this file, earlier
        first.setdefault(target, match.start())
        tag = tag[:found.start(4)] + target + tag[found.end(4):]
        tag = _SRI_ATTRS.sub("", tag)
        return tag + (match.group(2) or "") if is_script else tag

    return _TAG.sub(replace, html)


class OfflineAssets:
    """The rewriting hook of one app (see :func:`install`).

    :param vendor_dir: where the local copies are."""

    def __init__(self, vendor_dir: str = VENDOR_DIR) -> None:
        self.vendor_dir = vendor_dir
        self.local: Dict[str, str] = {}
        self.missing: Dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """Look at the vendor folder again (after ``npm ci``); log once what is still missing."""
        self.local = available_assets(self.vendor_dir)
        missing = {url: rel for url, rel in CDN_ASSETS.items() if url not in self.local}
        if missing and frozenset(missing) not in _LOGGED:
            _LOGGED.add(frozenset(missing))
            source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(self.vendor_dir))))
            where = (f"in {source}" if os.path.isfile(os.path.join(source, "package.json"))
                     else "in the ivoryos_plugin source folder (the one with package.json), then reinstall it")
            log.warning("ivoryos_plugin: %d of IvoryOS's CDN libraries have no local copy in %s (%s), so IvoryOS's "
                        "pages load them from the internet and break on an offline network. Fix: run 'npm ci' %s.",
                        len(missing), self.vendor_dir, ", ".join(sorted(set(missing.values()))), where)
        self.missing = missing

    def __call__(self, response: Response) -> Response:
        """The ``after_request`` hook: rewrite an HTML response's CDN URLs to the local copies.

        :param response: any response of the app."""
        if (not current_app.config.get(CONFIG_KEY, True) or not self.local or response.mimetype != "text/html"
                or response.direct_passthrough or response.is_streamed):
            return response
        base = self.base_url()
        if base is None:
            return response
        html = response.get_data(as_text=True)
        rewritten = rewrite_html(html, self.local, base)
        if rewritten != html:
            response.set_data(rewritten)
        return response

    @staticmethod
    def base_url() -> Optional[str]:
        """``/ivoryos/plugins/static/vendor/`` (None when the framework's blueprint is not registered)."""
        if "plugins.static" not in current_app.view_functions:
            return None
        return url_for("plugins.static", filename="vendor/")


def install(app: Flask, vendor_dir: str = VENDOR_DIR) -> OfflineAssets:
    """Rewrite CDN URLs to the framework's local copies in every HTML response of ``app``.

    Called once per app when the host adopts it (:mod:`ivoryos_plugin.hosts.binding`). The hook runs after the blueprints' own
    ``after_request`` hooks, so it sees the scripts the framework injected into plugin pages.

    :param app: the app (IvoryOS's or the standalone host's).
    :param vendor_dir: where the local copies are (``ivoryos_plugin/static/vendor``)."""
    hook = OfflineAssets(vendor_dir)
    app.after_request(hook)
    return hook
