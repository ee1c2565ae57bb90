"""How a worksheet should look, and the requests that make it so: pure functions.

The daemon keeps in place what makes its worksheets readable, on worksheets people made too:

- each owned column's number format over its data rows: the column's ``format:`` pattern, or
  for a date or datetime column without one the default date pattern. A configured pattern
  must match exactly; a default date format only needs the right type, so a person's own
  date pattern stays;
- the header row frozen, and bold over the owned headers (a person's own headers are theirs);
- with ``highlight_deleted``, one conditional-format rule greying out and striking through
  every row whose Deleted cell is set. It is recognised again by its shape: a custom formula
  ``=$<column>2<>""`` (or ``#REF!`` where Google replaced a deleted column) with
  strikethrough text. That rule is added when missing, pointed at the Deleted column again
  when it points elsewhere (a person's change of its colours is kept), never duplicated, and
  removed when ``highlight_deleted`` is off. Every other rule is a person's and is never
  touched.

Nothing here talks to Google: given the settings, row 1 and what one ``spreadsheets.get``
read of the worksheet returned, these decide the ``spreadsheets:batchUpdate`` requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import NUMBER_FORMATS
from syncd.sheets.a1 import column_letters, quote_title
from syncd.sheets.planning import Worksheet, cell_text, spans

#: What the presentation read asks Google for: the frozen rows, the rules, and per cell of
#: the ranges read its shown text (row 1's headers), number format and boldness.
#: Data rows whose number formats the check reads: Google answers a format per cell, so reading
#: a 100,000-row column costs megabytes and seconds. When a row of this sample lacks its
#: column's format, the rest of the column below the sample is repaired too (one request).
FORMAT_SAMPLE_ROWS = 2000

PRESENTATION_FIELDS = (
    "sheets(properties(gridProperties(frozenRowCount)),conditionalFormats,"
    "data(rowData(values(formattedValue,userEnteredFormat(numberFormat,textFormat(bold))))))"
)
#: Grey, struck-through text: a deleted row stays readable but reads as gone.
HIGHLIGHT_FORMAT: dict[str, Any] = {
    "textFormat": {
        "foregroundColorStyle": {"rgbColor": {"red": 0.6, "green": 0.6, "blue": 0.6}},
        "strikethrough": True,
    }
}
_HIGHLIGHT_FORMULA = re.compile(r'=(?:\$[A-Z]{1,3}2|\$?#REF!2?)<>""')


@dataclass(frozen=True)
class NumberFormat:
    """The number format one owned column's data cells must have."""

    column: int
    header: str
    type: str
    pattern: str
    #: The pattern must match too (a configured ``format:``), not only the type.
    strict: bool

    def matches(self, found: Mapping[str, Any]) -> bool:
        if found.get("type") != self.type:
            return False
        return not self.strict or found.get("pattern") == self.pattern


def number_formats(sheet: SheetSettings, columns: Mapping[str, int]) -> list[NumberFormat]:
    """The wanted number format of every owned column among ``columns`` that has one."""
    wanted = []
    for column in sheet.columns:
        default = NUMBER_FORMATS.get(column.type)
        if column.header not in columns or not (column.format or default):
            continue
        kind = default["type"] if default else "NUMBER"
        pattern = column.format or (default or {})["pattern"]
        index = columns[column.header]
        wanted.append(NumberFormat(index, column.header, kind, pattern, bool(column.format)))
    return wanted


def format_requests(
    sheet_id: int, formats: Iterable[NumberFormat], start_row: int, end_row: int
) -> list[dict[str, Any]]:
    """``repeatCell`` requests giving columns their number format over rows ``start_row`` to
    ``end_row`` (0-based, end excluded); only the number format changes."""
    return [
        _repeat_cell(
            _span(sheet_id, start_row, end_row, wanted.column, wanted.column + 1),
            {"numberFormat": {"type": wanted.type, "pattern": wanted.pattern}},
            "userEnteredFormat.numberFormat",
        )
        for wanted in formats
        if end_row > start_row
    ]


def bold_header(sheet_id: int, start_column: int, end_column: int) -> dict[str, Any]:
    """A ``repeatCell`` request making row 1's cells bold from ``start_column`` to
    ``end_column`` (0-based, end excluded); nothing else of their format changes."""
    return _repeat_cell(
        _span(sheet_id, 0, 1, start_column, end_column),
        {"textFormat": {"bold": True}},
        "userEnteredFormat.textFormat.bold",
    )


