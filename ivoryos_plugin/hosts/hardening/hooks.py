"""The functions ``ivoryos_plugin.run`` puts on IvoryOS's app, request by request, bundled as
:class:`Hooks`: the request guard (:mod:`.guard`), and after each request one hook that runs the
app's page rewriting (the CDN hook, :mod:`ivoryos_plugin.hosts.offline`), the served uploads and
the headers (:mod:`.responses`) and the page hook (:mod:`.pages`). Each is an attribute, so that the
probes (:mod:`.probes`) find the very objects installed; the Host-header check (:mod:`.host_header`)
and the Socket.IO gate (:mod:`.sockets`) are installed apart."""
from __future__ import annotations

from typing import AbstractSet, Callable, Sequence, Tuple

from flask import Flask, Response

from ...runtime.extension import Extension
from .. import ivoryos as adapter
from .guard import RequestGuard
from .options import Options
from .pages import PageHook
from .responses import HeaderHook, UploadHook

__all__ = ["Hooks"]


class Hooks:
    """The functions put on IvoryOS's app (each an attribute, so that the probes find them in place).

    :param app: IvoryOS's app.
    :param ext: its framework state.
    :param options: the opt-outs.
    :param origins: CDN origins the pages still need (no local copy).
    :param on: the keys of the hardening items that are on (which of the response hooks :attr:`after` runs).
    :param rewrites: response hooks that rewrite a page the same way for everyone (the CDN hook), run
        first: IvoryOS's page as rendered is the same for every session, so its rewriting is found by
        its bytes, and the object found is the very one the page hook remembered (a lookup by identity,
        where the page with a session's tokens in it would be fingerprinted and compared again).
    :param then: hooks run last (the framework's own after hook, :attr:`Extension.after_each_request`,
        which Flask ran right after the hardening's), to be taken out of Flask's table when installed."""

    def __init__(self, app: Flask, ext: Extension, options: Options, origins: Sequence[str] = (),
                 on: AbstractSet[str] = frozenset(),
                 rewrites: Sequence[Callable[[Response], Response]] = (),
                 then: Sequence[Callable[[Response], Response]] = ()) -> None:
        self.ext, self.options, self.origins = ext, options, tuple(origins)
        self.guard = RequestGuard(app, ext, options)
        self.page_hook = PageHook(options)
        self.header_hook = HeaderHook(ext, self.origins)
        self.upload_hook = UploadHook(adapter.logo_folder(app))
        self.logo_path = self.upload_hook.logo_path
        # bound once: the same objects are installed and looked for
        self.before = self.guard.harden_request
        self.pages = self.page_hook.harden_page
        self.headers = self.header_hook.add_headers
        self.uploads = self.upload_hook.serve_upload
        self.after = self.harden_response
        hardening = tuple(step for step, wanted in (
            (self.uploads, "uploads" in on), (self.headers, "headers" in on),
            (self.pages, bool(on & {"login_csrf", "signup", "csrf"}))) if wanted)
        #: what :attr:`after` runs: the rewrites, then the hardening's steps in the order Flask ran them
        #: as three hooks (the last added first), then :attr:`then`; nothing when no hardening step is on
        self.after_steps: Tuple[Callable[[Response], Response], ...] = (
            (*rewrites, *hardening, *then) if hardening else ())
        #: the rewrites and the hooks run last (to be taken out of Flask's table when :attr:`after` is installed)
        self.rewrites = tuple(rewrites) if hardening else ()
        self.then = tuple(then) if hardening else ()
        # each step, and whether it only ever changes an HTML page (the CDN and page hooks): the others
        # run on every response, these only when the Content-Type (parsed once here) says text/html
        pages_only = {*map(id, rewrites), id(self.pages)}
        self._steps = tuple((step, id(step) in pages_only) for step in self.after_steps)

    # ------------------------------------------------------------- after each request
    def harden_response(self, response: Response) -> Response:
        """After each of IvoryOS's requests: :attr:`after_steps` (rewrites, uploads, headers, pages,
        then the framework's own), one hook; the steps that only touch HTML pages skip other responses.

        :param response: any response of the app."""
        html = response.mimetype == "text/html"
        for step, pages_only in self._steps:
            if html or not pages_only:
                response = step(response)
        return response
