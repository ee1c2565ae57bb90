"""A1 notation as the Sheets API reads and echoes it.

Shared by the daemon's Sheets writer (column letters, quoted titles) and the emulator. The
emulator has to accept every range shape gspread and the daemon send (quoted titles with
``''`` escapes, open ranges such as ``A:A``, ``A1:A``, ``2:2`` and ``A2:2``, a bare sheet
title) and has to echo ranges back the way Google does, because callers compare and parse
those echoes. Rows and columns are 0-based and half-open here, like the API's GridRange.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

MAX_COLUMNS = 18_278
"""Column ZZZ: the widest grid Google Sheets allows."""

_ENDPOINT = re.compile(r"([A-Za-z]*)([0-9]*)")
_SIMPLE_TITLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Titles that read as a cell (``D3``) or an R1C1 reference are quoted in echoes.
_REFERENCE_LIKE = re.compile(r"[A-Za-z]{1,3}[0-9]+|[Rr][0-9]*[Cc][0-9]*")


class A1Error(ValueError):
    """The text is not a range the Sheets API would accept."""


def column_letters(index: int) -> str:
    """1-based column number to letters: 1 -> ``A``, 27 -> ``AA``, 18278 -> ``ZZZ``."""
    if not 1 <= index <= MAX_COLUMNS:
        raise A1Error(f"column {index} is outside 1..{MAX_COLUMNS}")
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def column_index(letters: str) -> int:
    """Column letters to a 1-based number (case-insensitive): ``A`` -> 1, ``ZZZ`` -> 18278."""
    if not letters or len(letters) > 3 or not letters.isascii() or not letters.isalpha():
        raise A1Error(f"bad column letters {letters!r}")
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - ord("A") + 1
    return index


def quote_title(title: str, *, always: bool = False) -> str:
    """A sheet title as Google writes it in a range: simple names bare, the rest quoted.

    ``always`` quotes simple names too, as Google's error messages do.
    """
    if not always and _SIMPLE_TITLE.fullmatch(title) and not _REFERENCE_LIKE.fullmatch(title):
        return title
    return "'" + title.replace("'", "''") + "'"


class Box(NamedTuple):
    """The plain bounds of a bounded range: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class A1Range:
    """A parsed range. ``None`` bounds are open: a missing start is the first row/column,
    a missing end runs to the edge of the grid. ``sheet`` is ``None`` when the text named no
    sheet (the API then means the first sheet)."""

    sheet: str | None = None
    start_row: int | None = None
    end_row: int | None = None
    start_col: int | None = None
    end_col: int | None = None

    @property
    def is_whole_sheet(self) -> bool:
        bounds = (self.start_row, self.end_row, self.start_col, self.end_col)
        return all(bound is None for bound in bounds)

    @property
    def is_single_cell(self) -> bool:
        return (
            self.start_row is not None
            and self.start_col is not None
            and self.end_row == self.start_row + 1
            and self.end_col == self.start_col + 1
        )

    def clamp(self, rows: int, cols: int) -> A1Range:
        """Fill open bounds from a ``rows`` x ``cols`` grid and cut ends at its edge.

        A start beyond the grid is kept as is, so the caller can report it."""
        return A1Range(
            self.sheet,
            self.start_row or 0,
            min(rows, self.end_row if self.end_row is not None else rows),
            self.start_col or 0,
            min(cols, self.end_col if self.end_col is not None else cols),
        )

    def box(self) -> Box:
        """The bounds as ints; only for a bounded range (see :meth:`clamp`)."""
        bounds = (self.start_row, self.end_row, self.start_col, self.end_col)
        if any(bound is None for bound in bounds):
            raise A1Error(f"{self.to_a1()!r} is not bounded")
        return Box(*bounds)  # type: ignore[arg-type]

    def ref(self) -> str:
        """The cell part of the range (``A1:B2``, ``A:A``, ``2:2``); empty for a whole sheet."""
        if self.is_whole_sheet:
            return ""
        start = _endpoint(self.start_col, self.start_row)
        if self.is_single_cell:
            return start
        end_col = None if self.end_col is None else self.end_col - 1
        end_row = None if self.end_row is None else self.end_row - 1
        return f"{start}:{_endpoint(end_col, end_row)}"

    def to_a1(self) -> str:
        """The range as Google echoes it, e.g. ``Sheet1!A1:B2`` or ``'My Sheet'!A1``."""
        ref = self.ref()
        if self.sheet is None:
            return ref
        title = quote_title(self.sheet)
        return f"{title}!{ref}" if ref else title


