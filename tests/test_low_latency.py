"""A lone change costs about two round trips, without giving up where rows go.

The layout read ahead while Cobot is asked places the next write only when no daemon process
held the worksheet's lock since and it is fresh; a flush starts at once while the Sheets
budget is plentiful and gathers events as it runs low. The speed itself is measured by
bench/run.py, never here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from syncd.core.budget import RequestBudget
from syncd.core.metrics import Metrics
from syncd.engine.pacing import MAX_PACE_INTERVALS, SUSTAINED_SHARE, Pacer
from syncd.ops.daemon import build_worker
from syncd.sheets import turns as sheets_module
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.rows import RowState
from tests.fixtures_daemon import MakeDaemon, example_sheets
from tests.fixtures_sheets import SheetsSandbox
from tests.test_e2e_pipeline import fast_daemon, settle
from tests.test_ordering import FakeCobot, FakeSheets, worker_settings
from tests.test_sheets_writer import MEMBERS, by_url, members, new_writer, table, url

pytestmark = pytest.mark.usefixtures("no_outbound_network")


@pytest.fixture
async def writer(sheets_emulator: SheetsSandbox) -> AsyncIterator[SheetsWriter]:
    writer = new_writer(sheets_emulator)
    yield writer
    writer.close()


def api_calls(sandbox: SheetsSandbox, kind: str) -> int:
    return sum(1 for r in sandbox.emulator.request_log if r.kind == kind)


# -- the layout read ahead --------------------------------------------------------------------


async def test_a_layout_read_ahead_places_the_next_write_without_another_read(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2))
    await writer.read_ahead([(MEMBERS, [url(3)])])
    reads = api_calls(sheets_emulator, "read")

    report = await writer.upsert(MEMBERS, members(3))

    assert api_calls(sheets_emulator, "read") == reads, "the write read the layout again"
    assert report.requests.reads == 1 and report.requests.writes == 1  # the read ahead counts
    assert report.appended == 1 and set(by_url(sheets_emulator)) == {url(1), url(2), url(3)}


async def test_a_write_by_another_process_after_the_read_ahead_is_not_overwritten(
    sheets_emulator: SheetsSandbox, tmp_path: Path
) -> None:
    """Another daemon process (say `syncd backfill`) appends a row after the layout was read
    ahead: the lock's turns show it, and the next write reads afresh instead of appending
    over that row."""
    lock = tmp_path / "sheets.lock"
    daemon, backfill = (new_writer(sheets_emulator, lock_path=lock) for _ in range(2))
    try:
        await daemon.upsert(MEMBERS, members(1, 2))
        await daemon.read_ahead([(MEMBERS, [url(3)])])
        await backfill.upsert(MEMBERS, members(4))
        reads = api_calls(sheets_emulator, "read")
        await daemon.upsert(MEMBERS, members(3))
    finally:
        daemon.close()
        backfill.close()
    assert api_calls(sheets_emulator, "read") > reads, "the write trusted a layout read before"
    rows = by_url(sheets_emulator)
    assert set(rows) == {url(n) for n in (1, 2, 3, 4)}, rows
    assert rows[url(4)]["Name"] == "Member 4"


async def test_a_read_ahead_grown_old_is_not_trusted(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person sorts the rows after the layout was read ahead, and the fetch took longer than
    ``READ_AHEAD_SECONDS``: the write is placed from a fresh read."""
    await writer.upsert(MEMBERS, members(*range(6)))
    monkeypatch.setattr(sheets_module, "READ_AHEAD_SECONDS", 0.05)
    await writer.read_ahead([(MEMBERS, list(members(*range(6))))])
    _header, *rows = table(sheets_emulator)
    emulator = sheets_emulator.emulator
    emulator.set_values(sheets_emulator.spreadsheet_id, "Members", rows[::-1], "A2")
    await asyncio.sleep(0.1)

    await writer.upsert(MEMBERS, members(0, 1, suffix=" v2"))

    rows_now = by_url(sheets_emulator)
    assert len(rows_now) == 6
    for n in range(6):
        expected = f"Member {n} v2" if n < 2 else f"Member {n}"
        assert rows_now[url(n)]["Name"] == expected
        assert rows_now[url(n)]["Email"] == f"m{n}@example.org"


