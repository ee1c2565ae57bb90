"""The Sheets emulator, driven through gspread 6.2.1 and the daemon's own client factory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gspread
import pytest
import requests
from google.auth import crypt, jwt
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from gspread.exceptions import APIError, SpreadsheetNotFound, WorksheetNotFound
from gspread.utils import InsertDataOption, ValueInputOption, ValueRenderOption

from syncd.sandbox.sheets.auth import generate_service_account_key
from syncd.sandbox.sheets.cells import DateSerial, Formula
from syncd.sheets.auth import SCOPES, authorized_session, gspread_client
from tests.fixtures_sheets import MakeSheetsEmulator, SheetsSandbox

RAW = ValueInputOption.raw
USER_ENTERED = ValueInputOption.user_entered
UNFORMATTED = ValueRenderOption.unformatted


@pytest.fixture
def sandbox(sheets_emulator: SheetsSandbox) -> SheetsSandbox:
    return sheets_emulator


@pytest.fixture
def spreadsheet(sandbox: SheetsSandbox) -> gspread.Spreadsheet:
    return sandbox.client().open_by_key(sandbox.spreadsheet_id)


@pytest.fixture
def raw(sandbox: SheetsSandbox) -> Iterator[requests.Session]:
    """An authorized session for hand-made requests (google-auth adds the token)."""
    session = authorized_session(sandbox.key_info, sandbox.url)
    yield session
    session.close()


def api(sandbox: SheetsSandbox, suffix: str = "") -> str:
    return f"{sandbox.url}/v4/spreadsheets/{sandbox.spreadsheet_id}{suffix}"


# -- gspread end to end -------------------------------------------------------------------


def test_open_by_key_and_worksheet_lookups(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    assert spreadsheet.title == "Cobot sync"
    assert spreadsheet.sheet1.title == "Sheet1"
    assert (spreadsheet.sheet1.row_count, spreadsheet.sheet1.col_count) == (1000, 26)
    members = spreadsheet.add_worksheet("Members", rows=50, cols=8)
    assert (members.row_count, members.col_count, members.index) == (50, 8, 1)
    assert [ws.title for ws in spreadsheet.worksheets()] == ["Sheet1", "Members"]
    assert spreadsheet.worksheet("Members").id == members.id
    assert spreadsheet.get_worksheet_by_id(members.id).title == "Members"
    assert spreadsheet.get_worksheet(1).title == "Members"
    with pytest.raises(WorksheetNotFound):
        spreadsheet.worksheet("Nope")
    assert sandbox.emulator.sheet_titles(sandbox.spreadsheet_id) == ["Sheet1", "Members"]
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Members") == (50, 8)


def test_update_and_read_back(sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.add_worksheet("Data", rows=10, cols=5)
    response = ws.update([["name", "n", "ok"], ["Ada", 45537, True], [], ["Bob", 1.5, False]])
    assert response == {
        "spreadsheetId": sandbox.spreadsheet_id,
        "updatedRange": "Data!A1:C4",
        "updatedRows": 3,
        "updatedColumns": 3,
        "updatedCells": 9,
    }
    assert ws.get_all_values() == [
        ["name", "n", "ok"],
        ["Ada", "45537", "TRUE"],
        ["", "", ""],
        ["Bob", "1.5", "FALSE"],
    ]
    # Raw API shape: interior empty row is [], trailing blanks trimmed, numbers stay numbers.
    unformatted = ws.get("A1:E9", value_render_option=UNFORMATTED)
    assert unformatted.range == "Data!A1:E9"
    assert list(unformatted) == [["name", "n", "ok"], ["Ada", 45537, True], [], ["Bob", 1.5, False]]
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Data")[1] == ["Ada", 45537, True]


def test_batch_update_and_batch_get(spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.add_worksheet("Batch", rows=10, cols=4)
    result = ws.batch_update(
        [
            {"range": "A1:B1", "values": [["key", "value"]]},
            {"range": "A3:B3", "values": [["k3", 3]]},
        ]
    )
    assert result["totalUpdatedCells"] == 4
    assert result["totalUpdatedRows"] == 2
    assert result["totalUpdatedSheets"] == 1
    assert [r["updatedRange"] for r in result["responses"]] == ["Batch!A1:B1", "Batch!A3:B3"]
    header, keys, empty = ws.batch_get(["1:1", "A:A", "C5:D6"], major_dimension="COLUMNS")
    assert header.range == "Batch!A1:D1"
    assert list(header) == [["key"], ["value"]]
    assert keys.range == "Batch!A1:A10"
    assert list(keys) == [["key", "", "k3"]]
    assert empty.range == "Batch!C5:D6"
    assert list(empty) == []  # no "values" key in the response


def test_col_values_reads_one_column(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.sheet1
    ws.update([["url", "x"], ["u1", 1], [None, 2], ["u3", 3]])
    sandbox.emulator.reset_counters()
    assert ws.col_values(1) == ["url", "u1", "", "u3"]
    assert ws.col_values(2, value_render_option=UNFORMATTED) == ["x", 1, 2, 3]
    assert ws.col_values(9) == []
    assert sandbox.emulator.reads == 3
    (record, *_) = sandbox.emulator.request_log
    assert record.path.endswith("/values/'Sheet1'!A1:A")
    assert record.query["majorDimension"] == ["COLUMNS"]


def test_append_rows_extends_the_table_and_grows_the_grid(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.add_worksheet("Log", rows=2, cols=3)
    first = ws.append_rows([["a", "b", "c"]])
    assert "tableRange" not in first  # empty sheet: no table yet
    assert first["updates"]["updatedRange"] == "Log!A1:C1"
    second = ws.append_rows([["d", "e", "f"], ["g", "h", "i"], ["j", "k", "l"]])
    assert second["tableRange"] == "Log!A1:C1"
    assert second["updates"]["updatedRange"] == "Log!A2:C4"
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Log") == (4, 3)
    wide = ws.append_rows([["m", "n", "o", "p"]])
    assert wide["tableRange"] == "Log!A1:C4"
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Log") == (5, 4)
    assert ws.get_all_values()[-1] == ["m", "n", "o", "p"]


def test_append_table_detection_matches_recorded_google_answers(
    spreadsheet: gspread.Spreadsheet,
) -> None:
    # Recorded in gspread's cassettes: blank cells split tables.
    ws = spreadsheet.sheet1
    row = ["x1", "", "x3"]
    ws.append_rows([row])
    whole_sheet = ws.append_rows([row])
    assert whole_sheet["tableRange"] == "Sheet1!C1"
    assert whole_sheet["updates"]["updatedRange"] == "Sheet1!C2:E2"
    anchored = ws.append_rows([row], table_range="A1")
    assert anchored["tableRange"] == "Sheet1!A1"
    assert anchored["updates"]["updatedRange"] == "Sheet1!A2:C2"


def test_append_insert_rows_shifts_data_below(spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.sheet1
    ws.update([["h1", "h2"], ["r1", "1"], [], ["footer"]])
    ws.append_rows(
        [["new", "2"]], table_range="A1", insert_data_option=InsertDataOption.insert_rows
    )
    assert ws.get_all_values()[:5] == [
        ["h1", "h2"],
        ["r1", "1"],
        ["new", "2"],
        ["", ""],
        ["footer", ""],
    ]
    assert spreadsheet.worksheet("Sheet1").row_count == 1001


def test_resize_and_delete_rows(sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.add_worksheet("Resize", rows=10, cols=3)
    ws.update([[f"r{i}", i] for i in range(1, 11)])
    ws.delete_rows(2, 4)
    assert ws.col_values(1) == ["r1", "r5", "r6", "r7", "r8", "r9", "r10"]
    ws.resize(rows=5, cols=1)
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Resize") == [
        ["r1"],
        ["r5"],
        ["r6"],
        ["r7"],
        ["r8"],
    ]
    refreshed = spreadsheet.worksheet("Resize")
    assert (refreshed.row_count, refreshed.col_count) == (5, 1)
    ws.add_rows(3)
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Resize") == (8, 1)


def test_clear_and_batch_clear_report_google_ranges(spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.sheet1
    ws.update([["a", "b"], ["c", "d"], ["e", "f"]])
    assert ws.clear()["clearedRange"] == "Sheet1!A1:Z1000"
    ws.update([["a", "b"], ["c", "d"], ["e", "f"]])
    cleared = ws.batch_clear(["A1", "B2:B"])
    assert cleared["clearedRanges"] == ["Sheet1!A1", "Sheet1!B2:B1000"]
    assert ws.get_all_values() == [["", "b"], ["c", ""], ["e", ""]]


# -- value input and rendering --------------------------------------------------------------


def test_raw_keeps_text_and_user_entered_parses_like_the_ui(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.sheet1
    link = '=HYPERLINK("http://x")'
    ws.update([[link, "0050", "TRUE", "2024-09-01"]], "A1", value_input_option=RAW)
    ws.update(
        [[link, "0050", "TRUE", "2024-09-01", "'=x", "2024-09-01 13:30:00", "=A1&B1"]],
        "A2",
        value_input_option=USER_ENTERED,
    )
    stored = sandbox.emulator.values(sandbox.spreadsheet_id, "Sheet1")
    assert stored[0] == [link, "0050", "TRUE", "2024-09-01"]
    assert not isinstance(stored[0][0], Formula)
    assert isinstance(stored[1][0], Formula)
    assert stored[1][1:3] == [50, True]
    assert isinstance(stored[1][3], DateSerial) and stored[1][3] == 45536
    assert stored[1][4] == "=x"

    formulas = ws.get("A1:G2", value_render_option=ValueRenderOption.formula)
    assert formulas[0][0] == link
    assert formulas[1] == [link, 50, True, 45536, "=x", 45536.5625, "=A1&B1"]
    assert ws.get("A1:G2") == [
        [link, "0050", "TRUE", "2024-09-01"],
        ["http://x", "50", "TRUE", "2024-09-01", "=x", "2024-09-01 13:30:00", "#NAME?"],
    ]
    assert ws.get("A2:D2", value_render_option=UNFORMATTED) == [["http://x", 50, True, 45536]]


def test_null_skips_a_cell_and_empty_string_clears_it(spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.sheet1
    ws.update([["a", "b", "c"]])
    response = ws.update([[None, "", "C"]])
    assert response["updatedCells"] == 2
    assert ws.get_all_values() == [["a", "", "C"]]


def test_only_bool_string_and_number_values_are_accepted(
    sandbox: SheetsSandbox, raw: requests.Session
) -> None:
    response = raw.put(
        api(sandbox, "/values/Sheet1!A1"),
        params={"valueInputOption": "RAW"},
        json={"values": [["ok", {"nested": 1}]]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "values[0][1]" in response.json()["error"]["message"]
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Sheet1") == []


def test_date_number_format_from_repeat_cell(spreadsheet: gspread.Spreadsheet) -> None:
    ws = spreadsheet.sheet1
    ws.format("B:B", {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}})
    ws.format("C:C", {"numberFormat": {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"}})
    ws.update([["x", 45537, 45537.75, 45537]])
    assert ws.get_all_values() == [["x", "2024-09-02", "2024-09-02 18:00:00", "45537"]]
    assert ws.get("B1:C1", value_render_option=UNFORMATTED) == [[45537, 45537.75]]
    assert ws.get(
        "B1", value_render_option=UNFORMATTED, date_time_render_option="FORMATTED_STRING"
    ) == [["2024-09-02"]]


# -- spreadsheets.batchUpdate ----------------------------------------------------------------


def test_batch_update_cell_requests_by_sheet_id(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    sheet_id = spreadsheet.sheet1.id
    reply = spreadsheet.batch_update(
        {
            "requests": [
                {"appendDimension": {"sheetId": sheet_id, "dimension": "ROWS", "length": 5}},
                {
                    "updateCells": {
                        "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": 0},
                        "rows": [
                            {
                                "values": [
                                    {"userEnteredValue": {"stringValue": "=not a formula"}},
                                    {"userEnteredValue": {"numberValue": 7}},
                                    {"userEnteredValue": {"boolValue": True}},
                                    {"userEnteredValue": {"formulaValue": "=1+1"}},
                                ]
                            }
                        ],
                        "fields": "userEnteredValue",
                    }
                },
                {
                    "appendCells": {
                        "sheetId": sheet_id,
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": "next"}}]}],
                        "fields": "*",
                    }
                },
                {
                    "insertDimension": {
                        "range": {
                            "sheetId": sheet_id,
                            "dimension": "COLUMNS",
                            "startIndex": 0,
                            "endIndex": 1,
                        }
                    }
                },
                {
                    "autoResizeDimensions": {
                        "dimensions": {"sheetId": sheet_id, "dimension": "COLUMNS"}
                    }
                },
            ]
        }
    )
    assert reply["replies"] == [{}, {}, {}, {}, {}]
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Sheet1") == [
        [None, "=not a formula", 7, True, Formula("=1+1")],
        [None, "next"],
    ]
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Sheet1") == (1005, 27)


def test_batch_update_is_all_or_nothing(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    spreadsheet.sheet1.update([["keep"]])
    before = sandbox.emulator.dump(sandbox.spreadsheet_id)
    with pytest.raises(APIError) as caught:
        spreadsheet.batch_update(
            {
                "requests": [
                    {"addSheet": {"properties": {"title": "New"}}},
                    {
                        "deleteDimension": {
                            "range": {
                                "sheetId": 0,
                                "dimension": "ROWS",
                                "startIndex": 0,
                                "endIndex": 1,
                            }
                        }
                    },
                    {
                        "updateSheetProperties": {
                            "properties": {"sheetId": 0, "title": "Renamed"},
                            "fields": "title",
                        }
                    },
                    {"frobnicate": {}},
                ]
            }
        )
    assert caught.value.code == 400
    assert "frobnicate" in caught.value.error["message"]
    assert sandbox.emulator.dump(sandbox.spreadsheet_id) == before
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Sheet1") == (1000, 26)


def test_values_batch_update_is_all_or_nothing(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.add_worksheet("Small", rows=3, cols=2)
    with pytest.raises(APIError) as caught:
        ws.batch_update(
            [{"range": "A1", "values": [["fits"]]}, {"range": "A4", "values": [["too far"]]}]
        )
    assert caught.value.code == 400
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Small") == []


def test_add_sheet_reply_and_duplicate_title(spreadsheet: gspread.Spreadsheet) -> None:
    reply = spreadsheet.batch_update(
        {"requests": [{"addSheet": {"properties": {"title": "Tab", "index": 0}}}]}
    )
    properties = reply["replies"][0]["addSheet"]["properties"]
    assert properties["title"] == "Tab"
    assert properties["index"] == 0
    assert properties["sheetType"] == "GRID"
    assert properties["gridProperties"] == {"rowCount": 1000, "columnCount": 26}
    with pytest.raises(APIError) as caught:
        spreadsheet.add_worksheet("tab", rows=1, cols=1)
    assert caught.value.code == 400
    assert "already exists" in caught.value.error["message"]
    assert [ws.title for ws in spreadsheet.worksheets()] == ["Tab", "Sheet1"]


def test_update_sheet_properties_masks_with_dots_or_slashes(
    spreadsheet: gspread.Spreadsheet,
) -> None:
    ws = spreadsheet.sheet1
    ws.update_title("People's list")
    ws.freeze(rows=1)
    spreadsheet.batch_update(
        {
            "requests": [
                {
                    "updateSheetProperties": {
                        "properties": {"sheetId": ws.id, "gridProperties": {"columnCount": 3}},
                        "fields": "gridProperties.columnCount",
                    }
                }
            ]
        }
    )
    fetched = spreadsheet.worksheet("People's list")
    assert (fetched.frozen_row_count, fetched.col_count) == (1, 3)
    fetched.update([["x"]], "C1")
    assert fetched.get("A1:C1").range == "'People''s list'!A1:C1"


# -- formats and conditional formats -------------------------------------------------------

FORMAT_FIELDS = "sheets(data(rowData(values(userEnteredFormat(numberFormat,textFormat(bold))))))"


def grid_formats(spreadsheet: gspread.Spreadsheet, a1: str, fields: str) -> list[dict[str, Any]]:
    """Each cell's userEnteredFormat in a one-column range, read the way clients read it."""
    params = {"ranges": [a1], "fields": fields}
    (sheet,) = spreadsheet.client.fetch_sheet_metadata(spreadsheet.id, params)["sheets"]
    rows = sheet["data"][0].get("rowData", [])
    return [(row.get("values") or [{}])[0].get("userEnteredFormat", {}) for row in rows]


