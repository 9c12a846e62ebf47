"""Whether a request to IvoryOS comes from a logged-in session, as Flask-Login would say, at about
the cost of a dict lookup once the session's user has been loaded.

The hardening needs a login on every IvoryOS route, also on those IvoryOS leaves open (the JSON its
pages poll): asking Flask-Login's ``current_user`` there loads the user from IvoryOS's database on
each request, which IvoryOS itself does not do. A user id that Flask-Login loaded and found
authenticated is remembered with the version of the database it was read from, with the file's
identity (``os.stat``); while the database is unchanged, that user still exists and is still
authenticated, so the answer is the same without loading it. The version is the database header's
*file change counter* (bytes 24-27, which SQLite increments whenever a connection that changed the
file unlocks it, so that other processes can tell a change: https://www.sqlite.org/fileformat.html),
read with one ``pread`` of the header (IvoryOS's database is in rollback-journal mode, verified on
1.7.2). In WAL mode (header bytes 18-19 are 2) that counter is not kept, so the version is then
SQLite's ``PRAGMA data_version`` on a read-only connection (which changes on every commit by another
connection): 2 system calls a request in rollback mode where the pragma made 9 (``strace -c``).
Anything else (no SQLite file, a database that changed, no user id in the session, a user already
loaded, Flask-Login's "strong" session protection) asks Flask-Login in full, and so does a view that
IvoryOS guards with ``@login_required`` itself (it loads the user anyway: asking first costs nothing more). Either way
the answer is Flask-Login's: which path is taken changes the cost, never the answer."""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from flask import Flask, g, session
from flask_login import current_user

from ...runtime.sessions import USER_KEY

__all__ = ["LoginCheck"]

#: what identifies the state of the users' database: (the number of the file's opening, its header's
#: change counter), or (minus that number, SQLite's data_version) in WAL mode; a file opened again
#: (replaced, an error) counts from its own start
Version = Tuple[int, int]
#: how many verified user ids are kept (a server sees a few; more are forgotten, then loaded again)
KEEP = 1024
#: the database header's length and its first 16 bytes (https://www.sqlite.org/fileformat.html)
HEADER, MAGIC = 100, b"SQLite format 3\x00"


class LoginCheck:
    """``check()``: whether the current request's session is logged in (Flask-Login's
    ``current_user.is_authenticated``). One per app (its cache is that app's).

    :param app: the app (its Flask-Login manager and config).
    :param database: gives the SQLite file of the users (asked once, in the first request), or None."""

    def __init__(self, app: Flask, database: Callable[[], Optional[Path]]) -> None:
        self._app = app
        self._database = database
        self._path: Optional[str] = None  # (a str: os.stat takes it as it is, a Path is converted each time)
        self._looked = False
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        self._fd: Optional[int] = None
        self._cursor: Optional[sqlite3.Cursor] = None
        self._file: Tuple[int, int] = (0, 0)
        self._opened = 0
        self._verified: Dict[str, Version] = {}
        self._loads: Dict[str, bool] = {}  # endpoint -> whether its view loads the user itself

    def __call__(self, endpoint: Optional[str] = None) -> bool:
        """Whether the current request's session is logged in.

        :param endpoint: the request's endpoint (a view that loads the user itself is asked in full)."""
        user_id, manager = session.get(USER_KEY), getattr(self._app, "login_manager", None)
        if (isinstance(user_id, str) and not self.loads_user(endpoint) and "_login_user" not in g and manager is not None
                and self._app.config.get("SESSION_PROTECTION", manager.session_protection) != "strong"):
            version = self.version()
            if version is not None and self._verified.get(user_id) == version:
                return True  # loaded and found authenticated from this very state of the database
        else:
            version = None  # nothing to remember, or Flask-Login's answer is at hand (or changes the session)
        authenticated = bool(current_user.is_authenticated)
        if authenticated and version is not None and current_user.get_id() == user_id:
            with self._lock:
                if len(self._verified) >= KEEP:
                    self._verified.clear()
                self._verified[str(user_id)] = version
        return authenticated

    def loads_user(self, endpoint: Optional[str]) -> bool:
        """Whether the view of ``endpoint`` is wrapped by Flask-Login's ``login_required`` (its
        ``decorated_view`` in ``flask_login/utils.py``, found through ``__wrapped__``; verified on
        Flask-Login 0.6.3), worked out once per endpoint.

        :param endpoint: the endpoint, or None."""
        if endpoint is None:
            return False
        found = self._loads.get(endpoint)
        if found is None:
            found = self._loads[endpoint] = _login_required(self._app.view_functions.get(endpoint))
        return found

    def version(self) -> Optional[Version]:
        """The users' database's current state, or None when it cannot be told (then nothing is remembered)."""
        if not self._looked:
            database = self._database()
            self._path, self._looked = (None if database is None else os.fspath(database)), True
        path = self._path
        if path is None:
            return None
        with self._lock:
            try:
                found = os.stat(path)
                file = (found.st_dev, found.st_ino)
                if self._fd is None or file != self._file:  # a file replaced under the same name: read the new one
                    self._close()
                    self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    self._file, self._opened = file, self._opened + 1
                header = os.pread(self._fd, HEADER, 0)
                if len(header) == HEADER and header[:16] == MAGIC and header[18] == header[19] == 1:
                    return (self._opened, int.from_bytes(header[24:28], "big"))  # rollback journal
                return self._data_version(path)  # WAL, or not (yet) an SQLite file: SQLite's own answer
            except (OSError, sqlite3.Error, TypeError, ValueError):
                self._close()
                return None

    def _data_version(self, path: str) -> Version:
        """``PRAGMA data_version`` on a read-only connection (opened once per file): the version of a
        database whose header keeps no change counter (WAL mode). Negative first part: never equal to
        a header's version."""
        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                         isolation_level=None)
            self._cursor = self._conn.cursor()
        assert self._cursor is not None
        row = self._cursor.execute("PRAGMA data_version").fetchone()
        return (-self._opened, int(row[0]))

    def close(self) -> None:
        """Close the file and the read-only connection (opened again when needed)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = self._cursor = None


def _login_required(view: Any) -> bool:
    try:
        import flask_login.utils

        where = flask_login.utils.__file__
    except Exception:
        return False
    for _ in range(8):  # the view, and what it wraps
        code = getattr(view, "__code__", None)
        if code is not None and code.co_name == "decorated_view" and code.co_filename == where:
            return True
        view = getattr(view, "__wrapped__", None)
        if view is None:
            return False
    return False
