"""The standalone dev host: the same URLs, Socket.IO path and namespaces as inside IvoryOS, a shell
page, a simulated or real deck, bound to 127.0.0.1 and protected by a one-time token (as Jupyter)."""
from __future__ import annotations

import hmac
import importlib.util
import os
import secrets
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional, Union
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from jinja2 import DictLoader
from werkzeug.wrappers import Response
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_socketio import SocketIO
from socketio.exceptions import ConnectionRefusedError as Refused

from ..core.clock import Clock
from ..hardware.deck import Gate
from ..runtime.attach import IvoryOSPlugins
from ..runtime.process import stop_on_sigterm
from ..runtime.connections import Connection
from ..runtime.extension import CLOCK_CONFIG, SHELL_TEMPLATE, Extension
from .socketio_live import QUEUE_ENV
from ..runtime.pages_errors import install_error_pages
from ..runtime.csrf import check_csrf
from ..runtime.security import AuthError, authenticate, origin_ok
from . import ivoryos as adapter
from .decks import load_deck as load_deck  # the dev host's, the demo's: the deck's __main__ block runs too
from .discovery import register_plugin

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK = "127.0.0.1"


class DevUser(UserMixin):  # type: ignore[misc]
    """The one user of the dev host: whoever holds the token."""

    id = "dev"


#: what browsers drop from a URL before reading it: tabs and newlines anywhere (WHATWG URL standard)
_URL_DROPPED = dict.fromkeys(map(ord, "\t\n\r"))
#: what browsers strip from both ends of a URL: C0 controls and space
_URL_STRIPPED = "".join(map(chr, range(0x21)))


def safe_next(value: Optional[str], default: str) -> str:
    r"""Where to go after logging in: ``value`` when it is a path on this server, else ``default``.

    Read as a browser reads a ``Location``: tabs and newlines dropped, controls and spaces stripped
    from the ends, ``\`` taken for ``/``. What is left must start with one ``/`` (not ``//`` or
    ``/\``, which name another server) and have no scheme or network location; any other control character
    refuses it.

    :param value: the ``next`` parameter, as received (percent-decoded once).
    :param default: the host's start page.

    Example::

        safe_next("/ivoryos/balance/", "/ivoryos/")    # "/ivoryos/balance/"
        safe_next("/\t/evil.example/", "/ivoryos/")   # "/ivoryos/" (a browser would go to //evil.example/)
    """
    if not value:
        return default
    seen = value.translate(_URL_DROPPED).strip(_URL_STRIPPED).replace("\\", "/")
    if not seen.startswith("/") or seen.startswith("//") or any(ord(c) < 0x20 or c == "\x7f" for c in seen):
        return default
    try:
        parts = urlsplit(seen)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return seen


def _auth_blueprint(token: str) -> Blueprint:
    auth = Blueprint("auth", __name__, template_folder=os.path.join(PACKAGE, "templates"))

    @auth.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        next_url = safe_next(request.values.get("next"), url_for("main.index"))
        error = None
        if request.method == "POST":
            given = request.form.get("token", "")
            problem = check_csrf()
            if problem is not None:
                error = f"{problem} Reload the page and try again."
            elif hmac.compare_digest(given.encode(), token.encode()):
                login_user(DevUser())
                return redirect(next_url)
            else:
                error = "Wrong token: use the one printed when the host started."
        return render_template("ivoryos_plugin/login.html", next=next_url, error=error), (401 if error else 200)

    @auth.route("/logout")
    def logout() -> Response:
        logout_user()
        return redirect(url_for("auth.login"))

    return auth


