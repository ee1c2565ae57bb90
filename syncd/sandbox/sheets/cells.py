"""Cell values: how input is parsed into stored cells and how stored cells are rendered.

A stored cell is a bool, number, string or None. Formulas and USER_ENTERED dates are kept as
subclasses of str and float, so they render the way Google renders them while staying plain
values everywhere else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from syncd.sandbox.sheets.errors import ApiError
from syncd.sandbox.sheets.formats import Format, number_format, render_number

DIMENSIONS = ("ROWS", "COLUMNS")
#: Google's limit on the characters of one cell, and its answer to a write over it.
MAX_CELL_CHARS = 50_000
CELL_TOO_LONG = (
    f"Your input contains more than the maximum of {MAX_CELL_CHARS} characters in a single cell."
)


class Formula(str):
    """A formula cell, kept apart from text that merely starts with ``=`` (RAW input)."""


class DateSerial(float):
    """A number USER_ENTERED parsed from a date. Google gives such a cell a date format, so it
    is rendered as a date while UNFORMATTED_VALUE still returns the serial number."""

    kind = "DATE"


class DateTimeSerial(DateSerial):
    """Like :class:`DateSerial`, for ``YYYY-MM-DD HH:MM[:SS]`` input."""

    kind = "DATE_TIME"


Cell = bool | int | float | str | None


class Keep:
    """Marks a cell a write leaves alone (JSON ``null`` in the values array)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()
Input = Cell | Keep

_EPOCH = dt.datetime(1899, 12, 30)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_HYPERLINK = re.compile(r'=HYPERLINK\(\s*"([^"]*)"\s*(?:[,;]\s*"([^"]*)"\s*)?\)', re.IGNORECASE)
_STRING_FORMULA = re.compile(r'="((?:[^"]|"")*)"')
_PLAIN_TYPES = frozenset({str, int, float, bool})


def _check_input(value: Any, where: str) -> None:
    """Only bool, string and number are valid cell values (sheets.v4 ValueRange)."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    kind = "struct_value" if isinstance(value, Mapping) else "list_value"
    raise ApiError(400, f"Invalid {where}: {kind}")


def check_length(value: Any) -> None:
    """Google refuses the whole request when one cell's text is longer than it allows."""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        raise ApiError(400, CELL_TOO_LONG)


def parse_raw(value: Cell) -> Cell:
    """RAW input: stored as given; ``""`` clears the cell."""
    return None if value == "" and isinstance(value, str) else value


def parse_user_entered(value: Cell) -> Cell:
    """USER_ENTERED input, parsed as if typed into the UI (only the common cases)."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:] or None
    if value.startswith("=") and len(value) > 1:
        return Formula(value)
    text = value.strip()
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    number = _parse_number(text)
    if number is not None:
        return number
    return _parse_date(text) or (value or None)


def _parse_number(text: str) -> int | float | None:
    percent = text.endswith("%")
    body = text[:-1] if percent else text
    if _GROUPED_NUMBER.fullmatch(body):
        body = body.replace(",", "")
    elif not _NUMBER.fullmatch(body):
        return None
    number: int | float = int(body) if body.lstrip("+-").isdigit() else float(body)
    return number / 100 if percent else number


def _parse_date(text: str) -> DateSerial | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        moment = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    serial = (moment - _EPOCH).total_seconds() / 86400
    return DateTimeSerial(serial) if match.group(4) else DateSerial(serial)


def _formula_value(formula: Formula) -> Cell:
    """What a formula shows. Only trivial formulas are evaluated; anything else is the error
    Google shows for an unknown function, so code never mistakes formula text for a value."""
    link = _HYPERLINK.fullmatch(formula)
    if link:
        return link.group(2) if link.group(2) is not None else link.group(1)
    text = _STRING_FORMULA.fullmatch(formula)
    if text:
        return text.group(1).replace('""', '"')
    number = _parse_number(formula[1:].strip())
    return number if number is not None else "#NAME?"


def _json_number(number: float) -> int | float:
    """Google's JSON writes integral doubles without a fraction (45537, not 45537.0)."""
    if isinstance(number, int):
        return int(number)
    return int(number) if number.is_integer() and abs(number) < 2**53 else float(number)


