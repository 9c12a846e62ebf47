"""History: stream values recorded in a real database through SQLAlchemy 2, read back downsampled.

One store per app: SQLite by default (``<plugins data folder>/history.sqlite``, WAL mode), or any
SQLAlchemy URL (``IVORYOS_PLUGIN_HISTORY_URL=postgresql+psycopg://...``: several IvoryOS hosts can
write to one PostgreSQL). Values are queued in memory by the producer (never blocking it) and written
in batches by one writer thread every :data:`FLUSH_S` seconds, so a crash loses at most the last
batch. A database that cannot be reached keeps values in memory up to ``buffer_max`` (then the oldest
are dropped and counted) while live values keep flowing; the outage is reported as a gap.

Every call to the database is bounded (a database that accepts connections but never answers, as a
frozen server does, must not hold a request or the writer): the store has its own engine and pool
(never the host's), a connect timeout, a pool checkout timeout, a server-side statement timeout, and
a watchdog that ends any call still waiting at its deadline from outside the waiting thread. A read
that times out answers :class:`HistoryUnavailable`, and for :data:`RETRY_S` seconds after that reads
fail at once instead of waiting again. URLs are shown with every password masked (:func:`mask_url`).
Time is read and waited on through an injectable :class:`~ivoryos_plugin.core.clock.Clock`.

The package, one concern a module (each imports only those listed before it):

- :mod:`.schema` the tables and what a queued sample is; :mod:`.rollups` the per-bucket aggregates;
- :mod:`.errors` :class:`HistoryUnavailable` and password masking; :mod:`.watchdog` ending late calls;
- :mod:`.database` the store's own engine and bounded calls; :mod:`.counts` totals, gaps, rows;
- :mod:`.writer` the queue and its thread; :mod:`.retention` what is kept; :mod:`.reader` queries;
- :mod:`.store` :class:`HistoryStore`, which puts them together; :mod:`.views` the HTTP routes."""
from __future__ import annotations

from .counts import Counts, Gap, RowCounts
from .database import (CONNECT_TIMEOUT_S, POOL_TIMEOUT_S, RETRY_S, SETUP_TIMEOUT_S, SQLITE_BUSY_S,
                       STATEMENT_TIMEOUT_S, Database)
from .errors import SECRET_PARAMETERS, HistoryUnavailable, describe, mask_url, scrub
from .reader import READ_TIMEOUT_S
from .retention import RECOUNT_EVERY_S, RETENTION_EVERY_S, RETENTION_TIMEOUT_S, Retainer, Retention
from .rollups import aggregates
from .schema import (ROLLUP_COLUMNS, ROLLUP_WIDTHS, ROW, SCHEMA_VERSION, URL_ENV, Row, default_url, metadata,
                     number_of, rollups, samples, schema, writers)
from .store import STATUS_TIMEOUT_S, HistoryStore
from .watchdog import Watchdog
from .writer import BATCH, FLUSH_S, MIN_BATCH_S, RETRY_MAX_S, WRITE_TIMEOUT_S, Writer

__all__ = [
    "HistoryStore", "Retention", "Gap", "Counts", "RowCounts", "HistoryUnavailable",
    "Database", "Writer", "Retainer", "Watchdog",
    "mask_url", "scrub", "describe", "default_url", "number_of", "aggregates",
    "metadata", "samples", "rollups", "schema", "writers", "ROW", "Row", "ROLLUP_COLUMNS", "ROLLUP_WIDTHS",
    "URL_ENV", "SCHEMA_VERSION", "SECRET_PARAMETERS",
    "FLUSH_S", "RETRY_MAX_S", "BATCH", "WRITE_TIMEOUT_S", "MIN_BATCH_S",
    "RETENTION_EVERY_S", "RECOUNT_EVERY_S", "RETENTION_TIMEOUT_S",
    "CONNECT_TIMEOUT_S", "POOL_TIMEOUT_S", "SETUP_TIMEOUT_S", "STATEMENT_TIMEOUT_S", "SQLITE_BUSY_S", "RETRY_S",
    "READ_TIMEOUT_S", "STATUS_TIMEOUT_S",
]
