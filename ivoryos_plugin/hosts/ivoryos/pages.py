"""IvoryOS's pages as the framework changes them: the CDN libraries they load, the endpoints the
hardening treats specially, the login form's token and the signup link, the CSRF token in their
POST forms, the tags in their ``<head>``, the logo folder, and the nav's plugin titles. Part of the
IvoryOS adapter (:mod:`ivoryos_plugin.hosts.ivoryos`)."""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from flask import Flask
from markupsafe import escape

#: Each CDN URL in IvoryOS's templates (verified on 1.7.2's ``base.html`` and pages) -> its local
#: copy under ``static/vendor/`` (scripts/vendor.js).
CDN_ASSETS: Dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js": "bootstrap/bootstrap.bundle.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap-icons@1.11.3/font/bootstrap-icons.css":
        "bootstrap-icons/bootstrap-icons.css",
    "https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.9.0/highlight.min.js": "highlight.js/highlight.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.9.0/styles/default.min.css":
        "highlight.js/default.min.css",
    "https://cdn.plot.ly/plotly-2.31.1.min.js": "plotly/plotly.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://code.jquery.com/ui/1.13.3/jquery-ui.min.js": "jquery-ui/jquery-ui.min.js",
    # socket.io 4.4.1 on the CDN; the framework's socket.io-client 4.8 speaks the same protocol
    "https://cdnjs.cloudflare.com/ajax/libs/socket.io/4.4.1/socket.io.js": "socket.io.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/codemirror.min.css": "codemirror/codemirror.css",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/codemirror.min.js": "codemirror/codemirror.js",
    "https://cdnjs.cloudflare.com/ajax/libs/codemirror/5.65.13/mode/python/python.min.js":
        "codemirror/mode/python/python.js",
    "https://cdn.jsdelivr.net/npm/sortablejs@1.15.7/Sortable.min.js": "sortablejs/Sortable.min.js",
    "https://unpkg.com/vis-timeline@8.5.4/standalone/umd/vis-timeline-graph2d.min.js":
        "vis-timeline/vis-timeline-graph2d.min.js",
    "https://unpkg.com/vis-timeline@8.5.4/styles/vis-timeline-graph2d.min.css":
        "vis-timeline/vis-timeline-graph2d.min.css",
}


# ------------------------------------------------------------------ the nav's plugin labels
class _TitledName(str):
    """A plugin name that IvoryOS's nav capitalises into the plugin's title (it stays the name
    everywhere else: ``url_for(name + '.main')``, ``request.blueprint == name``)."""

    title_text = ""

    def capitalize(self) -> str:
        """The plugin's title (IvoryOS's base.html labels a plugin tab ``plugin.name.capitalize()``)."""
        return self.title_text or str.capitalize(self)


def _titled(name: str, title: str) -> _TitledName:
    named = _TitledName(name)
    named.title_text = title
    return named


def show_plugin_titles(app: Flask, titles: Callable[[], Dict[str, str]]) -> None:
    """Make IvoryOS's nav (its tabs and its "Plugins" menu) show each plugin's title, not
    ``Plate_map``.

    IvoryOS 1.7.2's ``run`` adds a context processor giving templates ``plugins``, a list of
    ``{"name", "type"}`` dicts, and its ``base.html`` labels each tab ``plugin.name.capitalize()``
    (verified on 1.7.2). The app's ``update_template_context`` is wrapped so that, after every
    context processor ran (IvoryOS's is registered after the plugins), each entry is replaced by a
    copy whose name capitalises into the title. IvoryOS's own list is not changed.

    :param app: IvoryOS's app.
    :param titles: plugin name -> title, asked at each render (plugins register late)."""
    if getattr(app.update_template_context, "_ivoryos_plugin_titles", False):
        return
    original = app.update_template_context

    def update_template_context(context: Dict[str, Any]) -> None:
        original(context)
        entries = context.get("plugins")
        if not isinstance(entries, list):
            return
        known = titles()
        relabelled: List[Any] = []
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and known.get(name):
                entry = {**entry, "name": _titled(name, known[name])}
            relabelled.append(entry)
        context["plugins"] = relabelled

    update_template_context._ivoryos_plugin_titles = True  # type: ignore[attr-defined]
    app.update_template_context = update_template_context  # type: ignore[method-assign]