def _format_number(number: float) -> str:
    if isinstance(number, int) or (number.is_integer() and abs(number) < 1e15):
        return str(int(number))
    text = f"{number:.15g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}E{'+' if int(exponent) >= 0 else '-'}{abs(int(exponent)):02d}"


def _format_serial(serial: float, kind: str) -> str:
    try:
        moment = _EPOCH + dt.timedelta(seconds=round(serial * 86400))
    except OverflowError:
        return _format_number(serial)
    return moment.strftime("%Y-%m-%d" if kind == "DATE" else "%Y-%m-%d %H:%M:%S")


def _date_kind(number: float, number_format: Mapping[str, Any]) -> str | None:
    """ "DATE" or "DATE_TIME" when the number shows as a date, from its input or its format."""
    if isinstance(number, DateSerial):
        return number.kind
    kind = number_format.get("type")
    return kind if kind in ("DATE", "DATE_TIME") else None


def render_cell(cell: Cell, render: str, date_render: str, number_format: Mapping[str, Any]) -> Any:
    """One cell as values.get returns it for the given render options, shown through the
    cell's number format."""
    if cell is None:
        return ""
    if isinstance(cell, Formula):
        if render == "FORMULA":
            return str(cell)
        cell = _formula_value(cell)
    formatted = render == "FORMATTED_VALUE"
    if isinstance(cell, bool):
        return ("TRUE" if cell else "FALSE") if formatted else cell
    if isinstance(cell, int | float):
        date_kind = _date_kind(cell, number_format)
        if date_kind is not None and (formatted or date_render == "FORMATTED_STRING"):
            return _format_serial(float(cell), date_kind)
        if not formatted:
            return _json_number(cell)
        pattern = number_format.get("pattern")
        shown = render_number(float(cell), pattern) if isinstance(pattern, str) else None
        return shown if shown is not None else _format_number(cell)
    return str(cell)


def cell_data(cell: Cell, cell_format: Format | None) -> dict[str, Any]:
    """A cell as spreadsheets.get returns it in GridData (``{}`` when it is empty and
    unformatted): userEnteredValue, formattedValue and userEnteredFormat."""
    data: dict[str, Any] = {}
    if cell is not None:
        if isinstance(cell, Formula):
            entered: dict[str, Any] = {"formulaValue": str(cell)}
        elif isinstance(cell, bool):
            entered = {"boolValue": cell}
        elif isinstance(cell, int | float):
            entered = {"numberValue": _json_number(cell)}
        else:
            entered = {"stringValue": cell}
        data["userEnteredValue"] = entered
        shown = render_cell(cell, "FORMATTED_VALUE", "", number_format(cell_format))
        data["formattedValue"] = shown
    if cell_format:
        data["userEnteredFormat"] = cell_format
    return data


def to_matrix(values: Any, major: str, option: str) -> list[list[Input]]:
    """Validate a ValueRange's ``values`` and convert it to stored cells, row-major."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise ApiError(400, "Invalid values: must be a list of lists")
    parse = parse_user_entered if option == "USER_ENTERED" else parse_raw
    matrix: list[list[Input]] = []
    for i, line in enumerate(values):
        if not isinstance(line, list):
            raise ApiError(400, f"Invalid values[{i}]: must be a list of values")
        for value in line:
            check_length(value)
        if parse is parse_raw and set(map(type, line)) <= _PLAIN_TYPES and "" not in line:
            matrix.append(list(line))  # fast path for bulk RAW writes: nothing to convert
            continue
        row: list[Input] = []
        for j, value in enumerate(line):
            _check_input(value, f"values[{i}][{j}]")
            row.append(KEEP if value is None else parse(value))
        matrix.append(row)
    return _transpose(matrix) if major == "COLUMNS" else matrix


def _transpose(columns: list[list[Input]]) -> list[list[Input]]:
    height = max((len(column) for column in columns), default=0)
    return [[column[i] if i < len(column) else KEEP for column in columns] for i in range(height)]
