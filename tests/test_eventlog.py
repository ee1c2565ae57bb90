"""The event log worksheet, driven through the real worker between the two emulators.

In process rather than through `syncd run`, so that a failed attempt, a dead letter and a
crash between the sheet write and the inbox commit happen exactly when the test says.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncd.cobot.client import CobotClient
from syncd.config.loading import load_settings
from syncd.core.metrics import Metrics
from syncd.engine.eventlog import KEY_HEADER
from syncd.engine.worker import Worker
from syncd.ops.daemon import build_worker
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent
from tests.fixtures_daemon import WEBHOOK_SECRET, Daemon, MakeDaemon

LOG = "Event log"
#: Attempts the Cobot client makes itself before the worker sees a failure.
CLIENT_ATTEMPTS = 4


@dataclass
class Harness:
    daemon: Daemon
    store: Store
    worker: Worker

    @property
    def sim(self) -> Any:
        return self.daemon.cobot.sim

    async def receive(self, event: str, kind: str, object_id: str) -> int:
        """What the receiver does with a webhook: store it in the inbox."""
        url = self.sim.url_for(kind, object_id)
        return await self.store.enqueue(event, url, kind, {"url": url})

    async def flush(self) -> list[InboxEvent]:
        """One flush of everything pending, retries included (as if their time had come)."""
        events = await self.store.claim_due(100, time.time() + 3600)
        await self.worker.flush(events)
        return events

    def log_rows(self) -> dict[str, dict[str, Any]]:
        rows = self.daemon.rows(LOG)
        ids = [str(row[KEY_HEADER]) for row in rows]
        assert len(ids) == len(set(ids)), f"duplicate event log rows: {ids}"
        return dict(zip(ids, rows, strict=True))

    def requests(self, since: int) -> tuple[int, int]:
        """Sheets (reads, writes) since the request log had ``since`` entries."""
        records = self.daemon.sheets.emulator.request_log[since:]
        return (
            sum(r.kind == "read" for r in records),
            sum(r.kind == "write" for r in records),
        )


async def make_harness(make_daemon: MakeDaemon, **extra: Any) -> AsyncIterator[Harness]:
    members = {
        "Members": {
            "resource": "membership",
            "events": ["created_membership", "deleted_membership"],
            "columns": {"Name": "name"},
        }
    }
    daemon = make_daemon(
        cobot_knobs={"rate_limits": False},
        sheet_config=members,
        sync={"max_attempts": 2},
        extra=extra,
    )
    settings = load_settings(daemon.write_config(), {"TEST_COBOT_TOKEN": daemon.cobot.token})
    store = Store.open(daemon.state_dir)
    sheets = SheetsWriter(settings.google)
    try:
        async with CobotClient(settings.cobot) as cobot:
            yield Harness(
                daemon,
                store,
                build_worker(
                    settings, store, {settings.spaces[0].subdomain: cobot}, sheets, Metrics()
                ),
            )
    finally:
        sheets.close()
        await store.close()


@pytest.fixture
async def harness(make_daemon: MakeDaemon) -> AsyncIterator[Harness]:
    async for value in make_harness(make_daemon, event_log_sheet=LOG):
        yield value


@pytest.fixture
async def harness_without_log(make_daemon: MakeDaemon) -> AsyncIterator[Harness]:
    async for value in make_harness(make_daemon):
        yield value


async def test_failed_attempt_shows_retrying_then_dead_lettered_in_one_row(
    harness: Harness,
) -> None:
    member = harness.sim.create("membership", emit=False)
    event_id = await harness.receive("created_membership", "membership", member["id"])

    # Cobot keeps failing past the client's own retries: a temporary failure of the attempt.
    harness.sim.fail_next(CLIENT_ATTEMPTS, status=500)
    await harness.flush()
    row = harness.log_rows()[str(event_id)]
    assert row["Outcome"].startswith("retrying: Cobot answered 500 on GET /api/memberships/")
    assert len(row["Outcome"]) <= len("retrying: ") + 120

    harness.sim.fail_next(CLIENT_ATTEMPTS, status=500)
    [event] = await harness.flush()
    # An outage never dead-letters, however many attempts it takes.
    assert event.attempts == 1
    assert harness.log_rows()[str(event_id)]["Outcome"].startswith("retrying: ")

    harness.sim.fail_next(1, status=400)  # refused: the event's last attempt gives it up
    await harness.flush()
    assert harness.log_rows()[str(event_id)]["Outcome"] == "dead-lettered"
    assert harness.daemon.rows("Members") == []


async def test_a_refused_request_is_dead_lettered_after_its_attempts(harness: Harness) -> None:
    member = harness.sim.create("membership", emit=False)
    event_id = await harness.receive("created_membership", "membership", member["id"])
    harness.sim.fail_next(1, status=400)
    await harness.flush()
    assert harness.log_rows()[str(event_id)]["Outcome"].startswith("retrying: ")
    harness.sim.fail_next(1, status=400)
    await harness.flush()
    assert harness.log_rows()[str(event_id)]["Outcome"] == "dead-lettered"


async def test_a_revoked_token_shows_paused_and_spends_no_attempt(harness: Harness) -> None:
    member = harness.sim.create("membership", emit=False)
    event_id = await harness.receive("created_membership", "membership", member["id"])
    for _ in range(3):  # more flushes than sync.max_attempts allows retries
        harness.sim.fail_next(1, status=401)
        [event] = await harness.flush()
        assert event.attempts == 0
        outcome = harness.log_rows()[str(event_id)]["Outcome"]
        assert outcome.startswith("paused: Cobot rejected the access token (401)")
    await harness.flush()
    assert harness.log_rows()[str(event_id)]["Outcome"] == "written"


async def test_crash_before_the_inbox_commit_rewrites_the_same_row(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = harness.sim.create("membership", emit=False)
    written = await harness.receive("created_membership", "membership", member["id"])
    harness.sim.delete("membership", member["id"], emit=False)
    deleted = await harness.receive("deleted_membership", "membership", member["id"])

    class Killed(BaseException):
        """The process ends here: nothing after it runs (an Exception would be settled)."""

    save_rows = harness.store.complete

    async def crash(ids: Any, *args: Any, **kwargs: Any) -> None:
        """Row states are saved under the sheet lock first; the crash hits marking events done."""
        ids = list(ids)
        if ids:
            raise Killed("killed before the commit")
        await save_rows(ids, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(harness.store, "complete", crash)
        with pytest.raises(Killed):
            await harness.flush()
    assert set(harness.log_rows()) == {str(written), str(deleted)}

    again = await harness.flush()
    assert {e.id for e in again} == {written, deleted}
    rows = harness.log_rows()
    assert set(rows) == {str(written), str(deleted)}
    # Both events were about one URL whose row the deletion flagged.
    assert {rows[str(i)]["Outcome"] for i in (written, deleted)} == {"deleted"}
    assert len(harness.daemon.rows("Members")) == 1
    assert await harness.store.claim_due(10, time.time() + 3600) == []


async def test_costs_one_read_and_one_write_per_flush_only_when_enabled(
    harness: Harness, harness_without_log: Harness
) -> None:
    for current, extra in ((harness, 1), (harness_without_log, 0)):
        sim = current.sim
        await current.receive("created_membership", "membership", sim.create("membership")["id"])
        await current.flush()  # creates the worksheets
        start = len(current.daemon.sheets.emulator.request_log)
        for _ in range(3):
            await current.receive(
                "created_membership", "membership", sim.create("membership")["id"]
            )
        await current.flush()
        assert current.requests(start) == (1 + extra, 1 + extra)
    assert LOG not in harness_without_log.daemon.sheets.emulator.sheet_titles(
        harness_without_log.daemon.sheets.spreadsheet_id
    )


async def test_rows_mask_every_secret(harness: Harness) -> None:
    log = harness.worker.event_log
    assert log.sheet is not None
    event = InboxEvent(
        7,
        "created_membership",
        "https://co-up.cobot.me/api/memberships/1",
        "membership",
        {},
        0.0,
        0,
    )
    token = harness.daemon.cobot.token
    row = log.row(event, f"retrying: refused {token} at /cobot/{WEBHOOK_SECRET}/x")
    assert token not in str(row) and WEBHOOK_SECRET not in str(row)
    assert row["Outcome"] == "retrying: refused *** at /cobot/***/x"
    assert row["Received at"] == 25569  # 1970-01-01 as a Sheets serial


async def test_a_title_of_a_synced_worksheet_turns_the_log_off(
    make_daemon: MakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    async for current in make_harness(make_daemon, event_log_sheet="members"):
        assert current.worker.event_log.sheet is None
        assert "event_log_sheet 'members' is also a synced worksheet" in caplog.text
        member = current.sim.create("membership", emit=False)
        await current.receive("created_membership", "membership", member["id"])
        await current.flush()
        grid = current.daemon.sheets.emulator.values(
            current.daemon.sheets.spreadsheet_id, "Members"
        )
        assert grid[0] == ["Name", "Deleted", "URL"]
        assert len(grid) == 2