# ------------------------------------------------------------------ hardening (ivoryos_plugin.run)
#: IvoryOS's endpoints the hardening treats specially (verified on 1.7.2: ``routes/auth/auth.py`` and
#: the app's own static route ``{URL_PREFIX}/static``)
LOGIN_ENDPOINT = "auth.login"
LOGOUT_ENDPOINT = "auth.logout"
SIGNUP_ENDPOINT = "auth.signup"
STATIC_ENDPOINT = "static"
#: IvoryOS 1.7.2's login form (``routes/auth/templates/login.html``) and the signup link under it
_LOGIN_FORM = re.compile(r'(<form\b[^>]*\bname="login"[^>]*>)', re.IGNORECASE)
_SIGNUP_LINK = re.compile(r'<p class="message">\s*Not registered\?.*?</a>\s*(?:</p>)?', re.IGNORECASE | re.DOTALL)


def login_form_with_token(html: str, token: str) -> str:
    """IvoryOS's login page with a hidden ``csrf_token`` field in its form (the form has none;
    verified on 1.7.2's ``login.html``: ``<form ... name="login" ...>``).

    :param html: the login page.
    :param token: the session's CSRF token (Flask-WTF's ``generate_csrf()``)."""
    field = f'<input type="hidden" name="csrf_token" value="{escape(token)}">'
    return _LOGIN_FORM.sub(lambda m: m.group(1) + field, html, count=1)


def without_signup_link(html: str) -> str:
    """IvoryOS's login page without its "Not registered? Create a new account" line (verified on 1.7.2).

    :param html: the login page."""
    return _SIGNUP_LINK.sub("", html, count=1)


# ------------------------------------------------------------------ uploads, pages, serving
#: IvoryOS's logo upload (verified on 1.6.14 and 1.7.2's ``routes/main/main.py``; probed at start):
#: ``POST {prefix}/customize-logo`` with the file in the form field ``logo``, saved under its own
#: name into the app's static folder ``user_logos/``, which serves it to anyone (the login page too)
LOGO_ENDPOINT = "main.customize_logo"
LOGO_FIELD = "logo"
LOGO_FOLDER = "user_logos"
#: IvoryOS's run controls (verified on 1.6.14 and 1.7.2's ``routes/execute/execute.py``): start,
#: pause/resume, abort, retry. The CSRF probe at start must find each and see it refused without a token.
RUN_CONTROL_ENDPOINTS = ("execute.experiment_run", "execute.api_pause", "execute.api_abort_current",
                         "execute.api_abort_pending", "execute.api_retry")
# (the patterns read IvoryOS's HTML as UTF-8 bytes: no decoding, no re-encoding, one copy of a page)
_FORM_TAG = re.compile(rb"<form\b[^>]*>", re.IGNORECASE)
_METHOD_POST = re.compile(rb"""\bmethod\s*=\s*["']?post\b""", re.IGNORECASE)
_TOKEN_FIELD = re.compile(rb"""\bname\s*=\s*["']?csrf_token\b""", re.IGNORECASE)  # (attribute name in any case)
_FORM_END = re.compile(rb"</form\s*>|<form\b", re.IGNORECASE)
_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
_SCRIPT_TAG = re.compile(rb"<script\b", re.IGNORECASE)


def logo_folder(app: Flask) -> Optional[str]:
    """The URL path under which IvoryOS serves uploaded logos (``{prefix}/static/user_logos/``: its
    app's own static route, public; verified on 1.6.14 and 1.7.2), or None without a static folder.

    :param app: IvoryOS's app."""
    if not app.static_folder or app.static_url_path is None:
        return None
    return f"{app.static_url_path.rstrip('/')}/{LOGO_FOLDER}/"


