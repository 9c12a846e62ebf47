"""The history's tables (SQLAlchemy Core): the samples, the per-bucket aggregates, the schema's
version and each writer's last batch; what a queued sample is; where the database is by default.
Pure declarations: no connection is made here."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Tuple

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

__all__ = ["URL_ENV", "SCHEMA_VERSION", "metadata", "samples", "ROW", "Row", "SQLITE_INSERT", "schema",
           "ROLLUP_WIDTHS", "rollups", "ROLLUP_COLUMNS", "writers", "number_of", "default_url"]

#: the environment variable that names the database (any SQLAlchemy URL)
URL_ENV = "IVORYOS_PLUGIN_HISTORY_URL"
SCHEMA_VERSION = 1

metadata = MetaData()
samples = Table(
    "ivoryos_plugin_samples", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("plugin", String(64), nullable=False),
    Column("stream", String(128), nullable=False),
    Column("t", Float, nullable=False),
    Column("num", Float, nullable=True),
    Column("value", Text, nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("step", Integer, nullable=True),
    # the machine that recorded the value (``socket.gethostname()``): IvoryOS numbers its runs per
    # machine, so ``?run=`` reads one machine's run from a database several share. Called ``machine``
    # in the code (Writer.machine, HistoryStore.machine, the reader's ``machine=``); the column keeps
    # its name ``host`` because existing databases have it ("host" elsewhere means the app that serves)
    Column("host", String(128), nullable=False, default=""),
    Index("ix_ivoryos_plugin_samples_stream_t", "plugin", "stream", "t"),
    Index("ix_ivoryos_plugin_samples_run", "plugin", "stream", "run_id"),
)
#: a queued sample: a tuple of these columns, in this order
ROW = ("plugin", "stream", "t", "num", "value", "run_id", "step", "host")
Row = Tuple[str, str, float, Optional[float], str, Optional[int], Optional[int], str]
#: the driver's own INSERT of one queued sample (the SQLite writer's ``executemany``)
SQLITE_INSERT = f"INSERT INTO ivoryos_plugin_samples ({', '.join(ROW)}) VALUES ({', '.join('?' * len(ROW))})"
schema = Table("ivoryos_plugin_history_schema", metadata, Column("version", Integer, primary_key=True))
#: per-bucket aggregates kept by the writer (widths in seconds), so a long range is downsampled from
#: thousands of rollup rows instead of millions of samples
ROLLUP_WIDTHS = (1, 60, 3600)
rollups = Table(
    "ivoryos_plugin_rollups", metadata,
    Column("plugin", String(64), primary_key=True),
    Column("stream", String(128), primary_key=True),
    Column("width", Integer, primary_key=True),
    Column("bucket", Float, primary_key=True),
    Column("n_all", Integer, nullable=False),
    Column("n", Integer, nullable=False),
    Column("lo", Float, nullable=True),
    Column("hi", Float, nullable=True),
    Column("total", Float, nullable=True),
    Column("first_t", Float, nullable=False),
    Column("last_t", Float, nullable=False),
)
#: the columns of an aggregate row (see :func:`~.rollups.aggregates`)
ROLLUP_COLUMNS = ("plugin", "stream", "width", "bucket", "n_all", "n", "lo", "hi", "total", "first_t", "last_t")

#: one row per store (a process writing the history): the number of its last committed batch, so a
#: batch whose commit was cut off (the answer never came) is not written twice
writers = Table(
    "ivoryos_plugin_writers", metadata,
    Column("writer", String(32), primary_key=True),
    Column("batch", BigInteger, nullable=False),
    Column("t", Float, nullable=False),
)


def number_of(value: Any, field_name: Optional[str]) -> Optional[float]:
    """The numeric projection of a recorded value (what is downsampled): the value itself when it
    is a number, else its ``field_name`` key (``"value"`` by default) when that is a number.

    :param value: the value.
    :param field_name: the key to read from a dict value, or None for ``"value"``."""
    if isinstance(value, dict):
        value = value.get(field_name or "value")
        if isinstance(value, dict):
            return None
    if type(value) is float:  # the usual case first: a stream asks 50 times a second
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float's range
            return None
        return number if math.isfinite(number) else None
    return None


def default_url(data_root: Path) -> str:
    """The store's URL: ``$IVORYOS_PLUGIN_HISTORY_URL``, else SQLite in the plugins' data folder.

    :param data_root: the plugins' data folder."""
    return os.environ.get(URL_ENV) or f"sqlite:///{Path(data_root) / 'history.sqlite'}"
