"""Removing rows: the one case where the daemon deletes a row (its resource stopped matching
the worksheet's ``where:``).

Rows are found by their key, read fresh before every attempt (people sort and insert rows
while a retry waits), and deleted bottom-up in one ``spreadsheets:batchUpdate``, so that no
``deleteDimension`` moves a row another one addresses. Row 1 is never deleted, nor a row
whose key cell names none of the URLs; keys are compared as the upsert compares them
(``resource_key``), so every row the upsert would write for a URL goes, duplicates too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from syncd.config.settings import SheetSettings
from syncd.mapping.keys import resource_key
from syncd.sheets.planning import Worksheet, append_dimension, spans
from syncd.sheets.transport import SheetsTransport
from syncd.sheets.worksheets import FlushStats, Worksheets


class _NothingToRemove(Exception):
    """The fresh read found none of the URLs: they are gone already."""


def rows_holding(key_cells: list[str], urls: Collection[str]) -> list[int]:
    """The rows (1-based, below row 1) whose key cell names one of ``urls``, top-down."""
    wanted = {resource_key(url) for url in urls}
    return [
        number
        for number, cell in enumerate(key_cells, start=1)
        if number > 1 and cell.strip() and resource_key(cell) in wanted
    ]


def delete_rows(sheet_id: int, rows: list[int], row_count: int) -> list[dict[str, Any]]:
    """``deleteDimension`` requests for ``rows`` (1-based, sorted), one per run of adjacent
    rows, the bottom run first.

    Google refuses to delete every row below the frozen header, so when that is what the rows
    amount to, one empty row is appended first.
    """
    requests = [append_dimension(sheet_id, "ROWS", 1)] if _empties(rows, row_count) else []
    for first, end in reversed(spans(rows)):
        span = {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": first - 1}
        requests.append({"deleteDimension": {"range": {**span, "endIndex": end - 1}}})
    return requests


def _empties(rows: list[int], row_count: int) -> bool:
    """Whether deleting ``rows`` would leave no row below the header."""
    return len(rows) >= row_count - 1


async def remove_rows(
    worksheets: Worksheets,
    transport: SheetsTransport,
    sheet: SheetSettings,
    worksheet: Worksheet,
    urls: Collection[str],
    stats: FlushStats,
) -> int:
    """Delete every row holding one of ``urls`` (1 read and 1 write; the read is repeated
    before each retry); returns how many rows went. The caller holds the worksheet's lock."""
    removed: list[int] = []

    async def prepare() -> list[dict[str, Any]]:
        layout = await worksheets.read_layout(sheet, worksheet, urls, stats)
        removed[:] = rows_holding(layout.key_cells, urls)
        if not removed:
            raise _NothingToRemove
        return delete_rows(worksheet.sheet_id, removed, worksheet.row_count)

    try:
        await transport.batch_update_prepared(prepare, stats)
    except _NothingToRemove:
        return 0
    # Every removed row lay above the rows below the key column's last value.
    worksheet.row_count += _empties(removed, worksheet.row_count) - len(removed)
    if worksheet.tail_start is not None:
        worksheet.tail_start -= len(removed)
    return len(removed)