def repeat_cell(sheet_id: int, rows: tuple[int, int], cell: dict[str, Any], fields: str) -> Any:
    span = {"sheetId": sheet_id, "startRowIndex": rows[0], "endRowIndex": rows[1]}
    span |= {"startColumnIndex": 0, "endColumnIndex": 1}
    return {"repeatCell": {"range": span, "cell": {"userEnteredFormat": cell}, "fields": fields}}


def test_number_formats_are_kept_per_cell_with_type_and_pattern(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.sheet1
    price = {"numberFormat": {"type": "NUMBER", "pattern": "#,##0.00"}}
    spreadsheet.batch_update(
        {"requests": [repeat_cell(ws.id, (1, 3), price, "userEnteredFormat.numberFormat")]}
    )
    ws.update([[1234.5], [132.5], [7]], "A2")

    formats = grid_formats(spreadsheet, "Sheet1!A1:A4", FORMAT_FIELDS)
    assert formats == [{}, price, price, {}]  # rows 2 and 3 only, not the whole column
    assert ws.get_all_values() == [[""], ["1,234.50"], ["132.50"], ["7"]]
    # The fields mask cuts the answer down, as Google's does.
    only_type = "sheets(data(rowData(values(userEnteredFormat(numberFormat(type))))))"
    typed = grid_formats(spreadsheet, "Sheet1!A2", only_type)
    assert typed == [{"numberFormat": {"type": "NUMBER"}}]
    assert sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A2:A3") == [
        [price],
        [price],
    ]


