"""Pure mapping from a Cobot resource to the cells of one worksheet row.

Nothing here does I/O, so every rule about what lands in a cell is unit-testable.

How values reach the sheet: every cell is written with ``valueInputOption=RAW`` as a typed
JSON value, never as text for Sheets to parse. A string is therefore always stored as that
literal string: a member named ``=IMPORTXML(...)`` or ``+1 555`` can never become a formula
or a number. Columns typed ``date``/``datetime`` are written as Sheets serial numbers (days
since 1899-12-30) and their column carries a date number format, so they are real dates that
sort and filter; ``number`` columns are real numbers that sum.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.config.templating import parse_moment
from syncd.mapping.computed import NO_CONTEXT, RowContext, column_value, variables

CellValue = str | int | float | bool
Row = dict[str, CellValue]

SHEETS_EPOCH = datetime(1899, 12, 30)
#: Google refuses a write holding a cell of more than 50,000 characters (the whole write, so
#: every row of it): a longer text is cut to this many, ending in a marker that says so.
MAX_CELL_CHARS = 49_000
_MISSING = object()
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}
_LIST_INDEX = re.compile(r"-?\d+")

#: Sheets number formats applied to typed columns so serial numbers display as dates.
NUMBER_FORMATS = {
    "date": {"type": "DATE", "pattern": "yyyy-mm-dd"},
    "datetime": {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"},
}


def resolve(resource: Any, path: str) -> Any:
    """Follow a dotted path (``plan.name``, ``items.0.description``); None when absent."""
    current = resource
    for part, index in _path_parts(path):
        if isinstance(current, dict | Mapping):  # dict first: the ABC check alone is slow
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and index is not None:
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        else:
            return None
        if current is _MISSING:
            return None
    return current


@functools.lru_cache(maxsize=1024)
def _path_parts(path: str) -> tuple[tuple[str, int | None], ...]:
    """A path split once per configured column, each part with its list index if it is one."""
    return tuple(
        (part, int(part) if _LIST_INDEX.fullmatch(part) else None) for part in path.split(".")
    )


def path_exists(resource: Any, path: str) -> bool:
    """Whether a path names something in this resource (even a null), to spot typos."""
    current = resource
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and _LIST_INDEX.fullmatch(part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return False
            current = current[index]
        else:
            return False
    return True


def missing_paths(resource: Any, columns: Iterable[Column]) -> list[Column]:
    """Path columns whose path matches nothing in the resource: likely typos in the config."""
    return [c for c in columns if c.template is None and not path_exists(resource, c.path)]


def to_cell(value: Any, column_type: str, tz: ZoneInfo) -> CellValue:
    """Convert one JSON value to what the cell holds; a value that will not convert stays text.

    Keeping the original text (instead of an empty cell or an error) means a surprising value
    from Cobot is still visible in the sheet rather than silently lost.
    """
    if value is None:
        return ""
    converter = _CONVERTERS[column_type]
    try:
        return capped(converter(value, tz))
    except (ValueError, TypeError, InvalidOperation, OverflowError):
        return capped(_text(value, tz))


def capped(cell: CellValue) -> CellValue:
    """The cell, or a text too long for Google cut to MAX_CELL_CHARS with a visible marker."""
    if not isinstance(cell, str) or len(cell) <= MAX_CELL_CHARS:
        return cell
    marker = f" [... cut by syncd to {MAX_CELL_CHARS:,} of {len(cell):,} characters]"
    return cell[: MAX_CELL_CHARS - len(marker)] + marker


def map_row(
    resource: Any,
    sheet: SheetSettings,
    tz: ZoneInfo,
    context: RowContext | None = None,
    problems: list[str] | None = None,
) -> Row:
    """The cells the daemon owns for one resource, by header (without key and Deleted).

    A template column's value is converted like a path's; a template that fails empties its
    own cell and adds a line to ``problems``. Sheets without templates never build the
    templates' variables, so they map as fast as plain paths do.
    """
    columns = sheet.columns
    if all(c.template is None for c in columns):
        return {c.header: to_cell(resolve(resource, c.path), c.type, tz) for c in columns}
    found = variables(sheet.resource, resource, context or NO_CONTEXT)
    return {
        c.header: to_cell(
            resolve(resource, c.path)
            if c.template is None
            else column_value(c, found, tz, problems),
            c.type,
            tz,
        )
        for c in columns
    }


def row_fingerprint(row: Mapping[str, CellValue]) -> str:
    """A stable hash of a row's content, so an unchanged row is not written again."""
    payload = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def deletion_stamp(moment: datetime) -> str:
    """The Deleted column's value: ISO 8601 in UTC, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- converters --------------------------------------------------------------------------


def _text(value: Any, tz: ZoneInfo) -> CellValue:
    if isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _number(value: Any, tz: ZoneInfo) -> CellValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    number = Decimal(str(value).strip().replace(",", ""))
    if not number.is_finite():
        raise ValueError("not a finite number")
    return int(number) if number == number.to_integral_value() else float(number)


def _boolean(value: Any, tz: ZoneInfo) -> CellValue:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")


def _date(value: Any, tz: ZoneInfo) -> CellValue:
    moment = parse_moment(value, tz)
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - SHEETS_EPOCH.date()).days


def _datetime(value: Any, tz: ZoneInfo) -> CellValue:
    moment = parse_moment(value, tz)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    delta = moment.replace(tzinfo=None) - SHEETS_EPOCH
    return round(delta / timedelta(days=1), 10)


_CONVERTERS = {
    "text": _text,
    "number": _number,
    "bool": _boolean,
    "date": _date,
    "datetime": _datetime,
}
