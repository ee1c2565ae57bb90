"""The values endpoints: values.get, batchGet, update, batchUpdate, append, clear, batchClear.

Each handler reads its options the way Google validates them and answers with the same
response shapes (updatedRange, tableRange, updatedData...), since clients parse them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.sandbox.sheets.cells import DIMENSIONS, to_matrix
from syncd.sandbox.sheets.errors import ApiError
from syncd.sandbox.sheets.grid import Undo
from syncd.sandbox.sheets.model import (
    Spreadsheet,
    Worksheet,
    WriteStats,
    find_table,
    in_transaction,
)
from syncd.sandbox.sheets.request import Call, required_field
from syncd.sheets.a1 import A1Range, column_letters

VALUE_INPUT_OPTIONS = ("RAW", "USER_ENTERED")
RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATE_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")

Written = tuple[Worksheet, A1Range, WriteStats | None]
"""A values write: the sheet, the range's first cell, and the stats (None if nothing set)."""


@dataclass(frozen=True)
class ReadOptions:
    major: str = "ROWS"
    render: str = "FORMATTED_VALUE"
    date_render: str = "SERIAL_NUMBER"


def _read_options(call: Call, prefix: str = "") -> ReadOptions:
    render_name = f"{prefix}ValueRenderOption" if prefix else "valueRenderOption"
    date_name = f"{prefix}DateTimeRenderOption" if prefix else "dateTimeRenderOption"
    return ReadOptions(
        call.option("majorDimension", DIMENSIONS, "ROWS") if not prefix else "ROWS",
        call.option(render_name, RENDER_OPTIONS, "FORMATTED_VALUE"),
        call.option(date_name, DATE_RENDER_OPTIONS, "SERIAL_NUMBER"),
    )


def _value_range(ws: Worksheet, bounds: A1Range, options: ReadOptions) -> dict[str, Any]:
    values = ws.render(bounds, options.major, options.render, options.date_render)
    result: dict[str, Any] = {"range": bounds.to_a1(), "majorDimension": options.major}
    if values:
        result["values"] = values
    return result


def _read_range(ss: Spreadsheet, text: str, options: ReadOptions) -> dict[str, Any]:
    ws, rng = ss.resolve(text)
    return _value_range(ws, ws.bounds(rng), options)


