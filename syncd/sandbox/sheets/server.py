"""Google Sheets API v4 emulator, with the OAuth2 token endpoint service accounts use.

The daemon talks to Google through gspread and google-auth, and the tests may never reach
the internet, so this module serves the same HTTP API on loopback: real JWT-bearer grants
signed with real RSA keys, bearer tokens that expire, Google's error bodies, quotas, grid
limits, table detection on append and USER_ENTERED parsing. Faults (errors, latency, slow
responses, quota exhaustion) are knobs, so retry and timeout paths can be tested on purpose.

Everything the Sheets API counts and enforces is modelled closely enough that code which
works here should work against Google; where behaviour is simplified it says so below.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import functools
import json
import logging
import os
import random
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from multidict import MultiMapping

from syncd.config.settings import inspect_settings
from syncd.sandbox.servers import free_port, listen_address_of
from syncd.sheets.a1 import MAX_COLUMNS, A1Error, A1Range, Box, column_letters, parse_a1

log = logging.getLogger(__name__)

DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
MAX_CELLS = 10_000_000
DEFAULT_CLIENT_EMAIL = "syncd@sandbox-project.iam.gserviceaccount.com"
PROJECT_NUMBER = "123456789012"
SPREADSHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALLOWED_LOCATIONS = {"locations": [], "encodedLocations": "0x0"}
# google-auth's default is 3600 s; Google rejects assertions that live longer than an hour.
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 300


# --------------------------------------------------------------------------------------
# Errors, in Google's two shapes
# --------------------------------------------------------------------------------------

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    409: "The operation was aborted.",
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}


class ApiError(Exception):
    """An error the API reports as ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, code: int, message: str | None = None, details: list[Any] | None = None):
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, "Error")
        self.details = details
        super().__init__(f"{code} {self.message}")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def prefixed(self, prefix: str) -> ApiError:
        return ApiError(self.code, prefix + self.message, self.details)


class OAuthError(Exception):
    """A token-endpoint error, which uses the OAuth shape ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")


def quota_error(kind: str) -> ApiError:
    """The 429 Google sends when the per-user read or write quota is used up."""
    metric = "Read requests" if kind == "read" else "Write requests"
    limit_id = "ReadRequestsPerMinutePerUser" if kind == "read" else "WriteRequestsPerMinutePerUser"
    message = (
        f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per user' "
        f"of service 'sheets.googleapis.com' for consumer 'project_number:{PROJECT_NUMBER}'."
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "quota_metric": f"sheets.googleapis.com/{kind}_requests",
                "quota_limit": limit_id,
                "service": "sheets.googleapis.com",
                "consumer": f"projects/{PROJECT_NUMBER}",
            },
        }
    ]
    return ApiError(429, message, details)


def _grid_limit_error(ws: Worksheet, extent: A1Range) -> ApiError:
    title = "'" + ws.title.replace("'", "''") + "'"
    return ApiError(
        400,
        f"Range ({title}!{extent.ref()}) exceeds grid limits. "
        f"Max rows: {ws.row_count}, max columns: {ws.col_count}",
    )


# --------------------------------------------------------------------------------------
# Cell values
# --------------------------------------------------------------------------------------


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


class _Keep:
    """Marks a cell a write leaves alone (JSON ``null`` in the values array)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()
Input = Cell | _Keep

_EPOCH = dt.datetime(1899, 12, 30)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_HYPERLINK = re.compile(r'=HYPERLINK\(\s*"([^"]*)"\s*(?:[,;]\s*"([^"]*)"\s*)?\)', re.IGNORECASE)
_STRING_FORMULA = re.compile(r'="((?:[^"]|"")*)"')
_PLAIN_TYPES = frozenset({str, int, float, bool})
_VALUE_INPUT_OPTIONS = ("RAW", "USER_ENTERED")
_RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
_DATE_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
_DIMENSIONS = ("ROWS", "COLUMNS")


def _check_input(value: Any, where: str) -> None:
    """Only bool, string and number are valid cell values (sheets.v4 ValueRange)."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    kind = "struct_value" if isinstance(value, Mapping) else "list_value"
    raise ApiError(400, f"Invalid {where}: {kind}")


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


def _date_kind(cell: Cell, column_format: str | None) -> str | None:
    if isinstance(cell, DateSerial):
        return cell.kind
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return column_format if column_format in ("DATE", "DATE_TIME") else None
    return None


def render_cell(cell: Cell, render: str, date_render: str, column_format: str | None) -> Any:
    """One cell as values.get returns it for the given render options."""
    if cell is None:
        return ""
    if isinstance(cell, Formula):
        if render == "FORMULA":
            return str(cell)
        cell = _formula_value(cell)
    date_kind = _date_kind(cell, column_format)
    if render == "FORMATTED_VALUE":
        if isinstance(cell, bool):
            return "TRUE" if cell else "FALSE"
        if date_kind is not None:
            return _format_serial(float(cell), date_kind)  # type: ignore[arg-type]
        return _format_number(cell) if isinstance(cell, int | float) else str(cell)
    if date_kind is not None and date_render == "FORMATTED_STRING":
        return _format_serial(float(cell), date_kind)  # type: ignore[arg-type]
    if isinstance(cell, bool):
        return cell
    return _json_number(cell) if isinstance(cell, int | float) else str(cell)


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


# --------------------------------------------------------------------------------------
# Cell storage with undo
# --------------------------------------------------------------------------------------


class Undo:
    """Inverse steps of a request's changes, so a failing request leaves no trace: the API
    applies a batch atomically, and snapshots of a 100k-row sheet would be too slow."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def push(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def rollback(self) -> None:
        while self._steps:
            self._steps.pop()()


def _set_attr(obj: object, name: str, value: Any, undo: Undo) -> None:
    undo.push(functools.partial(setattr, obj, name, getattr(obj, name)))
    setattr(obj, name, value)


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] is None:
        row.pop()
    return row


