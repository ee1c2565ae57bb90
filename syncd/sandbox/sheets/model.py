"""Spreadsheets and their worksheets: grid sizes, Google's limits, and writes into the grid.

Everything here changes state through an :class:`Undo`, so a request that fails part-way
(including on a size cap checked at the end) is rolled back by :func:`in_transaction`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from syncd.sandbox.sheets.cells import KEEP, Input, render_cell
from syncd.sandbox.sheets.errors import ApiError
from syncd.sandbox.sheets.grid import Grid, Undo, set_attr
from syncd.sheets.a1 import MAX_COLUMNS, A1Error, A1Range, Box, parse_a1, quote_title

DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
MAX_CELLS = 10_000_000

T = TypeVar("T")


def _grid_limit_error(ws: Worksheet, extent: A1Range) -> ApiError:
    # Google's error text quotes every title, unlike the ranges it echoes.
    title = quote_title(ws.title, always=True)
    return ApiError(
        400,
        f"Range ({title}!{extent.ref()}) exceeds grid limits. "
        f"Max rows: {ws.row_count}, max columns: {ws.col_count}",
    )


@dataclass
class WriteStats:
    """What a values write reports: the written extent and how much of it was set."""

    extent: A1Range
    rows: int
    columns: int
    cells: int

    def response(self, spreadsheet_id: str) -> dict[str, Any]:
        return {
            "spreadsheetId": spreadsheet_id,
            "updatedRange": self.extent.to_a1(),
            "updatedRows": self.rows,
            "updatedColumns": self.columns,
            "updatedCells": self.cells,
        }


@dataclass
class Worksheet:
    """One tab. ``column_formats`` maps a column to a numberFormat type set by repeatCell
    (a simplification: Google formats cells, the emulator formats whole columns)."""

    sheet_id: int
    title: str
    row_count: int = DEFAULT_ROWS
    col_count: int = DEFAULT_COLUMNS
    frozen_rows: int = 0
    frozen_cols: int = 0
    hide_gridlines: bool = False
    hidden: bool = False
    tab_color: dict[str, Any] | None = None
    grid: Grid = field(default_factory=Grid, repr=False)
    column_formats: dict[int, str] = field(default_factory=dict)

    def properties(self, index: int) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.row_count, "columnCount": self.col_count}
        optional = {
            "frozenRowCount": self.frozen_rows,
            "frozenColumnCount": self.frozen_cols,
            "hideGridlines": self.hide_gridlines,
        }
        grid.update((name, value) for name, value in optional.items() if value)
        props: dict[str, Any] = {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": grid,
        }
        if self.hidden:
            props["hidden"] = True
        if self.tab_color:
            props["tabColorStyle"] = self.tab_color
        return props

    def bounds(self, rng: A1Range) -> A1Range:
        """``rng`` with open ends filled from the grid. As in Google, a range that names a row
        or column outside the grid is an error, for reads too (only open ends are clamped)."""
        beyond = (rng.end_row is not None and rng.end_row > self.row_count) or (
            rng.end_col is not None and rng.end_col > self.col_count
        )
        bounded = replace(rng.clamp(self.row_count, self.col_count), sheet=self.title)
        box = bounded.box()
        if beyond or box.top >= self.row_count or box.left >= self.col_count:
            raise _grid_limit_error(self, replace(rng, sheet=self.title))
        return bounded

    def check_fits(self, r0: int, c0: int, height: int, width: int) -> A1Range:
        extent = A1Range(self.title, r0, r0 + height, c0, c0 + width)
        if r0 + height > self.row_count or c0 + width > self.col_count:
            raise _grid_limit_error(self, extent)
        return extent

    def write(self, r0: int, c0: int, matrix: list[list[Input]], undo: Undo) -> WriteStats | None:
        """Write a block of cells; the whole block must lie inside the grid."""
        width = max((len(row) for row in matrix), default=0)
        if not width:
            return None
        extent = self.check_fits(r0, c0, len(matrix), width)
        self.grid.write(r0, c0, matrix, undo)
        rows = cells = full_width = 0
        partial_columns: set[int] = set()
        for line in matrix:
            count = len(line) - line.count(KEEP)
            rows += count > 0
            cells += count
            if count == len(line):
                full_width = max(full_width, count)
            else:
                partial_columns.update(j for j, value in enumerate(line) if value is not KEEP)
        columns = len(partial_columns | set(range(full_width)))
        return WriteStats(extent, rows, columns, cells)

    def resize(self, rows: int, cols: int, undo: Undo) -> None:
        if rows < 1 or cols < 1:
            raise ApiError(400, "rowCount and columnCount must be greater than 0")
        if rows < self.row_count:
            self.grid.delete_rows(rows, self.row_count, undo)
        if cols < self.col_count:
            self.grid.delete_columns(cols, self.col_count, undo)
            formats = {c: kind for c, kind in self.column_formats.items() if c < cols}
            set_attr(self, "column_formats", formats, undo)
        set_attr(self, "row_count", rows, undo)
        set_attr(self, "col_count", cols, undo)

    def _count(self, dimension: str) -> int:
        return self.row_count if dimension == "ROWS" else self.col_count

    def insert_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        if not 0 <= start < end or start > self._count(dimension):
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        count = end - start
        if dimension == "ROWS":
            self.grid.insert_rows(start, count, undo)
            set_attr(self, "row_count", self.row_count + count, undo)
            return
        self.grid.insert_columns(start, count, undo)
        self._shift_formats(start, count, undo)
        set_attr(self, "col_count", self.col_count + count, undo)

    def delete_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        total = self._count(dimension)
        if not 0 <= start < end or end > total:
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        if start == 0 and end == total:
            raise ApiError(400, f"You can't delete all the {dimension.lower()} on the sheet.")
        if dimension == "ROWS":
            self.grid.delete_rows(start, end, undo)
            set_attr(self, "row_count", total - (end - start), undo)
            return
        self.grid.delete_columns(start, end, undo)
        kept = {c: kind for c, kind in self.column_formats.items() if not start <= c < end}
        set_attr(self, "column_formats", kept, undo)
        self._shift_formats(end, start - end, undo)
        set_attr(self, "col_count", total - (end - start), undo)

    def _shift_formats(self, at: int, delta: int, undo: Undo) -> None:
        shifted = {c + delta if c >= at else c: kind for c, kind in self.column_formats.items()}
        set_attr(self, "column_formats", shifted, undo)

    def grid_data(self, bounds: A1Range) -> dict[str, Any]:
        """A block as spreadsheets.get returns its GridData: each cell's number format."""
        r0, r1, c0, c1 = bounds.box()
        formats = [self.column_formats.get(c) for c in range(c0, c1)]
        cells = [{"userEnteredFormat": {"numberFormat": {"type": t}}} if t else {} for t in formats]
        data: dict[str, Any] = {"rowData": [{"values": cells} for _ in range(r0, r1)]}
        data.update((k, v) for k, v in (("startRow", r0), ("startColumn", c0)) if v)
        return data

    def render(self, bounds: A1Range, major: str, render: str, date_render: str) -> list[list[Any]]:
        """The block as values.get returns it (trimmed, empty interior cells as "")."""
        r0, r1, c0, c1 = bounds.box()
        formats = self.column_formats
        if major == "COLUMNS":
            columns = self.grid.read_columns(r0, r1, c0, c1)
            return [
                [render_cell(v, render, date_render, formats.get(c0 + j)) for v in column]
                for j, column in enumerate(columns)
            ]
        return [
            [render_cell(v, render, date_render, formats.get(c0 + j)) for j, v in enumerate(row)]
            for row in self.grid.read_rows(r0, r1, c0, c1)
        ]


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    shared_with: set[str] | None = None
    locale: str = "en_US"
    time_zone: str = "Etc/GMT"
    sheets: list[Worksheet] = field(default_factory=list)

    def find_title(self, title: str) -> Worksheet | None:
        """Sheet titles are unique and matched case-insensitively, as in Google."""
        exact = [ws for ws in self.sheets if ws.title == title]
        folded = [ws for ws in self.sheets if ws.title.casefold() == title.casefold()]
        return next(iter(exact or folded), None)

    def sheet(self, sheet_id: Any) -> Worksheet:
        for ws in self.sheets:
            if ws.sheet_id == sheet_id:
                return ws
        raise ApiError(400, f"No grid with id: {sheet_id}")

    def resolve(self, text: str) -> tuple[Worksheet, A1Range]:
        """The sheet and range an A1 string names (no sheet means the first one)."""
        try:
            rng = parse_a1(text, [ws.title for ws in self.sheets])
        except A1Error:
            raise ApiError(400, f"Unable to parse range: {text}") from None
        ws = self.sheets[0] if rng.sheet is None else self.find_title(rng.sheet)
        if ws is None:
            raise ApiError(400, f"Unable to parse range: {text}")
        return ws, replace(rng, sheet=ws.title)

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {
                "title": self.title,
                "locale": self.locale,
                "autoRecalc": "ON_CHANGE",
                "timeZone": self.time_zone,
            },
            "sheets": [{"properties": ws.properties(i)} for i, ws in enumerate(self.sheets)],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }

    def check_limits(self) -> None:
        """Google's caps, checked once a request's changes are all applied."""
        if sum(ws.row_count * ws.col_count for ws in self.sheets) > MAX_CELLS:
            raise ApiError(
                400,
                "This action would increase the number of cells in the workbook above the "
                f"limit of {MAX_CELLS} cells.",
            )
        if any(ws.col_count > MAX_COLUMNS for ws in self.sheets):
            raise ApiError(
                400,
                "This action would increase the number of columns in the sheet above the "
                f"limit of {MAX_COLUMNS} columns.",
            )


def find_table(ws: Worksheet, rng: A1Range) -> Box | None:
    """The "table" values.append extends, or None when the range holds no data.

    A single-cell range anchors on that cell (this is what ``table_range="A1"`` relies on);
    otherwise the anchor is the last value in the range. Matches the recorded Google answers:
    ``['x', '', 'y']`` in row 1 gives table ``C1`` for the whole sheet and ``A1`` for ``A1``.
    """
    area = ws.bounds(rng).box()
    if rng.is_single_cell and ws.grid.cell(area.top, area.left) is not None:
        return ws.grid.region(area.top, area.left, Box(0, ws.row_count, 0, ws.col_count))
    anchor = ws.grid.last_cell(*area)
    return None if anchor is None else ws.grid.region(*anchor, area)


def in_transaction(ss: Spreadsheet, change: Callable[[Undo], T]) -> T:
    """Apply ``change`` all-or-nothing, including Google's size caps."""
    undo = Undo()
    try:
        result = change(undo)
        ss.check_limits()
    except BaseException:
        undo.rollback()
        raise
    return result
