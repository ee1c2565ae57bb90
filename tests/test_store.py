"""The durable inbox and state store: intake, worker lifecycle, schema and file safety."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from syncd.core.errors import StateStoreError
from syncd.store.connection import StoreUnavailable
from syncd.store.database import Store
from syncd.store.inbox import DeadLetter
from syncd.store.meta import (
    LastError,
    LastWrite,
    ResyncCheckpoint,
    ResyncRun,
    SafetyStop,
    SubscriptionCheck,
)
from syncd.store.rows import RowState
from syncd.store.schema import DB_FILENAME, SCHEMA_VERSION

REPO = Path(__file__).resolve().parent.parent
MEMBERSHIP = "https://co-up.cobot.me/api/memberships/{}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    opened = Store.open(state_dir, busy_timeout=0.1)
    yield opened
    await opened.close()


async def enqueue(store: Store, n: int, event: str = "created_membership") -> int:
    url = MEMBERSHIP.format(n)
    return await store.enqueue(event, url, "membership", {"url": url, "n": n})


def count_commits(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every intake transaction."""
    sizes: list[int] = []
    original = store._insert_events

    def counting(rows: list[tuple[Any, ...]]) -> list[int]:
        sizes.append(len(rows))
        return original(rows)

    monkeypatch.setattr(store, "_insert_events", counting)
    return sizes


