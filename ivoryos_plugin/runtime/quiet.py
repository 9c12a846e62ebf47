"""Keep the server's terminal readable: Werkzeug's access log without the lines of background
traffic (the pages' deck polls; in the demo and the dev host also Socket.IO's transport requests
and static files)
and without Werkzeug's two contradictory start-up warnings where they do not apply.

Errors are never dropped: an access-log line whose status is 400 or more is always kept."""
from __future__ import annotations

import logging
import re
from typing import Tuple

#: ``"GET /ivoryos/plugins/deck.json HTTP/1.1" 200 -`` (Werkzeug's access-log message, ANSI colours allowed)
_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*[A-Z]+ (?P<path>\S+) HTTP/[\d.]+(?:\x1b\[[0-9;]*m)*" (?P<status>\d{3})')
#: the pages' own polling (always left out: it is the framework's noise)
OWN_PATHS: Tuple[str, ...] = ("/plugins/deck.json",)
#: Socket.IO's long-polling and upgrade requests, and the pages' static files (left out by the demo
#: and the dev host: what is left is one line per page and per action)
TRANSPORT_PATHS: Tuple[str, ...] = ("/socket.io/", "/static/")
#: Werkzeug's and Flask-SocketIO's warnings, which contradict each other on a dev machine
SERVER_WARNINGS: Tuple[str, ...] = ("This is a development server", "Werkzeug appears to be used in a production")


class AccessLogFilter(logging.Filter):
    """A filter for the ``werkzeug`` logger.

    :param transport: also drop Socket.IO's transport requests, static files and the start-up warnings."""

    def __init__(self, transport: bool = False) -> None:
        super().__init__("")
        self.transport = transport

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to keep ``record``.

        :param record: a log record of the ``werkzeug`` logger."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep it, logging shows the problem
            return True
        if self.transport and any(text in message for text in SERVER_WARNINGS):
            return False
        found = _REQUEST.search(message)
        if found is None or int(found["status"]) >= 400:
            return True
        path = found["path"]
        paths = OWN_PATHS + (TRANSPORT_PATHS if self.transport else ())
        return not any(part in path for part in paths)


def quiet_access_log(transport: bool = False) -> AccessLogFilter:
    """Install the filter on the ``werkzeug`` logger once (a stricter one replaces a laxer one).

    :param transport: also drop Socket.IO's transport lines and the start-up warnings (the demo and
        the dev host ask for this; ``ivoryos_plugin.run`` keeps IvoryOS's log as it is).
    :returns: the installed filter."""
    logger = logging.getLogger("werkzeug")
    for existing in list(logger.filters):
        if isinstance(existing, AccessLogFilter):
            if existing.transport or not transport:
                return existing
            logger.removeFilter(existing)
    installed = AccessLogFilter(transport=transport)
    logger.addFilter(installed)
    return installed
