"""Opening the state database file: creating it private, its schema and migrations, and the
checks that refuse a damaged or too-new file with one sentence saying what to do.

Writable connections use WAL with ``synchronous=FULL``, so a committed row survives
``kill -9`` and power loss. Everything here runs on the database thread.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from syncd.core.errors import StateStoreError
from syncd.store.connection import write_transaction

DB_FILENAME = "syncd.db"

#: Migration N (0-based) takes the schema from version N to N + 1; the version is the count.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at REAL NOT NULL,
            event TEXT NOT NULL,
            url TEXT NOT NULL,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at REAL NOT NULL,
            last_error TEXT,
            updated_at REAL NOT NULL
        )
        """,
        # The worker's hot path: due pending events, and the earliest next attempt.
        "CREATE INDEX inbox_pending ON inbox (next_attempt_at, id) WHERE status = 'pending'",
        # Status counts, dead-letter listing and pruning of old done events.
        "CREATE INDEX inbox_status ON inbox (status, updated_at)",
        """
        CREATE TABLE row_states (
            sheet TEXT NOT NULL,
            url TEXT NOT NULL,
            fingerprint TEXT,
            deleted_at TEXT,
            written_at REAL NOT NULL,
            PRIMARY KEY (sheet, url)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    (
        # When Cobot's data a row holds was observed: older data never replaces newer.
        "ALTER TABLE row_states ADD COLUMN observed_at REAL",
        # Rows written before: observed no later than they were written.
        "UPDATE row_states SET observed_at = written_at",
    ),
    (
        # The cells each row was last written with: a column a person deleted is refilled
        # from here. Rows written before are refilled with their Deleted stamp only.
        "ALTER TABLE row_states ADD COLUMN cells TEXT",
    ),
    (
        # The local copy: the last Cobot state of every synced resource, so a changed mapping
        # is re-rendered and a row's member is joined without asking Cobot.
        """
        CREATE TABLE resources (
            url TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            ident TEXT NOT NULL,
            space TEXT NOT NULL DEFAULT '',
            member_id TEXT,
            body TEXT,
            observed_at REAL NOT NULL,
            deleted_at TEXT
        ) WITHOUT ROWID
        """,
        "CREATE INDEX resources_kind ON resources (kind, ident)",
        "CREATE INDEX resources_member ON resources (member_id) WHERE member_id IS NOT NULL",
    ),
    (
        # The space whose subscription delivered each webhook (several spaces in one daemon).
        "ALTER TABLE inbox ADD COLUMN space TEXT NOT NULL DEFAULT ''",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StateNotCreated(StateStoreError):
    """No daemon has set up a state database at the path yet: an empty state, not a fault."""


def connect(path: Path, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path``; writable: create and migrate it, read-only: only check its version."""
    if readonly:
        if not path.is_file():
            raise StateNotCreated(
                f"There is no state database at {path}; check state_dir, or start the daemon "
                f"once to create it."
            )
        target = f"{path.resolve().as_uri()}?mode=ro"
    else:
        _prepare_files(path)
        target = str(path)
    try:
        conn = sqlite3.connect(target, uri=readonly, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from None
    try:
        if readonly:
            _check_version(conn, path)
        else:
            _configure_and_migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_error(path, exc) from None
        raise
    return conn


def _prepare_files(path: Path) -> None:
    """Create the state directory (0700) and database file (0600): the inbox holds personal
    data from webhook bodies. SQLite gives its -wal and -shm files the database's mode."""
    directory = path.parent
    try:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise StateStoreError(
            f"Cannot create the state database {path} ({exc.strerror or exc}); create "
            f"state_dir and make it writable for the daemon's user."
        ) from None


def _configure_and_migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL syncs the WAL on every commit: an acknowledged webhook survives power loss.
    conn.execute("PRAGMA synchronous = FULL")
    (check,) = conn.execute("PRAGMA quick_check").fetchone()
    if check != "ok":
        raise _corrupt_error(path, check)
    with write_transaction(conn):
        # Read inside the write lock so two processes starting together migrate once.
        version = _check_version(conn, path, allow_older=True)
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _check_version(conn: sqlite3.Connection, path: Path, allow_older: bool = False) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StateStoreError(
            f"The state database {path} was written by a newer cobot-syncd (schema {version}, "
            f"this one knows up to {SCHEMA_VERSION}); upgrade cobot-syncd or set state_dir to "
            f"another directory."
        )
    if version == 0 and not allow_older:
        raise StateNotCreated(
            f"The state database {path} is not initialised; start the daemon once to set it up."
        )
    if version < SCHEMA_VERSION and not allow_older:
        raise StateStoreError(
            f"The state database {path} is not initialised or uses an older schema "
            f"(version {version}); start the daemon once to set it up."
        )
    return int(version)


def _open_error(path: Path, exc: sqlite3.Error) -> StateStoreError:
    if isinstance(exc, sqlite3.OperationalError):
        return StateStoreError(
            f"Cannot open the state database {path} ({exc}); check its permissions, free disk "
            f"space and that no other program holds it locked."
        )
    return _corrupt_error(path, str(exc))


def _corrupt_error(path: Path, reason: str) -> StateStoreError:
    return StateStoreError(
        f"The state database {path} is damaged ({reason}); move it aside to start with an "
        f"empty inbox (then run `syncd backfill`), or restore it from a backup."
    )