def create_app(plugins: Iterable[Any] = (), deck: Union[None, str, Path, ModuleType] = None, *,
               token: Optional[str] = None, secret_key: Optional[str] = None,
               data_dir: Union[None, str, Path] = None, url_prefix: str = "/ivoryos",
               message_queue: Optional[str] = None, testing: bool = False,
               clock: Optional[Clock] = None) -> Flask:
    """Build the standalone dev host around ``plugins``.

    :param plugins: :class:`~ivoryos_plugin.Plugin` objects or plain plugin Blueprints.
    :param deck: a deck module, a deck script's path, or None.
    :param token: the login token (random when None; read it from ``app.config["IVORYOS_PLUGIN_TOKEN"]``).
    :param secret_key: the session key (random when None).
    :param data_dir: IvoryOS's data folder equivalent (``./ivoryos_data`` by default).
    :param url_prefix: the URL prefix, as IvoryOS's ``URL_PREFIX``.
    :param message_queue: a Redis URL to fan out events (default: env ``IVORYOS_PLUGIN_MESSAGE_QUEUE``).
    :param testing: Flask's TESTING flag.
    :param clock: the time the plugins' workers, streams, cameras and history wait on (a test's
        :class:`~ivoryos_plugin.core.clock.ManualClock`; the real one when None).

    Example::

        app = create_app([plugin], deck="examples/demo_deck.py")
        serve(app, port=8765)
    """
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    app = Flask("ivoryos_plugin.host", root_path=PACKAGE, static_folder=None, template_folder=None)
    # IvoryOS's base.html, as the dev shell: a plain Blueprint that checks
    # `"base.html" in current_app.jinja_loader.list_templates()` (the official template) extends it
    app.jinja_loader = DictLoader({"base.html": '{% extends "ivoryos_plugin/shell.html" %}'})
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32), URL_PREFIX=prefix, TESTING=testing,
        OUTPUT_FOLDER=str(Path(data_dir or os.path.join(os.path.abspath(os.curdir), "ivoryos_data")).resolve()),
        IVORYOS_PLUGIN_TOKEN=token or secrets.token_urlsafe(24), SESSION_COOKIE_SAMESITE="Lax",
        TEMPLATES_AUTO_RELOAD=True,  # a dev host: an edited template shows at the next request
    )
    if clock is not None:
        app.config[CLOCK_CONFIG] = clock
    queue = message_queue or os.environ.get(QUEUE_ENV) or None
    socketio = SocketIO(app, async_mode="threading", path=f"{prefix}/socket.io".lstrip("/"),
                        message_queue=queue, cors_allowed_origins=lambda origin, environ: origin_ok(
                            origin, environ.get("HTTP_HOST", ""), app.config.get("IVORYOS_PLUGIN_ALLOWED_ORIGINS")))
    login_manager = LoginManager(app)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(lambda user_id: DevUser() if user_id == "dev" else None)
    app.register_blueprint(_auth_blueprint(app.config["IVORYOS_PLUGIN_TOKEN"]), url_prefix=f"{prefix}/auth")
    _add_shell_routes(app, prefix)
    install_error_pages(app)  # a missing template or endpoint: the page says what check would
    ext: Extension = IvoryOSPlugins().init_app(app)  # the explicit attach (the plugins below find it done)
    ext.dev_token = app.config["IVORYOS_PLUGIN_TOKEN"]
    # plugin pages extend the shell itself: "base.html" above is an alias of it for plain Blueprints, and
    # each level of template inheritance costs every page's render (the alias would add one)
    ext.base_template = SHELL_TEMPLATE
    ext.host_name = "dev host"
    ext.gate = Gate(lock=threading.Lock())  # the dev host runs no workflows: its own runner lock
    deck_module = load_deck(deck) if isinstance(deck, (str, Path)) else deck
    ext.deck_getter = lambda: deck_module
    guard_default_namespace(app, socketio, ext)  # before plain plugins' init_socketio add their handlers
    for plugin in plugins:
        register_plugin(app, plugin, socketio, url_prefix=prefix)
    ext.ensure_started()
    return app


def _add_shell_routes(app: Flask, prefix: str) -> None:
    main = Blueprint("main", __name__)

    @main.route("/")
    def index() -> Response:
        ext = app.extensions["ivoryos_plugin"]
        tabs = [rt for rt in ext.runtimes.values() if rt.plugin.placement == "tab"]
        return redirect(tabs[0].namespace + "/" if tabs else url_for("plugins.main"))

    app.register_blueprint(main, url_prefix=prefix or "/")

    @app.before_request
    def _token_in_url() -> Optional[Response]:
        given = request.args.get("token")
        if given is None:
            return None
        if hmac.compare_digest(given.encode(), app.config["IVORYOS_PLUGIN_TOKEN"].encode()):
            login_user(DevUser())
            rest = {k: v for k, v in request.args.items() if k != "token"}
            # the path as asked, when a browser reads it as this server's ("//evil.example/?token=..." is not)
            return redirect(safe_next(request.path, url_for("main.index")) + ("?" + urlencode(rest) if rest else ""))
        return None

    if prefix:
        app.add_url_rule("/", "root", lambda: redirect(url_for("main.index")))
    # the tab's icon (a plug; the shell links it): browsers ask every host for /favicon.ico
    app.add_url_rule("/favicon.ico", "favicon", lambda: Response(FAVICON, mimetype="image/svg+xml",
                                                                 headers={"Cache-Control": "max-age=86400"}))