# -- when a flush starts ----------------------------------------------------------------------


def spend(budget: RequestBudget, requests: int) -> None:
    """Take ``requests`` slots at once, as a flush's requests would."""

    async def take() -> None:
        for _ in range(requests):
            await budget.acquire()

    asyncio.run(take())


def test_flushes_start_at_once_while_a_budget_has_room_then_at_an_even_pace(
    tmp_path: Path,
) -> None:
    sync = worker_settings(tmp_path).sync
    now = [1000.0]
    budget = RequestBudget(60, window_seconds=60, clock=lambda: now[0])
    pacer = Pacer([budget], sync, clock=lambda: now[0])
    rate = SUSTAINED_SHARE  # requests a second the budget earns back, of 60 a minute
    burst = round(60 * (1 - SUSTAINED_SHARE))  # what the window leaves beyond that rate

    def flush(requests: int) -> None:
        pacer.started()
        spend(budget, requests)
        pacer.finished()

    assert pacer.wait(1, now[0]) <= 0, "an idle pipeline flushes a new event at once"
    # A flood gathers for a flush interval, as it always did.
    assert pacer.wait(sync.fetch_concurrency + 1, now[0]) == sync.flush_interval_seconds

    flush(2)  # the burst is spent no more: flushes are spaced by what one costs
    assert pacer.wait(1, now[0]) == pytest.approx(1.5 / rate)  # (1 + 2) / 2 on average
    now[0] += 1
    assert pacer.wait(1, now[0] - 1) == pytest.approx(1.5 / rate - 1), "counted from its start"
    flush(4)
    assert pacer.wait(1, now[0]) == pytest.approx(2.75 / rate)  # (1.5 + 4) / 2

    now[0] += 60
    assert pacer.wait(1, now[0]) <= 0, "an idle minute refills the burst"
    spend(budget, burst + 1)  # spent between flushes (a re-sync): down to a request owed
    assert pacer.wait(1, now[0]) <= 0, "the last flush is long past: no spacing to keep"
    spend(budget, 60 - burst - 1)  # the whole window: repaid down to a burst owed, at most ...
    assert pacer.wait(1, now[0]) == MAX_PACE_INTERVALS * sync.flush_interval_seconds
    # ... and an event is held back a few flush intervals at most
    assert pacer.wait(1, now[0] - 4) == MAX_PACE_INTERVALS * sync.flush_interval_seconds - 4
    assert pacer.wait(1, now[0], retrying=True) <= 0, "a retry's backoff is its own pacing"


