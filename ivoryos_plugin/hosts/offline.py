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
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from flask import Flask, Response, current_app, request, url_for

from .ivoryos import CDN_ASSETS
from .page_memo import PageMemo

CONFIG_KEY = "IVORYOS_PLUGIN_OFFLINE_ASSETS"
VENDOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "vendor")

log = logging.getLogger("ivoryos_plugin.offline")
_LOGGED: Set[FrozenSet[str]] = set()  # what was reported missing (once per process)
#: the pages :class:`OfflineAssets` remembers the rewriting of (by their bytes), and the largest it keeps
PAGES_KEPT, PAGE_BYTES = 16, 256 * 1024
_HOSTS = tuple(sorted({url.split("/", 3)[2] for url in CDN_ASSETS}))
#: a script or link tag; the leading "<" is outside the group, so the scan skips to each "<" (5 x faster
#: on IvoryOS's pages than trying both alternatives at every character)
_TAG = re.compile(r"<(?:(script\b[^>]*>)(\s*</script>)?|link\b[^>]*>)", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)(\s*=\s*)(["'])(https?://[^"']+)\3""", re.IGNORECASE)
_SCRIPT_SRC = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_SRI_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.IGNORECASE)
# the same patterns on a page's bytes (the hook never decodes a page)
#: "//" and a CDN's host name: one pattern scans a page faster than one search per host
_CDN_HOST = re.compile(b"//(?:" + b"|".join(re.escape(host.encode()) for host in _HOSTS) + b")", re.IGNORECASE)
_TAG_B, _URL_ATTR_B, _SCRIPT_SRC_B, _SRI_ATTRS_B = (re.compile(pattern.pattern.encode(), re.IGNORECASE)
                                                    for pattern in (_TAG, _URL_ATTR, _SCRIPT_SRC, _SRI_ATTRS))


def available_assets(vendor_dir: str = VENDOR_DIR) -> Dict[str, str]:
    """The CDN URLs whose local copy exists: URL -> path under ``static/vendor/``.

    :param vendor_dir: the folder ``npm ci`` fills (``ivoryos_plugin/static/vendor``)."""
    return {url: rel for url, rel in CDN_ASSETS.items() if os.path.isfile(os.path.join(vendor_dir, rel))}


def rewrite_html(html: str, local: Dict[str, str], base: str) -> str:
    """Point the ``<script src>``/``<link href>`` tags that load a known CDN URL at the local copy.

    A rewritten tag loses ``integrity`` and ``crossorigin``; a script the page already loads from the
    same local file (the framework injects the Socket.IO client into plugin pages) is dropped.
    (:func:`rewrite_page` does the same on a page's bytes.)

    :param html: the page.
    :param local: CDN URL -> path under ``vendor/`` (from :func:`available_assets`).
    :param base: the URL of the vendor folder, ending in ``/`` (``/ivoryos/plugins/static/vendor/``).

    Example::

        >>> rewrite_html('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>',
        ...              {"https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js"}, "/v/")
        '<script src="/v/jquery/jquery.min.js"></script>'
    """
    body = html.encode("utf-8", "surrogatepass")
    rewritten = rewrite_page(body, local, base)
    return html if rewritten is body else rewritten.decode("utf-8", "surrogatepass")


#: a tag's rewriting: the new tag and the local URL it loads, or None (not a CDN library served here)
TagRewrite = Optional[Tuple[bytes, bytes]]


def rewrite_page(body: bytes, local: Dict[str, str], base: str,
                 tags: Optional[Dict[Tuple[bytes, str], TagRewrite]] = None) -> bytes:
    """:func:`rewrite_html` on a page's UTF-8 bytes: only the tags around a CDN host's name are
    looked at (one scan for the names, not a tag pattern tried at each ``<``), nothing is decoded.

    :param body: the page.
    :param local: CDN URL -> path under ``vendor/``.
    :param base: the URL of the vendor folder, ending in ``/``.
    :param tags: a cache of each tag's rewriting (the same few tags come back on every page); it
        must belong to one ``local`` mapping.
    :returns: the new page, or ``body`` itself when nothing changed."""
    starts: Set[int] = set()
    for url in _CDN_HOST.finditer(body):  # one scan of the page (a few per page: 9 on /ivoryos/draft)
        at = url.start()
        start = body.rfind(b"<", 0, at)
        if start != -1 and body.find(b">", start, at) == -1:  # inside a tag, not in the text
            starts.add(start)
    if not starts:
        return body
    parts: List[bytes] = []
    done = 0
    loaded: Dict[bytes, int] = {}  # local URLs of the tags rewritten so far -> where
    for start in sorted(starts):
        match = _TAG_B.match(body, start) if start >= done else None
        if match is None:
            continue
        key = (match.group(1) or match.group(0), base)
        if tags is not None and key in tags:
            found = tags[key]
        else:
            found = _tag_rewrite(match, local, base)
            if tags is not None:
                if len(tags) >= 512:  # a page full of odd tags cannot grow it
                    tags.clear()
                tags[key] = found
        if found is None:
            continue
        tag, target = found
        script = match.group(1) is not None
        if script and match.group(2) is not None and (target in loaded or _loads_before(body, target, start)):
            tag = b""  # the page already loaded this file, earlier
        else:
            loaded.setdefault(target, start)
            tag += (match.group(2) or b"") if script else b""
        parts += (body[done:start], tag)
        done = match.end()
    if not parts:
        return body
    parts.append(body[done:])
    return b"".join(parts)


def _tag_rewrite(match: "re.Match[bytes]", local: Dict[str, str], base: str) -> TagRewrite:
    """The tag of ``match`` pointed at the local copy, without ``integrity``/``crossorigin``, and that copy's URL."""
    tag = b"<" + match.group(1) if match.group(1) is not None else match.group(0)
    found = _URL_ATTR_B.search(tag)
    if found is None:
        return None
    rel = local.get(found.group(4).decode("utf-8", "replace"))
    if rel is None:
        return None
    target = (base + rel).encode()
    return _SRI_ATTRS_B.sub(b"", tag[:found.start(4)] + target + tag[found.end(4):]), target


def _loads_before(body: bytes, target: bytes, before: int) -> bool:
    """Whether a ``<script>`` tag before ``before`` in ``body`` loads ``target`` (its ``src``)."""
    at = body.find(target, 0, before)
    while at != -1:
        start = body.rfind(b"<", 0, at)
        if start != -1 and body.find(b">", start, at) == -1:
            script = _SCRIPT_SRC_B.match(body, start)
            if script is not None and script.group(1) == target:
                return True
        at = body.find(target, at + 1, before)
    return False


class OfflineAssets:
    """The rewriting hook of one app (see :func:`install`).

    :param vendor_dir: where the local copies are."""

    def __init__(self, vendor_dir: str = VENDOR_DIR) -> None:
        self.vendor_dir = vendor_dir
        self.local: Dict[str, str] = {}
        self.missing: Dict[str, str] = {}
        self._tags: Dict[Tuple[bytes, str], TagRewrite] = {}  # each tag's rewriting (for self.local)
        self._bases: Dict[str, str] = {}  # script root -> the vendor folder's URL
        self._pages: PageMemo[bytes] = PageMemo(PAGES_KEPT, PAGE_BYTES)  # (a page, the vendor URL) -> the page rewritten
        self.refresh()

    def refresh(self) -> None:
        """Look at the vendor folder again (after ``npm ci``); log once what is still missing."""
        self.local = available_assets(self.vendor_dir)
        self._tags = {}
        self._pages.clear()
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
        if (response.mimetype != "text/html" or not self.local or response.direct_passthrough or response.is_streamed
                or not current_app.config.get(CONFIG_KEY, True)):  # (most responses are not pages: asked first)
            return response
        base = self.base_url()
        if base is None:
            return response
        body = response.get_data()  # the page's bytes: not decoded, copied only when a tag changes
        # IvoryOS renders the same page again and again: its rewriting, a function of the page alone, is
        # looked up (a fraction of a scan) and kept, bounded (PAGES_KEPT pages of at most PAGE_BYTES, twice)
        rewritten = self._pages.get(body, base)
        if rewritten is None:
            rewritten = rewrite_page(body, self.local, base, self._tags)
            self._pages.put(body, rewritten, base)
        if rewritten is not body:
            # the kept object even when nothing changed: the page hook then finds it by identity
            response.set_data(rewritten)
        return response

    def base_url(self) -> Optional[str]:
        """``/ivoryos/plugins/static/vendor/`` (None when the framework's blueprint is not registered),
        built once per script root (``url_for`` costs more than the rest of a page's rewriting)."""
        if "plugins.static" not in current_app.view_functions:
            return None
        root = request.script_root
        found = self._bases.get(root)
        if found is None:
            if len(self._bases) >= 16:  # a proxy sending odd SCRIPT_NAMEs cannot grow it
                self._bases.clear()
            found = self._bases[root] = url_for("plugins.static", filename="vendor/")
        return found


def install(app: Flask, vendor_dir: str = VENDOR_DIR) -> OfflineAssets:
    """Rewrite CDN URLs to the framework's local copies in every HTML response of ``app``.

    Called once per app when the host adopts it (:mod:`ivoryos_plugin.hosts.binding`). The hook runs after the blueprints' own
    ``after_request`` hooks, so it sees the scripts the framework injected into plugin pages.

    :param app: the app (IvoryOS's or the standalone host's).
    :param vendor_dir: where the local copies are (``ivoryos_plugin/static/vendor``)."""
    hook = OfflineAssets(vendor_dir)
    app.after_request(hook)
    return hook