class Grid:
    """Row-major cells: ``rows[r]`` holds row r up to its last value; rows past the end and
    cells past a row's end are empty. A change replaces a row's list instead of mutating it,
    so undo only keeps the old list, and writing a few rows of a 100,000-row sheet copies
    only those rows."""

    def __init__(self) -> None:
        self.rows: list[list[Cell]] = []

    def cell(self, r: int, c: int) -> Cell:
        if r >= len(self.rows):
            return None
        row = self.rows[r]
        return row[c] if c < len(row) else None

    def _replace_row(self, r: int, new: list[Cell], undo: Undo) -> None:
        undo.push(functools.partial(self.rows.__setitem__, r, self.rows[r]))
        self.rows[r] = new

    def _truncate(self, length: int) -> None:
        del self.rows[length:]

    def write(self, r0: int, c0: int, matrix: Sequence[list[Input]], undo: Undo) -> None:
        old_length = len(self.rows)
        if r0 + len(matrix) > old_length:
            # One undo step for all new rows: bulk writes into empty space stay cheap.
            self.rows.extend([] for _ in range(r0 + len(matrix) - old_length))
            undo.push(functools.partial(self._truncate, old_length))
        for i, values in enumerate(matrix):
            keep = values.count(KEEP)
            if keep == len(values):
                continue
            row = list(self.rows[r0 + i])
            if len(row) < c0 + len(values):
                row.extend([None] * (c0 + len(values) - len(row)))
            if keep:
                for j, value in enumerate(values):
                    if value is not KEEP:
                        row[c0 + j] = value  # type: ignore[assignment]
            else:
                row[c0 : c0 + len(values)] = values  # type: ignore[assignment]
            if r0 + i < old_length:
                self._replace_row(r0 + i, _trim(row), undo)
            else:
                self.rows[r0 + i] = _trim(row)

    def clear(self, r0: int, r1: int, c0: int, c1: int, undo: Undo) -> None:
        for r in range(r0, min(r1, len(self.rows))):
            row = self.rows[r]
            if any(value is not None for value in row[c0:c1]):
                width = min(c1, len(row)) - c0
                self._replace_row(r, _trim(row[:c0] + [None] * width + row[c1:]), undo)

    def insert_rows(self, at: int, count: int, undo: Undo) -> None:
        if at < len(self.rows):
            self.rows[at:at] = [[] for _ in range(count)]
            undo.push(functools.partial(self._delete_slice, at, at + count))

    def delete_rows(self, start: int, end: int, undo: Undo) -> None:
        removed = self.rows[start:end]
        if removed:
            del self.rows[start:end]
            undo.push(functools.partial(self._insert_slice, start, removed))

    def _delete_slice(self, start: int, end: int) -> None:
        del self.rows[start:end]

    def _insert_slice(self, at: int, rows: list[list[Cell]]) -> None:
        self.rows[at:at] = rows

    def insert_columns(self, at: int, count: int, undo: Undo) -> None:
        gap: list[Cell] = [None] * count
        self._map_rows(lambda row: row[:at] + gap + row[at:] if len(row) > at else row, undo)

    def delete_columns(self, start: int, end: int, undo: Undo) -> None:
        self._map_rows(
            lambda row: _trim(row[:start] + row[end:]) if len(row) > start else row, undo
        )

    def _map_rows(self, change: Callable[[list[Cell]], list[Cell]], undo: Undo) -> None:
        _set_attr(self, "rows", [change(row) for row in self.rows], undo)

    def read_rows(self, r0: int, r1: int, c0: int, c1: int) -> list[list[Cell]]:
        """Rows of the block, trailing empty cells and rows trimmed (as values.get does)."""
        out = [_trim(self.rows[r][c0:c1]) for r in range(r0, min(r1, len(self.rows)))]
        while out and not out[-1]:
            out.pop()
        return out

    def read_columns(self, r0: int, r1: int, c0: int, c1: int) -> list[list[Cell]]:
        """Columns of the block (majorDimension=COLUMNS), trimmed the same way."""
        rows = self.rows[r0:r1]
        c1 = min(c1, max((len(row) for row in rows), default=0))
        out = [_trim([row[c] if c < len(row) else None for row in rows]) for c in range(c0, c1)]
        while out and not out[-1]:
            out.pop()
        return out

    def any_in_row(self, r: int, c0: int, c1: int) -> bool:
        if r >= len(self.rows):
            return False
        return any(value is not None for value in self.rows[r][c0:c1])

    def any_in_column(self, c: int, r0: int, r1: int) -> bool:
        return any(c < len(row) and row[c] is not None for row in self.rows[r0:r1])

    def last_cell(self, r0: int, r1: int, c0: int, c1: int) -> tuple[int, int] | None:
        """The bottom-most, then right-most, non-empty cell of the block."""
        for r in range(min(r1, len(self.rows)) - 1, r0 - 1, -1):
            segment = self.rows[r][c0:c1]
            for j in range(len(segment) - 1, -1, -1):
                if segment[j] is not None:
                    return r, c0 + j
        return None

    def last_row(self) -> int:
        """Index of the last row holding a value, or -1."""
        for r in range(len(self.rows) - 1, -1, -1):
            if self.rows[r]:
                return r
        return -1

    def region(self, r: int, c: int, area: Box) -> Box:
        """The block of data around (r, c) inside ``area``, grown while any neighbouring cell
        (diagonals too) holds a value: how Sheets finds the "table" an append extends.
        Columns grow first, while the block is one row tall, because that is cheap."""
        top, bottom, left, right = r, r + 1, c, c + 1
        grew = True
        while grew:
            grew = False
            lo, hi = max(top - 1, area.top), min(bottom + 1, area.bottom)
            while left > area.left and self.any_in_column(left - 1, lo, hi):
                left, grew = left - 1, True
            while right < area.right and self.any_in_column(right, lo, hi):
                right, grew = right + 1, True
            lo, hi = max(left - 1, area.left), min(right + 1, area.right)
            while top > area.top and self.any_in_row(top - 1, lo, hi):
                top, grew = top - 1, True
            while bottom < area.bottom and self.any_in_row(bottom, lo, hi):
                bottom, grew = bottom + 1, True
        return Box(top, bottom, left, right)


# --------------------------------------------------------------------------------------
# Worksheets and spreadsheets
# --------------------------------------------------------------------------------------


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