def test_field_masks_change_only_the_parts_they_name(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.sheet1
    date = {"numberFormat": {"type": "DATE", "pattern": "dd.mm.yyyy"}}
    bold = {"textFormat": {"bold": True}}
    spreadsheet.batch_update(
        {
            "requests": [
                repeat_cell(ws.id, (0, 2), date, "userEnteredFormat.numberFormat"),
                repeat_cell(ws.id, (0, 1), bold, "userEnteredFormat.textFormat.bold"),
            ]
        }
    )
    formats = sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A1:A2")
    assert formats == [[{**date, **bold}], [date]]

    # Without the part in the cell, a mask naming it clears it.
    spreadsheet.batch_update(
        {"requests": [repeat_cell(ws.id, (0, 1), {}, "userEnteredFormat.numberFormat")]}
    )
    formats = sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A1:A2")
    assert formats == [[bold], [date]]

    # updateCells sets formats cell by cell, under the same masks.
    start = {"sheetId": ws.id, "rowIndex": 1, "columnIndex": 0}
    cells = {"values": [{"userEnteredFormat": bold}]}
    fields = "userEnteredFormat.textFormat"
    spreadsheet.batch_update(
        {"requests": [{"updateCells": {"start": start, "rows": [cells], "fields": fields}}]}
    )
    formats = sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A1:A2")
    assert formats == [[bold], [{**date, **bold}]]

    sandbox.emulator.clear_formats(sandbox.spreadsheet_id, "Sheet1")  # "Clear formatting"
    assert sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A1:A2") == [[{}], [{}]]


def test_formats_move_with_inserted_and_deleted_rows(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.sheet1
    date = {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}}
    spreadsheet.batch_update(
        {"requests": [repeat_cell(ws.id, (2, 3), date, "userEnteredFormat.numberFormat")]}
    )
    ws.update([["a"], ["b"], [45537]], "A1")
    ws.delete_rows(1)  # row 3 moves up to row 2
    assert ws.get_all_values() == [["b"], ["2024-09-02"]]
    ws.insert_row(["new"], 1)
    assert sandbox.emulator.cell_formats(sandbox.spreadsheet_id, "Sheet1", "A1:A3") == [
        [{}],
        [{}],
        [date],
    ]


def rule(sheet_id: int, formula: str, start_column: int = 0) -> dict[str, Any]:
    span = {"sheetId": sheet_id, "startRowIndex": 1, "startColumnIndex": start_column}
    condition = {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]}
    grey = {"textFormat": {"strikethrough": True}}
    return {"ranges": [span], "booleanRule": {"condition": condition, "format": grey}}