def hold_write_lock(state_dir: Path) -> sqlite3.Connection:
    """Another process's connection holding the write lock (like a long `syncd replay`)."""
    conn = sqlite3.connect(state_dir / DB_FILENAME, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


# -- files and schema ------------------------------------------------------------------------


async def test_creates_private_directory_and_files(store: Store, state_dir: Path) -> None:
    await enqueue(store, 1)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for name in (DB_FILENAME, f"{DB_FILENAME}-wal"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600


async def test_uses_wal_and_full_sync(store: Store) -> None:
    def pragmas() -> tuple[str, int]:
        conn = store._conn
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    assert await store._call(pragmas) == ("wal", 2)


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateStoreError, match="Cannot create the state database"):
        Store.open(blocker / "state")


async def test_newer_schema_is_refused(state_dir: Path) -> None:
    await Store.open(state_dir).close()
    with sqlite3.connect(state_dir / DB_FILENAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for readonly in (False, True):
        with pytest.raises(StateStoreError, match="newer cobot-syncd") as caught:
            Store.open(state_dir, readonly=readonly)
        assert caught.value.__cause__ is None
        assert "upgrade cobot-syncd" in str(caught.value)


def test_garbage_file_is_refused(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / DB_FILENAME).write_bytes(os.urandom(8192))
    for readonly in (False, True):
        with pytest.raises(StateStoreError, match=r"is damaged.*move it aside"):
            Store.open(state_dir, readonly=readonly)


async def test_damaged_pages_are_refused(state_dir: Path) -> None:
    async with Store.open(state_dir) as store:
        for n in range(300):
            await enqueue(store, n)
    path = state_dir / DB_FILENAME
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 6 * page] = os.urandom(4 * page)
    path.write_bytes(bytes(data))
    with pytest.raises(StateStoreError, match="is damaged"):
        Store.open(state_dir)


async def test_reopening_keeps_schema(state_dir: Path) -> None:
    await Store.open(state_dir).close()
    await Store.open(state_dir).close()
    with sqlite3.connect(state_dir / DB_FILENAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_rows_written_before_observation_times_count_as_observed_when_written(
    state_dir: Path,
) -> None:
    url = MEMBERSHIP.format(1)
    await Store.open(state_dir).close()
    with sqlite3.connect(state_dir / DB_FILENAME) as conn:  # as the first schema left it
        for column in ("observed_at", "cells"):
            conn.execute(f"ALTER TABLE row_states DROP COLUMN {column}")
        conn.execute("DROP TABLE resources")
        conn.execute("ALTER TABLE inbox DROP COLUMN space")
        conn.execute(
            "INSERT INTO row_states (sheet, url, fingerprint, deleted_at, written_at)"
            " VALUES ('Members', ?, 'f', NULL, 1234.5)",
            (url,),
        )
        conn.execute("PRAGMA user_version = 1")
    async with Store.open(state_dir) as store:
        assert await store.row_states("Members", [url]) == {url: RowState("f", None, 1234.5)}


# -- read-only access ----------------------------------------------------------------------


async def test_readonly_reads_while_the_daemon_writes(store: Store, state_dir: Path) -> None:
    await enqueue(store, 1)
    async with Store.open(state_dir, readonly=True) as reader:
        assert (await reader.stats()).pending == 1
        await enqueue(store, 2)
        assert (await reader.stats()).pending == 2
        with pytest.raises(StoreUnavailable, match="readonly"):
            await enqueue(reader, 3)
        with pytest.raises(StoreUnavailable):
            await reader.meta.record_subscription_check("co-up", SubscriptionCheck(1.0, "ok", []))
    assert (await store.stats()).pending == 2


async def test_readonly_after_the_daemon_stopped(state_dir: Path) -> None:
    async with Store.open(state_dir) as writer:
        await enqueue(writer, 1)
    async with Store.open(state_dir, readonly=True) as reader:
        assert (await reader.stats()).pending == 1


def test_readonly_without_database_is_a_clear_error(state_dir: Path) -> None:
    with pytest.raises(StateStoreError, match="no state database"):
        Store.open(state_dir, readonly=True)
    assert not state_dir.exists()


# -- intake ----------------------------------------------------------------------------------


async def test_group_commit_batches_concurrent_enqueues(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_commits(store, monkeypatch)
    ids = await asyncio.gather(*(enqueue(store, n) for n in range(200)))
    assert len(set(ids)) == 200
    assert sum(sizes) == 200
    assert len(sizes) <= 3
    events = await store.claim_due(1000)
    assert [e.id for e in events] == sorted(ids)
    assert [e.body["n"] for e in events] == list(range(200))


async def test_enqueue_resolves_only_after_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_commits(store, monkeypatch)
    event_id = await enqueue(store, 1)
    assert sizes == [1]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT id FROM inbox").fetchall() == [(event_id,)]


async def test_locked_database_fails_every_waiter_and_stores_nothing(
    store: Store, state_dir: Path
) -> None:
    locker = hold_write_lock(state_dir)
    try:
        results = await asyncio.gather(
            *(enqueue(store, n) for n in range(20)), return_exceptions=True
        )
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert "database is locked" in str(results[0])
    assert (await store.stats()).pending == 0
    assert await enqueue(store, 99) > 0


async def test_full_disk_fails_the_batch(store: Store) -> None:
    def cap_size() -> None:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")

    await store._call(cap_size)
    big = {"url": MEMBERSHIP.format(1), "padding": "x" * 60_000}
    with pytest.raises(StoreUnavailable, match="full"):
        await store.enqueue("deleted_membership", big["url"], "membership", big)
    assert (await store.stats()).pending == 0


async def test_closed_store_is_unavailable(state_dir: Path) -> None:
    store = Store.open(state_dir)
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await enqueue(store, 1)


async def test_close_lets_waiting_enqueues_finish(state_dir: Path) -> None:
    store = Store.open(state_dir)
    waiting = [asyncio.create_task(enqueue(store, n)) for n in range(10)]
    await asyncio.sleep(0)
    await store.close()
    ids = [await task for task in waiting]
    async with Store.open(state_dir, readonly=True) as reader:
        assert sorted(e.id for e in await reader.claim_due(100)) == sorted(ids)


DURABILITY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from syncd.store.database import Store

async def main():
    store = Store.open(Path(sys.argv[1]))
    async def one(n):
        url = f"https://co-up.cobot.me/api/memberships/{n}"
        event_id = await store.enqueue("created_membership", url, "membership", {"url": url})
        sys.stdout.write(f"{event_id}\\n")
        sys.stdout.flush()
    n = 0
    while True:
        await asyncio.gather(*(one(n + i) for i in range(25)))
        n += 25

asyncio.run(main())
"""


def test_acknowledged_events_survive_sigkill(state_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DURABILITY_SCRIPT, str(state_dir)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 300:
            proc.send_signal(signal.SIGKILL)
            break
    acknowledged += [int(line) for line in proc.stdout.read().split()]
    assert proc.wait(timeout=10) == -signal.SIGKILL

    async def stored_ids() -> set[int]:
        async with Store.open(state_dir) as store:
            return {event.id for event in await store.claim_due(100_000)}

    assert set(acknowledged) <= asyncio.run(stored_ids())


# -- worker lifecycle --------------------------------------------------------------------------


async def test_claim_due_returns_due_events_oldest_first_until_settled(store: Store) -> None:
    assert await store.next_due_at() is None
    ids = [await enqueue(store, n) for n in range(5)]
    first = await store.claim_due(2)
    assert [e.id for e in first] == ids[:2]
    assert first[0].body == {"url": MEMBERSHIP.format(0), "n": 0}
    assert (first[0].event, first[0].kind, first[0].attempts) == (
        "created_membership",
        "membership",
        0,
    )
    assert await store.next_due_at() == first[0].received_at
    assert [e.id for e in await store.claim_due(10)] == ids
    await store.complete(ids[:4])
    assert [e.id for e in await store.claim_due(10)] == ids[4:]
    assert await store.claim_due(10, now=first[0].received_at - 1) == []


async def test_complete_saves_row_states_with_the_events(store: Store) -> None:
    a, b = await enqueue(store, 1), await enqueue(store, 2)
    states = {
        "Members": {
            MEMBERSHIP.format(1): RowState("f1", None),
            MEMBERSHIP.format(2): RowState("f2", "2024-05-01T10:00:00Z"),
        },
        "Archive": {MEMBERSHIP.format(1): RowState("g1", None)},
    }
    await store.complete([a, b], states)
    stats = await store.stats()
    assert (stats.pending, stats.done) == (0, 2)
    assert await store.all_row_states("Members") == states["Members"]
    assert await store.row_states("Archive", [MEMBERSHIP.format(1), "unknown"]) == {
        MEMBERSHIP.format(1): RowState("g1", None)
    }
    await store.complete([], {"Members": {MEMBERSHIP.format(1): RowState("f3", None)}})
    assert (await store.row_states("Members", [MEMBERSHIP.format(1)]))[
        MEMBERSHIP.format(1)
    ] == RowState("f3", None)


async def test_written_cells_are_kept_and_a_partial_row_merges_into_them(store: Store) -> None:
    url = MEMBERSHIP.format(1)
    full = {"Name": "Ana", "Email": "ana@example.org", "Deleted": "", "URL": url}
    await store.complete([], {"Members": {url: RowState("f1", None, 1.0, full)}})
    deletion = {"Deleted": "2024-05-01T10:00:00Z", "URL": url}  # a deletion writes only these
    await store.complete([], {"Members": {url: RowState("f2", deletion["Deleted"], 2.0, deletion)}})

    (state,) = (await store.written_rows("Members")).values()
    assert state.cells == {**full, **deletion}
    assert state.deleted_at == deletion["Deleted"]
    assert (await store.row_states("Members", [url]))[url].fingerprint == "f2"


async def test_complete_is_atomic(store: Store) -> None:
    event_id = await enqueue(store, 1)
    unstorable = RowState(object(), None)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        await store.complete([event_id], {"Members": {MEMBERSHIP.format(1): unstorable}})
    assert (await store.stats()).pending == 1
    assert await store.all_row_states("Members") == {}
    assert [e.id for e in await store.claim_due(10)] == [event_id]


async def test_reschedule_delays_and_counts_attempts(store: Store) -> None:
    event_id = await enqueue(store, 1)
    (event,) = await store.claim_due(10)
    later = event.received_at + 60
    await store.reschedule([event_id], "Cobot answered 502", later)
    assert await store.next_due_at() == later
    assert await store.claim_due(10, now=later - 1) == []
    (retry,) = await store.claim_due(10, now=later)
    assert retry.attempts == 1
    stats = await store.stats(now=later - 1)
    assert (stats.pending, stats.due, stats.oldest_pending_at) == (1, 0, event.received_at)


async def test_dead_letter_and_replay(store: Store) -> None:
    ids = [await enqueue(store, n) for n in range(3)]
    other = await enqueue(store, 3, event="deleted_membership")
    await store.reschedule(ids, "timeout", 0)
    await store.dead_letter([*ids, other], "x" * 5000)
    stats = await store.stats()
    assert (stats.pending, stats.dead, stats.oldest_pending_at) == (0, 4, None)
    letters = await store.dead_letters(limit=2)
    assert letters[0] == DeadLetter(
        ids[0], "created_membership", MEMBERSHIP.format(0), 2, "x" * 2000, letters[0].received_at
    )
    assert len(letters) == 2

    assert await store.replay(event="deleted_membership") == 1
    assert await store.replay(ids=[ids[0]], event="deleted_membership") == 0
    assert await store.replay(ids=[ids[0]]) == 1
    assert await store.replay(ids=[]) == 0
    assert await store.replay() == 2
    assert await store.replay() == 0
    replayed = await store.claim_due(10)
    assert sorted(e.id for e in replayed) == sorted([*ids, other])
    assert {e.attempts for e in replayed} == {0}


async def test_settling_only_touches_pending_events(store: Store) -> None:
    event_id = await enqueue(store, 1)
    await store.dead_letter([event_id], "gone")
    await store.reschedule([event_id], "again", 0)
    (letter,) = await store.dead_letters()
    assert (letter.attempts, letter.last_error) == (1, "gone")


async def test_prune_done_keeps_recent_and_unfinished(store: Store) -> None:
    done, pending = await enqueue(store, 1), await enqueue(store, 2)
    await store.complete([done])
    assert await store.prune_done(older_than_seconds=3600) == 0
    assert await store.prune_done(older_than_seconds=-1) == 1
    stats = await store.stats()
    assert (stats.done, stats.pending) == (0, 1)
    assert [e.id for e in await store.claim_due(10)] == [pending]


# -- meta ------------------------------------------------------------------------------------


async def test_meta_records_round_trip(store: Store) -> None:
    meta = store.meta
    assert await meta.last_writes() == {}
    assert await meta.last_error() is None
    assert await meta.subscription_checks(["co-up"]) == {"co-up": None}
    await meta.record_flush({"Members": LastWrite(1.5, 2), "Invoices": LastWrite(1.5, 0)})
    await meta.record_flush({"Members": LastWrite(2.5, 3)}, LastError(2.5, "Sheets said 503"))
    assert await meta.last_writes() == {"Members": LastWrite(2.5, 3), "Invoices": LastWrite(1.5, 0)}
    assert await meta.last_error() == LastError(2.5, "Sheets said 503")
    await meta.record_subscription_check("co-up", SubscriptionCheck(3.0, None, ["Cobot 500"]))
    assert await meta.subscription_checks(["co-up", "co-down"]) == {
        "co-up": SubscriptionCheck(3.0, None, ["Cobot 500"]),
        "co-down": None,
    }

    run = ResyncRun(4.0, {"added": 2, "duration": 0.5, "resumed_from": "2024-05-01"})
    await meta.record_resync_run("full", "Members", run)
    assert await meta.resync_run("full", "Members") == run
    assert await meta.resync_run("recent", "Members") is None
    assert await meta.resync_schedule_start("full", "Members") is None
    await meta.start_resync_schedule("full", "Members", 5.0)
    assert await meta.resync_schedule_start("full", "Members") == 5.0
    checkpoint = ResyncCheckpoint(date(2024, 1, 1), date(2024, 12, 31), date(2024, 7, 1))
    await meta.save_resync_checkpoint("backfill", "Invoices", checkpoint)
    assert await meta.resync_checkpoint("backfill", "Invoices") == checkpoint
    await meta.save_resync_checkpoint("backfill", "Invoices", None)
    assert await meta.resync_checkpoint("backfill", "Invoices") is None
    await meta.save_safety_stop("Members", SafetyStop(6.0, 9, 10, "lacks 9 of 10"))
    assert await meta.safety_stop("Members") == SafetyStop(6.0, 9, 10, "lacks 9 of 10")
    await meta.save_safety_stop("Members", None)
    assert await meta.safety_stop("Members") is None
    assert set(await meta.resync_records()) == {
        "resync.last_run.full.Members",
        "resync.schedule_since.full.Members",
    }


async def test_meta_reads_what_earlier_versions_stored(store: Store, state_dir: Path) -> None:
    """The keys and JSON shapes are the on-disk format: a state_dir keeps its history."""
    stored = {
        "sheets.last_write.Members": {"time": 1.5, "rows": 3},
        "worker.last_error": {"time": 2.5, "error": "boom"},
        "subscriptions.last_check": {"time": 3.5, "summary": "0 created", "errors": []},
        "resync.last_run.full.Members": {"at": 4.5, "added": 1},
        "resync.schedule_since.recent.Invoices": 5.5,
        "resync.checkpoint.backfill.Invoices": {
            "run": {"since": "2024-01-01", "until": "2024-12-31"},
            "next": "2024-07-01",
        },
        "resync.safety_stop.Members": {"at": 6.5, "absent": 9, "rows": 10, "message": "lacks"},
        "resync.safety_stop.Invoices": None,  # cleared by an earlier version
        "sheets.last_write.Broken": {"rows": 3},  # not a last write: read as absent
    }
    with sqlite3.connect(state_dir / DB_FILENAME) as conn:
        conn.executemany(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, 0)",
            [(key, json.dumps(value)) for key, value in stored.items()],
        )
    meta = store.meta
    assert await meta.last_writes() == {"Members": LastWrite(1.5, 3)}
    assert await meta.last_error() == LastError(2.5, "boom")
    # One space's check, stored before spaces were recorded, is the first space's.
    assert await meta.subscription_checks(["co-up", "co-down"]) == {
        "co-up": SubscriptionCheck(3.5, "0 created", []),
        "co-down": None,
    }
    assert await meta.resync_run("full", "Members") == ResyncRun(4.5, {"added": 1})
    assert await meta.resync_schedule_start("recent", "Invoices") == 5.5
    assert await meta.resync_checkpoint("backfill", "Invoices") == ResyncCheckpoint(
        date(2024, 1, 1), date(2024, 12, 31), date(2024, 7, 1)
    )
    assert await meta.safety_stop("Members") == SafetyStop(6.5, 9, 10, "lacks")
    assert await meta.safety_stop("Invoices") is None
    records = {k: v for k, v in stored.items() if k.startswith("resync.") and v is not None}
    assert await meta.resync_records() == records

    await meta.record_flush({"Members": LastWrite(7.5, 4)}, LastError(7.5, "again"))
    await meta.record_subscription_check("co-up", SubscriptionCheck(7.5, "1 created", ["x"]))
    await meta.record_resync_run("full", "Members", ResyncRun(7.5, {"added": 2}))
    await meta.save_resync_checkpoint(
        "backfill",
        "Invoices",
        ResyncCheckpoint(date(2024, 1, 1), date(2024, 12, 31), date(2024, 8, 1)),
    )
    with sqlite3.connect(state_dir / DB_FILENAME) as conn:
        rows = dict(conn.execute("SELECT key, value FROM meta"))
    assert json.loads(rows["sheets.last_write.Members"]) == {"time": 7.5, "rows": 4}
    assert json.loads(rows["worker.last_error"]) == {"time": 7.5, "error": "again"}
    assert json.loads(rows["subscriptions.last_check.co-up"]) == {
        "time": 7.5,
        "summary": "1 created",
        "errors": ["x"],
    }
    assert json.loads(rows["resync.last_run.full.Members"]) == {"at": 7.5, "added": 2}
    assert json.loads(rows["resync.checkpoint.backfill.Invoices"]) == {
        "run": {"since": "2024-01-01", "until": "2024-12-31"},
        "next": "2024-08-01",
    }
