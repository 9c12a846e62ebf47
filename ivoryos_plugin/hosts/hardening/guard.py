"""The request guard ``ivoryos_plugin.run`` puts before IvoryOS's own ``before_request``: an ended
session cleared, signup off, the login form's CSRF token, a login on every route, the CSRF token
and this server's origin on state-changing routes, and a logo that is a real image. A plugin's
routes are left to the plugin's own guard. Refusals are JSON for programs and a short page with a
login link for browsers (:func:`refuse`)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Tuple

from flask import Flask, Response, redirect, request, session, url_for
from markupsafe import escape

from ...runtime.extension import Extension
from ...runtime.replies import error_response, wants_json
from ...runtime.csrf import check_csrf
from ...runtime.security import SAFE_METHODS, SECURITY_HEADERS, origin_allowed
from .. import ivoryos as adapter
from .logins import LoginCheck
from .options import Options

if TYPE_CHECKING:
    from werkzeug.datastructures import FileStorage

__all__ = ["RequestGuard", "refuse", "image_problem", "IMAGES"]

#: the image formats a logo may be: magic bytes -> (name, the file name endings served as that type)
IMAGES: Tuple[Tuple[bytes, str, Tuple[str, ...]], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG", (".png",)), (b"\xff\xd8\xff", "JPEG", (".jpg", ".jpeg")),
    (b"GIF87a", "GIF", (".gif",)), (b"GIF89a", "GIF", (".gif",)))


def image_problem(upload: Optional["FileStorage"]) -> Optional[str]:
    """Why an uploaded logo is refused, or None when it is a PNG, JPEG, GIF or WebP image named as one
    (IvoryOS serves it from its static folder with the type its name says: an HTML or SVG "logo"
    would be a page, and its script would run, on the lab server's origin).

    :param upload: the form's file (None or an empty one: IvoryOS keeps the old logo)."""
    if upload is None or not upload.filename:
        return None
    from werkzeug.utils import secure_filename

    head = upload.stream.read(16)
    upload.stream.seek(0)
    name = secure_filename(upload.filename)
    ending = os.path.splitext(name)[1].lower()
    found = next(((kind, endings) for magic, kind, endings in IMAGES if head.startswith(magic)), None)
    if found is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = ("WebP", (".webp",))
    if found is None:
        return (f"{upload.filename!r} is not a PNG, JPEG, GIF or WebP image (SVG and HTML are refused: IvoryOS serves "
                "uploaded logos to anyone, and a browser would run their scripts on this server's origin).")
    kind, endings = found
    if ending not in endings:
        return f"{upload.filename!r} is a {kind} image but is named {name!r}: name it *{endings[0]}."
    return None


def refuse(status: int, message: str) -> Response:
    """A refusal: JSON for programs, a short page with a login link for browsers.

    :param status: the status.
    :param message: what was refused, why, and the fix."""
    if wants_json():
        return error_response(status, message)
    page = (f'<!doctype html><meta charset="utf-8"><title>IvoryOS</title><p style="font: 15px system-ui, '
            f'sans-serif; margin: 2em">{escape(message)}</p><p style="margin: 2em"><a href="'
            f'{url_for(adapter.LOGIN_ENDPOINT)}">Log in</a></p>')
    return Response(page, status=status, mimetype="text/html", headers=dict(SECURITY_HEADERS))


class RequestGuard:
    """The hardening's ``before_request`` (:meth:`harden_request`) on IvoryOS's app.

    :param app: IvoryOS's app.
    :param ext: its framework state.
    :param options: the opt-outs."""

    def __init__(self, app: Flask, ext: Extension, options: Options) -> None:
        self.ext, self.options = ext, options
        self.public = {adapter.LOGIN_ENDPOINT, adapter.STATIC_ENDPOINT} | (
            {adapter.SIGNUP_ENDPOINT} if options.allow_signup else set())
        #: Flask-Login's answer, remembered while IvoryOS's users' database is unchanged
        self.logged_in = LoginCheck(app, lambda: adapter.users_database(app))

    def harden_request(self) -> Optional[Response]:
        """Before IvoryOS's own ``before_request``: ended sessions, signup, login, CSRF and origin, uploads."""
        options, ext = self.options, self.ext
        # (each of Flask's context proxies looked up once: a lookup costs what a dict lookup does, twice)
        req, sess = request._get_current_object(), session._get_current_object()  # type: ignore[attr-defined]
        if not options.keep_sessions_after_logout and ext.sessions.session_ended(sess):
            sess.clear()  # logged out: the copied cookie is nobody's
        endpoint = req.endpoint
        if ext.plugin_of_path(req.path) is not None or ext.registrations.owner(endpoint) is not None:
            return None  # a plugin's route (also one it added to the app): its own guard (login, tokens, CSRF) answers
        if endpoint == adapter.SIGNUP_ENDPOINT and not options.allow_signup:
            return refuse(403, "IvoryOS: signup is off under ivoryos_plugin.run (anyone who reaches this port could "
                               "make an account and run the instruments). Ask whoever runs it, or start it with "
                               "ivoryos_plugin.run(..., allow_signup=True).")
        if endpoint == adapter.LOGIN_ENDPOINT and req.method == "POST" and options.login_csrf:
            reason = check_csrf()
            if reason is not None:
                return refuse(400, f"IvoryOS: login refused: {reason} The login form's CSRF token is missing or "
                                   "stale: reload the login page and log in again.")
        if endpoint is None or endpoint == adapter.STATIC_ENDPOINT:
            return None  # (no endpoint: a 404 or 405, which runs nothing and stays what it is)
        logged_in = self.logged_in(endpoint) if not (options.allow_anonymous or endpoint in self.public) else None
        if logged_in is False:
            if wants_json():
                return error_response(401, "IvoryOS: login required (ivoryos_plugin.run); log in at "
                                           f"{url_for(adapter.LOGIN_ENDPOINT)}.", login=url_for(adapter.LOGIN_ENDPOINT))
            return redirect(url_for(adapter.LOGIN_ENDPOINT))  # type: ignore[return-value]
        if req.method in SAFE_METHODS or endpoint == adapter.LOGIN_ENDPOINT:
            return None
        if options.ivoryos_csrf:
            refusal = self.csrf_refusal(self.logged_in(endpoint) if logged_in is None else logged_in)
            if refusal is not None:
                return refusal
        if options.check_uploads and endpoint == adapter.LOGO_ENDPOINT:
            problem = image_problem(request.files.get(adapter.LOGO_FIELD))
            if problem is not None:
                return refuse(400, f"IvoryOS: logo refused: {problem} (ivoryos_plugin.run; check_uploads=False "
                                   "turns the check off).")
        return None

    @staticmethod
    def csrf_refusal(logged_in: bool) -> Optional[Response]:
        """A state-changing request to IvoryOS: refused from another origin, and from a logged-in
        session without its CSRF token.

        :param logged_in: whether the request comes with a logged-in session."""
        if not origin_allowed():
            origin = request.headers.get("Origin")
            return refuse(403, f"IvoryOS: a {request.method} from the page {origin!r} is refused "
                               "(another site's page in a logged-in browser); add the origin to "
                               "IVORYOS_PLUGIN_ALLOWED_ORIGINS if it is yours (ivoryos_plugin.run; ivoryos_csrf=False "
                               "turns this off).")
        if not logged_in:
            return None  # nobody's credentials to borrow (programs without a login, allow_anonymous=True)
        reason = check_csrf()
        if reason is None:
            return None
        return refuse(400, f"IvoryOS: {reason} Under ivoryos_plugin.run IvoryOS's forms and routes need the session's "
                           "CSRF token: reload the page (IvoryOS's pages send it); a program sends the X-CSRFToken "
                           "header, from GET /ivoryos/plugins/csrf.json; ivoryos_plugin.run(..., ivoryos_csrf=False) "
                           "turns this off.")