def test_conditional_format_rules_are_added_updated_and_deleted_by_index(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet, raw: requests.Session
) -> None:
    sheet_id = spreadsheet.sheet1.id
    first, second = rule(sheet_id, '=$A2<>""'), rule(sheet_id, "=$B2>10")
    spreadsheet.batch_update(
        {
            "requests": [
                {"addConditionalFormatRule": {"rule": first}},
                {"addConditionalFormatRule": {"rule": second, "index": 0}},
            ]
        }
    )
    metadata = raw.get(api(sandbox)).json()
    assert metadata["sheets"][0]["conditionalFormats"] == [second, first]
    fields = {"fields": "sheets(properties(title),conditionalFormats)"}
    masked = raw.get(api(sandbox), params=fields).json()
    assert masked == {
        "sheets": [{"properties": {"title": "Sheet1"}, "conditionalFormats": [second, first]}]
    }

    changed = rule(sheet_id, '=$C2<>""')
    update = {"sheetId": sheet_id, "index": 1, "rule": changed}
    reply = spreadsheet.batch_update(
        {
            "requests": [
                {"updateConditionalFormatRule": update},
                {"updateConditionalFormatRule": {"sheetId": sheet_id, "index": 1, "newIndex": 0}},
                {"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": 1}},
            ]
        }
    )
    assert reply["replies"][0]["updateConditionalFormatRule"]["oldRule"] == first
    assert reply["replies"][2] == {"deleteConditionalFormatRule": {"rule": second}}
    assert sandbox.emulator.conditional_formats(sandbox.spreadsheet_id, "Sheet1") == [changed]

    with pytest.raises(APIError) as caught:
        spreadsheet.batch_update(
            {"requests": [{"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": 1}}]}
        )
    assert caught.value.code == 400
    with pytest.raises(APIError):  # a custom formula must be a formula
        bad = rule(sheet_id, "$A2")
        spreadsheet.batch_update({"requests": [{"addConditionalFormatRule": {"rule": bad}}]})
    assert sandbox.emulator.conditional_formats(sandbox.spreadsheet_id, "Sheet1") == [changed]


