"""Where each row goes and what to send: pure functions over the layout read from a worksheet.

Nothing here talks to Google. Given row 1 and the key column as read in a flush, these decide
the row of every URL, the value ranges that write exactly the owned cells, how to split them
into requests of bounded size, and the ``spreadsheets:batchUpdate`` requests that create
headers and grow the grid (formats and the header's look are ``presentation``'s).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import CellValue, Row
from syncd.mapping.keys import resource_key
from syncd.sheets.a1 import column_letters, quote_title


@dataclass
class Worksheet:
    """What the writer remembers about a worksheet between flushes (saves metadata reads)."""

    sheet_id: int
    title: str
    row_count: int
    column_count: int
    #: Row 1 as last read or written; tells which column to read as the key column.
    header: list[str] | None = None
    #: The row below the key column's last value as last read or written. Every row from
    #: here down is read with the key column, so new rows go below what people wrote there.
    tail_start: int | None = None

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> Worksheet:
        grid = properties.get("gridProperties", {})
        return cls(
            sheet_id=int(properties["sheetId"]),
            title=str(properties["title"]),
            row_count=int(grid.get("rowCount", 0)),
            column_count=int(grid.get("columnCount", 0)),
        )


@dataclass(frozen=True)
class Layout:
    """Row 1, the key column and what lies below it, as read just before a write."""

    #: Stripped header text -> 0-based column index (the first column wins on duplicates).
    columns: dict[str, int]
    #: The key column top-down as text; index 0 is row 1.
    key_cells: list[str]
    #: The last row holding anything in any column (a person's totals row, a note), 1-based;
    #: 0 when nothing was read below the key column's last value.
    content_end: int = 0


@dataclass(frozen=True)
class Placement:
    """Where each URL's row goes in one write."""

    #: URL -> 1-based row number to write.
    targets: dict[str, int]
    #: URLs not in the key column: their rows are new, below every row with content.
    new: frozenset[str]
    #: URLs left out: found but only wanted if missing, or missing but only wanted if found.
    skipped: frozenset[str]
    #: URL -> every row holding it, for URLs found more than once.
    duplicates: dict[str, list[int]]

    @property
    def last_row(self) -> int:
        return max(self.targets.values(), default=0)


def check_headers(sheet: SheetSettings, rows: Mapping[str, Row]) -> None:
    """Refuse cells outside the owned columns: the writer must never touch a user's column."""
    owned = set(sheet.headers)
    unknown = sorted({h for row in rows.values() for h in row if h not in owned})
    if unknown:
        raise ValueError(f"{sheet.title}: rows name headers the sheet does not own: {unknown}")


def place(
    layout: Layout,
    urls: Collection[str],
    only_if_missing: Collection[str],
    only_if_present: Collection[str] = (),
) -> Placement:
    """Decide the row of every URL from the key column as read.

    A URL is matched against each key cell as a Cobot resource (``resource_key``: scheme,
    host case and a trailing slash do not matter); cells holding anything else are ignored.
    New rows go below the last row holding anything at all, so a row a person wrote below the
    table (a totals row, a note) is never written into, and rows without a URL stay
    where they are, untouched.
    """
    wanted = {resource_key(url): url for url in urls}
    found: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    last_used = max(1, layout.content_end)
    for number, cell in enumerate(layout.key_cells, start=1):
        if not cell.strip():
            continue
        last_used = max(last_used, number)
        text = wanted.get(resource_key(cell), "")
        if number == 1 or not text:
            continue
        if text in found:
            duplicates.setdefault(text, [found[text]]).append(number)
        else:
            found[text] = number
    targets: dict[str, int] = {}
    new: set[str] = set()
    skipped: set[str] = set()
    for url in urls:
        if url in (only_if_missing if url in found else only_if_present):
            skipped.add(url)
        elif url in found:
            targets[url] = found[url]
        else:
            last_used += 1
            targets[url] = last_used
            new.add(url)
    return Placement(targets, frozenset(new), frozenset(skipped), duplicates)


