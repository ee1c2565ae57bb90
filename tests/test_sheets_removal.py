"""Removing rows whose resource stopped matching a worksheet's ``where:``: exactly the rows
holding those URLs, found by a fresh read, whatever a person did to the sheet meanwhile."""

from __future__ import annotations

import pytest

from syncd.sheets.writer import SheetsWriter
from tests.fixtures_sheets import SheetsSandbox
from tests.test_sheets_writer import (
    MEMBERS,
    User,
    by_url,
    counts,
    members,
    new_writer,
    records,
    table,
    url,
    writer,
)

__all__ = ["writer"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("no_outbound_network")


async def test_removes_exactly_the_rows_of_the_urls_after_a_sort(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3, 4, 5))
    user = User(sheets_emulator)
    user.insert_column(5, ["Notes", "on 1", "on 2", "on 3", "on 4", "on 5"])
    await writer.check_presentation(MEMBERS)  # learns the new row 1
    user.sort_rows(key=lambda row: -row[2])  # newest first: m5 .. m1
    user.set_cells([["copy of 2", None, None, None, url(2), "on copy"]], "A7")
    user.set_cells([[f"see {url(4)}"], [url(4) + "0"]], "E8")  # not keys of m4
    sheets_emulator.emulator.reset_counters()

    report = await writer.remove(MEMBERS, [url(2), url(4), url(9)])

    assert counts(sheets_emulator) == (1, 1)
    assert (report.removed, report.requests.reads, report.requests.writes) == (3, 1, 1)
    assert [(r["URL"], r["Notes"]) for r in records(sheets_emulator)] == [
        (url(5), "on 5"),
        (url(3), "on 3"),
        (url(1), "on 1"),
        (f"see {url(4)}", None),
        (url(4) + "0", None),
    ]
    assert table(sheets_emulator)[0] == ["Name", "Email", "Joined", "Deleted", "URL", "Notes"]


async def test_a_later_upsert_updates_and_appends_in_the_right_rows(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3, 4))
    await writer.remove(MEMBERS, [url(1), url(3)])
    sheets_emulator.emulator.reset_counters()

    report = await writer.upsert(MEMBERS, {**members(4, suffix=" (new)"), **members(5)})

    assert counts(sheets_emulator) == (1, 1)  # the cached grid and tail are still right
    assert (report.updated, report.appended) == (1, 1)
    assert [(r["URL"], r["Name"]) for r in records(sheets_emulator)] == [
        (url(2), "Member 2"),
        (url(4), "Member 4 (new)"),
        (url(5), "Member 5"),
    ]
    assert sheets_emulator.emulator.grid_size(sheets_emulator.spreadsheet_id, "Members")[0] == 998


async def test_urls_already_gone_cost_one_read_and_no_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    sheets_emulator.emulator.reset_counters()

    report = await writer.remove(MEMBERS, [url(7)])
    assert (report.removed, counts(sheets_emulator)) == (0, (1, 0))
    assert (await writer.remove(MEMBERS, [])).requests.total == 0
    assert [r["URL"] for r in records(sheets_emulator)] == [url(1)]


async def test_the_header_row_is_never_removed(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))

    report = await writer.remove(MEMBERS, ["URL"])

    assert report.removed == 0
    assert table(sheets_emulator)[0][4] == "URL"


async def test_removing_every_row_of_a_full_grid_keeps_one_empty_row(
    sheets_emulator: SheetsSandbox,
) -> None:
    emulator, spreadsheet_id = sheets_emulator.emulator, sheets_emulator.spreadsheet_id
    emulator.add_sheet(spreadsheet_id, "Members", rows=3, cols=5)
    emulator.set_values(spreadsheet_id, "Members", [["Name", "Email", "Joined", "Deleted", "URL"]])
    writer = new_writer(sheets_emulator)
    try:
        await writer.upsert(MEMBERS, members(1, 2))  # the grid's 3 rows are full
        assert User(sheets_emulator).worksheet().frozen_row_count == 1
        report = await writer.remove(MEMBERS, [url(1), url(2)])
        assert report.removed == 2
        assert emulator.grid_size(spreadsheet_id, "Members") == (2, 5)
        report = await writer.upsert(MEMBERS, members(3, 4))
    finally:
        writer.close()
    # The cached grid size is right: the grid grows before the write, with no refusal.
    assert (report.requests.reads, report.requests.writes, report.repairs) == (1, 2, ())
    assert [r["URL"] for r in records(sheets_emulator)] == [url(3), url(4)]


async def test_a_retry_reads_again_after_a_person_sorted(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3))
    emulator, user = sheets_emulator.emulator, User(sheets_emulator)

    def sort_then_fail() -> None:
        user.sort_rows(key=lambda row: -row[2])
        emulator.fail_next(1, 503)

    emulator.on_next(":batchUpdate", sort_then_fail)
    report = await writer.remove(MEMBERS, [url(1)])

    assert report.removed == 1 and report.requests.writes == 2
    assert set(by_url(sheets_emulator)) == {url(2), url(3)}


async def test_a_layout_read_ahead_is_not_used_after_a_removal(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3))
    await writer.read_ahead([(MEMBERS, [url(3)])])

    async with writer.locked(MEMBERS.title):
        await writer.remove(MEMBERS, [url(1)])
        await writer.upsert(MEMBERS, members(3, suffix=" (new)"))

    assert [(r["URL"], r["Name"]) for r in records(sheets_emulator)] == [
        (url(2), "Member 2"),
        (url(3), "Member 3 (new)"),
    ]