def test_rules_follow_inserted_and_deleted_columns(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    sheet_id = spreadsheet.sheet1.id
    spreadsheet.batch_update(
        {
            "requests": [
                {"addConditionalFormatRule": {"rule": rule(sheet_id, '=$E2<>"$E2"', 2)}},
                {"addConditionalFormatRule": {"rule": rule(sheet_id, "=AND($B2,LOG10($D2))")}},
            ]
        }
    )
    span = {"sheetId": sheet_id, "dimension": "COLUMNS"}
    spreadsheet.batch_update(
        {"requests": [{"insertDimension": {"range": {**span, "startIndex": 1, "endIndex": 2}}}]}
    )
    moved = sandbox.emulator.conditional_formats(sandbox.spreadsheet_id, "Sheet1")
    formulas = [r["booleanRule"]["condition"]["values"][0]["userEnteredValue"] for r in moved]
    assert formulas == ["=AND($C2,LOG10($E2))", '=$F2<>"$E2"']  # text in quotes stays
    assert [r["ranges"][0]["startColumnIndex"] for r in moved] == [0, 3]

    spreadsheet.batch_update(
        {"requests": [{"deleteDimension": {"range": {**span, "startIndex": 5, "endIndex": 6}}}]}
    )
    moved = sandbox.emulator.conditional_formats(sandbox.spreadsheet_id, "Sheet1")
    assert moved[1]["booleanRule"]["condition"]["values"][0]["userEnteredValue"] == (
        '=#REF!<>"$E2"'
    )


def test_deleting_every_row_below_frozen_ones_is_refused(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    ws = spreadsheet.add_worksheet("Small", rows=3, cols=2)
    ws.freeze(rows=1)
    with pytest.raises(APIError) as caught:
        ws.delete_rows(2, 3)
    assert "not possible to delete all non-frozen rows" in caught.value.error["message"]
    ws.delete_rows(2)
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Small") == (2, 2)


# -- limits and errors ----------------------------------------------------------------------


def test_writing_past_the_grid_is_refused_with_googles_message(
    spreadsheet: gspread.Spreadsheet,
) -> None:
    ws = spreadsheet.add_worksheet("T", rows=1016, cols=26)
    with pytest.raises(APIError) as caught:
        ws.update([["x"]], "A1017")
    assert caught.value.error == {
        "code": 400,
        "message": "Range ('T'!A1017) exceeds grid limits. Max rows: 1016, max columns: 26",
        "status": "INVALID_ARGUMENT",
    }


def test_reading_a_range_that_names_columns_past_the_grid_is_refused(
    spreadsheet: gspread.Spreadsheet,
) -> None:
    """Only open ends are clamped to the grid; a bounded end past it is a 400, as for writes."""
    ws = spreadsheet.add_worksheet("R", rows=10, cols=3)
    assert ws.get("A2:C") == [[]]  # gspread pads an empty answer to one empty row
    with pytest.raises(APIError) as caught:
        ws.get("A2:D")
    assert caught.value.error["code"] == 400
    assert "exceeds grid limits" in caught.value.error["message"]


def test_bounded_range_caps_the_data(spreadsheet: gspread.Spreadsheet) -> None:
    with pytest.raises(APIError) as caught:
        spreadsheet.sheet1.update([["a", "b", "c"]], "A1:B1")
    assert "tried writing to column [C]" in caught.value.error["message"]


def test_ten_million_cell_cap(sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet) -> None:
    spreadsheet.add_worksheet("Big", rows=383_000, cols=26)  # 9,984,000 cells with Sheet1
    with pytest.raises(APIError) as caught:
        spreadsheet.add_worksheet("One more", rows=1000, cols=26)
    assert caught.value.error["message"] == (
        "This action would increase the number of cells in the workbook above the limit of "
        "10000000 cells."
    )
    with pytest.raises(APIError):
        spreadsheet.worksheet("Big").add_rows(1000)
    assert sandbox.emulator.grid_size(sandbox.spreadsheet_id, "Big") == (383_000, 26)
    assert sandbox.emulator.sheet_titles(sandbox.spreadsheet_id) == ["Sheet1", "Big"]


def test_column_cap_is_zzz(spreadsheet: gspread.Spreadsheet) -> None:
    assert spreadsheet.add_worksheet("Wide", rows=1, cols=18_278).col_count == 18_278
    with pytest.raises(APIError) as caught:
        spreadsheet.add_worksheet("Wider", rows=1, cols=18_279)
    assert caught.value.code == 400
    assert "18278" in caught.value.error["message"]


def test_unknown_spreadsheet_is_404_and_unshared_is_403(
    sandbox: SheetsSandbox, raw: requests.Session
) -> None:
    client = sandbox.client()
    with pytest.raises(SpreadsheetNotFound):
        client.open_by_key("does-not-exist")
    response = raw.get(f"{sandbox.url}/v4/spreadsheets/does-not-exist")
    assert response.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }
    sandbox.emulator.create_spreadsheet("private", shared_with={"someone@else.test"})
    with pytest.raises(PermissionError):
        client.open_by_key("private")
    response = raw.get(f"{sandbox.url}/v4/spreadsheets/private")
    assert response.json()["error"] == {
        "code": 403,
        "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED",
    }


def test_write_quota_gives_googles_429(make_sheets_emulator: MakeSheetsEmulator) -> None:
    sandbox = make_sheets_emulator(write_quota_per_minute=2, quota_window_seconds=0.5)
    ws = sandbox.client().open_by_key(sandbox.spreadsheet_id).sheet1
    ws.update([["1"]])
    ws.update([["2"]])
    with pytest.raises(APIError) as caught:
        ws.update([["3"]])
    error = caught.value.error
    assert caught.value.response.status_code == 429
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["message"].startswith(
        "Quota exceeded for quota metric 'Write requests' and limit "
        "'Write requests per minute per user' of service 'sheets.googleapis.com'"
    )
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert ws.acell("A1").value == "2"  # reads have their own bucket
    assert sandbox.emulator.writes == 2
    time.sleep(0.6)
    ws.update([["4"]])
    assert ws.acell("A1").value == "4"


def test_read_quota(make_sheets_emulator: MakeSheetsEmulator) -> None:
    sandbox = make_sheets_emulator(read_quota_per_minute=1)
    client = sandbox.client()
    spreadsheet = client.open_by_key(sandbox.spreadsheet_id)
    with pytest.raises(APIError) as caught:
        spreadsheet.worksheets()
    assert "'Read requests per minute per user'" in caught.value.error["message"]
    assert sandbox.emulator.reads == 1


def test_counters_match_what_google_bills(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    emulator = sandbox.emulator
    assert (emulator.reads, emulator.writes) == (1, 0)  # open_by_key; the token call is free
    ws = spreadsheet.sheet1  # fetches the metadata again: one more read
    ws.batch_get(["1:1", "A:A"])  # any number of ranges: one read
    ws.batch_update([{"range": "A1", "values": [["a"]]}, {"range": "A2", "values": [["b"]]}])
    assert (emulator.reads, emulator.writes) == (3, 1)
    kinds = [(record.method, record.kind, record.status) for record in emulator.request_log]
    assert kinds == [
        ("POST", None, 200),
        ("GET", "read", 200),
        ("GET", "read", 200),
        ("GET", "read", 200),
        ("POST", "write", 200),
    ]


def test_fail_next_injects_google_errors(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    emulator = sandbox.emulator
    ws = spreadsheet.sheet1
    emulator.fail_next(2, 503)
    for _ in range(2):
        with pytest.raises(APIError) as caught:
            spreadsheet.worksheets()
        assert caught.value.error["status"] == "UNAVAILABLE"
    assert spreadsheet.worksheets()[0].title == "Sheet1"
    emulator.fail_next(1, 429)
    with pytest.raises(APIError) as caught:
        ws.update([["x"]])
    assert "'Write requests'" in caught.value.error["message"]
    assert emulator.values(sandbox.spreadsheet_id, "Sheet1") == []
    emulator.error_rate, emulator.error_statuses = 1.0, [500]
    with pytest.raises(APIError) as caught:
        spreadsheet.worksheets()
    assert caught.value.error == {
        "code": 500,
        "message": "Internal error encountered.",
        "status": "INTERNAL",
    }


def test_error_rate_is_reproducible_with_a_seed(make_sheets_emulator: MakeSheetsEmulator) -> None:
    def statuses(seed: int) -> list[int]:
        sandbox = make_sheets_emulator(error_rate=0.5, error_statuses=[500, 503], seed=seed)
        spreadsheet_url = api(sandbox)
        session = authorized_session(sandbox.key_info, sandbox.url)
        codes = [session.get(spreadsheet_url).status_code for _ in range(16)]
        session.close()
        return codes

    first = statuses(seed=7)
    assert first == statuses(seed=7)
    assert {200, 500, 503} <= set(first)


def test_slow_response_times_out_but_the_write_lands(
    make_sheets_emulator: MakeSheetsEmulator,
) -> None:
    sandbox = make_sheets_emulator(slow_seconds=0.5)
    worksheet = sandbox.client(timeout=(2.0, 0.2)).open_by_key(sandbox.spreadsheet_id).sheet1
    sandbox.emulator.slow_rate = 1.0
    with pytest.raises(requests.exceptions.ReadTimeout):
        worksheet.update([["written anyway"]])
    assert sandbox.emulator.values(sandbox.spreadsheet_id, "Sheet1") == [["written anyway"]]


# -- OAuth ----------------------------------------------------------------------------------


def test_token_signed_by_an_unregistered_key_is_refused(sandbox: SheetsSandbox) -> None:
    stranger = generate_service_account_key(sandbox.url + "/token", "intruder@x.iam.test")
    with pytest.raises(RefreshError, match="invalid_grant"):
        gspread_client(stranger, sandbox.url).open_by_key(sandbox.spreadsheet_id)
    impostor = {**stranger, "client_email": sandbox.key_info["client_email"]}
    impostor["private_key_id"] = sandbox.key_info["private_key_id"]
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        gspread_client(impostor, sandbox.url).open_by_key(sandbox.spreadsheet_id)
    assert sandbox.emulator.reads == 0
    assert [r.status for r in sandbox.emulator.request_log] == [400, 400]


def test_token_endpoint_errors_use_the_oauth_shape(sandbox: SheetsSandbox) -> None:
    response = requests.post(
        sandbox.url + "/token", data={"grant_type": "password", "assertion": "x"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    response = requests.post(
        sandbox.url + "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b.c"},
        timeout=5,
    )
    assert response.json()["error"] == "invalid_grant"


def test_assertion_claims_are_checked_but_not_the_audience(sandbox: SheetsSandbox) -> None:
    signer = crypt.RSASigner.from_service_account_info(sandbox.key_info)
    now = int(time.time())
    claims = {"iss": sandbox.key_info["client_email"], "scope": SCOPES[0], "aud": "anything"}

    def grant(issued: int, expires: int) -> requests.Response:
        assertion = jwt.encode(signer, {**claims, "iat": issued, "exp": expires}).decode()
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        return requests.post(sandbox.url + "/token", data=form, timeout=5)

    granted = grant(now, now + 3600)
    assert granted.status_code == 200
    assert granted.json()["token_type"] == "Bearer"
    assert granted.json()["expires_in"] == 3600
    for issued, expires in [(now - 7200, now - 3600), (now, now + 7200), (now + 3600, now + 4000)]:
        refused = grant(issued, expires)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
        assert "iat and exp" in refused.json()["error_description"]


def test_token_without_a_sheets_scope_is_403(sandbox: SheetsSandbox) -> None:
    credentials = service_account.Credentials.from_service_account_info(
        sandbox.key_info, scopes=["https://www.googleapis.com/auth/userinfo.email"]
    )
    session = AuthorizedSession(credentials)
    response = session.get(api(sandbox), timeout=5)
    session.close()
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Request had insufficient authentication scopes."


def test_fixture_key_file_is_private_and_usable(sandbox: SheetsSandbox) -> None:
    assert sandbox.key_file.stat().st_mode & 0o777 == 0o600
    key_info = json.loads(sandbox.key_file.read_text())
    assert key_info == sandbox.key_info
    assert key_info["token_uri"] == sandbox.url + "/token"
    assert gspread_client(key_info, sandbox.url).open_by_key(sandbox.spreadsheet_id).title


def test_missing_or_stale_token_is_401(sandbox: SheetsSandbox, raw: requests.Session) -> None:
    anonymous = requests.get(api(sandbox), timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    assert raw.get(api(sandbox)).status_code == 200
    token = raw.credentials.token
    sandbox.emulator.expire_tokens()
    stale = requests.get(api(sandbox), headers={"authorization": f"Bearer {token}"}, timeout=5)
    assert stale.status_code == 401
    # AuthorizedSession refreshes on 401 and retries with a new token.
    assert raw.get(api(sandbox)).status_code == 200
    assert raw.credentials.token != token
    assert [r.status for r in sandbox.emulator.request_log if r.kind] == [401, 200, 401, 401, 200]


def test_tokens_expire_after_their_lifetime(make_sheets_emulator: MakeSheetsEmulator) -> None:
    sandbox = make_sheets_emulator(token_lifetime_seconds=0.3)
    session = authorized_session(sandbox.key_info, sandbox.url)
    assert session.get(api(sandbox)).status_code == 200
    headers = {"Authorization": f"Bearer {session.credentials.token}"}
    assert requests.get(api(sandbox), headers=headers, timeout=5).status_code == 200
    time.sleep(0.4)
    assert requests.get(api(sandbox), headers=headers, timeout=5).status_code == 401
    session.close()


def test_short_token_lifetime_makes_google_auth_refresh_early(
    make_sheets_emulator: MakeSheetsEmulator,
) -> None:
    # google-auth refreshes once fewer than 225 s remain, so 200 s is stale at once.
    sandbox = make_sheets_emulator(token_lifetime_seconds=200)
    spreadsheet = sandbox.client().open_by_key(sandbox.spreadsheet_id)
    spreadsheet.worksheets()
    spreadsheet.worksheets()
    paths = [r.path for r in sandbox.emulator.request_log]
    assert paths.count("/token") == 3
    assert all(r.status == 200 for r in sandbox.emulator.request_log)


def test_wire_tolerance_lowercase_auth_true_alt_json_and_nulls(
    sandbox: SheetsSandbox, raw: requests.Session
) -> None:
    raw.get(api(sandbox))
    headers = {"authorization": f"Bearer {raw.credentials.token}", "x-goog-api-client": "x/1"}
    response = requests.post(
        api(sandbox, "/values/Sheet1:append"),
        params={"valueInputOption": "RAW", "includeValuesInResponse": "true", "alt": "json"},
        json={"values": [["a", None, 3]], "majorDimension": None},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert response.json()["updates"]["updatedData"] == {
        "range": "Sheet1!A1:C1",
        "majorDimension": "ROWS",
        "values": [["a", "", "3"]],
    }


# -- scale ----------------------------------------------------------------------------------


def test_large_sheet_column_reads_and_small_writes_work_at_scale(
    sandbox: SheetsSandbox, spreadsheet: gspread.Spreadsheet
) -> None:
    rows = 100_000
    spreadsheet.add_worksheet("Big", rows=rows + 10, cols=20)
    sandbox.emulator.set_values(
        sandbox.spreadsheet_id, "Big", [[f"k{r}", *range(19)] for r in range(rows)]
    )
    ws = spreadsheet.worksheet("Big")
    before = len(sandbox.emulator.request_log)
    keys = ws.col_values(1)
    ws.batch_update([{"range": "A50000:C50000", "values": [["changed", 1, 2]]}])
    ws.append_rows([["k-new", *range(19)]], table_range="A1")
    # One request each: the column read, the update and the append.
    assert [r.kind for r in sandbox.emulator.request_log[before:]] == ["read", "write", "write"]
    assert len(keys) == rows and keys[-1] == f"k{rows - 1}"
    assert ws.get("A50000:C50000") == [["changed", "1", "2"]]
    assert ws.acell(f"A{rows + 1}").value == "k-new"


# -- command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled(tmp_path: Path, signum: signal.Signals) -> None:
    key_file = tmp_path / "key.json"
    script = (
        "import argparse, sys\n"
        "from syncd.sandbox.sheets.cli import add_arguments, run\n"
        "parser = argparse.ArgumentParser()\n"
        "add_arguments(parser)\n"
        "sys.exit(run(parser.parse_args(sys.argv[1:])))\n"
    )
    arguments = ["--port", "0", "--spreadsheet", "S1", "--key-file", str(key_file)]
    process = subprocess.Popen(
        [sys.executable, "-c", script, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        key_info = json.loads(key_file.read_text())
        assert key_info["token_uri"] == url + "/token"
        client = gspread_client(key_info, url, timeout=(5.0, 10.0))
        sheet = client.open_by_key("S1").sheet1
        sheet.update([["hello"]])
        assert sheet.acell("A1").value == "hello"
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