def guard_default_namespace(app: Flask, socketio: SocketIO, ext: Extension) -> None:
    """The default Socket.IO namespace ``/`` (where plain plugins' ``init_socketio`` handlers and a
    page's bare ``io()`` live) asks for the dev host's login, as its pages do: a client that brings
    neither a logged-in session's cookie nor the token (``auth={"token": ...}``) is refused at
    connect, so its events reach no handler. A plain plugin's own ``connect`` handler runs after
    this one (:func:`~ivoryos_plugin.hosts.ivoryos.guard_init_socketio`), for clients let in.

    :param app: the dev host's app.
    :param socketio: its Socket.IO server.
    :param ext: its framework state (the connections, re-authorised while they live)."""
    def connect(auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            principal = authenticate(None, token)
        except AuthError as exc:
            raise Refused(f"unauthorized: the dev host's Socket.IO: {exc}") from None
        if principal is None:
            raise Refused("unauthorized: the dev host's Socket.IO needs its token: open the URL it printed "
                          "(?token=...) in this browser first, or send {\"token\": \"...\"} as the auth payload.")
        ext.connections.add(Connection(sid=request.sid, namespace="/", token=principal.token,  # type: ignore[attr-defined]
                                       session_id=principal.session_id, session_at=principal.session_at,
                                       user=principal.name if principal.via == "session" else None))

    def disconnect(*args: Any) -> None:
        ext.connections.remove("/", request.sid)  # type: ignore[attr-defined]

    socketio.on("connect")(connect)
    socketio.on("disconnect")(disconnect)
    handler = adapter.default_namespace_handlers(socketio).get("connect")
    if handler is not None:
        handler._ivoryos_plugin_guard = True  # what the health page looks for (default_namespace_guarded)


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" '
           'fill="#2f6f73"/><path d="M12 5v7M20 5v7M9 12h14v4a7 7 0 0 1-14 0zM16 23v5" stroke="#fffdf5" '
           'stroke-width="3" stroke-linecap="round" stroke-linejoin="round" fill="none"/></svg>')


def serve(app: Flask, bind: str = LOOPBACK, port: int = 8765, *, quiet: bool = False,
          host: Optional[str] = None) -> None:
    """Run the dev host until interrupted; prints the URL with its one-time token.

    :param app: from :func:`create_app`.
    :param bind: the address to listen on (loopback unless you mean it).
    :param port: the TCP port.
    :param quiet: do not print the URL.
    :param host: the older name of ``bind`` (a :class:`DeprecationWarning`; it goes in the next release).

    Example::

        serve(create_app([plugin]), bind="127.0.0.1", port=8765)
    """
    if host is not None:
        warnings.warn("serve(host=...) is now serve(bind=...): 'host' names the app that serves plugins; the old "
                      "keyword goes in the next release.", DeprecationWarning, stacklevel=2)
        bind = host
    socketio = app.extensions["socketio"]
    share_deck(app)
    url = f"http://{bind}:{port}{app.config['URL_PREFIX']}/?token={app.config['IVORYOS_PLUGIN_TOKEN']}"
    if not quiet:
        print(f" * ivoryos_plugin dev host: {url}", flush=True)
    stop_on_sigterm()
    try:
        socketio.run(app, host=bind, port=port, debug=False, use_reloader=False,
                     allow_unsafe_werkzeug=True, log_output=False)
    finally:
        stop(app)


def share_deck(app: Flask) -> None:
    """Make the dev host's deck IvoryOS's ``global_state.deck`` too, when IvoryOS is installed, so
    that plugins written for IvoryOS (``from ivoryos import global_state``) see it. Done when the host
    serves, as the one app of its process: IvoryOS keeps one deck per process and refuses another,
    which is then a warning on the health page.

    :param app: from :func:`create_app`."""
    ext: Extension = app.extensions["ivoryos_plugin"]
    deck = ext.deck_getter()
    if deck is None or importlib.util.find_spec("ivoryos") is None:
        return
    if not adapter.set_deck(deck):
        ext.record_warning("dev host", f"IvoryOS's global_state.deck is already another deck in this process, so "
                                       f"plugins that read global_state.deck do not see {deck.__name__!r}; start one "
                                       "dev host per process.")


def stop(app: Flask) -> None:
    """Stop the app's plugins (workers, streams, ``on_stop``).

    :param app: the app."""
    ext = app.extensions.get("ivoryos_plugin")
    if ext is not None:
        ext.stop_all()