def form_token_points(html: bytes) -> List[int]:
    """Where a hidden ``csrf_token`` field goes in IvoryOS's HTML (a page, or a fragment its scripts
    fetch and insert): just after the opening tag of each POST form that has none. IvoryOS 1.6.14
    and 1.7.2 write their forms in the templates (``<form method="POST" ...>``, ``method='POST'``;
    the logo and deck forms of ``base.html``, the run configuration, the designer's action forms),
    most without the field.

    :param html: the HTML, UTF-8."""
    points: List[int] = []
    for form in _FORM_TAG.finditer(html):
        if not _METHOD_POST.search(form.group(0)):
            continue
        end = _FORM_END.search(html, form.end())
        stop = end.start() if end else len(html)
        # (the field's name as Flask-WTF reads it, case and all: a plain find first, as a pattern that
        # starts with \b is tried at every byte of the form)
        if html.find(b"csrf_token", form.end(), stop) != -1 and _TOKEN_FIELD.search(html, form.end(), stop):
            continue
        points.append(form.end())
    return points


def head_tags_point(html: bytes) -> Optional[int]:
    """Where tags go in a page's ``<head>``: before its first script (so they run before any of
    IvoryOS's own: ``base.html`` loads its libraries in ``<head>``; verified on 1.6.14 and 1.7.2),
    else before ``</head>``; None for a fragment without ``</head>``.

    :param html: the page, UTF-8."""
    end = _HEAD_END.search(html)
    if end is None:
        return None
    first = _SCRIPT_TAG.search(html, 0, end.start())
    return first.start() if first is not None else end.start()


def head_end(html: bytes) -> Optional[int]:
    """Where a page's ``</head>`` ends (the position after it), or None for a fragment without one.

    :param html: the page, UTF-8."""
    end = _HEAD_END.search(html)
    return None if end is None else end.end()


def with_inserts(html: bytes, inserts: List[Tuple[int, bytes]]) -> bytes:
    """``html`` with each ``(position, text)`` inserted (at one position, in the order given), made in
    one copy.

    :param html: the HTML.
    :param inserts: where and what, positions into ``html``."""
    if not inserts:
        return html
    view, done = memoryview(html), 0
    pieces: List[Union[bytes, memoryview]] = []
    for at, text in sorted(inserts, key=lambda insert: insert[0]):
        pieces += [view[done:at], text]
        done = at
    pieces.append(view[done:])
    return b"".join(pieces)


def token_field(token: str) -> bytes:
    """The hidden ``csrf_token`` field :func:`form_token_points` places.

    :param token: the session's CSRF token."""
    return f'<input type="hidden" name="csrf_token" value="{escape(token)}">'.encode()


def forms_with_token(html: str, token: str) -> str:
    """IvoryOS's HTML with a hidden ``csrf_token`` field first in each POST form that has none
    (:func:`form_token_points`).

    :param html: the HTML.
    :param token: the session's CSRF token."""
    raw = html.encode("utf-8", "surrogatepass")
    field = token_field(token)
    return with_inserts(raw, [(at, field) for at in form_token_points(raw)]).decode("utf-8", "surrogatepass")


def page_with_head_tags(html: str, tags: str) -> str:
    """A page with ``tags`` in its ``<head>`` (:func:`head_tags_point`); a fragment without
    ``</head>`` is returned as it is.

    :param html: the page.
    :param tags: the HTML to insert."""
    raw = html.encode("utf-8", "surrogatepass")
    at = head_tags_point(raw)
    if at is None:
        return html
    return with_inserts(raw, [(at, (tags + "\n").encode("utf-8", "surrogatepass"))]).decode("utf-8", "surrogatepass")