_GRID_FIELDS = {
    "rowCount": "row_count",
    "columnCount": "col_count",
    "frozenRowCount": "frozen_rows",
    "frozenColumnCount": "frozen_cols",
    "hideGridlines": "hide_gridlines",
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
        """``rng`` with open ends filled from the grid and ends cut at its edge; a start
        outside the grid is an error, as in Google."""
        bounded = replace(rng.clamp(self.row_count, self.col_count), sheet=self.title)
        box = bounded.box()
        if box.top >= self.row_count or box.left >= self.col_count:
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
            _set_attr(self, "column_formats", formats, undo)
        _set_attr(self, "row_count", rows, undo)
        _set_attr(self, "col_count", cols, undo)

    def _count(self, dimension: str) -> int:
        return self.row_count if dimension == "ROWS" else self.col_count

    def insert_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        if not 0 <= start < end or start > self._count(dimension):
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        count = end - start
        if dimension == "ROWS":
            self.grid.insert_rows(start, count, undo)
            _set_attr(self, "row_count", self.row_count + count, undo)
            return
        self.grid.insert_columns(start, count, undo)
        self._shift_formats(start, count, undo)
        _set_attr(self, "col_count", self.col_count + count, undo)

    def delete_dimension(self, dimension: str, start: int, end: int, undo: Undo) -> None:
        total = self._count(dimension)
        if not 0 <= start < end or end > total:
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}")
        if start == 0 and end == total:
            raise ApiError(400, f"You can't delete all the {dimension.lower()} on the sheet.")
        if dimension == "ROWS":
            self.grid.delete_rows(start, end, undo)
            _set_attr(self, "row_count", total - (end - start), undo)
            return
        self.grid.delete_columns(start, end, undo)
        kept = {c: kind for c, kind in self.column_formats.items() if not start <= c < end}
        _set_attr(self, "column_formats", kept, undo)
        self._shift_formats(end, start - end, undo)
        _set_attr(self, "col_count", total - (end - start), undo)

    def _shift_formats(self, at: int, delta: int, undo: Undo) -> None:
        shifted = {c + delta if c >= at else c: kind for c, kind in self.column_formats.items()}
        _set_attr(self, "column_formats", shifted, undo)

    def render(self, bounds: A1Range, major: str, render: str, date_render: str) -> list[list]:
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
        return (exact or folded or [None])[0]

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


# --------------------------------------------------------------------------------------
# Field masks and spreadsheets.batchUpdate
# --------------------------------------------------------------------------------------


def mask_paths(mask: str) -> set[str]:
    """Expand a field mask (``a/b``, ``a.b``, ``a(b,c)``) into dotted paths."""
    paths: set[str] = set()
    stack: list[str] = []
    token = ""
    for char in mask.replace("/", ".") + ",":
        if char == "(":
            stack.append(token.strip())
            token = ""
        elif char in "),":
            if token.strip():
                paths.add(".".join([*stack, token.strip()]))
            token = ""
            if char == ")":
                if not stack:
                    raise ApiError(400, f"Invalid field mask: {mask}")
                stack.pop()
        else:
            token += char
    return paths


def mask_covers(paths: set[str], target: str) -> bool:
    """True if the mask selects ``target`` or a part of it."""
    return any(
        p == "*" or p == target or target.startswith(p + ".") or p.startswith(target + ".")
        for p in paths
    )


def _required(body: Mapping[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is None:
        raise ApiError(400, f"{name} is required")
    return value


def _int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(400, f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"Invalid value for {name}: {value!r}") from None


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
    if kind == "stringValue" and isinstance(raw, str):
        return raw or None
    if kind == "numberValue" and isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    if kind == "boolValue" and isinstance(raw, bool):
        return raw
    if kind == "formulaValue" and isinstance(raw, str) and raw.startswith("="):
        return Formula(raw)
    raise ApiError(400, f"Invalid userEnteredValue.{kind}: {raw!r}")


def _cells_from_rows(rows: Any) -> list[list[Cell]]:
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
        "addConditionalFormatRule",
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
        _set_attr(self.ss, "sheets", sheets, self.undo)

    def add_sheet(self, body: dict[str, Any]) -> dict[str, Any]:
        props = body.get("properties") or {}
        if (props.get("sheetType") or "GRID") != "GRID":
            raise ApiError(400, "Only GRID sheets are supported.")
        title = self._check_title(props.get("title") or self._default_title())
        sheet_id = _int(props, "sheetId", -1)
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
            _int(grid, "rowCount", DEFAULT_ROWS),
            _int(grid, "columnCount", DEFAULT_COLUMNS),
        )
        ws.resize(rows, cols, Undo())  # a new sheet: undoing its insertion is enough
        for name in ("frozenRowCount", "frozenColumnCount", "hideGridlines"):
            if grid.get(name) is not None:
                setattr(ws, _GRID_FIELDS[name], grid[name])
        index = min(max(_int(props, "index", len(self.ss.sheets)), 0), len(self.ss.sheets))
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
        for path in sorted(mask_paths(_required(body, "fields"))):
            self._update_sheet_field(ws, props, path)

    def _update_sheet_field(self, ws: Worksheet, props: dict[str, Any], path: str) -> None:
        grid = props.get("gridProperties") or {}
        if path == "title":
            _set_attr(ws, "title", self._check_title(props.get("title"), ws), self.undo)
        elif path == "index":
            others = [other for other in self.ss.sheets if other is not ws]
            index = min(max(_int(props, "index", 0), 0), len(others))
            self._set_sheets([*others[:index], ws, *others[index:]])
        elif path == "hidden":
            _set_attr(ws, "hidden", bool(props.get("hidden")), self.undo)
        elif path in ("tabColorStyle", "tabColor"):
            _set_attr(ws, "tab_color", props.get(path), self.undo)
        elif path == "gridProperties":
            for name in grid:
                self._update_sheet_field(ws, props, f"gridProperties.{name}")
        elif path in ("gridProperties.rowCount", "gridProperties.columnCount"):
            rows = _int(grid, "rowCount", ws.row_count)
            ws.resize(rows, _int(grid, "columnCount", ws.col_count), self.undo)
        elif path.startswith("gridProperties.") and path[15:] in _GRID_FIELDS:
            value = grid.get(path[15:]) or 0
            _set_attr(ws, _GRID_FIELDS[path[15:]], value, self.undo)
        else:
            raise ApiError(400, f"Invalid field mask path: {path}")

    def update_spreadsheet_properties(self, body: dict[str, Any]) -> None:
        props = body.get("properties") or {}
        attrs = {"title": "title", "locale": "locale", "timeZone": "time_zone"}
        for path in mask_paths(_required(body, "fields")):
            if path in attrs:
                _set_attr(self.ss, attrs[path], str(props.get(path) or ""), self.undo)
            elif path.split(".")[0] not in _IGNORED_SPREADSHEET_FIELDS:
                raise ApiError(400, f"Invalid field mask path: {path}")

    # -- dimensions ----------------------------------------------------------------------

    @staticmethod
    def _dimension(body: Mapping[str, Any]) -> str:
        dimension = body.get("dimension")
        if dimension not in _DIMENSIONS:
            raise ApiError(400, f"Invalid dimension: {dimension}")
        return dimension

    def append_dimension(self, body: dict[str, Any]) -> None:
        ws = self.ss.sheet(body.get("sheetId") or 0)
        length = _int(body, "length", 0)
        if length < 1:
            raise ApiError(400, "length must be greater than 0")
        if self._dimension(body) == "ROWS":
            ws.resize(ws.row_count + length, ws.col_count, self.undo)
        else:
            ws.resize(ws.row_count, ws.col_count + length, self.undo)

    def _dimension_range(self, body: Mapping[str, Any]) -> tuple[Worksheet, str, int, int]:
        rng = _required(body, "range")
        ws = self.ss.sheet(rng.get("sheetId") or 0)
        return ws, self._dimension(rng), _int(rng, "startIndex", 0), _int(rng, "endIndex", -1)

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
            _int(rng, "startRowIndex", 0),
            _int(rng, "endRowIndex", ws.row_count),
            _int(rng, "startColumnIndex", 0),
            _int(rng, "endColumnIndex", ws.col_count),
        )
        if min(box) < 0 or box.bottom < box.top or box.right < box.left:
            raise ApiError(400, f"Invalid GridRange: {dict(rng)}")
        ws.check_fits(box.top, box.left, box.bottom - box.top, box.right - box.left)
        return ws, box

    def update_cells(self, body: dict[str, Any]) -> None:
        paths = mask_paths(_required(body, "fields"))
        cells = _cells_from_rows(body.get("rows") or [])
        matrix: list[list[Input]]
        if body.get("start") is not None:
            start = body["start"]
            ws = self.ss.sheet(start.get("sheetId") or 0)
            r0, c0 = _int(start, "rowIndex", 0), _int(start, "columnIndex", 0)
            matrix = list(cells)  # type: ignore[arg-type]
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

    def append_cells(self, body: dict[str, Any]) -> None:
        ws = self.ss.sheet(body.get("sheetId") or 0)
        paths = mask_paths(_required(body, "fields"))
        matrix: list[list[Input]] = _cells_from_rows(body.get("rows") or [])  # type: ignore[assignment]
        start = ws.grid.last_row() + 1
        width = max((len(row) for row in matrix), default=0)
        rows = max(ws.row_count, start + len(matrix))
        ws.resize(rows, max(ws.col_count, width), self.undo)
        if mask_covers(paths, "userEnteredValue"):
            ws.write(start, 0, matrix, self.undo)

    def repeat_cell(self, body: dict[str, Any]) -> None:
        ws, box = self._grid_range(_required(body, "range"))
        paths = mask_paths(_required(body, "fields"))
        cell = body.get("cell") or {}
        if mask_covers(paths, "userEnteredValue"):
            row: list[Input] = [_cell_from_data(cell)] * (box.right - box.left)
            ws.write(box.top, box.left, [list(row) for _ in range(box.bottom - box.top)], self.undo)
        if mask_covers(paths, "userEnteredFormat.numberFormat"):
            number_format = (cell.get("userEnteredFormat") or {}).get("numberFormat") or {}
            formats = dict(ws.column_formats)
            for c in range(box.left, box.right):
                if number_format.get("type"):
                    formats[c] = number_format["type"]
                else:
                    formats.pop(c, None)
            _set_attr(ws, "column_formats", formats, self.undo)