def freeze_header(sheet_id: int) -> dict[str, Any]:
    """An ``updateSheetProperties`` request freezing row 1, so a sort keeps it on top."""
    return {
        "updateSheetProperties": {
            "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
            "fields": "gridProperties.frozenRowCount",
        }
    }


def highlight_rule(sheet_id: int, deleted_column: int) -> dict[str, Any]:
    """The rule greying out rows 2 and below, all columns, whose Deleted cell is set."""
    formula = f'=${column_letters(deleted_column + 1)}2<>""'
    condition = {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]}
    return {
        "ranges": [{"sheetId": sheet_id, "startRowIndex": 1}],
        "booleanRule": {"condition": condition, "format": HIGHLIGHT_FORMAT},
    }


def add_highlight(sheet_id: int, deleted_column: int) -> dict[str, Any]:
    """The request adding the highlight rule first, so it wins over a person's own rules."""
    rule = highlight_rule(sheet_id, deleted_column)
    return {"addConditionalFormatRule": {"rule": rule, "index": 0}}


def presentation_ranges(worksheet: Worksheet, formats: Iterable[NumberFormat]) -> list[str]:
    """The ranges the presentation read covers: row 1 over the grid's width, then each
    formatted column's data rows, in the order of ``formats``."""
    title = quote_title(worksheet.title)
    ranges = [f"{title}!A1:{column_letters(worksheet.column_count)}1"]
    if worksheet.row_count >= 2:
        last = min(worksheet.row_count, 1 + FORMAT_SAMPLE_ROWS)
        for wanted in formats:
            letters = column_letters(wanted.column + 1)
            ranges.append(f"{title}!{letters}2:{letters}{last}")
    return ranges


@dataclass(frozen=True)
class Found:
    """What the presentation read returned for one worksheet."""

    header: list[str]
    #: Row 1's cells as returned (formatted value and format).
    header_cells: list[Mapping[str, Any]]
    frozen_rows: int
    rules: list[Mapping[str, Any]]
    #: One GridData per formatted column, in the order of the ranges.
    grids: list[Mapping[str, Any]]

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> Found:
        sheets = response.get("sheets") or [{}]
        entry = sheets[0]
        grids = entry.get("data") or [{}]
        rows = grids[0].get("rowData") or [{}]
        cells = rows[0].get("values") or []
        grid = entry.get("properties", {}).get("gridProperties", {})
        return cls(
            header=[cell_text(cell.get("formattedValue", "")) for cell in cells],
            header_cells=cells,
            frozen_rows=int(grid.get("frozenRowCount", 0)),
            rules=list(entry.get("conditionalFormats") or []),
            grids=grids[1:],
        )


