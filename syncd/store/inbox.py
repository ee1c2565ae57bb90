"""The webhook inbox: events from intake to done, retried or dead-lettered.

A webhook is acknowledged only after its row is committed. Concurrent ``enqueue`` calls are
group-committed: while one transaction is being written, the next callers queue up and are
committed together in the following one, so one fsync acknowledges many webhooks. The inbox
only ever sees event names, canonical resource URLs and webhook bodies, never a secret.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from syncd.store.connection import Connection, StoreUnavailable, json_param, write_transaction
from syncd.store.rows import NO_ROW_STATES, RowStatesBySheet, row_state_rows, upsert_row_states

#: Longest error text kept per event; enough for a diagnosis, bounded against huge messages.
MAX_ERROR_LENGTH = 2000

_EVENT_COLUMNS = "id, event, url, kind, body, received_at, attempts, space"
#: The same columns as JSON: the body as the object it is, the time as text that round-trips.
_EVENT_AS_JSON = "id, event, url, kind, json(body), printf('%!.17g', received_at), attempts, space"
#: Inserts a JSON array of [received_at, event, url, kind, body, space] rows, due at once.
_INSERT_EVENTS = """
    INSERT INTO inbox (received_at, event, url, kind, body, space, next_attempt_at, updated_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
        json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
        json_extract(value, '$[0]'), json_extract(value, '$[0]')
    FROM json_each(?) ORDER BY key
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
    #: The subdomain of the space whose subscription delivered it.
    space: str = ""


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


_Intake = list[tuple[tuple[Any, ...], asyncio.Future[int]]]


class Inbox(Connection):
    """Intake, the worker's claims and settlements, and the operator's view and replay."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection, readonly: bool
    ) -> None:
        super().__init__(path, executor, conn, readonly)
        self._intake: _Intake = []
        self._committer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Finish the commit in progress, so its callers get their answer, then close.

        Stop taking webhooks first: calls after this raise StoreUnavailable.
        """
        if self._committer is not None and not self._committer.done():
            await self._committer
        await super().close()

    # -- intake ---------------------------------------------------------------------------

    async def enqueue(
        self, event: str, url: str, kind: str, body: Mapping[str, Any], space: str = ""
    ) -> int:
        """Store one webhook (delivered for ``space``) and return its id; returns only once the
        row is committed.

        Raises StoreUnavailable when the commit failed; the event is then not stored.
        """
        now = time.time()
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        row = (now, event, url, kind, text, space)
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
        cursor = self._conn.execute(_INSERT_EVENTS, (json_param(rows),))
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
            InboxEvent(event_id, event, url, kind, body, float(received_at), attempts, space)
            for event_id, event, url, kind, body, received_at, attempts, space in json.loads(text)
        ]
        return sorted(events, key=attrgetter("id"))  # an aggregate promises no order

    async def next_due_at(self) -> float | None:
        """When the earliest pending event is due (may be in the past), or None."""
        return await self._call(self._earliest_due)

    def _earliest_due(self) -> float | None:
        due: float | None = self._conn.execute(
            "SELECT min(next_attempt_at) FROM inbox WHERE status = 'pending'"
        ).fetchone()[0]
        return due

    async def complete(
        self, ids: Iterable[int], row_states: RowStatesBySheet = NO_ROW_STATES
    ) -> None:
        """Mark events done and save the rows written for them, in one transaction.

        Atomic on purpose: a crash between the two would either re-run events whose rows
        are recorded or mark events done whose rows the daemon does not know it wrote.
        """
        await self._call(self._complete, list(ids), row_state_rows(row_states))

    def _complete(self, ids: list[int], states: list[tuple[Any, ...]]) -> None:
        now = time.time()
        ids_param, states_param = json_param(ids), json_param(states)
        # One statement per table rather than per row: see _insert_events.
        with write_transaction(self._conn) as conn:
            conn.execute(
                "UPDATE inbox SET status = 'done', updated_at = ?"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (now, ids_param),
            )
            upsert_row_states(conn, states_param, now)

    async def reschedule(self, ids: Iterable[int], error: str, next_attempt_at: float) -> None:
        """Record a failed attempt and when to try again."""
        await self._call(
            self._update_pending,
            list(ids),
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error[:MAX_ERROR_LENGTH], next_attempt_at),
        )

    async def postpone(self, ids: Iterable[int], reason: str, next_attempt_at: float) -> None:
        """Hold events until ``next_attempt_at`` without counting an attempt (a pause)."""
        await self._call(
            self._update_pending,
            list(ids),
            "last_error = ?, next_attempt_at = ?",
            (reason[:MAX_ERROR_LENGTH], next_attempt_at),
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
        with write_transaction(self._conn) as conn:
            conn.executemany(
                f"UPDATE inbox SET {assignments}, updated_at = ?"
                " WHERE id = ? AND status = 'pending'",
                [(*values, now, event_id) for event_id in ids],
            )

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
        with write_transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE inbox SET status = 'pending', attempts = 0, last_error = NULL,"
                f" next_attempt_at = ?, updated_at = ? WHERE {condition}",
                [now, now, *params],
            ).rowcount

    async def prune_done(self, older_than_seconds: float) -> int:
        """Delete done events settled longer ago than the retention period; returns how many."""
        return await self._call(self._prune_done, time.time() - older_than_seconds)

    def _prune_done(self, cutoff: float) -> int:
        with write_transaction(self._conn) as conn:
            return conn.execute(
                "DELETE FROM inbox WHERE status = 'done' AND updated_at < ?", (cutoff,)
            ).rowcount


def _fail_waiters(batch: _Intake, exc: BaseException) -> None:
    """Tell every caller still waiting on ``batch`` that its event was not stored."""
    reason = str(exc) if isinstance(exc, StoreUnavailable) else f"storing failed: {exc!r}"
    for _, future in batch:
        if not future.done():
            future.set_exception(StoreUnavailable(reason))
    batch.clear()
