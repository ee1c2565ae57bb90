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

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config.settings import Column, SheetSettings

CellValue = str | int | float | bool
Row = dict[str, CellValue]

SHEETS_EPOCH = datetime(1899, 12, 30)
#: Google refuses a write holding a cell of more than 50,000 characters (the whole write, so
#: every row of it): a longer text is cut to this many, ending in a marker that says so.
MAX_CELL_CHARS = 49_000
_MISSING = object()
_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d")
_DATETIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S %z",
    "%Y/%m/%d %H:%M %z",
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M %z",
)
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}
_LIST_INDEX = re.compile(r"-?\d+")
#: Cobot's own date and datetime shapes (``2025/06/01``, ``2025/06/01 12:00:00 +0000``), read
#: without strptime, which costs most of a row's mapping; anything else takes the slow path.
_COBOT_MOMENT = re.compile(
    r"(\d{4})/(\d{2})/(\d{2})(?: (\d{2}):(\d{2})(?::(\d{2}))? ([+-])(\d{2})(\d{2}))?"
)

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
    """Columns whose path matches nothing in the resource: likely typos in the config."""
    return [column for column in columns if not path_exists(resource, column.path)]


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


def map_row(resource: Any, sheet: SheetSettings, tz: ZoneInfo) -> Row:
    """The cells the daemon owns for one resource, by header (without key and Deleted)."""
    return {c.header: to_cell(resolve(resource, c.path), c.type, tz) for c in sheet.columns}


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
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
    moment = _parse_moment(value, tz)
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - SHEETS_EPOCH.date()).days


def _datetime(value: Any, tz: ZoneInfo) -> CellValue:
    moment = _parse_moment(value, tz)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    delta = moment.replace(tzinfo=None) - SHEETS_EPOCH
    return round(delta / timedelta(days=1), 10)


def _parse_moment(value: Any, tz: ZoneInfo) -> date | datetime:
    """Parse Cobot's dates (``2025/06/01``) and datetimes (``2025/06/01 12:00:00 +0000``).

    Datetimes are converted to the configured time zone; plain dates are calendar dates and
    stay as they are.
    """
    if not isinstance(value, str):
        raise TypeError("not a date string")
    text = value.strip()
    cobot = _COBOT_MOMENT.fullmatch(text)
    if cobot is not None:
        with contextlib.suppress(ValueError):  # e.g. 2025/02/30: the slow path says so
            return _cobot_moment(cobot, tz)
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).astimezone(tz)
        except ValueError:
            pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(tz)


def _cobot_moment(match: re.Match[str], tz: ZoneInfo) -> date | datetime:
    """What strptime makes of a ``_COBOT_MOMENT`` match, the same as _parse_moment's loop."""
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    if hour is None:
        return date(int(year), int(month), int(day))
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    zone = timezone(-offset if sign == "-" else offset)
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=zone
    )
    return moment.astimezone(tz)


_CONVERTERS = {
    "text": _text,
    "number": _number,
    "bool": _boolean,
    "date": _date,
    "datetime": _datetime,
}
