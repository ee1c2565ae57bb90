"""spreadsheets.batchUpdate: the structural requests (addSheet, appendDimension, repeatCell...).

Sub-requests run in order against the live model, each change recording its undo step; the
whole batch is one transaction, so it is all-or-nothing like Google's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from syncd.sandbox.sheets import rules
from syncd.sandbox.sheets.cells import DIMENSIONS, Cell, Formula, Input, check_length
from syncd.sandbox.sheets.errors import ApiError
from syncd.sandbox.sheets.formats import format_masks
from syncd.sandbox.sheets.grid import Undo, set_attr
from syncd.sandbox.sheets.model import (
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    Spreadsheet,
    Worksheet,
    in_transaction,
)
from syncd.sandbox.sheets.request import Call, int_field, mask_covers, mask_paths, required_field
from syncd.sheets.a1 import Box

_GRID_FIELDS = {
    "rowCount": "row_count",
    "columnCount": "col_count",
    "frozenRowCount": "frozen_rows",
    "frozenColumnCount": "frozen_cols",
    "hideGridlines": "hide_gridlines",
}


def _cell_from_data(data: Any) -> Cell:
    """A CellData's userEnteredValue as a stored cell (RAW semantics; absent clears)."""
    value = data.get("userEnteredValue") if isinstance(data, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ApiError(400, f"Invalid userEnteredValue: {value!r}")
    kinds = {k: v for k, v in value.items() if v is not None}
    if len(kinds) != 1:
        raise ApiError(400, "userEnteredValue must set exactly one kind of value")
    kind, raw = next(iter(kinds.items()))
    check_length(raw)
    if kind == "stringValue" and isinstance(raw, str):
        return raw or None
    if kind == "numberValue" and isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    if kind == "boolValue" and isinstance(raw, bool):
        return raw
    if kind == "formulaValue" and isinstance(raw, str) and raw.startswith("="):
        return Formula(raw)
    raise ApiError(400, f"Invalid userEnteredValue.{kind}: {raw!r}")


def _cells_from_rows(rows: Any) -> list[list[Input]]:
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise ApiError(400, "Invalid rows: must be a list of RowData objects")
    return [[_cell_from_data(cell) for cell in row.get("values") or []] for row in rows]


def _sheet_ids(obj: Any) -> Iterator[Any]:
    """Every ``sheetId`` anywhere in a request body."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "sheetId":
                yield value
            else:
                yield from _sheet_ids(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _sheet_ids(item)


# Formatting requests the daemon may send; they change no values, so they are validated
# (the sheets they name must exist) and otherwise accepted without effect.
_COSMETIC_REQUESTS = frozenset(
    {
        "updateDimensionProperties",
        "autoResizeDimensions",
        "updateBorders",
        "mergeCells",
        "unmergeCells",
        "setDataValidation",
        "setBasicFilter",
        "clearBasicFilter",
    }
)
_IGNORED_SPREADSHEET_FIELDS = frozenset({"autoRecalc", "defaultFormat", "spreadsheetTheme"})


class BatchUpdate:
    """Runs spreadsheets.batchUpdate sub-requests in order, recording undo steps; the caller
    rolls back if any of them fails, so the batch is all-or-nothing like Google's."""

    def __init__(self, ss: Spreadsheet, undo: Undo, new_sheet_id: Callable[[], int]) -> None:
        self.ss = ss
        self.undo = undo
        self.new_sheet_id = new_sheet_id
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            "addSheet": self.add_sheet,
            "deleteSheet": self.delete_sheet,
            "updateSheetProperties": self.update_sheet_properties,
            "updateSpreadsheetProperties": self.update_spreadsheet_properties,
            "appendDimension": self.append_dimension,
            "insertDimension": self.insert_dimension,
            "deleteDimension": self.delete_dimension,
            "updateCells": self.update_cells,
            "appendCells": self.append_cells,
            "repeatCell": self.repeat_cell,
            "addConditionalFormatRule": self.add_rule,
            "updateConditionalFormatRule": self.update_rule,
            "deleteConditionalFormatRule": self.delete_rule,
        }

    def run(self, requests: Any) -> list[dict[str, Any]]:
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "Must specify at least one request.")
        replies = []
        for i, request in enumerate(requests):
            kind, body = self._kind(request, i)
            try:
                reply = self._apply(kind, body)
            except ApiError as exc:
                raise exc.prefixed(f"Invalid requests[{i}].{kind}: ") from None
            replies.append({kind: reply} if reply is not None else {})
        return replies

    @staticmethod
    def _kind(request: Any, index: int) -> tuple[str, dict[str, Any]]:
        kinds = (
            [(k, v) for k, v in request.items() if v is not None]
            if isinstance(request, Mapping)
            else []
        )
        if len(kinds) != 1 or not isinstance(kinds[0][1], Mapping):
            raise ApiError(400, f"Invalid requests[{index}]: exactly one request kind is required")
        return kinds[0][0], dict(kinds[0][1])

    def _apply(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        handler = self.handlers.get(kind)
        if handler is not None:
            return handler(body)
        if kind in _COSMETIC_REQUESTS:
            for sheet_id in _sheet_ids(body):
                self.ss.sheet(sheet_id)
            return None
        raise ApiError(
            400,
            f'Invalid JSON payload received. Unknown name "{kind}": Cannot find field.',
        )

    # -- sheets --------------------------------------------------------------------------

    def _check_title(self, title: Any, current: Worksheet | None = None) -> str:
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "The sheet name cannot be empty.")
        clash = self.ss.find_title(title)
        if clash is not None and clash is not current:
            raise ApiError(
                400,
                f'A sheet with the name "{title}" already exists. Please enter another name.',
            )
        return title

    def _default_title(self) -> str:
        n = len(self.ss.sheets) + 1
        while self.ss.find_title(f"Sheet{n}") is not None:
            n += 1
        return f"Sheet{n}"

    def _set_sheets(self, sheets: list[Worksheet]) -> None:
        set_attr(self.ss, "sheets", sheets, self.undo)

    def add_sheet(self, body: dict[str, Any]) -> dict[str, Any]:
        props = body.get("properties") or {}
        if (props.get("sheetType") or "GRID") != "GRID":
            raise ApiError(400, "Only GRID sheets are supported.")
        title = self._check_title(props.get("title") or self._default_title())
        sheet_id = int_field(props, "sheetId", -1)
        if sheet_id < 0:
            sheet_id = self.new_sheet_id()
        elif any(ws.sheet_id == sheet_id for ws in self.ss.sheets):
            raise ApiError(400, f"Sheet with id {sheet_id} already exists.")
        grid = props.get("gridProperties") or {}
        ws = Worksheet(
            sheet_id=sheet_id,
            title=title,
            hidden=bool(props.get("hidden")),
            tab_color=props.get("tabColorStyle") or props.get("tabColor"),
        )
        rows, cols = (
            int_field(grid, "rowCount", DEFAULT_ROWS),
            int_field(grid, "columnCount", DEFAULT_COLUMNS),
        )
        ws.resize(rows, cols, Undo())  # a new sheet: undoing its insertion is enough
        for name in ("frozenRowCount", "frozenColumnCount", "hideGridlines"):
            if grid.get(name) is not None:
                setattr(ws, _GRID_FIELDS[name], grid[name])
        index = min(max(int_field(props, "index", len(self.ss.sheets)), 0), len(self.ss.sheets))
        self._set_sheets([*self.ss.sheets[:index], ws, *self.ss.sheets[index:]])
        return {"properties": ws.properties(index)}

    def delete_sheet(self, body: dict[str, Any]) -> None:
        ws = self.ss.sheet(body.get("sheetId"))
        if len(self.ss.sheets) == 1:
            raise ApiError(400, "You can't remove all the sheets in a document.")
        self._set_sheets([other for other in self.ss.sheets if other is not ws])

    def update_sheet_properties(self, body: dict[str, Any]) -> None:
        props = body.get("properties") or {}
        ws = self.ss.sheet(props.get("sheetId") or 0)
        for path in sorted(mask_paths(required_field(body, "fields"))):
            self._update_sheet_field(ws, props, path)

    def _update_sheet_field(self, ws: Worksheet, props: dict[str, Any], path: str) -> None:
        grid = props.get("gridProperties") or {}
        if path == "title":
            set_attr(ws, "title", self._check_title(props.get("title"), ws), self.undo)
        elif path == "index":
            others = [other for other in self.ss.sheets if other is not ws]
            index = min(max(int_field(props, "index", 0), 0), len(others))
            self._set_sheets([*others[:index], ws, *others[index:]])
        elif path == "hidden":
            set_attr(ws, "hidden", bool(props.get("hidden")), self.undo)
        elif path in ("tabColorStyle", "tabColor"):
            set_attr(ws, "tab_color", props.get(path), self.undo)
        elif path == "gridProperties":
            for name in grid:
                self._update_sheet_field(ws, props, f"gridProperties.{name}")
        elif path in ("gridProperties.rowCount", "gridProperties.columnCount"):
            rows = int_field(grid, "rowCount", ws.row_count)
            ws.resize(rows, int_field(grid, "columnCount", ws.col_count), self.undo)
        elif path.startswith("gridProperties.") and path[15:] in _GRID_FIELDS:
            value = grid.get(path[15:]) or 0
            set_attr(ws, _GRID_FIELDS[path[15:]], value, self.undo)
        else:
            raise ApiError(400, f"Invalid field mask path: {path}")

    def update_spreadsheet_properties(self, body: dict[str, Any]) -> None:
        props = body.get("properties") or {}
        attrs = {"title": "title", "locale": "locale", "timeZone": "time_zone"}
        for path in mask_paths(required_field(body, "fields")):
            if path in attrs:
                set_attr(self.ss, attrs[path], str(props.get(path) or ""), self.undo)
            elif path.split(".")[0] not in _IGNORED_SPREADSHEET_FIELDS:
                raise ApiError(400, f"Invalid field mask path: {path}")

    # -- dimensions ----------------------------------------------------------------------

    @staticmethod
    def _dimension(body: Mapping[str, Any]) -> str:
        dimension = body.get("dimension")
        if not isinstance(dimension, str) or dimension not in DIMENSIONS:
            raise ApiError(400, f"Invalid dimension: {dimension}")
        return dimension

    def append_dimension(self, body: dict[str, Any]) -> None:
        ws = self.ss.sheet(body.get("sheetId") or 0)
        length = int_field(body, "length", 0)
        if length < 1:
            raise ApiError(400, "length must be greater than 0")
        if self._dimension(body) == "ROWS":
            ws.resize(ws.row_count + length, ws.col_count, self.undo)
        else:
            ws.resize(ws.row_count, ws.col_count + length, self.undo)

    def _dimension_range(self, body: Mapping[str, Any]) -> tuple[Worksheet, str, int, int]:
        rng = required_field(body, "range")
        ws = self.ss.sheet(rng.get("sheetId") or 0)
        return (
            ws,
            self._dimension(rng),
            int_field(rng, "startIndex", 0),
            int_field(rng, "endIndex", -1),
        )

    def insert_dimension(self, body: dict[str, Any]) -> None:
        ws, dimension, start, end = self._dimension_range(body)
        ws.insert_dimension(dimension, start, end, self.undo)

    def delete_dimension(self, body: dict[str, Any]) -> None:
        ws, dimension, start, end = self._dimension_range(body)
        ws.delete_dimension(dimension, start, end, self.undo)

    # -- cells ---------------------------------------------------------------------------

    def _grid_range(self, rng: Mapping[str, Any]) -> tuple[Worksheet, Box]:
        """A GridRange: open ends run to the edge of the grid; it must lie inside it."""
        ws = self.ss.sheet(rng.get("sheetId") or 0)
        box = Box(
            int_field(rng, "startRowIndex", 0),
            int_field(rng, "endRowIndex", ws.row_count),
            int_field(rng, "startColumnIndex", 0),
            int_field(rng, "endColumnIndex", ws.col_count),
        )
        if min(box) < 0 or box.bottom < box.top or box.right < box.left:
            raise ApiError(400, f"Invalid GridRange: {dict(rng)}")
        ws.check_fits(box.top, box.left, box.bottom - box.top, box.right - box.left)
        return ws, box

    def update_cells(self, body: dict[str, Any]) -> None:
        paths = mask_paths(required_field(body, "fields"))
        cells = _cells_from_rows(body.get("rows") or [])
        matrix: list[list[Input]]
        if body.get("start") is not None:
            start = body["start"]
            ws = self.ss.sheet(start.get("sheetId") or 0)
            r0, c0 = int_field(start, "rowIndex", 0), int_field(start, "columnIndex", 0)
            matrix = cells
        elif body.get("range") is not None:
            ws, box = self._grid_range(body["range"])
            r0, c0 = box.top, box.left
            height, width = box.bottom - r0, box.right - c0
            if len(cells) > height or any(len(row) > width for row in cells):
                raise ApiError(400, "More data than the range holds")
            # With a range, cells the request leaves out are cleared.
            matrix = [
                [row[j] if j < len(row) else None for j in range(width)]
                for row in cells + [[]] * (height - len(cells))
            ]
        else:
            raise ApiError(400, "Either start or range must be set")
        if mask_covers(paths, "userEnteredValue"):
            ws.write(r0, c0, matrix, self.undo)
        else:
            ws.check_fits(r0, c0, len(matrix), max((len(row) for row in matrix), default=0))
        masks = format_masks(paths)
        if masks:
            given = body.get("rows") or []
            for i, line in enumerate(matrix):
                data = (given[i].get("values") or []) if i < len(given) else []
                for j in range(len(line)):
                    cell = data[j] if j < len(data) and isinstance(data[j], Mapping) else {}
                    cell_format = cell.get("userEnteredFormat")
                    box = Box(r0 + i, r0 + i + 1, c0 + j, c0 + j + 1)
                    ws.format_cells(box, cell_format, masks, self.undo)

    def append_cells(self, body: dict[str, Any]) -> None:
        ws = self.ss.sheet(body.get("sheetId") or 0)
        paths = mask_paths(required_field(body, "fields"))
        matrix = _cells_from_rows(body.get("rows") or [])
        start = ws.grid.last_row() + 1
        width = max((len(row) for row in matrix), default=0)
        rows = max(ws.row_count, start + len(matrix))
        ws.resize(rows, max(ws.col_count, width), self.undo)
        if mask_covers(paths, "userEnteredValue"):
            ws.write(start, 0, matrix, self.undo)

    def repeat_cell(self, body: dict[str, Any]) -> None:
        ws, box = self._grid_range(required_field(body, "range"))
        paths = mask_paths(required_field(body, "fields"))
        cell = body.get("cell") or {}
        if mask_covers(paths, "userEnteredValue"):
            row: list[Input] = [_cell_from_data(cell)] * (box.right - box.left)
            ws.write(box.top, box.left, [list(row) for _ in range(box.bottom - box.top)], self.undo)
        ws.format_cells(box, cell.get("userEnteredFormat"), format_masks(paths), self.undo)

    # -- conditional formats -------------------------------------------------------------

    def _rules_of(self, body: Mapping[str, Any]) -> tuple[Worksheet, list[rules.Rule], int]:
        """The sheet a request names, a copy of its rules, and the request's rule index,
        which must name one of them."""
        ws = self.ss.sheet(body.get("sheetId") or 0)
        index = int_field(body, "index", 0)
        if not 0 <= index < len(ws.conditional_formats):
            raise ApiError(400, f"No conditional format on sheet: {ws.sheet_id} at index: {index}")
        return ws, list(ws.conditional_formats), index

    def add_rule(self, body: dict[str, Any]) -> None:
        rule = required_field(body, "rule")
        ranges = rule.get("ranges") if isinstance(rule, Mapping) else None
        first = ranges[0] if isinstance(ranges, list) and ranges else None
        sheet_id = first.get("sheetId") if isinstance(first, Mapping) else None
        ws = self.ss.sheet(sheet_id or 0)
        checked = rules.check_rule(rule, {ws.sheet_id})
        found = list(ws.conditional_formats)
        index = min(max(int_field(body, "index", 0), 0), len(found))
        set_attr(ws, "conditional_formats", [*found[:index], checked, *found[index:]], self.undo)

    def update_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        ws, found, index = self._rules_of(body)
        old = found[index]
        if body.get("rule") is not None:
            found[index] = rules.check_rule(body["rule"], {ws.sheet_id})
            reply = {"newRule": found[index], "oldRule": old, "newIndex": index}
        elif body.get("newIndex") is not None:
            del found[index]
            new_index = min(max(int_field(body, "newIndex", 0), 0), len(found))
            found.insert(new_index, old)
            reply = {"newRule": old, "oldIndex": index, "newIndex": new_index}
        else:
            raise ApiError(400, "Either rule or newIndex must be set")
        set_attr(ws, "conditional_formats", found, self.undo)
        return reply

    def delete_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        ws, found, index = self._rules_of(body)
        rule = found.pop(index)
        set_attr(ws, "conditional_formats", found, self.undo)
        return {"rule": rule}


def apply_requests(
    ss: Spreadsheet, requests: Any, new_sheet_id: Callable[[], int]
) -> list[dict[str, Any]]:
    """Run a batch of sub-requests all-or-nothing; returns their replies."""
    return in_transaction(ss, lambda undo: BatchUpdate(ss, undo, new_sheet_id).run(requests))


def batch_update(ss: Spreadsheet, call: Call, new_sheet_id: Callable[[], int]) -> dict[str, Any]:
    """The spreadsheets.batchUpdate endpoint."""
    body = call.json()
    replies = apply_requests(ss, body.get("requests"), new_sheet_id)
    result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id, "replies": replies}
    if body.get("includeSpreadsheetInResponse"):
        result["updatedSpreadsheet"] = ss.metadata()
    return result
