"""A lost key header: the writer finds the key column by its content instead of doubling rows.

If someone clears or renames the ``URL`` header, re-creating it at the end (as other lost
headers are) would leave every row without its key, and the next upsert would append all of
them again. These tests run the writer against the Sheets emulator.
"""

from __future__ import annotations

import pytest

from tests.fixtures_sheets import SheetsSandbox
from tests.test_sheets_writer import HEADERS, MEMBERS, User, members, new_writer, records, table

pytestmark = pytest.mark.usefixtures("no_outbound_network")

KEY = "ABCDE"[HEADERS.index("URL")]


@pytest.mark.parametrize("new_text", ["", "Link"])
async def test_new_writer_finds_the_key_column_by_the_keys_it_writes(
    sheets_emulator: SheetsSandbox, new_text: str
) -> None:
    first = new_writer(sheets_emulator)
    await first.upsert(MEMBERS, members(1, 2, 3))
    first.close()
    User(sheets_emulator).set_cells([[new_text]], f"{KEY}1")

    restarted = new_writer(sheets_emulator)  # knows nothing about the worksheet yet
    try:
        report = await restarted.upsert(MEMBERS, members(2, 4, suffix=" v2"))
    finally:
        restarted.close()

    assert (report.updated, report.appended) == (1, 1)
    assert report.repairs == (
        f"restored the key header 'URL' in {KEY}, the column holding the rows' keys "
        f"(row 1 there said {new_text!r})",
    )
    assert table(sheets_emulator)[0] == HEADERS
    assert [r["Name"] for r in records(sheets_emulator)] == [
        "Member 1",
        "Member 2 v2",
        "Member 3",
        "Member 4 v2",
    ]


async def test_running_writer_knows_the_keys_it_last_read(sheets_emulator: SheetsSandbox) -> None:
    writer = new_writer(sheets_emulator)
    try:
        await writer.upsert(MEMBERS, members(1, 2))
        User(sheets_emulator).set_cells([["Link"]], f"{KEY}1")
        report = await writer.upsert(MEMBERS, members(3))  # a new URL: no evidence in the batch
    finally:
        writer.close()

    assert report.appended == 1
    assert table(sheets_emulator)[0] == HEADERS
    assert [r["URL"] for r in records(sheets_emulator)] == [
        "https://co-up.cobot.me/api/memberships/m1",
        "https://co-up.cobot.me/api/memberships/m2",
        "https://co-up.cobot.me/api/memberships/m3",
    ]


async def test_worksheet_without_keys_gets_the_header_at_the_end(
    sheets_emulator: SheetsSandbox,
) -> None:
    emulator, spreadsheet = sheets_emulator.emulator, sheets_emulator.spreadsheet_id
    emulator.add_sheet(spreadsheet, "Members")
    emulator.set_values(spreadsheet, "Members", [["Notes", "Name"], ["mine", ""]])
    writer = new_writer(sheets_emulator)
    try:
        report = await writer.upsert(MEMBERS, members(1))
    finally:
        writer.close()

    assert table(sheets_emulator)[0] == ["Notes", "Name", "Email", "Joined", "Deleted", "URL"]
    assert report.appended == 1
    assert not any("key header" in repair for repair in report.repairs)