def get(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.get: one range."""
    return _read_range(ss, params["range"], _read_options(call))


def batch_get(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.batchGet: every ``ranges`` query parameter, in order."""
    options = _read_options(call)
    result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
    ranges = call.query.getall("ranges", [])
    if ranges:
        result["valueRanges"] = [_read_range(ss, text, options) for text in ranges]
    return result


def _write_range(
    ss: Spreadsheet, text: str, value_range: Mapping[str, Any], option: str, undo: Undo
) -> Written:
    """values.update of one range; a bounded multi-cell range caps the data's size."""
    ws, rng = ss.resolve(text)
    major = value_range.get("majorDimension") or "ROWS"
    if major not in DIMENSIONS:
        raise ApiError(400, f"Invalid majorDimension: {major}")
    matrix = to_matrix(value_range.get("values"), major, option)
    r0, c0 = rng.start_row or 0, rng.start_col or 0
    if not (rng.is_single_cell or rng.is_whole_sheet):
        if rng.end_row is not None and r0 + len(matrix) > rng.end_row:
            raise ApiError(
                400,
                f"Requested writing within range [{text}], but tried writing to row "
                f"[{rng.end_row + 1}]",
            )
        width = max((len(row) for row in matrix), default=0)
        if rng.end_col is not None and c0 + width > rng.end_col:
            raise ApiError(
                400,
                f"Requested writing within range [{text}], but tried writing to column "
                f"[{column_letters(rng.end_col + 1)}]",
            )
    start = A1Range(ws.title, r0, r0 + 1, c0, c0 + 1)
    return ws, start, ws.write(r0, c0, matrix, undo)


def _update_response(
    ss: Spreadsheet,
    written: Written,
    response_options: ReadOptions | None,
) -> dict[str, Any]:
    ws, start, stats = written
    if stats is None:
        response: dict[str, Any] = {
            "spreadsheetId": ss.spreadsheet_id,
            "updatedRange": start.to_a1(),
        }
    else:
        response = stats.response(ss.spreadsheet_id)
    if response_options is not None:
        extent = stats.extent if stats else start
        response["updatedData"] = _value_range(ws, extent, response_options)
    return response


def _response_options(call: Call, include: bool) -> ReadOptions | None:
    return _read_options(call, "response") if include else None


def update(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.update: one range, from its first cell."""
    option = call.option("valueInputOption", VALUE_INPUT_OPTIONS)
    body = call.json()
    written = in_transaction(ss, lambda undo: _write_range(ss, params["range"], body, option, undo))
    return _update_response(
        ss, written, _response_options(call, call.flag("includeValuesInResponse"))
    )


def batch_update(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.batchUpdate: several ranges in one transaction."""
    body = call.json()
    option = body.get("valueInputOption")
    if option not in VALUE_INPUT_OPTIONS:
        raise ApiError(400, f"Invalid valueInputOption: {option}")
    data = body.get("data") or []
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise ApiError(400, "Invalid data: must be a list of ValueRange objects")
    written = in_transaction(
        ss,
        lambda undo: [
            _write_range(ss, str(required_field(item, "range")), item, option, undo)
            for item in data
        ],
    )
    include = bool(body.get("includeValuesInResponse"))
    options = (
        ReadOptions(
            "ROWS",
            body.get("responseValueRenderOption") or "FORMATTED_VALUE",
            body.get("responseDateTimeRenderOption") or "SERIAL_NUMBER",
        )
        if include
        else None
    )
    stats = [item[2] for item in written if item[2] is not None]
    result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
    if stats:
        result.update(
            totalUpdatedRows=sum(s.rows for s in stats),
            totalUpdatedColumns=sum(s.columns for s in stats),
            totalUpdatedCells=sum(s.cells for s in stats),
            totalUpdatedSheets=len({s.extent.sheet for s in stats}),
        )
    if written:
        result["responses"] = [_update_response(ss, item, options) for item in written]
    return result


def append(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.append: below the table found in the range (see ``find_table``)."""
    option = call.option("valueInputOption", VALUE_INPUT_OPTIONS)
    insert = call.option("insertDataOption", ("OVERWRITE", "INSERT_ROWS"), "OVERWRITE")
    body = call.json()

    def write_below_table(undo: Undo) -> tuple[A1Range | None, Written]:
        ws, rng = ss.resolve(params["range"])
        matrix = to_matrix(body.get("values"), body.get("majorDimension") or "ROWS", option)
        table = find_table(ws, rng)
        # Values go below the table, from its first column; with no table, at the range.
        r0, c0 = (table.bottom, table.left) if table else (rng.start_row or 0, rng.start_col or 0)
        height, width = len(matrix), max((len(row) for row in matrix), default=0)
        if insert == "INSERT_ROWS" and height:
            ws.insert_dimension("ROWS", r0, r0 + height, undo)
        # Appending past the end of the grid grows it, whatever the insert option.
        rows, cols = max(ws.row_count, r0 + height), max(ws.col_count, c0 + width)
        if (rows, cols) != (ws.row_count, ws.col_count):
            ws.resize(rows, cols, undo)
        start = A1Range(ws.title, r0, r0 + 1, c0, c0 + 1)
        table_range = A1Range(ws.title, *table) if table else None
        return table_range, (ws, start, ws.write(r0, c0, matrix, undo))

    table, written = in_transaction(ss, write_below_table)
    result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
    if table is not None:
        result["tableRange"] = table.to_a1()
    result["updates"] = _update_response(
        ss, written, _response_options(call, call.flag("includeValuesInResponse"))
    )
    return result


def _clear_range(ss: Spreadsheet, text: str, undo: Undo) -> str:
    ws, rng = ss.resolve(text)
    bounds = ws.bounds(rng)
    ws.grid.clear(*bounds.box(), undo)
    return bounds.to_a1()


def clear(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.clear: one range."""
    text = params["range"]
    cleared = in_transaction(ss, lambda undo: _clear_range(ss, text, undo))
    return {"spreadsheetId": ss.spreadsheet_id, "clearedRange": cleared}


def batch_clear(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """spreadsheets.values.batchClear: several ranges in one transaction."""
    ranges = call.json().get("ranges") or []
    if not isinstance(ranges, list):
        raise ApiError(400, "Invalid ranges: must be a list")
    cleared = in_transaction(
        ss, lambda undo: [_clear_range(ss, str(text), undo) for text in ranges]
    )
    return {"spreadsheetId": ss.spreadsheet_id, "clearedRanges": cleared}