async def test_a_lone_event_waits_only_while_a_budget_runs_low(tmp_path: Path) -> None:
    base = worker_settings(tmp_path)
    config = dataclasses.replace(base, sync=dataclasses.replace(base.sync, batch_size=50))
    now = [time.time() + 1]
    store = Store.open(config.state_dir)
    sheets = FakeSheets()
    worker = build_worker(
        config,
        store,
        {config.spaces[0].subdomain: FakeCobot()},
        sheets,
        Metrics(),
        clock=lambda: now[0],
    )  # type: ignore[arg-type]
    cobot_budget = worker.spaces.budgets()[0]
    stop = asyncio.Event()
    stop.set()  # every wait of _step returns at once: only its decision is observed
    membership = "https://co-up.cobot.me/api/memberships/m{}"
    try:
        await store.enqueue("updated_membership_details", membership.format(1), "membership", {})
        await worker._step(stop)
        assert len(sheets.upserts) == 1, "an idle pipeline flushes a new event at once"

        for _ in range(cobot_budget.per_window * 3 // 4):  # the flush spent most of Cobot's
            await cobot_budget.acquire()
        await store.enqueue("updated_membership_details", membership.format(2), "membership", {})
        await worker._step(stop)
        assert len(sheets.upserts) == 1, "with the budget low, the event waits for others"
        now[0] += MAX_PACE_INTERVALS * config.sync.flush_interval_seconds
        await worker._step(stop)
        assert len(sheets.upserts) == 2
    finally:
        await store.close()


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_lone_change_flushes_at_once_its_layout_read_while_cobot_answers(
    make_daemon: MakeDaemon,
) -> None:
    """A flush interval far longer than the test's timeouts: the change still shows, since an
    idle pipeline flushes at once. The worksheet's layout is read while Cobot's answer is
    on its way, and the write that follows needs no read of its own."""
    daemon = fast_daemon(make_daemon, sync={"flush_interval_seconds": 900}).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    member = sim.create("membership", name="First")
    settle(daemon)
    sim.latency_seconds = 1.0  # Cobot answers slowly: the read is served well before
    cobot_before = len(sim.requests())
    answered: list[bool] = []
    emulator.on_next("values:batchGet", lambda: answered.append(len(sim.requests()) > cobot_before))
    log_start = len(emulator.request_log)

    sim.update("membership", member["id"], name="Second")
    settle(daemon)

    assert answered == [False], "the layout was read only after Cobot answered"
    kinds = [r.kind for r in emulator.request_log[log_start:] if r.kind is not None]
    assert kinds == ["read", "write"], kinds
    assert [row["Name"] for row in daemon.rows("Members")] == ["Second"]
    assert daemon.stop() == 0


@pytest.mark.e2e
def test_a_change_shown_in_two_worksheets_costs_one_read_and_one_write(
    make_daemon: MakeDaemon,
) -> None:
    """A membership shown in two worksheets: both layouts are read in one request while
    Cobot answers, and both rows go out in one write."""
    members = example_sheets()["Members"]
    team = dict(list(members["columns"].items())[:2])
    daemon = fast_daemon(
        make_daemon,
        sheet_config={"Members": members, "Team": {**members, "columns": team}},
        sync={"flush_interval_seconds": 900},
    ).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    member = sim.create("membership", name="First")
    settle(daemon)
    log_start = len(emulator.request_log)

    sim.update("membership", member["id"], name="Second")
    settle(daemon)

    kinds = [r.kind for r in emulator.request_log[log_start:] if r.kind is not None]
    assert kinds == ["read", "write"], kinds
    assert [row["Name"] for row in daemon.rows("Members")] == ["Second"]
    assert [row["Name"] for row in daemon.rows("Team")] == ["Second"]
    assert daemon.stop() == 0


async def test_a_column_re_created_by_a_read_ahead_is_refilled_even_when_it_went_stale(
    sheets_emulator: SheetsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person renamed Email; the read ahead re-creates it, but the fetch outlasts
    ``READ_AHEAD_SECONDS``, so the write reads afresh and sees Email in place. The column
    must still be refilled for every row, not only the one written."""
    stored: dict[str, RowState] = {}

    async def stored_rows(title: str) -> Mapping[str, RowState]:
        return stored

    writer = new_writer(sheets_emulator, stored_rows=stored_rows)
    try:
        rows = members(1, 2, 3)
        await writer.upsert(MEMBERS, rows)
        stored.update({u: RowState(u, None, 0.0, cells) for u, cells in rows.items()})
        sheets_emulator.emulator.set_values(
            sheets_emulator.spreadsheet_id, "Members", [["Email (mine)"]], "B1"
        )
        monkeypatch.setattr(sheets_module, "READ_AHEAD_SECONDS", 0.05)
        await writer.read_ahead([(MEMBERS, [url(1)])])
        await asyncio.sleep(0.1)

        await writer.upsert(MEMBERS, members(1, suffix=" v2"))
    finally:
        writer.close()

    assert {u: r["Email"] for u, r in by_url(sheets_emulator).items()} == {
        url(n): f"m{n}@example.org" for n in (1, 2, 3)
    }
