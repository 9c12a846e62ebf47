"""Logged-in sessions the server can end: a Flask session cookie is signed, not stored, so a cookie
copied before logout would keep working. Each login gets a random session id (in the cookie);
logout records it as ended, in ``<data>/plugins/sessions.json`` (mode 0600, so a restart keeps
it), and a session whose id is ended is anonymous from then on. Sessions made before the framework
gave them an id are ended by their user's next logout. Pure logic, no Flask.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Dict, MutableMapping, Optional

from .files import atomic_write

__all__ = ["SID_KEY", "AT_KEY", "USER_KEY", "SessionRegistry"]

log = logging.getLogger("ivoryos_plugin.sessions")
#: the session keys the framework adds at login (and Flask-Login's own user key)
SID_KEY = "_ivoryos_plugin_sid"
AT_KEY = "_ivoryos_plugin_at"
USER_KEY = "_user_id"
#: how long an ended session is remembered: Flask refuses older cookies anyway (31 days by default)
KEEP_S = 31 * 24 * 3600.0


class SessionRegistry:
    """The ended sessions of one app.

    :param path: the JSON file (created at the first logout).
    :param keep_s: seconds an ended session is remembered (the app's session lifetime)."""

    def __init__(self, path: Path, keep_s: float = KEEP_S) -> None:
        self.path = Path(path)
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self._ended: Dict[str, float] = {}   # session id -> when it ended
        self._users: Dict[str, float] = {}   # user -> last logout (ends that user's sessions without an id)
        self._before = 0.0                   # sessions begun before this are ended (a file that cannot be read)
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self._ended = {str(k): float(v) for k, v in dict(doc.get("ended", {})).items()}
            self._users = {str(k): float(v) for k, v in dict(doc.get("users", {})).items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self._before = time.time()  # fail closed: every session older than now is ended
            log.error("the ended-sessions file %s is unreadable (%s: %s): every session begun before now must "
                      "log in again. Fix the file or delete it.", self.path, type(exc).__name__, exc)

    def begin(self, session: MutableMapping[str, Any]) -> str:
        """Give a session that just logged in a fresh id (call at login).

        :param session: the Flask session.
        :returns: the id."""
        sid = secrets.token_urlsafe(18)
        session[SID_KEY] = sid
        session[AT_KEY] = int(time.time())
        return sid

    def ended(self, sid: Optional[str], user: Optional[str], at: Any = None) -> bool:
        """Whether a logged-in session is ended (its cookie must be treated as anonymous).

        :param sid: its id (None for a session made before the framework gave it one).
        :param user: its user's id.
        :param at: when it began (epoch seconds, from the session)."""
        with self._lock:
            self._load()
            if self._before:
                try:
                    if float(at or 0) < self._before:
                        return True
                except (TypeError, ValueError):
                    return True
            if sid is None:
                return user is not None and str(user) in self._users
            return sid in self._ended

    def session_ended(self, session: Any) -> bool:
        """:meth:`ended` for a Flask session (False when nobody is logged in).

        :param session: the Flask session."""
        if self._loaded and not (self._ended or self._users or self._before):
            return False  # nobody logged out yet: nothing to look up
        user = session.get(USER_KEY)
        if user is None:
            return False
        return self.ended(session.get(SID_KEY), user, session.get(AT_KEY))

    def end(self, sid: Optional[str], user: Optional[str]) -> None:
        """End a session (call at logout): its id, and the user's sessions that have none.

        :param sid: the session's id, or None.
        :param user: its user's id, or None."""
        now = time.time()
        with self._lock:
            self._load()
            if sid:
                self._ended[sid] = now
            if user is not None:
                self._users[str(user)] = now
            horizon = now - self.keep_s
            self._ended = {k: v for k, v in self._ended.items() if v >= horizon}
            doc = {"ended": self._ended, "users": self._users}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, json.dumps(doc, indent=1), mode=0o600)
            except OSError as exc:  # still ended in this process; a restart would forget it
                log.error("cannot save the ended sessions to %s: %s", self.path, exc)
