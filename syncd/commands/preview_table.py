"""The table ``syncd preview`` prints for one worksheet: every owned header with its source
(the path, or the template), its type, its format when one is set, and the cell it gets.

Cells read as Google Sheets shows them (dates as dates, with their serial number), and text
is shown literally with its control characters made visible, so what a person checks here is
what lands in the sheet.
"""

from __future__ import annotations

from collections.abc import Iterator

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row
from syncd.mapping.display import display_cell

#: A longer source (most often a template) is cut in the table: the config holds it whole, and
#: a table wider than the terminal cannot be read.
SOURCE_WIDTH = 50


def cells_table(sheet: SheetSettings, row: Row, missing: set[str], failed: set[str]) -> list[str]:
    """The aligned lines of the table; ``missing`` and ``failed`` name the headers whose path
    matches nothing and whose template failed, so their empty cells say why."""
    formats = any(column.format for column in sheet.columns)
    titles = ["Header", "Source", "Type", *(["Format"] if formats else []), "Cell"]
    lines = [
        [header, source, kind, *([pattern] if formats else []), cell]
        for header, source, kind, pattern in _layout(sheet)
        for cell in [_cell_text(header, row, kind, missing, failed)]
    ]
    return _aligned([titles, *lines])


def escaped(text: str) -> str:
    """Control characters visible, everything else (formula-like text too) literal."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _layout(sheet: SheetSettings) -> Iterator[tuple[str, str, str, str]]:
    """Header, source, type and format of every column the daemon owns, in sheet order."""
    for column in sheet.columns:
        source = escaped(column.path if column.template is None else column.template)
        if len(source) > SOURCE_WIDTH:
            source = source[: SOURCE_WIDTH - 3] + "..."
        yield column.header, source, column.type, column.format or ""
    yield sheet.deleted_column, "(deletion time)", "", ""
    yield sheet.key_column, "(resource URL: the row key)", "", ""


def _cell_text(header: str, row: Row, kind: str, missing: set[str], failed: set[str]) -> str:
    if header not in row:
        return "(left as it is: the deletion carries no data)"
    if header in missing:
        return "(empty: no such path)"
    if header in failed:
        return "(empty: the template failed)"
    value = row[header]
    shown = escaped(display_cell(value, kind))
    if kind in ("date", "datetime") and isinstance(value, int | float) and shown != str(value):
        return f"{shown}  (serial {value})"
    return shown


def _aligned(rows: list[list[str]]) -> list[str]:
    """Columns aligned under the titles in ``rows[0]``; the last one (the cell) is never cut,
    so nothing is hidden."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    rule_width = min(40, max(len(row[-1]) for row in rows))
    rows.insert(1, ["-" * width for width in widths] + ["-" * rule_width])
    return [_line(row, widths) for row in rows]


def _line(row: list[str], widths: list[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
    return "  ".join([*padded, row[-1]]).rstrip()