def repairs(
    sheet: SheetSettings,
    worksheet: Worksheet,
    columns: Mapping[str, int],
    formats: list[NumberFormat],
    found: Found,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The requests that put the worksheet's presentation right, with what each fixes."""
    sheet_id = worksheet.sheet_id
    requests: list[dict[str, Any]] = []
    messages: list[str] = []
    if found.frozen_rows < 1:
        requests.append(freeze_header(sheet_id))
        messages.append("froze the header row")
    plain = sorted(
        index
        for header, index in columns.items()
        if header in sheet.headers and not _bold(found.header_cells, index)
    )
    for start, end in spans(plain):
        requests.append(bold_header(sheet_id, start, end))
    if plain:
        names = [h for h, i in columns.items() if i in plain]
        messages.append(f"made the header(s) {', '.join(map(repr, names))} bold")
    checked = formats if worksheet.row_count >= 2 else []
    restored = format_repairs(sheet_id, checked, found.grids, 1, worksheet.row_count)
    if restored:
        requests += restored
        fixed = {r["repeatCell"]["range"]["startColumnIndex"] for r in restored}
        names = [wanted.header for wanted in formats if wanted.column in fixed]
        messages.append(f"restored the number format of {', '.join(map(repr, names))}")
    changes, notes = rule_changes(sheet, worksheet, columns.get(sheet.deleted_column), found.rules)
    return requests + changes, messages + notes


def format_repairs(
    sheet_id: int,
    formats: list[NumberFormat],
    grids: list[Mapping[str, Any]],
    start_row: int,
    end_row: int,
) -> list[dict[str, Any]]:
    """``repeatCell`` requests for the runs of rows whose cells lack their column's format.

    ``grids`` are the formats read of each column of ``formats`` over the rows from
    ``start_row`` on, at most ``FORMAT_SAMPLE_ROWS`` of them (0-based; rows missing at their
    end have none); a wrong row in that sample also repairs every row from its end to
    ``end_row`` (end excluded).
    """
    requests: list[dict[str, Any]] = []
    sampled = min(end_row, start_row + FORMAT_SAMPLE_ROWS)
    for wanted, grid in zip(formats, grids, strict=True):
        rows = grid.get("rowData", [])
        wrong = []
        for index in range(start_row, sampled):
            offset = index - start_row
            values = rows[offset].get("values", []) if offset < len(rows) else []
            cell_format = (values[0] if values else {}).get("userEnteredFormat", {})
            if not wanted.matches(cell_format.get("numberFormat", {})):
                wrong.append(index)
        runs = spans(wrong)
        if runs and sampled < end_row:
            runs.append((sampled, end_row))
        for start, end in runs:
            requests += format_requests(sheet_id, [wanted], start, end)
    return requests


def is_highlight_rule(rule: Mapping[str, Any]) -> bool:
    """Whether a rule is the daemon's highlight rule (see the module's docstring)."""
    boolean = rule.get("booleanRule") or {}
    condition = boolean.get("condition") or {}
    values = condition.get("values") or []
    formula = values[0].get("userEnteredValue", "") if len(values) == 1 else ""
    struck = (boolean.get("format") or {}).get("textFormat", {}).get("strikethrough") is True
    return (
        condition.get("type") == "CUSTOM_FORMULA"
        and bool(_HIGHLIGHT_FORMULA.fullmatch(str(formula)))
        and struck
    )


def rule_changes(
    sheet: SheetSettings,
    worksheet: Worksheet,
    deleted_column: int | None,
    rules: list[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The requests that leave exactly one right highlight rule (or none when it is off)."""
    if deleted_column is None:
        return [], []
    sheet_id = worksheet.sheet_id
    ours = [index for index, rule in enumerate(rules) if is_highlight_rule(rule)]
    requests: list[dict[str, Any]] = []
    messages: list[str] = []
    kept = None
    if sheet.highlight_deleted and not ours:
        requests.append(add_highlight(sheet_id, deleted_column))
        messages.append("added the rule greying out deleted rows")
    elif sheet.highlight_deleted:
        kept = ours[0]
        wanted = highlight_rule(sheet_id, deleted_column)
        if not _same_place(rules[kept], wanted, worksheet):
            # A person may have changed its colours: the rule keeps its own format.
            format_ = rules[kept]["booleanRule"]["format"]
            rule = {**wanted, "booleanRule": {**wanted["booleanRule"], "format": format_}}
            requests.append(
                {"updateConditionalFormatRule": {"sheetId": sheet_id, "index": kept, "rule": rule}}
            )
            letters = column_letters(deleted_column + 1)
            messages.append(f"pointed the rule greying out deleted rows at column {letters}")
    extra = sorted((index for index in ours if index != kept), reverse=True)
    for index in extra:
        requests.append({"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": index}})
    if extra:
        why = "a duplicate" if sheet.highlight_deleted else "highlight_deleted is off"
        messages.append(f"removed {len(extra)} rule(s) greying out deleted rows ({why})")
    return requests, messages


def _same_place(rule: Mapping[str, Any], wanted: Mapping[str, Any], worksheet: Worksheet) -> bool:
    """The rule tests the wanted formula over rows 2 and below of every column."""
    condition = wanted["booleanRule"]["condition"]
    if rule["booleanRule"]["condition"].get("values") != condition["values"]:
        return False
    ranges = rule.get("ranges") or []
    if len(ranges) != 1:
        return False
    span = ranges[0]
    end_row, end_column = span.get("endRowIndex"), span.get("endColumnIndex")
    return (
        span.get("sheetId", 0) == worksheet.sheet_id
        and span.get("startRowIndex", 0) == 1
        and span.get("startColumnIndex", 0) == 0
        and (end_row is None or end_row >= worksheet.row_count)
        and (end_column is None or end_column >= worksheet.column_count)
    )


def _bold(cells: list[Mapping[str, Any]], index: int) -> bool:
    cell = cells[index] if index < len(cells) else {}
    return cell.get("userEnteredFormat", {}).get("textFormat", {}).get("bold") is True


def _span(sheet_id: int, top: int, bottom: int, left: int, right: int) -> dict[str, int]:
    return {
        "sheetId": sheet_id,
        "startRowIndex": top,
        "endRowIndex": bottom,
        "startColumnIndex": left,
        "endColumnIndex": right,
    }


def _repeat_cell(span: dict[str, int], cell_format: dict[str, Any], fields: str) -> dict[str, Any]:
    return {
        "repeatCell": {"range": span, "cell": {"userEnteredFormat": cell_format}, "fields": fields}
    }
