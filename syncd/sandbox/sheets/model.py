"""Spreadsheets and their worksheets: grid sizes, Google's limits, and writes into the grid.

Everything here changes state through an :class:`Undo`, so a request that fails part-way
(including on a size cap checked at the end) is rolled back by :func:`in_transaction`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from syncd.sandbox.sheets import rules
from syncd.sandbox.sheets.cells import KEEP, Cell, Input, Keep, cell_data, render_cell
from syncd.sandbox.sheets.errors import ApiError
from syncd.sandbox.sheets.formats import Format, apply_masks, number_format
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
    """One tab: its cells' values and formats (two grids that move together), and its
    conditional-format rules, in order."""

    sheet_id: int
    title: str
    row_count: int = DEFAULT_ROWS
    col_count: int = DEFAULT_COLUMNS
    frozen_rows: int = 0
    frozen_cols: int = 0
    hide_gridlines: bool = False
    hidden: bool = False
    tab_color: dict[str, Any] | None = None
    grid: Grid[Cell] = field(default_factory=Grid, repr=False)
    formats: Grid[Format] = field(default_factory=Grid, repr=False)
    conditional_formats: list[rules.Rule] = field(default_factory=list)

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

    def metadata(self, index: int) -> dict[str, Any]:
        """The sheet as spreadsheets.get lists it: properties, and its rules when it has any."""
        entry: dict[str, Any] = {"properties": self.properties(index)}
        if self.conditional_formats:
            entry["conditionalFormats"] = copy.deepcopy(self.conditional_formats)
        return entry

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
            self._cut("ROWS", rows, self.row_count, undo)
        if cols < self.col_count:
            self._cut("COLUMNS", cols, self.col_count, undo)
        set_attr(self, "row_count", rows, undo)
        set_attr(self, "col_count", cols, undo)

    def _count(self, dimension: str) -> int:
        return self.row_count if dimension == "ROWS" else self.col_count

    def insert_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        if not 0 <= start < end or start > self._count(dimension):
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        count = end - start
        for grid in (self.grid, self.formats):
            if dimension == "ROWS":
                grid.insert_rows(start, count, undo)
            else:
                grid.insert_columns(start, count, undo)
        moved = rules.inserted(self.conditional_formats, dimension, start, count)
        set_attr(self, "conditional_formats", moved, undo)
        name = "row_count" if dimension == "ROWS" else "col_count"
        set_attr(self, name, self._count(dimension) + count, undo)

    def delete_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        total = self._count(dimension)
        if not 0 <= start < end or end > total:
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        if start == 0 and end == total:
            raise ApiError(400, f"You can't delete all the {dimension.lower()} on the sheet.")
        frozen = self.frozen_rows if dimension == "ROWS" else self.frozen_cols
        if frozen and start <= frozen and end == total:
            raise ApiError(
                400, f"Sorry, it is not possible to delete all non-frozen {dimension.lower()}."
            )
        self._cut(dimension, start, end, undo)
        name = "row_count" if dimension == "ROWS" else "col_count"
        set_attr(self, name, total - (end - start), undo)

    def _cut(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        """Remove rows or columns from both grids and from the rules' ranges."""
        for grid in (self.grid, self.formats):
            if dimension == "ROWS":
                grid.delete_rows(start, end, undo)
            else:
                grid.delete_columns(start, end, undo)
        kept = rules.deleted(self.conditional_formats, dimension, start, end)
        set_attr(self, "conditional_formats", kept, undo)

    def format_cells(self, box: Box, given: Any, masks: list[list[str]], undo: Undo) -> None:
        """Set the masked parts of the format of every cell in ``box`` from ``given`` (a
        userEnteredFormat), as repeatCell does; cells sharing a format share the result."""
        if not masks:
            return
        changed: dict[int, Format | None] = {}
        matrix: list[list[Format | Keep | None]] = []
        for r in range(box.top, box.bottom):
            row: list[Format | Keep | None] = []
            for c in range(box.left, box.right):
                old = self.formats.cell(r, c)
                if id(old) not in changed:
                    changed[id(old)] = apply_masks(old, given, masks)
                row.append(changed[id(old)])
            matrix.append(row)
        self.formats.write(box.top, box.left, matrix, undo)

    def number_format(self, r: int, c: int) -> Mapping[str, Any]:
        """The numberFormat of one cell (``{}`` when it has none)."""
        return number_format(self.formats.cell(r, c))

    def grid_data(self, bounds: A1Range) -> dict[str, Any]:
        """A block as spreadsheets.get returns its GridData: every cell's value, formatted
        value and format (the caller applies the request's field mask)."""
        r0, r1, c0, c1 = bounds.box()
        rows = [
            {
                "values": [
                    cell_data(self.grid.cell(r, c), self.formats.cell(r, c)) for c in range(c0, c1)
                ]
            }
            for r in range(r0, r1)
        ]
        data: dict[str, Any] = {"rowData": rows}
        data.update((k, v) for k, v in (("startRow", r0), ("startColumn", c0)) if v)
        return data

    def render(self, bounds: A1Range, major: str, render: str, date_render: str) -> list[list[Any]]:
        """The block as values.get returns it (trimmed, empty interior cells as ""), each
        cell shown through its own number format."""
        r0, r1, c0, c1 = bounds.box()

        def shown(value: Cell, r: int, c: int) -> Any:
            return render_cell(value, render, date_render, self.number_format(r, c))

        if major == "COLUMNS":
            columns = self.grid.read_columns(r0, r1, c0, c1)
            return [
                [shown(v, r0 + i, c0 + j) for i, v in enumerate(column)]
                for j, column in enumerate(columns)
            ]
        return [
            [shown(v, r0 + i, c0 + j) for j, v in enumerate(row)]
            for i, row in enumerate(self.grid.read_rows(r0, r1, c0, c1))
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
            "sheets": [ws.metadata(i) for i, ws in enumerate(self.sheets)],
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
