"""Cell storage with undo: a request's changes are applied in place and reversed on failure.

The API applies a request all-or-nothing. Snapshotting a 100,000-row sheet for every request
would be too slow, so each change records the step that reverses it instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from syncd.sandbox.sheets.cells import KEEP, Keep
from syncd.sheets.a1 import Box

#: What a grid holds in each cell: values, or the cells' formats.
V = TypeVar("V")


class Undo:
    """Inverse steps of a request's changes, so a failing request leaves no trace."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def push(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def rollback(self) -> None:
        while self._steps:
            self._steps.pop()()


def set_attr(obj: object, name: str, value: Any, undo: Undo) -> None:
    """``setattr`` that records how to restore the old value."""
    undo.push(functools.partial(setattr, obj, name, getattr(obj, name)))
    setattr(obj, name, value)


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] is None:
        row.pop()
    return row


class Grid(Generic[V]):
    """Row-major cells: ``rows[r]`` holds row r up to its last value; rows past the end and
    cells past a row's end are empty (None). A change replaces a row's list instead of
    mutating it, so undo only keeps the old list, and writing a few rows of a 100,000-row
    sheet copies only those rows. A worksheet keeps its values in one grid and its cells'
    formats in another, so both follow inserted and deleted rows and columns alike."""

    def __init__(self) -> None:
        self.rows: list[list[V | None]] = []

    def cell(self, r: int, c: int) -> V | None:
        if r >= len(self.rows):
            return None
        row = self.rows[r]
        return row[c] if c < len(row) else None

    def _replace_row(self, r: int, new: list[V | None], undo: Undo) -> None:
        undo.push(functools.partial(self.rows.__setitem__, r, self.rows[r]))
        self.rows[r] = new

    def _truncate(self, length: int) -> None:
        del self.rows[length:]

    def write(self, r0: int, c0: int, matrix: Sequence[list[V | Keep | None]], undo: Undo) -> None:
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
                    if not isinstance(value, Keep):
                        row[c0 + j] = value
            else:
                row[c0 : c0 + len(values)] = cast("list[V | None]", values)  # no KEEP in it
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

    def _insert_slice(self, at: int, rows: list[list[V | None]]) -> None:
        self.rows[at:at] = rows

    def insert_columns(self, at: int, count: int, undo: Undo) -> None:
        gap: list[V | None] = [None] * count
        self._map_rows(lambda row: row[:at] + gap + row[at:] if len(row) > at else row, undo)

    def delete_columns(self, start: int, end: int, undo: Undo) -> None:
        self._map_rows(
            lambda row: _trim(row[:start] + row[end:]) if len(row) > start else row, undo
        )

    def _map_rows(self, change: Callable[[list[V | None]], list[V | None]], undo: Undo) -> None:
        set_attr(self, "rows", [change(row) for row in self.rows], undo)

    def read_rows(self, r0: int, r1: int, c0: int, c1: int) -> list[list[V | None]]:
        """Rows of the block, trailing empty cells and rows trimmed (as values.get does)."""
        out = [_trim(self.rows[r][c0:c1]) for r in range(r0, min(r1, len(self.rows)))]
        while out and not out[-1]:
            out.pop()
        return out

    def read_columns(self, r0: int, r1: int, c0: int, c1: int) -> list[list[V | None]]:
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
