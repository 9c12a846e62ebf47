"""IvoryOS's HTML pages under ``ivoryos_plugin.run`` (the page hook, after each request): the login
form's CSRF token, no signup link, and with ``ivoryos_csrf`` the token in every POST form, a
``<meta name="csrf-token">`` and the script (:data:`CSRF_SCRIPT`) that sends it with IvoryOS's fetch
and XHR calls. Where the tokens go is worked out from a page's bytes alone, so it is remembered per
page (:data:`PAGES_KEPT` pages of at most :data:`PAGE_BYTES`)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from flask import Response, request, url_for
from markupsafe import escape

from ...runtime.csrf import page_csrf_token
from .. import ivoryos as adapter
from ..page_memo import PageMemo
from .options import Options

__all__ = ["PageHook", "CSRF_SCRIPT", "PagePoints", "PAGES_KEPT", "PAGE_BYTES"]

#: the script that gives IvoryOS's own fetch/XHR calls and forms the CSRF token (the framework's static file)
CSRF_SCRIPT = "ivoryos_csrf.js"
_CSRF_SCRIPT_NAME = CSRF_SCRIPT.encode()
#: what :meth:`PageHook.page_points` finds in a page: the form tokens' places, the head tags' place, a <meta> there
PagePoints = Tuple[Tuple[int, ...], Optional[int], bool]
#: the pages :meth:`PageHook.page_points` remembers (by their bytes), and the largest it keeps
PAGES_KEPT, PAGE_BYTES = 16, 256 * 1024
#: the pages with a session's token in them kept (for that session's next load of the same page)
MADE_KEPT = 64


class PageHook:
    """The page hook (:meth:`harden_page`) of one hardened app, with what it remembers.

    :param options: the opt-outs."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._script_tags: Dict[str, str] = {}  # script root -> the CSRF script's tag
        self._points: PageMemo[PagePoints] = PageMemo(PAGES_KEPT, PAGE_BYTES)  # a page's bytes -> :meth:`page_points`
        #: (the page object kept in :attr:`_points`, a session's token) -> (that page, the page with the token in
        #: it): a session loading the same page again gets the same bytes, made once (bounded: :data:`MADE_KEPT`)
        self._made: Dict[Tuple[int, str], Tuple[bytes, bytes]] = {}

    def harden_page(self, response: Response) -> Response:
        """IvoryOS's HTML: the login form's token, no signup link, and (``ivoryos_csrf``) a token in
        every POST form and the script that sends it with IvoryOS's fetch and XHR calls.

        :param response: any response of the app."""
        if (response.mimetype != "text/html" or response.direct_passthrough or response.is_streamed
                or response.status_code >= 400):
            return response
        options = self.options
        body = response.get_data()  # bytes: read, and written back, once (IvoryOS's pages are UTF-8)
        changed = False
        if request.endpoint == adapter.LOGIN_ENDPOINT and response.status_code == 200:
            page = original = body.decode()
            if options.login_csrf:
                page = adapter.login_form_with_token(page, page_csrf_token())
            if not options.allow_signup:
                page = adapter.without_signup_link(page)
            if page != original:
                body, changed = page.encode(), True
        if options.ivoryos_csrf:
            token = page_csrf_token()
            made = None if changed else self._made.get((id(body), token))
            if made is not None and made[0] is body:  # (the very page object kept: its id is no other's)
                body, changed = made[1], True
            else:
                with_token = self.with_token(body, token, remember=not changed)
                if with_token is not body:
                    if not changed and self._points.holds(body):  # the very page object kept: so is this
                        if len(self._made) >= MADE_KEPT:
                            self._made.clear()
                        self._made[(id(body), token)] = (body, with_token)
                    body, changed = with_token, True
        if changed:
            response.set_data(body)
        return response

    def with_token(self, body: bytes, token: str, remember: bool = True) -> bytes:
        """``body`` with the session's CSRF ``token`` in each POST form, and its ``<meta>`` and script in
        the ``<head>`` (``body`` itself when there is nowhere to put them).

        :param body: the page (UTF-8).
        :param token: the session's CSRF token.
        :param remember: whether to keep the page's places (:meth:`page_points`)."""
        field = adapter.token_field(token)
        points, head, has_meta = self.page_points(body, remember=remember)
        inserts = [(at, field) for at in points]
        if head is not None:
            tags = "" if has_meta else f'<meta name="csrf-token" content="{escape(token)}">\n'
            inserts.append((head, f"{tags}{self.csrf_script_tag()}\n".encode()))
        return adapter.with_inserts(body, inserts) if inserts else body

    def page_points(self, body: bytes, remember: bool = True) -> PagePoints:
        """Where :meth:`harden_page` puts the tokens in ``body``: after each POST form's opening tag that has
        none, and the ``<head>``'s tags (None when it has the script already, or no ``<head>``), with
        whether the ``<head>`` has its ``<meta name="csrf-token">``. Worked out from the page alone, so
        remembered for the page's very bytes: IvoryOS renders the same page again and again, and
        looking a page up (:class:`~ivoryos_plugin.hosts.page_memo.PageMemo`) costs a fraction of
        scanning it for forms.

        :param body: the page (UTF-8).
        :param remember: whether to keep the answer (not for a page that is never the same twice)."""
        found = self._points.get(body)
        if found is not None:
            return found
        head = adapter.head_tags_point(body)
        has_meta = False
        if head is not None:
            # the script and the <meta> are looked for in the <head> only, where they go (not in
            # the whole page: each search of it costs more than the rest of this hook); the
            # script runs once however often a page loads it
            end = adapter.head_end(body)
            if body.find(_CSRF_SCRIPT_NAME, 0, end) != -1:
                head = None
            else:
                has_meta = body.find(b'name="csrf-token"', 0, end) != -1
        found = (tuple(adapter.form_token_points(body)), head, has_meta)
        if remember:  # (bounded: PAGES_KEPT pages of at most PAGE_BYTES)
            self._points.put(body, found)
        return found

    def csrf_script_tag(self) -> str:
        """The ``<script>`` of :data:`CSRF_SCRIPT` for the current request's script root, made once per root."""
        root = request.script_root
        tag = self._script_tags.get(root)
        if tag is None:
            src, refresh = url_for("plugins.static", filename=CSRF_SCRIPT), url_for("plugins.csrf_json")
            tag = f'<script src="{escape(src)}" data-refresh="{escape(refresh)}"></script>'
            if len(self._script_tags) >= 16:
                self._script_tags.clear()
            self._script_tags[root] = tag
        return tag
