"""The hardening's login check remembers a verified user only while IvoryOS's users' database is
unchanged (issue 25): its version must change on every commit by another program, in SQLite's
rollback-journal mode (the header's change counter, IvoryOS's mode) and in WAL mode (no counter in the
header: SQLite's data_version), and when the file is replaced. Real SQLite files, written by other
connections as another program would."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterator, Optional

import pytest
from flask import Flask

from ivoryos_plugin.hosts.hardening.logins import LoginCheck


def make_users(path: Path, wal: bool = False) -> None:
    with sqlite3.connect(path) as conn:
        if wal:
            assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.execute('CREATE TABLE "user" (username TEXT PRIMARY KEY, "hashPassword" TEXT)')
        conn.executemany('INSERT INTO "user" VALUES (?, ?)', [("admin", "x"), ("leaving", "y")])
    conn.close()


def commit(path: Path, sql: str) -> None:
    """One write by another program: its own connection, committed and closed."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.fixture()
def check_of(tmp_path: Path) -> Iterator[object]:
    made = []

    def build(path: Optional[Path]) -> LoginCheck:
        check = LoginCheck(Flask(__name__), lambda: path)
        made.append(check)
        return check

    yield build
    for check in made:
        check.close()


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_every_commit_by_another_program_changes_the_version(tmp_path: Path, check_of, wal: bool) -> None:
    database = tmp_path / "ivoryos.db"
    make_users(database, wal=wal)
    check = check_of(database)
    first = check.version()
    assert first is not None
    assert check.version() == first, "a version that moves by itself remembers nothing"
    reader = sqlite3.connect(database)  # reading changes nothing
    assert reader.execute('SELECT count(*) FROM "user"').fetchone()[0] == 2
    reader.close()
    assert check.version() == first
    seen = {first}
    for sql in ('DELETE FROM "user" WHERE username = \'leaving\'', 'UPDATE "user" SET "hashPassword" = \'z\'',
                'INSERT INTO "user" VALUES (\'new\', \'w\')'):
        commit(database, sql)
        now = check.version()
        assert now is not None and now not in seen, f"{sql} left the version at {now}"
        seen.add(now)
        assert check.version() == now


def test_rollback_journal_mode_is_read_from_the_header_without_sqlite(tmp_path: Path, check_of) -> None:
    # IvoryOS's own mode: the version is the header's change counter, read with one pread
    database = tmp_path / "ivoryos.db"
    make_users(database)
    header = database.read_bytes()[:100]
    assert header[18] == header[19] == 1, "not a rollback-journal database"
    check = check_of(database)
    version = check.version()
    assert version is not None and version[1] == int.from_bytes(header[24:28], "big")
    commit(database, 'DELETE FROM "user"')
    counter = int.from_bytes(database.read_bytes()[24:28], "big")
    assert check.version() == (version[0], counter) and counter != version[1]


def test_a_database_switched_to_wal_while_running_is_still_followed(tmp_path: Path, check_of) -> None:
    database = tmp_path / "ivoryos.db"
    make_users(database)
    check = check_of(database)
    before = check.version()
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.close()
    after = check.version()
    assert after is not None and after != before
    commit(database, 'DELETE FROM "user" WHERE username = \'leaving\'')  # the header's counter stays in WAL
    assert check.version() not in (None, after)


def test_a_replaced_file_is_read_anew(tmp_path: Path, check_of) -> None:
    database, other = tmp_path / "ivoryos.db", tmp_path / "restored.db"
    make_users(database)
    make_users(other)
    check = check_of(database)
    before = check.version()
    os.replace(other, database)  # the same bytes' counter, another file
    after = check.version()
    assert after is not None and after != before


def test_no_version_is_told_for_a_file_that_is_not_a_database(tmp_path: Path, check_of) -> None:
    # (an empty file is an empty SQLite database: SQLite's own data_version answers for it)
    database = tmp_path / "ivoryos.db"
    database.write_bytes(b"not a database at all" * 10)
    assert check_of(database).version() is None  # then nothing is remembered: Flask-Login is asked each time
    assert check_of(tmp_path / "missing.db").version() is None
    assert check_of(None).version() is None
