"""Errors drive the worker: each failure's ``Action`` decides what becomes of its events.

RETRY reschedules with capped backoff and counts the attempt but never dead-letters, PAUSE
holds the events for a person without counting attempts and reports the pause until a
success ends it, and DEAD_LETTER gives up on the event after sync.max_attempts. Fakes raise
one error class per action, from the Cobot fetch and from the Sheets write, so a worker that
ignored the action fails these tests. A poisoned row (refused, or an unforeseen exception in
the write or the mapping) is isolated, so the other events of its batch are written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncd.cobot.client import Fetched
from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.core.metrics import Metrics
from syncd.engine.rowplan import SheetBatch
from syncd.engine.settle import PAUSE_SECONDS, RETRY_BASE_SECONDS
from syncd.engine.worker import Worker
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import Row
from syncd.ops.daemon import build_worker
from syncd.sheets.reports import UpsertReport
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent
from tests.test_ordering import URL, FakeCobot, FakeSheets, worker_settings

MAX_ATTEMPTS = 3
#: The longest backoff; a flush_everything step is longer, so every retry is due at each step.
RETRY_MAX_SECONDS = 60.0


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
    #: Any write holding one of these URLs raises the exception given.
    poison: dict[str, Exception] = field(default_factory=dict)
    refusals: int = 0

    async def upsert(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        *,
        only_if_missing: Collection[str] = (),
    ) -> UpsertReport:
        if self.error is not None:
            raise self.error
        for url, exc in self.poison.items():
            if url in rows:
                self.refusals += 1
                raise exc
        return await super().upsert(sheet, rows, only_if_missing=only_if_missing)


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
        base,
        sync=dataclasses.replace(
            base.sync, max_attempts=MAX_ATTEMPTS, retry_max_seconds=RETRY_MAX_SECONDS
        ),
    )
    store = Store.open(settings.state_dir)
    cobot, sheets = FailingCobot(objects={URL: {"id": "m1", "name": "Ada"}}), FailingSheets()
    now = [time.time()]
    worker = build_worker(
        settings,
        store,
        {settings.spaces[0].subdomain: cobot},
        sheets,
        Metrics(),
        clock=lambda: now[0],
    )  # type: ignore[arg-type]
    await store.enqueue("created_membership", URL, "membership", {"url": URL})
    yield Rig(store, cobot, sheets, worker, now)
    await store.close()


@pytest.mark.parametrize("stage", ["fetch", "write"])
async def test_retry_counts_the_attempt_backs_off_and_never_dead_letters(
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
    for attempt in range(2, MAX_ATTEMPTS * 4):
        await rig.flush_everything()
        [event] = await rig.pending()  # an outage only delays the event, however long
        assert event.attempts == attempt
        due = await rig.store.next_due_at()
        assert due is not None and due - rig.now[0] <= RETRY_MAX_SECONDS
    assert await rig.store.dead_letters() == []
    assert event.attempts > MAX_ATTEMPTS

    failing.error = None  # the outage is over: the next try writes the row
    await rig.flush_everything()
    assert await rig.pending() == []
    assert rig.sheets.rows[URL]["Name"] == "Ada"


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
        assert list(rig.worker.pauses.current) == ["Cobot" if stage == "fetch" else "Members"]
    assert PAUSE_SECONDS <= 60  # resumes within a minute of the cause being fixed
    assert await rig.store.dead_letters() == []
    assert rig.worker.last_error == "share the spreadsheet with syncd@example.org"
    last_error = await rig.store.meta.last_error()
    assert last_error is not None and "share the spreadsheet" in last_error.error

    [(where, pause)] = (await rig.store.meta.pauses()).items()
    assert where in rig.worker.pauses.current and "share the spreadsheet" in pause.reason

    failing.error = None  # a person fixed it: the next look writes the row
    await rig.flush_everything()
    assert await rig.pending() == []
    assert rig.sheets.rows[URL]["Name"] == "Ada"
    assert rig.worker.pauses.current == {}
    assert await rig.store.meta.pauses() == {}


@pytest.mark.parametrize("stage", ["fetch", "write"])
async def test_dead_letter_after_its_attempts(rig: Rig, stage: str) -> None:
    failing = rig.cobot if stage == "fetch" else rig.sheets
    failing.error = Refused("Google refused the request (400)")
    for attempt in range(1, MAX_ATTEMPTS):
        await rig.flush_everything()
        [event] = await rig.pending()
        assert event.attempts == attempt
    await rig.flush_everything()
    assert await rig.pending() == []
    [letter] = await rig.store.dead_letters()
    assert (letter.attempts, letter.last_error) == (
        MAX_ATTEMPTS,
        "Google refused the request (400)",
    )


OTHERS = [f"{URL[: -len('m1')]}m{n}" for n in range(2, 9)]


async def enqueue_others(rig: Rig) -> None:
    for n, url in enumerate(OTHERS, start=2):
        rig.cobot.objects[url] = {"id": f"m{n}", "name": f"Member {n}"}
        await rig.store.enqueue("created_membership", url, "membership", {"url": url})


@pytest.mark.parametrize(
    "poison", [Refused("Google refused the request (400)"), RuntimeError("a bug")]
)
async def test_a_poisoned_row_is_isolated_and_the_others_written(
    rig: Rig, poison: Exception
) -> None:
    await enqueue_others(rig)
    rig.sheets.poison[URL] = poison
    for attempt in range(1, MAX_ATTEMPTS + 1):
        await rig.flush_everything()
        assert set(rig.sheets.rows) == set(OTHERS)  # written on the first flush already
        pending = await rig.pending()
        assert [e.url for e in pending] == ([URL] if attempt < MAX_ATTEMPTS else [])
    assert rig.sheets.refusals >= MAX_ATTEMPTS  # the fault really happened each time
    [letter] = await rig.store.dead_letters()
    assert (letter.url, letter.attempts) == (URL, MAX_ATTEMPTS)
    assert letter.last_error is not None and str(poison) in letter.last_error


async def test_an_exception_while_mapping_one_row_fails_only_that_row(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await enqueue_others(rig)
    mapping = SheetBatch.decide

    def fragile(batch: SheetBatch, seen: Any, tz: Any, held: Any) -> Any:
        if seen.url == URL:
            raise ValueError("no rule for this value")
        return mapping(batch, seen, tz, held)

    monkeypatch.setattr(SheetBatch, "decide", fragile)
    await rig.flush_everything()
    assert set(rig.sheets.rows) == set(OTHERS)
    assert sorted(rig.cobot.fetched) == sorted([URL, *OTHERS])  # one flush, not one per half
    [event] = await rig.pending()
    assert (event.url, event.attempts) == (URL, 1)


async def test_an_unforeseen_flush_failure_is_split_until_the_culprit_is_found(
    rig: Rig,
) -> None:
    await enqueue_others(rig)
    fetch = rig.cobot.fetch

    async def crashing(ref: ResourceRef, urgent: bool = True) -> Fetched:
        if ref.url == URL:
            raise KeyError("unforeseen")
        return await fetch(ref, urgent)

    rig.cobot.fetch = crashing  # type: ignore[method-assign]
    await rig.flush_everything()
    assert set(rig.sheets.rows) == set(OTHERS)
    [event] = await rig.pending()
    assert (event.url, event.attempts) == (URL, 1)
