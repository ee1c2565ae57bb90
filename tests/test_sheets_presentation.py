"""How the writer keeps a worksheet readable: number formats, the header row, the rule that
greys out deleted rows; against the Sheets emulator, which stores what Google stores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row
from syncd.sheets.writer import SheetsWriter
from tests.fixtures_sheets import SheetsSandbox
from tests.test_sheets_writer import User, counts, new_writer, url, writer

__all__ = ["writer"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("no_outbound_network")

PRICE = {"type": "NUMBER", "pattern": "#,##0.00"}
JOINED = {"type": "DATE", "pattern": "yyyy-mm-dd"}
SEEN = {"type": "DATE_TIME", "pattern": "dd.mm.yyyy hh:mm"}
INVOICES = SheetSettings(
    title="Invoices",
    resource="invoice",
    events=("created_invoice",),
    columns=(
        Column("Number", "number"),
        Column("Price", "price", "number", format="#,##0.00"),
        Column("Joined", "joined_at", "date"),
        Column("Seen", "seen_at", "datetime", format="dd.mm.yyyy hh:mm"),
    ),
    key_column="URL",
    deleted_column="Deleted",
    filters={},
    highlight_deleted=True,
)
# Number, Price, Joined, Seen, Deleted, URL
DELETED_FORMULA = '=$E2<>""'


def invoice(n: int, deleted: str = "") -> Row:
    return {
        "Number": f"INV-{n}",
        "Price": 100 + n + 0.5,
        "Joined": 45537 + n,
        "Seen": 45537.75 + n,
        "Deleted": deleted,
        "URL": url(n),
    }


def invoices(*numbers: int) -> dict[str, Row]:
    return {url(n): invoice(n) for n in numbers}


def number_formats(sandbox: SheetsSandbox, a1: str) -> list[Any]:
    """The numberFormat of every cell of a one-column range (None: none)."""
    cells = sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Invoices", a1)
    return [row[0].get("numberFormat") for row in cells]


def bold(sandbox: SheetsSandbox) -> list[bool]:
    cells = sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Invoices", "A1:G1")[0]
    return [cell.get("textFormat", {}).get("bold") is True for cell in cells]


def rules(sandbox: SheetsSandbox) -> list[dict[str, Any]]:
    return sandbox.emulator.conditional_formats(sandbox.spreadsheet_id, "Invoices")


def formulas(sandbox: SheetsSandbox) -> list[str]:
    return [
        rule["booleanRule"]["condition"]["values"][0]["userEnteredValue"] for rule in rules(sandbox)
    ]


def frozen_rows(sandbox: SheetsSandbox) -> int:
    spreadsheet = sandbox.client().open_by_key(sandbox.spreadsheet_id)
    return int(spreadsheet.worksheet("Invoices").frozen_row_count)


def persons_rule(sheet_id: int, formula: str = "=$B2>100", struck: bool = True) -> dict[str, Any]:
    """A rule a person made: expensive invoices struck out in green."""
    condition = {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]}
    green: dict[str, Any] = {"backgroundColor": {"green": 1}}
    if struck:
        green["textFormat"] = {"strikethrough": True}
    span = {"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": 50}
    return {"ranges": [span], "booleanRule": {"condition": condition, "format": green}}


# -- a new worksheet ---------------------------------------------------------------------


async def test_new_worksheet_gets_formats_header_and_rule_in_its_one_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    report = await writer.upsert(INVOICES, invoices(1))

    assert (report.requests.reads, report.requests.writes) == (2, 2)  # as without them
    assert number_formats(sheets_emulator, "B1:B3") == [None, PRICE, PRICE]
    assert number_formats(sheets_emulator, "C2:C1000") == [JOINED] * 999
    assert number_formats(sheets_emulator, "D2") == [SEEN]
    assert bold(sheets_emulator)[:6] == [True] * 6
    assert frozen_rows(sheets_emulator) == 1
    assert formulas(sheets_emulator) == [DELETED_FORMULA]
    (rule,) = rules(sheets_emulator)
    assert rule["ranges"] == [{"sheetId": rule["ranges"][0]["sheetId"], "startRowIndex": 1}]
    assert rule["booleanRule"]["format"]["textFormat"]["strikethrough"] is True
    shown = sheets_emulator.emulator.dump(sheets_emulator.spreadsheet_id)["Invoices"]
    assert shown[1][:4] == ["INV-1", "101.50", "2024-09-03", "2024-09-03 18:00:00"]


async def test_grown_rows_get_the_number_formats(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(0))
    await writer.upsert(INVOICES, invoices(*range(1, 1100)))

    rows, _ = sheets_emulator.emulator.grid_size(sheets_emulator.spreadsheet_id, "Invoices")
    assert rows > 1001
    assert number_formats(sheets_emulator, f"B1001:B{rows}") == [PRICE] * (rows - 1000)
    assert number_formats(sheets_emulator, f"C1001:C{rows}") == [JOINED] * (rows - 1000)


async def test_steady_state_upsert_still_costs_one_read_and_one_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1, 2))
    sheets_emulator.emulator.reset_counters()

    report = await writer.upsert(INVOICES, invoices(1, 2, 3))

    assert counts(sheets_emulator) == (1, 1)
    assert report.repairs == ()


# -- repairs -----------------------------------------------------------------------------


async def test_cleared_formats_are_repaired_by_one_read_and_one_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1, 2))
    emulator, spreadsheet_id = sheets_emulator.emulator, sheets_emulator.spreadsheet_id
    emulator.clear_formats(spreadsheet_id, "Invoices", "B1:B20")  # Price, and the header's bold
    emulator.reset_counters()

    repairs = await writer.check_presentation(INVOICES)

    assert counts(sheets_emulator) == (1, 1)
    assert repairs == (
        "made the header(s) 'Price' bold",
        "restored the number format of 'Price'",
    )
    assert number_formats(sheets_emulator, "B2:B1000") == [PRICE] * 999
    assert bold(sheets_emulator)[1] is True
    emulator.reset_counters()
    assert await writer.check_presentation(INVOICES) == ()
    assert counts(sheets_emulator) == (1, 0)


async def test_a_configured_pattern_is_enforced_but_a_persons_date_pattern_stays(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1))
    user = User(sheets_emulator)
    sheet_id = user.worksheet("Invoices").id
    for column, pattern in ((1, "0.0"), (2, "dd/mm/yy"), (3, "yyyy-mm-dd hh:mm")):
        kind = {1: "NUMBER", 2: "DATE", 3: "DATE_TIME"}[column]
        span = {"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": 2}
        span |= {"startColumnIndex": column, "endColumnIndex": column + 1}
        cell = {"userEnteredFormat": {"numberFormat": {"type": kind, "pattern": pattern}}}
        fields = "userEnteredFormat.numberFormat"
        user.request({"repeatCell": {"range": span, "cell": cell, "fields": fields}})

    repairs = await writer.check_presentation(INVOICES)

    assert repairs == ("restored the number format of 'Price', 'Seen'",)
    emulator, spreadsheet_id = sheets_emulator.emulator, sheets_emulator.spreadsheet_id
    (cells,) = emulator.cell_formats(spreadsheet_id, "Invoices", "B2:D2")
    found = [cell.get("numberFormat") for cell in cells]
    assert found == [PRICE, {"type": "DATE", "pattern": "dd/mm/yy"}, SEEN]


async def test_header_unfrozen_and_unbolded_by_a_person_is_repaired_not_theirs(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1))
    user = User(sheets_emulator)
    user.set_cells([["Notes"]], "G1", "Invoices")  # a header of the person's own
    user.worksheet("Invoices").freeze(rows=0)
    sheets_emulator.emulator.clear_formats(sheets_emulator.spreadsheet_id, "Invoices", "1:1")

    report = await writer.upsert(INVOICES, invoices(1))  # row 1 changed: checked at once

    assert report.repairs == (
        "froze the header row",
        "made the header(s) 'Number', 'Price', 'Joined', 'Seen', 'Deleted', 'URL' bold",
    )
    assert frozen_rows(sheets_emulator) == 1
    assert bold(sheets_emulator) == [True] * 6 + [False]  # Notes is the person's
    sheets_emulator.emulator.clear_formats(sheets_emulator.spreadsheet_id, "Invoices", "A1")
    assert await writer.check_presentation(INVOICES) == ("made the header(s) 'Number' bold",)


async def test_worksheet_a_person_made_is_given_its_presentation(
    sheets_emulator: SheetsSandbox,
) -> None:
    emulator, spreadsheet_id = sheets_emulator.emulator, sheets_emulator.spreadsheet_id
    emulator.add_sheet(spreadsheet_id, "Invoices")
    emulator.set_values(spreadsheet_id, "Invoices", [["URL", "Deleted", "Price", "Number"]])
    writer = new_writer(sheets_emulator)
    try:
        report = await writer.upsert(INVOICES, invoices(1))
    finally:
        writer.close()

    assert "froze the header row" in report.repairs
    assert "added the rule greying out deleted rows" in report.repairs
    assert formulas(sheets_emulator) == ['=$B2<>""']
    assert number_formats(sheets_emulator, "C2:C3") == [PRICE, PRICE]
    assert frozen_rows(sheets_emulator) == 1


async def test_cleared_formats_are_repaired_at_the_next_start(
    sheets_emulator: SheetsSandbox,
) -> None:
    first = new_writer(sheets_emulator)
    await first.upsert(INVOICES, invoices(1))
    first.close()
    sheets_emulator.emulator.clear_formats(sheets_emulator.spreadsheet_id, "Invoices")

    second = new_writer(sheets_emulator)
    try:
        report = await second.upsert(INVOICES, invoices(1))
    finally:
        second.close()

    assert "restored the number format of 'Price', 'Joined', 'Seen'" in report.repairs
    assert number_formats(sheets_emulator, "C2:C3") == [JOINED, JOINED]

    # A writer that has not read the worksheet yet checks it when asked, too.
    sheets_emulator.emulator.clear_formats(sheets_emulator.spreadsheet_id, "Invoices", "C:C")
    third = new_writer(sheets_emulator)
    try:
        repairs = await third.check_presentation(INVOICES)
    finally:
        third.close()
    assert repairs == (
        "made the header(s) 'Joined' bold",
        "restored the number format of 'Joined'",
    )


# -- the highlight of deleted rows -----------------------------------------------------------


async def test_highlight_rule_is_added_once_beside_a_persons_own_rule(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    plain = replace(INVOICES, highlight_deleted=False)
    await writer.upsert(plain, invoices(1))
    user = User(sheets_emulator)
    sheet_id = user.worksheet("Invoices").id
    # Theirs: another formula struck out, and our formula's shape not struck out.
    theirs = [persons_rule(sheet_id), persons_rule(sheet_id, '=$A2<>""', struck=False)]
    for index, rule in enumerate(theirs):
        user.request({"addConditionalFormatRule": {"rule": rule, "index": index}})
    assert await writer.check_presentation(plain) == ()

    repairs = await writer.check_presentation(INVOICES)
    assert repairs == ("added the rule greying out deleted rows",)
    assert await writer.check_presentation(INVOICES) == ()
    await writer.upsert(INVOICES, {url(2): invoice(2, deleted="2025-01-01T00:00:00Z")})

    assert formulas(sheets_emulator) == [DELETED_FORMULA, "=$B2>100", '=$A2<>""']
    assert rules(sheets_emulator)[1:] == theirs


async def test_highlight_rule_follows_the_deleted_column(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1))
    user = User(sheets_emulator)
    theirs = persons_rule(user.worksheet("Invoices").id)
    user.request({"addConditionalFormatRule": {"rule": theirs, "index": 1}})
    user.insert_column(0, ["Mine"], "Invoices")  # Google moves the rule's formula along
    assert formulas(sheets_emulator) == ['=$F2<>""', "=$C2>100"]
    assert await writer.check_presentation(INVOICES) == ()

    sheet_id = user.worksheet("Invoices").id
    span = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": 5, "endIndex": 6}
    user.request({"deleteDimension": {"range": span}})  # the Deleted column
    assert formulas(sheets_emulator)[0] == '=#REF!<>""'
    report = await writer.upsert(INVOICES, invoices(2))  # Deleted comes back at the end: G

    assert "pointed the rule greying out deleted rows at column G" in report.repairs
    assert formulas(sheets_emulator) == ['=$G2<>""', "=$C2>100"]


async def test_deleted_header_renamed_by_a_person_moves_the_rule_to_the_new_column(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1))
    User(sheets_emulator).set_cells([["Gone"]], "E1", "Invoices")  # now the person's column

    repairs = await writer.check_presentation(INVOICES)

    assert repairs == (
        "added missing header(s): 'Deleted' in G",
        "pointed the rule greying out deleted rows at column G",
    )
    assert formulas(sheets_emulator) == ['=$G2<>""']


async def test_duplicates_are_removed_and_the_rule_goes_when_switched_off(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(INVOICES, invoices(1))
    user = User(sheets_emulator)
    sheet_id = user.worksheet("Invoices").id
    copy = rules(sheets_emulator)[0]
    user.request({"addConditionalFormatRule": {"rule": persons_rule(sheet_id), "index": 1}})
    user.request({"addConditionalFormatRule": {"rule": copy, "index": 2}})

    assert await writer.check_presentation(INVOICES) == (
        "removed 1 rule(s) greying out deleted rows (a duplicate)",
    )
    assert formulas(sheets_emulator) == [DELETED_FORMULA, "=$B2>100"]

    off = replace(INVOICES, highlight_deleted=False)
    assert await writer.check_presentation(off) == (
        "removed 1 rule(s) greying out deleted rows (highlight_deleted is off)",
    )
    assert formulas(sheets_emulator) == ["=$B2>100"]
