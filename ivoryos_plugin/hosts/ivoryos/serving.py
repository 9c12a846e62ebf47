"""How IvoryOS is configured and started: its config, its database file (users, the default
admin), ``ivoryos.run``'s parameters, the last check before it listens. Part of the IvoryOS adapter
(:mod:`ivoryos_plugin.hosts.ivoryos`)."""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, List, Optional

from flask import Blueprint, Flask

log = logging.getLogger("ivoryos_plugin.ivoryos")

#: IvoryOS 1.7.2's ``Config.SECRET_KEY`` when env ``SECRET_KEY`` is unset: a public constant.
PUBLIC_DEFAULT_KEY = "default_secret_key"


# ------------------------------------------------------------------ IvoryOS's database and config
def sqlite_path(config: Any) -> Optional[Path]:
    """The SQLite file of IvoryOS's database, or None when it is not a SQLite file.

    :param config: an IvoryOS ``Config`` instance (``SQLALCHEMY_DATABASE_URI``, ``OUTPUT_FOLDER``)."""
    uri = str(getattr(config, "SQLALCHEMY_DATABASE_URI", "") or "")
    if not uri:
        return Path(config.OUTPUT_FOLDER) / "ivoryos.db"
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):])


def users_database(app: Flask) -> Optional[Path]:
    """The SQLite file holding IvoryOS's users (the database of its Flask-SQLAlchemy engine, which
    ``load_user`` reads on each request; verified on 1.6.14 and 1.7.2), or None when it is not a
    SQLite file or cannot be found. Call inside an app context.

    :param app: IvoryOS's app."""
    try:
        engine = app.extensions["sqlalchemy"].engine
        if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
            return None
        database = str(engine.url.database)
        if database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).resolve()
    except Exception as exc:
        log.info("IvoryOS's users database was not found (%s: %s): each login is checked in full", type(exc).__name__,
                 exc)
        return None


def default_admin_active(config: Any) -> bool:
    """Whether IvoryOS still accepts admin/admin (or will create it on first start).

    Reads IvoryOS's ``user`` table and its ``hashPassword`` column (bcrypt; verified on 1.7.2). A
    database that cannot be read (or is not SQLite) counts as active: the warning errs loud.

    :param config: an IvoryOS ``Config`` instance."""
    db = sqlite_path(config)
    if db is None or not db.exists():
        return True
    try:
        import bcrypt

        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute('SELECT "hashPassword" FROM "user" WHERE username = ?', ("admin",)).fetchone()
    except Exception:
        return True
    if row is None or row[0] is None:
        return True  # IvoryOS creates admin/admin again at start when it is missing
    stored = row[0].encode() if isinstance(row[0], str) else row[0]
    try:
        return bool(bcrypt.checkpw(b"admin", stored))
    except ValueError:
        return False


def get_config(name: Optional[str] = None) -> Any:
    """IvoryOS's ``Config`` instance (``ivoryos.config.get_config``; verified on 1.7.2).

    :param name: ``"testing"`` for its test config, None for the default."""
    from ivoryos.config import get_config as ivoryos_get_config

    return ivoryos_get_config(name) if name else ivoryos_get_config()


def run_parameters() -> List[str]:
    """The names of the installed ``ivoryos.run``'s parameters, read from its signature (1.6.4,
    1.6.14 and 1.7.2 take the same fifteen: module, host, port, debug, llm_server, model, config,
    logger, logger_output_name, enable_design, blueprint_plugins, exclude_names,
    notification_handler, optimizer_registry, templates_dir)."""
    import inspect

    import ivoryos

    return list(inspect.signature(ivoryos.run).parameters)


def run(module: Optional[str], blueprint_plugins: List[Blueprint], **kwargs: Any) -> None:
    """Call ``ivoryos.run`` (its arguments as :func:`run_parameters` lists them).

    :param module: the deck script's ``__name__``.
    :param blueprint_plugins: the blueprints to load, the framework's first.
    :param kwargs: the other ``ivoryos.run`` arguments, only those the installed IvoryOS takes."""
    import ivoryos

    ivoryos.run(module, blueprint_plugins=blueprint_plugins, **kwargs)


def before_serving(gate: Callable[[], None]) -> bool:
    """Run ``gate()`` when ``ivoryos.run`` is about to serve: after it registered every plugin and set
    the deck, before it listens. ``ivoryos.server.run`` ends with ``socketio.run(app, ...)`` on the
    ``SocketIO`` of ``ivoryos.socket_handlers`` (verified on 1.6.14 and 1.7.2); that instance's
    ``run`` is wrapped once. A gate that raises stops ``ivoryos.run`` before anything listens.

    :param gate: the last check (raises to refuse).
    :returns: whether the gate is in place."""
    try:
        from ivoryos.socket_handlers import socketio
    except Exception as exc:
        log.error("cannot find IvoryOS's Socket.IO server (%s: %s)", type(exc).__name__, exc)
        return False
    original = getattr(socketio, "run", None)
    if not callable(original):
        return False

    def run(*args: Any, **kwargs: Any) -> Any:
        socketio.run = original  # once
        gate()
        return original(*args, **kwargs)

    socketio.run = run
    return True


def use_request_handler(handler: type) -> bool:
    """Have the server ``ivoryos.run`` starts handle each connection with ``handler`` (a Werkzeug
    ``WSGIRequestHandler`` subclass): ``socketio.run`` on ``ivoryos.socket_handlers``' ``SocketIO``
    (verified on 1.6.14 and 1.7.2) passes ``request_handler`` on to Werkzeug's ``run_simple`` in
    Flask-SocketIO's threading mode; in another mode (eventlet, gevent) nothing changes.

    :param handler: the request handler class.
    :returns: whether the next ``socketio.run`` will use it."""
    try:
        from ivoryos.socket_handlers import socketio
    except Exception as exc:
        log.info("IvoryOS's Socket.IO server was not found (%s: %s): Werkzeug's own request handler serves",
                 type(exc).__name__, exc)
        return False
    original = getattr(socketio, "run", None)
    if not callable(original):
        return False

    def run(app: Any, *args: Any, **kwargs: Any) -> Any:
        socketio.run = original  # once
        engine = getattr(getattr(socketio, "server", None), "eio", None)
        if getattr(engine, "async_mode", None) == "threading":
            kwargs.setdefault("request_handler", handler)
        return original(app, *args, **kwargs)

    socketio.run = run
    return True