def value_ranges(
    title: str,
    key_column: str,
    layout: Layout,
    targets: Mapping[str, int],
    rows: Mapping[str, Row],
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each URL with its ``ValueRange``s, one per contiguous run of given cells, in row order.

    Runs stop at any column the daemon does not write in this row, so a user's column between
    two of ours is never overwritten. The key cell is always written, so a new row has it.
    """
    quoted = quote_title(title)
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for url, number in sorted(targets.items(), key=itemgetter(1)):
        cells = {**rows[url], key_column: url}
        placed = sorted(((layout.columns[h], v) for h, v in cells.items()), key=itemgetter(0))
        data = []
        for first, values in _runs(placed):
            last = column_letters(first + len(values))
            data.append(
                {
                    "range": f"{quoted}!{column_letters(first + 1)}{number}:{last}{number}",
                    "values": [values],
                }
            )
        groups.append((url, data))
    return groups


def _runs(placed: list[tuple[int, CellValue]]) -> Iterator[tuple[int, list[CellValue]]]:
    """Group (column, value) pairs sorted by column into runs of adjacent columns."""
    start: int | None = None
    values: list[CellValue] = []
    for column, value in placed:
        if start is not None and column != start + len(values):
            yield start, values
            start, values = None, []
        if start is None:
            start = column
        values.append(value)
    if start is not None:
        yield start, values


def first_chunk(
    groups: list[tuple[str, list[dict[str, Any]]]], max_bytes: int, max_ranges: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """The URLs and value ranges of the next request of bounded size (at least one row).

    Only the first request is built: the rows of the next one are placed again from a fresh
    read, since people may sort or insert rows while this one is sent.
    """
    urls: list[str] = []
    data: list[dict[str, Any]] = []
    size = 0
    for url, ranges in groups:
        group_size = sum(len(json.dumps(item)) for item in ranges)
        if urls and (size + group_size > max_bytes or len(data) + len(ranges) > max_ranges):
            break
        urls.append(url)
        data.extend(ranges)
        size += group_size
    return urls, data


def header_index(header: list[str]) -> dict[str, int]:
    """Header text (stripped) -> column index; the first of duplicated headers wins."""
    index: dict[str, int] = {}
    for position, text in enumerate(header):
        name = text.strip()
        if name:
            index.setdefault(name, position)
    return index


def used_length(cells: list[str]) -> int:
    """Length of a list of cells without its trailing blanks."""
    length = len(cells)
    while length and not cells[length - 1].strip():
        length -= 1
    return length


def header_cells(sheet_id: int, start_column: int, headers: list[str]) -> dict[str, Any]:
    """An ``updateCells`` request writing header texts into row 1 from ``start_column``."""
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": start_column},
            "rows": [{"values": [{"userEnteredValue": {"stringValue": h}} for h in headers]}],
            "fields": "userEnteredValue",
        }
    }


def append_dimension(sheet_id: int, dimension: str, length: int) -> dict[str, Any]:
    """An ``appendDimension`` request adding ``length`` rows or columns at the grid's end."""
    return {"appendDimension": {"sheetId": sheet_id, "dimension": dimension, "length": length}}


def add_sheet(worksheet: Worksheet) -> dict[str, Any]:
    """An ``addSheet`` request for ``worksheet``, row 1 frozen so a sort in the UI keeps it."""
    return {
        "addSheet": {
            "properties": {
                "sheetId": worksheet.sheet_id,
                "title": worksheet.title,
                "gridProperties": {
                    "rowCount": worksheet.row_count,
                    "columnCount": worksheet.column_count,
                    "frozenRowCount": 1,
                },
            }
        }
    }


def spans(indexes: list[int]) -> list[tuple[int, int]]:
    """Sorted indexes as runs of consecutive ones: (first, last + 1)."""
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][1] == index:
            runs[-1][1] = index + 1
        else:
            runs.append([index, index + 1])
    return [(start, end) for start, end in runs]


def cell_text(value: Any) -> str:
    """A cell as read (Google returns text, numbers or booleans) as text."""
    return value if isinstance(value, str) else str(value)