# --------------------------------------------------------------------------------------
# Service accounts and OAuth2
# --------------------------------------------------------------------------------------


def generate_service_account_key(
    token_uri: str, client_email: str = DEFAULT_CLIENT_EMAIL
) -> dict[str, str]:
    """A fresh service-account key file (as the Cloud console downloads it) whose
    ``token_uri`` points wherever tokens should come from, normally this emulator."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    project_id = client_email.split("@", 1)[-1].split(".", 1)[0]
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21)).zfill(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + quote(client_email, safe=""),
        "universe_domain": "googleapis.com",
    }


def write_key_file(path: str | os.PathLike[str], key_info: Mapping[str, str]) -> None:
    """Write a key file readable by its owner only (it holds a private key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key_info, handle, indent=2)


@dataclass(frozen=True)
class ServiceAccount:
    email: str
    key_id: str | None
    public_key: rsa.RSAPublicKey


@dataclass
class AccessToken:
    email: str
    scopes: frozenset[str]
    expires_at: float


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_jwt(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64url(header_b64))
        claims = json.loads(_b64url(claims_b64))
        signature = _b64url(signature_b64)
    except ValueError:
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.")
    return header, claims, signature, f"{header_b64}.{claims_b64}".encode()


# --------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it; ``kind`` is "read", "write" or None (token and
    allowedLocations calls, which Google does not count against Sheets quotas)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    kind: str | None


@dataclass
class Call:
    """An HTTP request reduced to what the handlers need (the path stays URL-encoded,
    because an encoded ``%3A`` inside a range must not be confused with ``:append``)."""

    method: str
    raw_path: str
    query: MultiMapping[str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.")
        return data

    def option(self, name: str, allowed: Sequence[str], default: str | None = None) -> str:
        value = self.query.get(name) or default
        if value not in allowed:
            raise ApiError(400, f"Invalid value at '{name}', \"{value}\"")
        return value

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or "").lower() in ("true", "1")


Written = tuple[Worksheet, A1Range, WriteStats | None]
"""A values write: the sheet, the range's first cell, and the stats (None if nothing set)."""


@dataclass(frozen=True)
class ReadOptions:
    major: str = "ROWS"
    render: str = "FORMATTED_VALUE"
    date_render: str = "SERIAL_NUMBER"


