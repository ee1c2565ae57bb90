"""Errors drive the worker: each failure's ``Action`` decides what becomes of its events.

RETRY reschedules with backoff and counts the attempt (dead-lettered at sync.max_attempts),
PAUSE holds the events for a person without counting attempts (never dead-lettered), and
DEAD_LETTER gives up on them at once. Fakes raise one error class per action, from the Cobot
fetch and from the Sheets write, so a worker that ignored the action fails these tests.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.cobot.client import Fetched
from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.core.metrics import Metrics
from syncd.engine.worker import PAUSE_SECONDS, RETRY_BASE_SECONDS, Worker
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import Row
from syncd.ops.daemon import build_worker
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent
from tests.test_ordering import URL, FakeCobot, FakeSheets, worker_settings

MAX_ATTEMPTS = 3


class Temporary(SyncdError):
    action = Action.RETRY


class NeedsAPerson(SyncdError):
    action = Action.PAUSE


class Refused(SyncdError):
    action = Action.DEAD_LETTER


@dataclass
class FailingCobot(FakeCobot):
    error: SyncdError | None = None

    async def fetch(self, ref: ResourceRef, urgent: bool = True) -> Fetched:
        if self.error is not None:
            raise self.error
        return await super().fetch(ref, urgent)


@dataclass
class FailingSheets(FakeSheets):
    error: SyncdError | None = None

    async def upsert(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        *,
        only_if_missing: Collection[str] = (),
    ) -> None:
        if self.error is not None:
            raise self.error
        await super().upsert(sheet, rows, only_if_missing=only_if_missing)


@dataclass
class Rig:
    store: Store
    cobot: FailingCobot
    sheets: FailingSheets
    worker: Worker
    now: list[float]

    async def flush_everything(self) -> None:
        """One flush of every pending event, as if each one's time had come."""
        self.now[0] += 10 * PAUSE_SECONDS
        await self.worker.flush(await self.store.claim_due(100, self.now[0]))

    async def pending(self) -> list[InboxEvent]:
        return await self.store.claim_due(100, float("inf"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    base = worker_settings(tmp_path)
    settings = dataclasses.replace(
        base, sync=dataclasses.replace(base.sync, max_attempts=MAX_ATTEMPTS)
    )
    store = Store.open(settings.state_dir)
    cobot, sheets = FailingCobot(objects={URL: {"id": "m1", "name": "Ada"}}), FailingSheets()
    now = [time.time()]
    worker = build_worker(settings, store, cobot, sheets, Metrics(), clock=lambda: now[0])  # type: ignore[arg-type]
    await store.enqueue("created_membership", URL, "membership", {"url": URL})
    yield Rig(store, cobot, sheets, worker, now)
    await store.close()


@pytest.mark.parametrize("stage", ["fetch", "write"])
async def test_retry_counts_the_attempt_backs_off_and_dead_letters_at_the_limit(
    rig: Rig, stage: str
) -> None:
    failing = rig.cobot if stage == "fetch" else rig.sheets
    failing.error = Temporary("Cobot timed out")
    await rig.flush_everything()
    [event] = await rig.pending()
    assert event.attempts == 1
    due = await rig.store.next_due_at()
    assert due is not None
    assert RETRY_BASE_SECONDS / 2 <= due - rig.now[0] <= RETRY_BASE_SECONDS
    for _ in range(MAX_ATTEMPTS - 1):
        await rig.flush_everything()
    assert await rig.pending() == []
    [letter] = await rig.store.dead_letters()
    assert (letter.attempts, letter.last_error) == (MAX_ATTEMPTS, "Cobot timed out")


@pytest.mark.parametrize("stage", ["fetch", "write"])
async def test_pause_holds_the_events_without_spending_attempts(rig: Rig, stage: str) -> None:
    failing = rig.cobot if stage == "fetch" else rig.sheets
    failing.error = NeedsAPerson("share the spreadsheet with syncd@example.org")
    for _ in range(MAX_ATTEMPTS * 3):
        await rig.flush_everything()
        [event] = await rig.pending()
        assert event.attempts == 0
        due = await rig.store.next_due_at()
        assert due == pytest.approx(rig.now[0] + PAUSE_SECONDS)
    assert await rig.store.dead_letters() == []
    assert rig.worker.last_error == "share the spreadsheet with syncd@example.org"
    last_error = await rig.store.meta.last_error()
    assert last_error is not None and "share the spreadsheet" in last_error.error

    failing.error = None  # a person fixed it: the next look writes the row
    await rig.flush_everything()
    assert await rig.pending() == []
    assert rig.sheets.rows[URL]["Name"] == "Ada"


@pytest.mark.parametrize("stage", ["fetch", "write"])
async def test_dead_letter_gives_up_at_once(rig: Rig, stage: str) -> None:
    failing = rig.cobot if stage == "fetch" else rig.sheets
    failing.error = Refused("Google refused the request (400)")
    await rig.flush_everything()
    assert await rig.pending() == []
    [letter] = await rig.store.dead_letters()
    assert (letter.attempts, letter.last_error) == (1, "Google refused the request (400)")
