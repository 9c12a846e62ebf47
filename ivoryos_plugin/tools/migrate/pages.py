"""What ``ivoryos-plugin migrate`` does to page templates and single HTML pages: pure text in, text
out (no I/O). The template's ``base_exists`` switch becomes ``{% extends plugin_base %}``, the
page's ``io()`` becomes the plugin's connection, ``url_for`` and URLs naming a renamed Blueprint
name the new plugin, and CDN libraries become the framework's local copies (``static/vendor/``,
installed from npm) when the local copy is the version the page asked for (or, for libraries
that keep compatibility within a major version, the same major version), so the page works on
an offline lab network. Only templates are converted: a page served as a file is left as it is."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Pattern, Tuple

from packaging.version import InvalidVersion, Version

from .source import Converted

_BASE_SWITCH = re.compile(r"\{%-?\s*if\s+base_exists\s*-?%\}(?P<ivoryos>.*?)\{%-?\s*else\s*-?%\}(?P<alone>.*?)"
                          r"\{%-?\s*endif\s*-?%\}", re.S)
_EXTENDS_BASE = re.compile(r"""\{%-?\s*extends\s+(['"])base\.html\1\s*-?%\}""")
#: the start of a Socket.IO client connection: ``io(...)``, ``io.connect(...)``
_IO_START = re.compile(r"(?<![\w.$])io(?:\.connect)?\s*\(")
_TAG = re.compile(r"<script\b[^>]*?\bsrc\s*=\s*([\"'])(?P<src>(?:https?:)?//[^\"']+)\1[^>]*>\s*</script>"
                  r"|<link\b[^>]*?\bhref\s*=\s*([\"'])(?P<href>(?:https?:)?//[^\"']+)\3[^>]*>", re.I)
_SRI = re.compile(r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.I)
_TITLE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.I | re.S)
_JINJA = re.compile(r"\{[{%#]")
#: a version in a CDN URL: ``bootstrap@5.3.0-alpha2/``, ``plotly-2.31.1.min.js``, ``/jquery/3.6.0/``
_VERSION = re.compile(r"[@/-]v?(\d+\.\d+(?:\.\d+)?(?:-[0-9A-Za-z.]+?)?)(?=/|\.min\.|\.(?:js|css)\b|$)")


class Library:
    """A library the framework serves from ``static/vendor/``.

    :param pattern: how a CDN URL's path to it ends.
    :param local: its path under ``static/vendor/``; None: drop the tag (the framework adds its
        own Socket.IO client to every plugin page).
    :param name: the library's name, for the report.
    :param version: the local copy's version (package.json).
    :param same: ``"exact"``: only that version is replaced by the local copy; ``"major"``: any
        version of the same major version (the library keeps compatibility within one)."""

    def __init__(self, pattern: str, local: Optional[str], name: str, version: str, same: str) -> None:
        self.pattern: Pattern[str] = re.compile(pattern)
        self.local, self.name, self.version, self.same = local, name, version, same

    def accepts(self, version: Optional[str]) -> bool:
        """Whether the local copy can stand in for ``version`` (None: not in the URL: it cannot).

        :param version: the version the CDN URL names."""
        try:
            wanted, local = Version(version or ""), Version(self.version)
        except InvalidVersion:
            return False
        return wanted == local if self.same == "exact" else wanted.major == local.major


#: CDN files the framework has a local copy of; versions as in package.json (checked by a test)
LIBRARIES: List[Library] = [
    Library(r"socket\.io(\.min)?\.js$", None, "socket.io", "4.8.1", "major"),
    Library(r"bootstrap(@[^/]+)?/.*bootstrap\.bundle(\.min)?\.js$", "bootstrap/bootstrap.bundle.min.js", "bootstrap",
            "5.3.3", "major"),
    Library(r"bootstrap(@[^/]+)?/.*bootstrap(\.min)?\.css$", "bootstrap/bootstrap.min.css", "bootstrap", "5.3.3",
            "major"),
    Library(r"bootstrap-icons(@[^/]+)?/.*bootstrap-icons(\.min)?\.css$", "bootstrap-icons/bootstrap-icons.css",
            "bootstrap-icons", "1.11.3", "major"),
    Library(r"jquery-ui(\.min)?\.js$", "jquery-ui/jquery-ui.min.js", "jquery-ui", "1.13.3", "major"),
    Library(r"jquery(-[\d.]+)?(\.min)?\.js$", "jquery/jquery.min.js", "jquery", "3.7.1", "major"),
    Library(r"plotly[\w.-]*\.js$", "plotly/plotly.min.js", "plotly.js", "2.31.1", "exact"),
    Library(r"highlight(\.min)?\.js$", "highlight.js/highlight.min.js", "highlight.js", "11.9.0", "major"),
    Library(r"Sortable(\.min)?\.js$", "sortablejs/Sortable.min.js", "sortablejs", "1.15.7", "major"),
]


def url_version(url: str) -> Optional[str]:
    """The version a CDN URL names (``5.3.0-alpha2``), or None (``plotly-latest.min.js``).

    :param url: a ``src`` or ``href``."""
    found = _VERSION.findall(url.split("?")[0].split("#")[0].split("//", 1)[-1])
    return found[-1] if found else None


def local_asset(url: str) -> Tuple[Optional[Library], bool]:
    """``(the library, whether its local copy stands in for the URL's version)`` for a CDN URL
    (``(None, False)``: the framework has no copy of it).

    :param url: a ``src`` or ``href``."""
    path = url.split("?")[0].split("#")[0]
    for library in LIBRARIES:
        if library.pattern.search(path):
            return library, library.local is None or library.accepts(url_version(url))
    return None, False


def page_title(html: str, default: str) -> str:
    """The text of the page's ``<title>``, or ``default``.

    :param html: the page.
    :param default: the title when the page has none."""
    match = _TITLE.search(html)
    title = re.sub(r"\s+", " ", match["title"]).strip() if match else ""
    return title if title and not _JINJA.search(title) else default


def _closing(text: str, start: int, limit: int = 600) -> Optional[int]:
    """The index after the ``)`` that closes the call whose arguments start at ``start`` (quotes
    and brackets respected), or None within ``limit`` characters."""
    depth, quote, i = 1, "", start
    while i < len(text) and i - start < limit:
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def connect_calls(text: str) -> Tuple[str, int]:
    """``(text, how many)``: each ``io(...)`` / ``io.connect(...)`` (whatever its URL, namespace or
    options: ``io({path: ...})``, ``io('/ns')``) becomes the plugin's connection
    ``IvoryPlugin.connect().socket`` (its namespace, IvoryOS's Socket.IO path, the login's cookie).

    :param text: a page."""
    out: List[str] = []
    pos = count = 0
    for match in _IO_START.finditer(text):
        if match.start() < pos:
            continue
        end = _closing(text, match.end())
        if end is None:
            continue
        out += [text[pos:match.start()], "IvoryPlugin.connect().socket"]
        pos, count = end, count + 1
    return "".join(out) + text[pos:], count


def rename_urls(text: str, renames: Dict[str, str]) -> Tuple[str, List[str]]:
    """``url_for('old.x')`` -> ``url_for('new.x')`` and written-out URLs of a renamed Blueprint
    (``/ivoryos/old/...``, ``{{ url_prefix }}/old/...``) -> the new plugin's; ``(text, what changed)``.

    :param text: a page or script.
    :param renames: old Blueprint name -> new plugin name."""
    changed: List[str] = []
    for old, new in renames.items():
        if old == new:
            continue
        endpoint = re.compile(rf"(url_for\(\s*(['\"])){re.escape(old)}\.")
        text, n = endpoint.subn(rf"\g<1>{new}.", text)
        if n:
            changed.append(f"url_for('{old}.…') -> url_for('{new}.…') ({n})")
        path = re.compile(rf"((?:\}}\}}|/ivoryos)/){re.escape(old)}(?=[/'\"`?#])")
        text, n = path.subn(rf"\g<1>{new}", text)
        if n:
            changed.append(f"URLs /ivoryos/{old}/… -> /ivoryos/{new}/… ({n})")
    return text, changed


def convert_page(text: str, file: str, *, standalone: bool = False, renames: Optional[Dict[str, str]] = None,
                 plugin: str = "<plugin>") -> Converted:
    """Convert a page template (or, ``standalone``, a plain HTML page that becomes one).

    :param text: the template or page.
    :param file: its name, for the notes.
    :param standalone: a page of its own (``--from-html``, or a left-panel widget): no base switch.
    :param renames: old Blueprint name -> new plugin name (``url_for`` endpoints, URLs).
    :param plugin: the plugin the page belongs to (for the notes)."""
    notes: List[str] = []
    changes: List[str] = []
    if standalone and _JINJA.search(text):
        notes.append(f"{file}: the page contains '{{{{', '{{%' or '{{#', which Jinja reads as template code; wrap "
                     "those parts in {% raw %}...{% endraw %}.")
    match = None if standalone else _BASE_SWITCH.search(text)
    if match:
        ivoryos = _EXTENDS_BASE.sub("{% extends plugin_base %}", match["ivoryos"], count=1)
        text = text[:match.start()] + ivoryos.strip() + "\n" + text[match.end():]
        changes.append(f"{file}: the base_exists switch -> {{% extends plugin_base %}}")
    elif "base_exists" in text:
        notes.append(f"{file}: base_exists is used in a way migrate does not know; make the page start with "
                     "{% extends plugin_base %} by hand.")
    text, count = connect_calls(text)
    if count:
        changes.append(f"{file}: io(...) -> IvoryPlugin.connect().socket, the plugin's connection ({count})")
    text, renamed = rename_urls(text, renames or {})
    changes += [f"{file}: {line}" for line in renamed]

    def local(tag: "re.Match[str]") -> str:
        url = tag["src"] or tag["href"]
        library, ok = local_asset(url)
        if library is None:
            notes.append(f"{file}: {url} is not one of the framework's local libraries, so the page needs the internet "
                         "for it; save it in the package's static/ folder and link it with "
                         f"{{{{ url_for('{plugin}.static', filename='...') }}}}.")
            return tag.group(0)
        version = url_version(url)
        if not ok:
            asked = f"version {version}" if version else "a version the URL does not name"
            notes.append(f"{file}: {url} was kept (the page needs the internet for it): it asks for {library.name} "
                         f"{asked}, and the framework's local copy is {library.version}; to work offline save that "
                         f"file in static/ and link it with {{{{ url_for('{plugin}.static', filename='...') }}}}.")
            return tag.group(0)
        if library.local is None:
            changes.append(f"{file}: the {library.name} script tag dropped (the framework adds its own client, "
                           f"{library.version}, to every plugin page)")
            return ""
        same = "" if version and Version(version) == Version(library.version) else (
            f" (the page asked for {version}: same major version)")
        changes.append(f"{file}: {library.name} from the CDN -> the framework's local copy {library.version}{same}")
        local_url = "{{ url_for('plugins.static', filename='vendor/" + library.local + "') }}"
        return _SRI.sub("", tag.group(0)).replace(url, local_url)

    return Converted(_TAG.sub(local, text), notes, changes=changes)


def raw_page_notes(text: str, file: str, plugin: str) -> List[str]:
    """What to check by hand in a page that is served as a file (not a template, so not changed).

    :param text: the page.
    :param file: its name.
    :param plugin: the plugin it belongs to."""
    notes: List[str] = []
    if connect_calls(text)[1]:
        notes.append(f"{file}: served as a file, not a template, so it was left as it was; its io(...) connects to "
                     f"IvoryOS's default namespace, where the plugin's handlers no longer are: connect with "
                     f"IvoryPlugin.connect() (namespace /ivoryos/{plugin}) instead.")
    cdn = [tag["src"] or tag["href"] for tag in _TAG.finditer(text)]
    if cdn:
        notes.append(f"{file}: served as a file, not a template, so it was left as it was; it loads "
                     f"{', '.join(cdn)} from the internet.")
    return notes
