"""The daemon's durable state: the webhook inbox, per-sheet row state and a small key/value meta.

Everything lives in one SQLite file in ``state_dir``. A webhook is acknowledged only after its
row is committed with ``synchronous=FULL`` in WAL mode, so an acknowledged event survives
``kill -9`` and power loss. All database work runs on one dedicated thread: the asyncio loop
never blocks on disk I/O and the connection is never shared between threads.

Concurrent ``enqueue`` calls are group-committed: while one transaction is being written, the
next callers queue up and are committed together in the following one, so one fsync
acknowledges many webhooks. The store only ever sees event names, canonical resource URLs and
webhook bodies, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from syncd.core.errors import StateStoreError

DB_FILENAME = "syncd.db"
#: Default wait for a lock held by another process (e.g. ``syncd replay``) before giving up.
DEFAULT_BUSY_TIMEOUT = 5.0
#: Longest error text kept per event; enough for a diagnosis, bounded against huge messages.
MAX_ERROR_LENGTH = 2000

T = TypeVar("T")

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
)
SCHEMA_VERSION = len(_MIGRATIONS)

_EVENT_COLUMNS = "id, event, url, kind, body, received_at, attempts"
#: The same columns as JSON: the body as the object it is, the time as text that round-trips.
_EVENT_AS_JSON = "id, event, url, kind, json(body), printf('%!.17g', received_at), attempts"
#: Inserts a JSON array of [received_at, event, url, kind, body] rows, due at once.
_INSERT_EVENTS = """
    INSERT INTO inbox (received_at, event, url, kind, body, next_attempt_at, updated_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
        json_extract(value, '$[3]'), json_extract(value, '$[4]'),
        json_extract(value, '$[0]'), json_extract(value, '$[0]')
    FROM json_each(?) ORDER BY key
"""
#: Upserts a JSON array of [sheet, url, fingerprint, deleted_at] rows, written at ?1.
_UPSERT_ROW_STATES = """
    INSERT INTO row_states (sheet, url, fingerprint, deleted_at, written_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?1
    FROM json_each(?2) WHERE true
    ON CONFLICT (sheet, url) DO UPDATE SET
        fingerprint = excluded.fingerprint,
        deleted_at = excluded.deleted_at,
        written_at = excluded.written_at
"""


class StoreUnavailable(StateStoreError):
    """The state database cannot take the operation right now (disk full, locked, read-only).

    Nothing the failed call tried to write was stored; the caller may retry later.
    """


@dataclass(frozen=True)
class InboxEvent:
    """One stored webhook, as handed to the worker."""

    id: int
    event: str
    url: str
    kind: str
    body: dict[str, Any]
    received_at: float
    attempts: int


@dataclass(frozen=True)
class RowState:
    """What the daemon last wrote for one URL in one worksheet."""

    fingerprint: str | None
    deleted_at: str | None


@dataclass(frozen=True)
class StoreStats:
    pending: int
    #: Pending events whose next attempt is due now.
    due: int
    dead: int
    done: int
    oldest_pending_at: float | None


@dataclass(frozen=True)
class DeadLetter:
    id: int
    event: str
    url: str
    attempts: int
    last_error: str | None
    received_at: float


_NO_ROW_STATES: Mapping[str, Mapping[str, RowState]] = MappingProxyType({})
_Intake = list[tuple[tuple[Any, ...], asyncio.Future[int]]]


class Store:
    """Async facade over the SQLite state database; create it with :meth:`Store.open`."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection, readonly: bool
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._executor = executor
        self._conn = conn
        self._closed = False
        self._intake: _Intake = []
        self._committer: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        readonly: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Store:
        """Open (creating and migrating when writable) the database in ``state_dir``.

        ``readonly=True`` is for inspecting a database another process (the daemon) is
        using, e.g. ``syncd status``; it never creates or migrates anything.
        Raises StateStoreError with one sentence saying what to do.
        """
        path = Path(state_dir) / DB_FILENAME
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-store")
        try:
            conn = executor.submit(_connect, path, readonly, busy_timeout).result()
        except BaseException:
            executor.shutdown()
            raise
        return cls(path, executor, conn, readonly)

    async def close(self) -> None:
        """Finish the commit in progress, so its callers get their answer, then close.

        Stop taking webhooks first: calls after this raise StoreUnavailable.
        """
        if self._closed:
            return
        if self._committer is not None and not self._committer.done():
            await self._committer
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- intake ---------------------------------------------------------------------------

    async def enqueue(self, event: str, url: str, kind: str, body: Mapping[str, Any]) -> int:
        """Store one webhook and return its id; returns only once the row is committed.

        Raises StoreUnavailable when the commit failed; the event is then not stored.
        """
        now = time.time()
        row = (now, event, url, kind, json.dumps(body, separators=(",", ":"), allow_nan=False))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._intake.append((row, future))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_intake(), name="syncd-store-intake")
        return await future

    async def _commit_intake(self) -> None:
        """Commit everything queued while the previous commit ran, as one transaction."""
        while self._intake:
            batch, self._intake = self._intake, []
            try:
                ids = await self._call(self._insert_events, [row for row, _ in batch])
            except BaseException as exc:
                _fail_waiters(batch, exc)
                if not isinstance(exc, Exception):
                    _fail_waiters(self._intake, exc)
                    raise
                continue
            for (_, future), event_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(event_id)

    def _insert_events(self, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert the batch as one statement, which in autocommit mode is its own transaction.

        One statement, not an executemany: the sqlite3 module releases and re-takes the GIL
        around every row it steps, and under load each re-take waits for the busy event
        loop, which made a commit of 50 webhooks take milliseconds. AUTOINCREMENT numbers
        the rows consecutively in array order, so the last row id gives every id.
        """
        cursor = self._conn.execute(_INSERT_EVENTS, (_json_param(rows),))
        last = cursor.lastrowid
        assert last is not None
        return list(range(last - len(rows) + 1, last + 1))

    # -- worker side ----------------------------------------------------------------------

    async def claim_due(self, limit: int, now: float | None = None) -> list[InboxEvent]:
        """Up to ``limit`` pending events due at ``now``, oldest first.

        Claiming marks nothing: an event stays pending, and is returned again, until
        complete, reschedule or dead_letter settles it. So a batch the worker gathers over
        several calls, or abandons in a crash, is never lost.
        """
        return await self._call(self._due_rows, time.time() if now is None else now, limit)

    def _due_rows(self, now: float, limit: int) -> list[InboxEvent]:
        return self._select_events(
            "status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?", (now, limit)
        )

    async def claim_due_for_urls(
        self, urls: Iterable[str], exclude: Iterable[int], limit: int, now: float | None = None
    ) -> list[InboxEvent]:
        """Up to ``limit`` pending events due at ``now`` about any of ``urls``, oldest first,
        leaving out the ids in ``exclude`` (those already claimed). Claims like claim_due."""
        return await self._call(
            self._due_rows_for_urls,
            time.time() if now is None else now,
            json.dumps(list(urls)),
            json.dumps(list(exclude)),
            limit,
        )

    def _due_rows_for_urls(
        self, now: float, urls: str, exclude: str, limit: int
    ) -> list[InboxEvent]:
        return self._select_events(
            "status = 'pending' AND next_attempt_at <= ?"
            " AND url IN (SELECT value FROM json_each(?))"
            " AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?",
            (now, urls, exclude, limit),
        )

    def _select_events(self, condition: str, params: tuple[Any, ...]) -> list[InboxEvent]:
        """Inbox rows as events, read as one JSON array in one step rather than row by row
        (see _insert_events: each row would cost the busy event loop a GIL hand-over), and
        turned into events here on the database thread, not on the event loop."""
        (text,) = self._conn.execute(
            f"SELECT json_group_array(json_array({_EVENT_AS_JSON})) FROM"
            f" (SELECT {_EVENT_COLUMNS} FROM inbox WHERE {condition})",
            params,
        ).fetchone()
        events = [
            InboxEvent(event_id, event, url, kind, body, float(received_at), attempts)
            for event_id, event, url, kind, body, received_at, attempts in json.loads(text)
        ]
        return sorted(events, key=attrgetter("id"))  # an aggregate promises no order

    async def next_due_at(self) -> float | None:
        """When the earliest pending event is due (may be in the past), or None."""
        return await self._call(self._earliest_due)

    def _earliest_due(self) -> float | None:
        return self._conn.execute(
            "SELECT min(next_attempt_at) FROM inbox WHERE status = 'pending'"
        ).fetchone()[0]

    async def complete(
        self,
        ids: Iterable[int],
        row_states: Mapping[str, Mapping[str, RowState]] = _NO_ROW_STATES,
    ) -> None:
        """Mark events done and save the rows written for them, in one transaction.

        Atomic on purpose: a crash between the two would either re-run events whose rows
        are recorded or mark events done whose rows the daemon does not know it wrote.
        """
        states = [
            (sheet, url, state.fingerprint, state.deleted_at)
            for sheet, by_url in row_states.items()
            for url, state in by_url.items()
        ]
        await self._call(self._complete, list(ids), states)

    def _complete(self, ids: list[int], states: list[tuple[Any, ...]]) -> None:
        now = time.time()
        ids_param, states_param = _json_param(ids), _json_param(states)
        # One statement per table rather than per row: see _insert_events.
        with _write_transaction(self._conn) as conn:
            conn.execute(
                "UPDATE inbox SET status = 'done', updated_at = ?"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (now, ids_param),
            )
            conn.execute(_UPSERT_ROW_STATES, (now, states_param))

    async def reschedule(self, ids: Iterable[int], error: str, next_attempt_at: float) -> None:
        """Record a failed attempt and when to try again."""
        await self._call(
            self._update_pending,
            list(ids),
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error[:MAX_ERROR_LENGTH], next_attempt_at),
        )

    async def dead_letter(self, ids: Iterable[int], error: str) -> None:
        """Record a final failed attempt and give up on the events until a replay."""
        await self._call(
            self._update_pending,
            list(ids),
            "status = 'dead', attempts = attempts + 1, last_error = ?",
            (error[:MAX_ERROR_LENGTH],),
        )

    def _update_pending(self, ids: list[int], assignments: str, values: tuple[Any, ...]) -> None:
        now = time.time()
        with _write_transaction(self._conn) as conn:
            conn.executemany(
                f"UPDATE inbox SET {assignments}, updated_at = ?"
                " WHERE id = ? AND status = 'pending'",
                [(*values, now, event_id) for event_id in ids],
            )

    async def row_states(self, sheet: str, urls: Iterable[str]) -> dict[str, RowState]:
        """The known state of the given URLs in one worksheet (unknown URLs are left out)."""
        return await self._call(
            self._select_row_states,
            " AND url IN (SELECT value FROM json_each(?))",
            (sheet, json.dumps(list(urls))),
        )

    async def all_row_states(self, sheet: str) -> dict[str, RowState]:
        return await self._call(self._select_row_states, "", (sheet,))

    def _select_row_states(self, condition: str, params: tuple[Any, ...]) -> dict[str, RowState]:
        rows = self._conn.execute(
            f"SELECT url, fingerprint, deleted_at FROM row_states WHERE sheet = ?{condition}",
            params,
        )
        return {url: RowState(fingerprint, deleted_at) for url, fingerprint, deleted_at in rows}

    # -- status and operations ------------------------------------------------------------

    async def stats(self, now: float | None = None) -> StoreStats:
        return await self._call(self._stats, time.time() if now is None else now)

    def _stats(self, now: float) -> StoreStats:
        counts = {"pending": 0, "dead": 0, "done": 0}
        due, oldest = 0, None
        for status, count, pending_due, earliest in self._conn.execute(
            "SELECT status, count(*), sum(next_attempt_at <= ?), min(received_at)"
            " FROM inbox GROUP BY status",
            (now,),
        ):
            counts[status] = count
            if status == "pending":
                due, oldest = pending_due, earliest
        return StoreStats(due=due, oldest_pending_at=oldest, **counts)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._call(self._dead_letters, limit)

    def _dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self._conn.execute(
            "SELECT id, event, url, attempts, last_error, received_at FROM inbox"
            " WHERE status = 'dead' ORDER BY id LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    async def replay(self, ids: Sequence[int] | None = None, event: str | None = None) -> int:
        """Make dead events pending and due now with a fresh attempt count; returns how many.

        ``ids`` and ``event`` narrow the selection (both: both must match); neither: all dead.
        """
        conditions, params = ["status = 'dead'"], []
        if ids is not None:
            conditions.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(ids)))
        if event is not None:
            conditions.append("event = ?")
            params.append(event)
        return await self._call(self._replay, " AND ".join(conditions), params)

    def _replay(self, condition: str, params: list[Any]) -> int:
        now = time.time()
        with _write_transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE inbox SET status = 'pending', attempts = 0, last_error = NULL,"
                f" next_attempt_at = ?, updated_at = ? WHERE {condition}",
                [now, now, *params],
            ).rowcount

    async def prune_done(self, older_than_seconds: float) -> int:
        """Delete done events settled longer ago than the retention period; returns how many."""
        return await self._call(self._prune_done, time.time() - older_than_seconds)

    def _prune_done(self, cutoff: float) -> int:
        with _write_transaction(self._conn) as conn:
            return conn.execute(
                "DELETE FROM inbox WHERE status = 'done' AND updated_at < ?", (cutoff,)
            ).rowcount

    async def get_meta(self, key: str, default: Any = None) -> Any:
        row = await self._call(self._get_meta, key)
        return default if row is None else json.loads(row[0])

    def _get_meta(self, key: str) -> tuple[str] | None:
        return self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()

    async def set_meta(self, key: str, value: Any) -> None:
        """Save a JSON-serialisable value under ``key``, replacing any previous one."""
        await self.set_meta_many({key: value})

    async def set_meta_many(self, values: Mapping[str, Any]) -> None:
        """Save several meta values in one transaction (one fsync instead of one per key)."""
        texts = [(key, json.dumps(value, allow_nan=False)) for key, value in values.items()]
        await self._call(self._set_meta_many, texts)

    def _set_meta_many(self, texts: list[tuple[str, str]]) -> None:
        now = time.time()
        with _write_transaction(self._conn) as conn:
            conn.executemany(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [(key, text, now) for key, text in texts],
            )

    async def meta_items(self, prefix: str) -> dict[str, Any]:
        """Every meta value whose key starts with ``prefix``, by key (for ``syncd status``)."""
        rows = await self._call(self._meta_items, prefix)
        return {key: json.loads(text) for key, text in rows}

    def _meta_items(self, prefix: str) -> list[tuple[str, str]]:
        return self._conn.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the database thread; SQLite failures become StoreUnavailable."""
        if self._closed:
            raise StoreUnavailable(f"the state database {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"the state database {self.path} is unavailable ({exc}); check free disk "
                f"space, its permissions and that no other program holds it locked"
            ) from exc


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front and rolls back on any error.

    IMMEDIATE avoids the deadlock of two connections each upgrading a read to a write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _json_param(value: Any) -> str:
    """Rows as one JSON statement parameter; a value JSON cannot hold is refused like a
    parameter SQLite cannot bind (so the caller gets StoreUnavailable, nothing is written)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise sqlite3.InterfaceError(f"cannot store {exc}") from None


def _fail_waiters(batch: _Intake, exc: BaseException) -> None:
    """Tell every caller still waiting on ``batch`` that its event was not stored."""
    reason = str(exc) if isinstance(exc, StoreUnavailable) else f"storing failed: {exc!r}"
    for _, future in batch:
        if not future.done():
            future.set_exception(StoreUnavailable(reason))
    batch.clear()


# -- opening (runs on the database thread) -------------------------------------------------


def _connect(path: Path, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    if readonly:
        if not path.is_file():
            raise StateStoreError(
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
    with _write_transaction(conn):
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
    if version < SCHEMA_VERSION and not allow_older:
        raise StateStoreError(
            f"The state database {path} is not initialised or uses an older schema "
            f"(version {version}); start the daemon once to set it up."
        )
    return version


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