class _Window:
    """Request times in a sliding window, for per-minute quotas."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def admit(self, limit: int | None, window: float, now: float) -> bool:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if limit is not None and len(self.times) >= limit:
            return False
        self.times.append(now)
        return True


_SID = r"(?P<sid>[^/:]+)"
_RANGE = r"(?P<range>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str, str | None]] = [
    (method, re.compile(pattern), handler, kind)
    for method, pattern, handler, kind in [
        ("POST", r"/token", "_token", None),
        (
            "GET",
            r"/v1/projects/-/serviceAccounts/(?P<email>[^/]+)/allowedLocations",
            "_allowed_locations",
            None,
        ),
        ("GET", rf"/v4/spreadsheets/{_SID}", "_get_spreadsheet", "read"),
        ("POST", rf"/v4/spreadsheets/{_SID}:batchUpdate", "_batch_update", "write"),
        ("GET", rf"/v4/spreadsheets/{_SID}/values:batchGet", "_values_batch_get", "read"),
        ("POST", rf"/v4/spreadsheets/{_SID}/values:batchUpdate", "_values_batch_update", "write"),
        ("POST", rf"/v4/spreadsheets/{_SID}/values:batchClear", "_values_batch_clear", "write"),
        ("POST", rf"/v4/spreadsheets/{_SID}/values/{_RANGE}:append", "_values_append", "write"),
        ("POST", rf"/v4/spreadsheets/{_SID}/values/{_RANGE}:clear", "_values_clear", "write"),
        ("GET", rf"/v4/spreadsheets/{_SID}/values/{_RANGE}", "_values_get", "read"),
        ("PUT", rf"/v4/spreadsheets/{_SID}/values/{_RANGE}", "_values_update", "write"),
    ]
]


class SheetsEmulator:
    """All emulator state plus the aiohttp app that serves it.

    Knobs (constructor arguments, also plain attributes to change at runtime):
    ``read_quota_per_minute`` / ``write_quota_per_minute`` (None = unlimited) over a sliding
    ``quota_window_seconds``; ``error_rate`` picks a status from ``error_statuses`` with a
    RNG seeded by ``seed``; ``latency_seconds`` delays every Sheets call; ``slow_rate`` of them
    answer ``slow_seconds`` late (after the change is applied, like a lost response);
    ``token_lifetime_seconds``. Tests call the public methods from their own thread while
    the server runs in another, so all state sits behind one lock.
    """

    def __init__(
        self,
        *,
        read_quota_per_minute: int | None = None,
        write_quota_per_minute: int | None = None,
        quota_window_seconds: float = 60.0,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (429, 500, 503),
        latency_seconds: float = 0.0,
        slow_rate: float = 0.0,
        slow_seconds: float = 0.0,
        token_lifetime_seconds: float = 3600,
        seed: int = 0,
    ) -> None:
        self.read_quota_per_minute = read_quota_per_minute
        self.write_quota_per_minute = write_quota_per_minute
        self.quota_window_seconds = quota_window_seconds
        self.error_rate = error_rate
        self.error_statuses = list(error_statuses)
        self.latency_seconds = latency_seconds
        self.slow_rate = slow_rate
        self.slow_seconds = slow_seconds
        self.token_lifetime_seconds = token_lifetime_seconds
        self.reads = 0
        self.writes = 0
        self._lock = threading.RLock()
        self._fault_rng = random.Random(seed)
        self._id_rng = random.Random(seed + 1)
        self._spreadsheets: dict[str, Spreadsheet] = {}
        self._accounts_by_key: dict[str, ServiceAccount] = {}
        self._accounts_by_email: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, AccessToken] = {}
        self._failures: deque[int] = deque()
        self._windows = {"read": _Window(), "write": _Window()}
        self._log: list[RequestRecord] = []

    # -- setup and inspection (called by tests) ------------------------------------------

    def create_spreadsheet(
        self, spreadsheet_id: str, title: str = "Sandbox", shared_with: set[str] | None = None
    ) -> None:
        """A new spreadsheet with one empty 1000x26 "Sheet1" (sheetId 0), like Google's.
        With ``shared_with`` set, only those service accounts may use it (others get 403)."""
        with self._lock:
            self._spreadsheets[spreadsheet_id] = Spreadsheet(
                spreadsheet_id,
                title,
                None if shared_with is None else set(shared_with),
                sheets=[Worksheet(0, "Sheet1")],
            )

    def add_sheet(
        self, spreadsheet_id: str, title: str, rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLUMNS
    ) -> int:
        """Add a tab directly (no HTTP); returns its sheetId."""
        grid = {"rowCount": rows, "columnCount": cols}
        request = {"addSheet": {"properties": {"title": title, "gridProperties": grid}}}
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            replies = self._in_transaction(
                ss, lambda undo: BatchUpdate(ss, undo, self._new_sheet_id).run([request])
            )
        return int(replies[0]["addSheet"]["properties"]["sheetId"])

    def set_values(
        self,
        spreadsheet_id: str,
        title: str,
        rows: Sequence[Sequence[Any]],
        start: str = "A1",
        value_input_option: str = "RAW",
    ) -> None:
        """Seed cells directly (no HTTP), with the same parsing and limits as values.update."""
        matrix = to_matrix([list(row) for row in rows], "ROWS", value_input_option)
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            ws, rng = ss.resolve(_range_text(title, start))
            self._in_transaction(
                ss, lambda undo: ws.write(rng.start_row or 0, rng.start_col or 0, matrix, undo)
            )

    def values(self, spreadsheet_id: str, title: str) -> list[list[Cell]]:
        """A copy of a tab's stored cells (trimmed; None for empty cells inside the block).
        Formulas come back as :class:`Formula`, USER_ENTERED dates as :class:`DateSerial`."""
        with self._lock:
            ws = self._sheet(spreadsheet_id, title)
            return ws.grid.read_rows(0, ws.row_count, 0, ws.col_count)

    def dump(self, spreadsheet_id: str) -> dict[str, list[list[Any]]]:
        """Every tab as FORMATTED_VALUE rows, exactly as a get of the whole tab returns them."""
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            return {
                ws.title: ws.render(ws.bounds(A1Range(ws.title)), "ROWS", "FORMATTED_VALUE", "")
                for ws in ss.sheets
            }

    def grid_size(self, spreadsheet_id: str, title: str) -> tuple[int, int]:
        with self._lock:
            ws = self._sheet(spreadsheet_id, title)
            return ws.row_count, ws.col_count

    def sheet_titles(self, spreadsheet_id: str) -> list[str]:
        with self._lock:
            return [ws.title for ws in self._spreadsheet(spreadsheet_id).sheets]

    def register_service_account(
        self,
        key: Mapping[str, str] | rsa.RSAPublicKey,
        client_email: str | None = None,
        key_id: str | None = None,
    ) -> str:
        """Trust a service account: a key-file dict, or a public key plus its e-mail.
        Returns the account's e-mail."""
        if isinstance(key, Mapping):
            private = serialization.load_pem_private_key(key["private_key"].encode(), None)
            assert isinstance(private, rsa.RSAPrivateKey)
            public_key = private.public_key()
            client_email = client_email or key["client_email"]
            key_id = key_id or key.get("private_key_id")
        else:
            public_key = key
        if not client_email:
            raise ValueError("client_email is required with a bare public key")
        account = ServiceAccount(client_email, key_id, public_key)
        with self._lock:
            if key_id:
                self._accounts_by_key[key_id] = account
            self._accounts_by_email[client_email] = account
        return client_email

    def create_service_account(
        self, token_uri: str, client_email: str = DEFAULT_CLIENT_EMAIL
    ) -> dict[str, str]:
        """Generate a key file pointing at ``token_uri`` and register it."""
        key_info = generate_service_account_key(token_uri, client_email)
        self.register_service_account(key_info)
        return key_info

    def expire_tokens(self) -> None:
        """Make every issued access token stale (the next API call gets a 401)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` authenticated Sheets calls with ``status``."""
        with self._lock:
            self._failures.extend([status] * n)

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def reset_counters(self) -> None:
        """Zero ``reads``/``writes``, empty the request log and the quota windows."""
        with self._lock:
            self.reads = self.writes = 0
            self._log.clear()
            self._windows = {"read": _Window(), "write": _Window()}

    def _spreadsheet(self, spreadsheet_id: str) -> Spreadsheet:
        ss = self._spreadsheets.get(spreadsheet_id)
        if ss is None:
            raise KeyError(f"no spreadsheet {spreadsheet_id!r}")
        return ss

    def _sheet(self, spreadsheet_id: str, title: str) -> Worksheet:
        ws = self._spreadsheet(spreadsheet_id).find_title(title)
        if ws is None:
            raise KeyError(f"no sheet {title!r} in {spreadsheet_id!r}")
        return ws

    def _new_sheet_id(self) -> int:
        """Random like Google's, so code cannot get away with assuming 0, 1, 2..."""
        taken = {ws.sheet_id for ss in self._spreadsheets.values() for ws in ss.sheets}
        while (sheet_id := self._id_rng.randrange(1, 2**31)) in taken:
            pass
        return sheet_id

    @staticmethod
    def _in_transaction(ss: Spreadsheet, change: Callable[[Undo], Any]) -> Any:
        """Apply ``change`` all-or-nothing, including Google's size caps."""
        undo = Undo()
        try:
            result = change(undo)
            ss.check_limits()
        except BaseException:
            undo.rollback()
            raise
        return result

    # -- HTTP ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application; serve it with ``ServerThread`` or ``run_cli``."""
        application = web.Application(client_max_size=64 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self._handle)
        return application

    async def _handle(self, request: web.Request) -> web.Response:
        call = Call(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.query,
            request.headers,
            await request.read(),
        )
        route = self._route(call)
        if route is not None and route[2] is not None and self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        status, payload, delay = self._serve(call, route)
        if delay > 0:
            await asyncio.sleep(delay)
        return web.json_response(payload, status=status)

    @staticmethod
    def _route(call: Call) -> tuple[str, dict[str, str], str | None] | None:
        for method, pattern, handler, kind in _ROUTES:
            match = pattern.fullmatch(call.raw_path)
            if match and call.method == method:
                return handler, {k: unquote(v) for k, v in match.groupdict().items()}, kind
        return None

    def _serve(
        self, call: Call, route: tuple[str, dict[str, str], str | None] | None
    ) -> tuple[int, dict[str, Any], float]:
        """Answer one request: (status, JSON body, seconds to hold the response back)."""
        delay = 0.0
        with self._lock:
            try:
                if route is None:
                    raise ApiError(404)
                handler, params, kind = route
                if kind is None:
                    status, payload = 200, getattr(self, handler)(call, params)
                else:
                    delay = self._slow_delay()
                    status, payload = 200, self._sheets_call(call, handler, params, kind)
            except ApiError as exc:
                status, payload = exc.code, exc.body()
            except OAuthError as exc:
                status = exc.status
                payload = {"error": exc.error, "error_description": exc.description}
            except Exception:
                log.exception("sheets emulator failed on %s %s", call.method, call.raw_path)
                status, payload = 500, ApiError(500).body()
            self._log.append(
                RequestRecord(
                    call.method,
                    unquote(call.raw_path),
                    {key: call.query.getall(key) for key in set(call.query.keys())},
                    status,
                    route[2] if route else None,
                )
            )
        return status, payload, delay

    def _slow_delay(self) -> float:
        if self.slow_rate > 0 and self._fault_rng.random() < self.slow_rate:
            return self.slow_seconds
        return 0.0

    def _sheets_call(
        self, call: Call, handler: str, params: dict[str, str], kind: str
    ) -> dict[str, Any]:
        """Authentication, injected faults, quota and sharing, then the handler proper."""
        token = self._authenticate(call, kind)
        self._inject_fault(kind)
        limit = self.read_quota_per_minute if kind == "read" else self.write_quota_per_minute
        if not self._windows[kind].admit(limit, self.quota_window_seconds, time.monotonic()):
            raise quota_error(kind)
        if kind == "read":
            self.reads += 1
        else:
            self.writes += 1
        ss = self._spreadsheets.get(params["sid"])
        if ss is None:
            raise ApiError(404)
        if ss.shared_with is not None and token.email not in ss.shared_with:
            raise ApiError(403)
        return getattr(self, handler)(ss, call, params)

    def _authenticate(self, call: Call, kind: str) -> AccessToken:
        scheme, _, value = (call.headers.get("Authorization") or "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= time.monotonic():
            raise ApiError(401)
        allowed = {SPREADSHEETS_SCOPE, DRIVE_SCOPE}
        if kind == "read":
            allowed |= {SPREADSHEETS_SCOPE + ".readonly", DRIVE_SCOPE + ".readonly"}
        if not token.scopes & allowed:
            raise ApiError(403, "Request had insufficient authentication scopes.")
        return token

    def _inject_fault(self, kind: str) -> None:
        status = self._failures.popleft() if self._failures else None
        if status is None and self.error_rate > 0 and self._fault_rng.random() < self.error_rate:
            status = self._fault_rng.choice(self.error_statuses)
        if status == 429:
            raise quota_error(kind)
        if status is not None:
            raise ApiError(status)

    # -- OAuth endpoints ------------------------------------------------------------------

    def _token(self, call: Call, params: dict[str, str]) -> dict[str, Any]:
        form = {k: v[-1] for k, v in parse_qs(call.body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError(
                "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
            )
        if not form.get("assertion"):
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        account, claims = self._verify_assertion(form["assertion"])
        access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self._tokens[access_token] = AccessToken(
            account.email,
            frozenset(str(claims.get("scope") or "").split()),
            time.monotonic() + self.token_lifetime_seconds,
        )
        return {
            "access_token": access_token,
            "expires_in": int(self.token_lifetime_seconds),
            "token_type": "Bearer",
        }

    def _verify_assertion(self, assertion: str) -> tuple[ServiceAccount, dict[str, Any]]:
        """Check an RS256 JWT grant. ``aud`` is not compared with this server's URL:
        google-auth always sends Google's token URL there, whatever ``token_uri`` says."""
        header, claims, signature, signed = _decode_jwt(assertion)
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: unsupported algorithm.")
        account = self._accounts_by_key.get(str(header.get("kid"))) or self._accounts_by_email.get(
            str(claims.get("iss"))
        )
        if account is None or claims.get("iss") != account.email:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            account.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        now = time.time()
        issued, expires = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(issued, int | float)
            or not isinstance(expires, int | float)
            or expires <= now
            or issued > now + _CLOCK_SKEW
            or expires - issued > _MAX_ASSERTION_LIFETIME
        ):
            raise OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return account, claims

    def _allowed_locations(self, call: Call, params: dict[str, str]) -> dict[str, Any]:
        """google-auth's Regional Access Boundary lookup: no restrictions."""
        return dict(ALLOWED_LOCATIONS)

    # -- Sheets endpoints -----------------------------------------------------------------

    def _get_spreadsheet(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        return ss.metadata()

    @staticmethod
    def _read_options(call: Call, prefix: str = "") -> ReadOptions:
        render_name = f"{prefix}ValueRenderOption" if prefix else "valueRenderOption"
        date_name = f"{prefix}DateTimeRenderOption" if prefix else "dateTimeRenderOption"
        return ReadOptions(
            call.option("majorDimension", _DIMENSIONS, "ROWS") if not prefix else "ROWS",
            call.option(render_name, _RENDER_OPTIONS, "FORMATTED_VALUE"),
            call.option(date_name, _DATE_RENDER_OPTIONS, "SERIAL_NUMBER"),
        )

    @staticmethod
    def _value_range(ws: Worksheet, bounds: A1Range, options: ReadOptions) -> dict[str, Any]:
        values = ws.render(bounds, options.major, options.render, options.date_render)
        result: dict[str, Any] = {"range": bounds.to_a1(), "majorDimension": options.major}
        if values:
            result["values"] = values
        return result

    def _read_range(self, ss: Spreadsheet, text: str, options: ReadOptions) -> dict[str, Any]:
        ws, rng = ss.resolve(text)
        return self._value_range(ws, ws.bounds(rng), options)

    def _values_get(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        return self._read_range(ss, params["range"], self._read_options(call))

    def _values_batch_get(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        options = self._read_options(call)
        result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
        ranges = call.query.getall("ranges", [])
        if ranges:
            result["valueRanges"] = [self._read_range(ss, text, options) for text in ranges]
        return result

    @staticmethod
    def _write_range(
        ss: Spreadsheet, text: str, value_range: Mapping[str, Any], option: str, undo: Undo
    ) -> Written:
        """values.update of one range; a bounded multi-cell range caps the data's size."""
        ws, rng = ss.resolve(text)
        major = value_range.get("majorDimension") or "ROWS"
        if major not in _DIMENSIONS:
            raise ApiError(400, f"Invalid majorDimension: {major}")
        matrix = to_matrix(value_range.get("values"), major, option)
        r0, c0 = rng.start_row or 0, rng.start_col or 0
        if not (rng.is_single_cell or rng.is_whole_sheet):
            if rng.end_row is not None and r0 + len(matrix) > rng.end_row:
                raise ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to row "
                    f"[{rng.end_row + 1}]",
                )
            width = max((len(row) for row in matrix), default=0)
            if rng.end_col is not None and c0 + width > rng.end_col:
                raise ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to column "
                    f"[{column_letters(rng.end_col + 1)}]",
                )
        start = A1Range(ws.title, r0, r0 + 1, c0, c0 + 1)
        return ws, start, ws.write(r0, c0, matrix, undo)

    def _update_response(
        self,
        ss: Spreadsheet,
        written: Written,
        response_options: ReadOptions | None,
    ) -> dict[str, Any]:
        ws, start, stats = written
        if stats is None:
            response: dict[str, Any] = {
                "spreadsheetId": ss.spreadsheet_id,
                "updatedRange": start.to_a1(),
            }
        else:
            response = stats.response(ss.spreadsheet_id)
        if response_options is not None:
            extent = stats.extent if stats else start
            response["updatedData"] = self._value_range(ws, extent, response_options)
        return response

    def _response_options(self, call: Call, include: bool) -> ReadOptions | None:
        return self._read_options(call, "response") if include else None

    def _values_update(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        option = call.option("valueInputOption", _VALUE_INPUT_OPTIONS)
        body = call.json()
        written = self._in_transaction(
            ss, lambda undo: self._write_range(ss, params["range"], body, option, undo)
        )
        return self._update_response(
            ss, written, self._response_options(call, call.flag("includeValuesInResponse"))
        )

    def _values_batch_update(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        body = call.json()
        option = body.get("valueInputOption")
        if option not in _VALUE_INPUT_OPTIONS:
            raise ApiError(400, f"Invalid valueInputOption: {option}")
        data = body.get("data") or []
        if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
            raise ApiError(400, "Invalid data: must be a list of ValueRange objects")
        written = self._in_transaction(
            ss,
            lambda undo: [
                self._write_range(ss, str(_required(item, "range")), item, option, undo)
                for item in data
            ],
        )
        include = bool(body.get("includeValuesInResponse"))
        options = (
            ReadOptions(
                "ROWS",
                body.get("responseValueRenderOption") or "FORMATTED_VALUE",
                body.get("responseDateTimeRenderOption") or "SERIAL_NUMBER",
            )
            if include
            else None
        )
        stats = [item[2] for item in written if item[2] is not None]
        result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
        if stats:
            result.update(
                totalUpdatedRows=sum(s.rows for s in stats),
                totalUpdatedColumns=sum(s.columns for s in stats),
                totalUpdatedCells=sum(s.cells for s in stats),
                totalUpdatedSheets=len({s.extent.sheet for s in stats}),
            )
        if written:
            result["responses"] = [self._update_response(ss, item, options) for item in written]
        return result

    def _values_append(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        option = call.option("valueInputOption", _VALUE_INPUT_OPTIONS)
        insert = call.option("insertDataOption", ("OVERWRITE", "INSERT_ROWS"), "OVERWRITE")
        body = call.json()

        def append(undo: Undo) -> tuple[A1Range | None, Written]:
            ws, rng = ss.resolve(params["range"])
            matrix = to_matrix(body.get("values"), body.get("majorDimension") or "ROWS", option)
            table = find_table(ws, rng)
            # Values go below the table, from its first column; with no table, at the range.
            r0, c0 = (
                (table.bottom, table.left) if table else (rng.start_row or 0, rng.start_col or 0)
            )
            height, width = len(matrix), max((len(row) for row in matrix), default=0)
            if insert == "INSERT_ROWS" and height:
                ws.insert_dimension("ROWS", r0, r0 + height, undo)
            # Appending past the end of the grid grows it, whatever the insert option.
            rows, cols = max(ws.row_count, r0 + height), max(ws.col_count, c0 + width)
            if (rows, cols) != (ws.row_count, ws.col_count):
                ws.resize(rows, cols, undo)
            start = A1Range(ws.title, r0, r0 + 1, c0, c0 + 1)
            table_range = A1Range(ws.title, *table) if table else None
            return table_range, (ws, start, ws.write(r0, c0, matrix, undo))

        table, written = self._in_transaction(ss, append)
        result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id}
        if table is not None:
            result["tableRange"] = table.to_a1()
        result["updates"] = self._update_response(
            ss, written, self._response_options(call, call.flag("includeValuesInResponse"))
        )
        return result

    @staticmethod
    def _clear_range(ss: Spreadsheet, text: str, undo: Undo) -> str:
        ws, rng = ss.resolve(text)
        bounds = ws.bounds(rng)
        ws.grid.clear(*bounds.box(), undo)
        return bounds.to_a1()

    def _values_clear(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        text = params["range"]
        cleared = self._in_transaction(ss, lambda undo: self._clear_range(ss, text, undo))
        return {"spreadsheetId": ss.spreadsheet_id, "clearedRange": cleared}

    def _values_batch_clear(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        ranges = call.json().get("ranges") or []
        if not isinstance(ranges, list):
            raise ApiError(400, "Invalid ranges: must be a list")
        cleared = self._in_transaction(
            ss, lambda undo: [self._clear_range(ss, str(text), undo) for text in ranges]
        )
        return {"spreadsheetId": ss.spreadsheet_id, "clearedRanges": cleared}

    def _batch_update(self, ss: Spreadsheet, call: Call, params: dict[str, str]) -> dict:
        body = call.json()
        replies = self._in_transaction(
            ss, lambda undo: BatchUpdate(ss, undo, self._new_sheet_id).run(body.get("requests"))
        )
        result: dict[str, Any] = {"spreadsheetId": ss.spreadsheet_id, "replies": replies}
        if body.get("includeSpreadsheetInResponse"):
            result["updatedSpreadsheet"] = ss.metadata()
        return result


def _range_text(title: str, ref: str) -> str:
    return "'" + title.replace("'", "''") + "'!" + ref


# --------------------------------------------------------------------------------------
# Command line: `syncd sandbox sheets`
# --------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="serve what this daemon config expects: listen on google.api_endpoint, hold "
        "google.spreadsheet_id, and accept the key in google.service_account_file (a new one "
        "is written there if the file does not exist)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port (0 picks a free one)")
    parser.add_argument(
        "--spreadsheet", action="append", default=[], metavar="ID", help="create this spreadsheet"
    )
    parser.add_argument("--title", default="Cobot sync (sandbox)", help="spreadsheet title")
    parser.add_argument(
        "--key-file",
        metavar="PATH",
        help="write a new service-account key here whose token_uri points at this server",
    )
    parser.add_argument("--client-email", default=DEFAULT_CLIENT_EMAIL)
    parser.add_argument("--read-quota", type=int, default=None, help="reads per window")
    parser.add_argument("--write-quota", type=int, default=None, help="writes per window")
    parser.add_argument("--quota-window", type=float, default=60.0, help="seconds")
    parser.add_argument("--token-lifetime", type=float, default=3600, help="seconds")
    parser.add_argument("--error-rate", type=float, default=0.0, help="0..1 of Sheets calls")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per Sheets call")
    parser.add_argument("--seed", type=int, default=0)


def run_cli(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status."""
    emulator = SheetsEmulator(
        read_quota_per_minute=args.read_quota,
        write_quota_per_minute=args.write_quota,
        quota_window_seconds=args.quota_window,
        token_lifetime_seconds=args.token_lifetime,
        error_rate=args.error_rate,
        latency_seconds=args.latency,
        seed=args.seed,
    )
    if args.config is not None:
        google = inspect_settings(args.config)[0].google
        args.host, args.port = listen_address_of(google.api_endpoint, "google.api_endpoint")
        args.spreadsheet = [google.spreadsheet_id]
        args.key_file = str(google.service_account_file)
    port = args.port or free_port(args.host)
    url = f"http://{args.host}:{port}"
    for spreadsheet_id in args.spreadsheet:
        emulator.create_spreadsheet(spreadsheet_id, title=args.title)
    if args.key_file and Path(args.key_file).exists():
        # A key from an earlier run: accept it again so a running daemon keeps working.
        emulator.register_service_account(json.loads(Path(args.key_file).read_text()))
    elif args.key_file:
        key_info = emulator.create_service_account(url + "/token", args.client_email)
        write_key_file(args.key_file, key_info)
    asyncio.run(_serve_until_signalled(emulator.app(), args.host, port, url))
    return 0


async def _serve_until_signalled(app: web.Application, host: str, port: int, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"Sheets emulator listening on {url}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


__all__ = [
    "DEFAULT_CLIENT_EMAIL",
    "ApiError",
    "DateSerial",
    "DateTimeSerial",
    "Formula",
    "RequestRecord",
    "SheetsEmulator",
    "add_cli_arguments",
    "generate_service_account_key",
    "run_cli",
    "write_key_file",
]
