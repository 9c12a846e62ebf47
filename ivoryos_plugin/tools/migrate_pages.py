"""What ``ivoryos-plugin migrate`` does to page templates and single HTML pages: pure text in, text
out (no I/O). The template's ``base_exists`` switch becomes ``{% extends plugin_base %}``, the
page's ``io()`` becomes the plugin's connection, and CDN libraries become the framework's local
copies (``static/vendor/``, installed from npm), so the page works on an offline lab network."""
from __future__ import annotations

import re
from typing import List, Optional, Pattern, Tuple

from .migrate_source import Converted

_BASE_SWITCH = re.compile(r"\{%-?\s*if\s+base_exists\s*-?%\}(?P<ivoryos>.*?)\{%-?\s*else\s*-?%\}(?P<alone>.*?)"
                          r"\{%-?\s*endif\s*-?%\}", re.S)
_EXTENDS_BASE = re.compile(r"""\{%-?\s*extends\s+(['"])base\.html\1\s*-?%\}""")
_IO_CALL = re.compile(r"(?<![\w.$])io(?:\.connect)?\s*\(\s*(?:(['\"])[^'\"]*\1)?\s*(?:,\s*\{[^{}]*\})?\s*\)")
_TAG = re.compile(r"<script\b[^>]*?\bsrc\s*=\s*([\"'])(?P<src>(?:https?:)?//[^\"']+)\1[^>]*>\s*</script>"
                  r"|<link\b[^>]*?\bhref\s*=\s*([\"'])(?P<href>(?:https?:)?//[^\"']+)\3[^>]*>", re.I)
_SRI = re.compile(r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.I)
_TITLE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.I | re.S)
_JINJA = re.compile(r"\{[{%#]")

#: CDN files the framework has a local copy of (``static/vendor/``), by how the URL's path ends;
#: None: drop the tag (the framework injects its Socket.IO client into every plugin page).
LIBRARIES: List[Tuple[Pattern[str], Optional[str]]] = [
    (re.compile(r"socket\.io(\.min)?\.js$"), None),
    (re.compile(r"bootstrap(@[^/]+)?/.*bootstrap\.bundle(\.min)?\.js$"), "bootstrap/bootstrap.bundle.min.js"),
    (re.compile(r"bootstrap(@[^/]+)?/.*bootstrap(\.min)?\.css$"), "bootstrap/bootstrap.min.css"),
    (re.compile(r"bootstrap-icons(@[^/]+)?/.*bootstrap-icons(\.min)?\.css$"), "bootstrap-icons/bootstrap-icons.css"),
    (re.compile(r"jquery-ui(\.min)?\.js$"), "jquery-ui/jquery-ui.min.js"),
    (re.compile(r"jquery(-[\d.]+)?(\.min)?\.js$"), "jquery/jquery.min.js"),
    (re.compile(r"plotly[\w.-]*\.js$"), "plotly/plotly.min.js"),
    (re.compile(r"highlight(\.min)?\.js$"), "highlight.js/highlight.min.js"),
    (re.compile(r"Sortable(\.min)?\.js$"), "sortablejs/Sortable.min.js"),
]


def local_asset(url: str) -> Tuple[bool, Optional[str]]:
    """``(known, the path under static/vendor/, or None to drop the tag)`` for a CDN URL.

    :param url: a ``src`` or ``href``."""
    path = url.split("?")[0].split("#")[0]
    for pattern, local in LIBRARIES:
        if pattern.search(path):
            return True, local
    return False, None


def page_title(html: str, default: str) -> str:
    """The text of the page's ``<title>``, or ``default``.

    :param html: the page.
    :param default: the title when the page has none."""
    match = _TITLE.search(html)
    title = re.sub(r"\s+", " ", match["title"]).strip() if match else ""
    return title if title and not _JINJA.search(title) else default


def convert_page(text: str, file: str, *, standalone: bool = False) -> Converted:
    """Convert a page template (or, ``standalone``, a plain HTML page that becomes one).

    :param text: the template or page.
    :param file: its name, for the notes.
    :param standalone: a page of its own (``--from-html``, or a left-panel widget): no base switch."""
    notes: List[str] = []
    if standalone and _JINJA.search(text):
        notes.append(f"{file}: the page contains '{{{{', '{{%' or '{{#', which Jinja reads as template code; wrap "
                     "those parts in {% raw %}...{% endraw %}.")
    match = None if standalone else _BASE_SWITCH.search(text)
    if match:
        ivoryos = _EXTENDS_BASE.sub("{% extends plugin_base %}", match["ivoryos"], count=1)
        text = text[:match.start()] + ivoryos.strip() + "\n" + text[match.end():]
    elif "base_exists" in text:
        notes.append(f"{file}: base_exists is used in a way migrate does not know; make the page start with "
                     "{% extends plugin_base %} by hand.")
    # the page's socket becomes the plugin's: its namespace, IvoryOS's Socket.IO path, the login's cookie
    text = _IO_CALL.sub("IvoryPlugin.connect().socket", text)

    def local(tag: "re.Match[str]") -> str:
        url = tag["src"] or tag["href"]
        known, path = local_asset(url)
        if not known:
            notes.append(f"{file}: {url} is not one of the framework's local libraries, so the page needs the internet "
                         "for it; save it in the package's static/ folder and link it with "
                         "{{ url_for('<plugin>.static', filename='...') }}.")
            return tag.group(0)
        if path is None:
            return ""
        local_url = "{{ url_for('plugins.static', filename='vendor/" + path + "') }}"
        return _SRI.sub("", tag.group(0)).replace(url, local_url)

    return Converted(_TAG.sub(local, text), notes)