def _endpoint(col: int | None, row: int | None) -> str:
    letters = "" if col is None else column_letters(col + 1)
    digits = "" if row is None else str(row + 1)
    return letters + digits


def split_sheet(text: str) -> tuple[str | None, str | None, bool]:
    """Split ``'It''s'!A1`` into (title, ref, quoted). Title or ref may be absent."""
    if text.startswith("'"):
        title, rest = _read_quoted(text)
        if not rest:
            return title, None, True
        if not rest.startswith("!"):
            raise A1Error(f"unexpected text after quoted title in {text!r}")
        return title, rest[1:], True
    title, bang, ref = text.rpartition("!")
    if not bang:
        return None, text, False
    if not title:
        raise A1Error(f"empty sheet title in {text!r}")
    return title, ref, False


def _read_quoted(text: str) -> tuple[str, str]:
    """Read a ``'...'`` title where ``''`` stands for one apostrophe; return (title, rest)."""
    chars: list[str] = []
    i = 1
    while i < len(text):
        if text[i] == "'":
            if text[i + 1 : i + 2] == "'":
                chars.append("'")
                i += 2
                continue
            if not chars:
                raise A1Error("empty quoted sheet title")
            return "".join(chars), text[i + 1 :]
        chars.append(text[i])
        i += 1
    raise A1Error(f"unterminated quoted sheet title in {text!r}")


def parse_a1(text: str, sheet_titles: Collection[str] = ()) -> A1Range:
    """Parse a range the way the API does.

    Text without ``!`` is ambiguous (``A1`` may be a cell or a sheet called "A1"): like
    Google, an existing sheet title wins, then a valid reference, then it is a sheet title.
    """
    text = text.strip()
    if not text:
        raise A1Error("empty range")
    title, ref, quoted = split_sheet(text)
    if ref is None:
        return A1Range(sheet=title)
    if title is None and not quoted:
        if text in sheet_titles:
            return A1Range(sheet=text)
        try:
            return parse_ref(text)
        except A1Error:
            return A1Range(sheet=text)
    parsed = parse_ref(ref)
    return A1Range(title, parsed.start_row, parsed.end_row, parsed.start_col, parsed.end_col)


def parse_ref(ref: str) -> A1Range:
    """Parse the cell part only: ``A1``, ``A1:B2``, ``A:A``, ``A1:A``, ``2:2``, ``A2:2``."""
    start_text, colon, end_text = ref.partition(":")
    start_col, start_row = _parse_endpoint(start_text)
    if not colon:
        if start_col is None or start_row is None:
            raise A1Error(f"{ref!r} is not a cell")
        return A1Range(None, start_row, start_row + 1, start_col, start_col + 1)
    end_col, end_row = _parse_endpoint(end_text)
    if (start_col is None) != (end_col is None) and start_row is None:
        raise A1Error(f"mixed column and row range {ref!r}")
    rows = _order(start_row, end_row)
    cols = _order(start_col, end_col)
    return A1Range(None, rows[0], rows[1], cols[0], cols[1])


def _parse_endpoint(text: str) -> tuple[int | None, int | None]:
    """``B7`` -> (1, 6); ``B`` -> (1, None); ``7`` -> (None, 6). 0-based."""
    match = _ENDPOINT.fullmatch(text.strip())
    if match is None or not text.strip():
        raise A1Error(f"bad cell reference {text!r}")
    letters, digits = match.groups()
    col = column_index(letters) - 1 if letters else None
    row = int(digits) - 1 if digits else None
    if row is not None and row < 0:
        raise A1Error(f"row 0 in {text!r}")
    return col, row


def _order(start: int | None, end: int | None) -> tuple[int | None, int | None]:
    """Half-open bounds from two inclusive endpoints; reversed pairs are swapped like Google."""
    if start is not None and end is not None and end < start:
        start, end = end, start
    return start, None if end is None else end + 1
