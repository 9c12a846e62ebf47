"""The live connections of one app (a plugin's clients, and IvoryOS's own Socket.IO clients under
``ivoryos_plugin.run``) and the credential each was opened with, re-authorised while they live: a
token revoked (by ``ivoryos-plugin token revoke``, another process) or a session logged out
disconnects the clients it opened, within :data:`SWEEP_S` seconds (at once for a logout in this
process); events they send meanwhile are refused.

Transport-neutral: closing a connection is the host's transport's job, given as a callable.
A sweeper thread (``ivoryos_plugin-reauth``) runs while connections exist and stops with the last."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol, Tuple

from ..core.clock import Clock, optional_clock, start_thread

if TYPE_CHECKING:
    from .sessions import SessionRegistry
    from .tokens import TokenStore

__all__ = ["Connection", "Connections", "Credentials", "Disconnect", "SWEEP_S"]

log = logging.getLogger("ivoryos_plugin.live")
#: seconds between two re-authorisations of every connection
SWEEP_S = 0.2


@dataclass(frozen=True)
class Connection:
    """One client in one namespace.

    :param sid: the client id (Socket.IO's ``sid``).
    :param namespace: its namespace (``/ivoryos/<plugin>``, or ``/`` for IvoryOS's own).
    :param plugin: the plugin whose namespace it is (None for ``/``), for token scopes.
    :param token: the API token it authenticated with, or None.
    :param session_id: the framework's id of the session it authenticated with, or None.
    :param user: the session's user, or None.
    :param session_at: when that session began (epoch seconds), or None."""

    sid: str
    namespace: str
    plugin: Optional[str] = None
    token: Optional[str] = None
    session_id: Optional[str] = None
    user: Optional[str] = None
    session_at: Any = None


class Credentials(Protocol):
    """What re-authorising a connection reads (the app's framework state has it)."""

    @property
    def dev_token(self) -> Optional[str]:
        """The dev host's one-time login token, or None."""

    @property
    def tokens(self) -> "TokenStore":
        """The app's API tokens."""

    @property
    def sessions(self) -> "SessionRegistry":
        """The sessions ended by a logout."""


#: closes one client's connection through the host's transport: ``disconnect(namespace, sid)``
Disconnect = Callable[[str, str], None]


class Connections:
    """Every live connection of one app.

    :param credentials: the app's tokens and sessions (read at each check: a token revoked meanwhile counts).
    :param disconnect: closes a connection through the host's transport.
    :param clock: what the sweeps' period is waited on (:data:`~ivoryos_plugin.core.clock.SYSTEM_CLOCK`
        when None; a test's ``ManualClock`` makes each sweep a step it takes)."""

    def __init__(self, credentials: Credentials, disconnect: Disconnect, clock: Optional[Clock] = None) -> None:
        self.credentials = credentials
        self._close = disconnect
        self.clock = optional_clock(clock)
        self._lock = threading.Lock()
        self._live: Dict[Tuple[str, str], Connection] = {}
        self._sweeper: Optional[threading.Thread] = None
        self._wake = threading.Event()

    def add(self, connection: Connection) -> None:
        """Track a client that was just let in (call from its connect handler).

        :param connection: the client and its credential."""
        with self._lock:
            self._live[(connection.namespace, connection.sid)] = connection
            if self._sweeper is None:
                self._wake.clear()
                self._sweeper = start_thread("reauth", self._sweep)

    def remove(self, namespace: str, sid: str) -> None:
        """Forget a client that left (call from its disconnect handler).

        :param namespace: its namespace.
        :param sid: its id."""
        with self._lock:
            self._live.pop((namespace, sid), None)
            if not self._live:
                self._wake.set()

    def get(self, namespace: str, sid: str) -> Optional[Connection]:
        """The live connection, or None (it left, or was never let in).

        :param namespace: its namespace.
        :param sid: its id."""
        with self._lock:
            return self._live.get((namespace, sid))

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def problem(self, connection: Connection) -> Optional[str]:
        """Why the connection's credential no longer holds (revoked token, ended session), or None.

        :param connection: the connection."""
        ext = self.credentials
        if connection.token is not None:
            if ext.dev_token and connection.token == ext.dev_token:
                return None
            record = ext.tokens.verify(connection.token)
            if record is None:
                return "its token was revoked"
            if record.plugin and connection.plugin and record.plugin != connection.plugin:
                return "its token is scoped to another plugin"
            return None
        if connection.user is not None and ext.sessions.ended(connection.session_id, connection.user,
                                                              connection.session_at):
            return "its session logged out"
        return None

    def end_session(self, session_id: Optional[str], user: Optional[str]) -> int:
        """Disconnect, now, the clients opened with a session that just logged out.

        :param session_id: the session's id (None: the user's sessions without one).
        :param user: its user.
        :returns: how many were disconnected."""
        with self._lock:
            gone = [c for c in self._live.values() if c.token is None and c.user is not None
                    and str(c.user) == str(user) and c.session_id == session_id]
        for connection in gone:
            self.disconnect(connection, why="its session logged out")
        return len(gone)

    def disconnect(self, connection: Connection, why: str) -> None:
        """Forget a connection and close it (its credential no longer holds).

        :param connection: the connection.
        :param why: the reason, for the log."""
        self.remove(connection.namespace, connection.sid)
        log.info("disconnecting live client %s from %s: %s", connection.sid, connection.namespace, why)
        try:
            self._close(connection.namespace, connection.sid)
        except Exception:  # the client left meanwhile
            log.debug("disconnecting %s failed", connection.sid, exc_info=True)

    def _sweep(self) -> None:
        while True:
            self.clock.wait(self._wake, SWEEP_S)
            self._wake.clear()
            with self._lock:
                if not self._live:
                    self._sweeper = None
                    return
                current: List[Connection] = list(self._live.values())
            for connection in current:
                try:
                    why = self.problem(connection)
                except Exception as exc:  # a check that fails refuses (safety fails closed)
                    why = f"its credential could not be checked ({type(exc).__name__})"
                if why is not None:
                    self.disconnect(connection, why)
