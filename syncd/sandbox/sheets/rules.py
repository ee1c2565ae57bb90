"""Conditional-format rules: checking a rule as Google does, and how rules follow inserted and
deleted rows and columns.

As in Google, a rule's ranges grow, shrink, move or vanish with the rows and columns of its
sheet (a range unbounded in a dimension, like whole rows, stays so), and column references in
a custom formula follow the columns they name; a reference to a deleted column becomes
``#REF!``. Simplified: row references are left alone (in a rule they are relative to its
range's first row), and so are references to other sheets.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from syncd.sandbox.sheets.errors import ApiError
from syncd.sheets.a1 import column_index, column_letters

#: A rule as stored and served: ``{ranges, booleanRule | gradientRule}``.
Rule = dict[str, Any]

_INDEXES = {
    "ROWS": ("startRowIndex", "endRowIndex"),
    "COLUMNS": ("startColumnIndex", "endColumnIndex"),
}
_STRING = re.compile(r'("(?:[^"]|"")*")')
_REFERENCE = re.compile(r"(?<![A-Za-z0-9_!$.])(\$?)([A-Z]{1,3})(\$?[1-9][0-9]*)(?![A-Za-z0-9_(])")


def check_rule(rule: Any, sheet_ids: set[int]) -> Rule:
    """A copy of a ConditionalFormatRule from a request; Google's 400 when it is malformed."""
    if not isinstance(rule, Mapping):
        raise ApiError(400, "rule is required")
    ranges = rule.get("ranges")
    if (
        not ranges
        or not isinstance(ranges, list)
        or not all(isinstance(r, Mapping) for r in ranges)
    ):
        raise ApiError(400, "A conditional format rule must have at least one range.")
    if {r.get("sheetId") or 0 for r in ranges} - sheet_ids:
        raise ApiError(400, "All ranges of a conditional format rule must be on its sheet.")
    boolean, gradient = rule.get("booleanRule"), rule.get("gradientRule")
    if (boolean is None) == (gradient is None):
        raise ApiError(400, "A conditional format rule needs a booleanRule or a gradientRule.")
    if boolean is not None:
        _check_condition(boolean.get("condition") if isinstance(boolean, Mapping) else None)
    kept = {k: v for k, v in rule.items() if v is not None}
    return copy.deepcopy(kept)


def _check_condition(condition: Any) -> None:
    if not isinstance(condition, Mapping) or not condition.get("type"):
        raise ApiError(400, "booleanRule.condition.type is required")
    if condition["type"] != "CUSTOM_FORMULA":
        return
    values = condition.get("values") or []
    formula = values[0].get("userEnteredValue") if len(values) == 1 else None
    if not isinstance(formula, str) or not formula.startswith("="):
        raise ApiError(400, "CUSTOM_FORMULA needs exactly one value: a formula starting with =")


def inserted(rules: list[Rule], dimension: str, at: int, count: int) -> list[Rule]:
    """The rules after ``count`` rows or columns were inserted before index ``at``: ranges
    from ``at`` on move, ranges across it grow."""

    def start(index: int) -> int:
        return index + count if index >= at else index

    def end(index: int) -> int:
        return index + count if index > at else index

    return _moved(rules, dimension, start, end, start)


def deleted(rules: list[Rule], dimension: str, first: int, last: int) -> list[Rule]:
    """The rules after the rows or columns ``first`` to ``last`` (excluded) were deleted;
    ranges wholly inside them go, and so do rules left without a range."""

    def edge(index: int) -> int:
        return index if index <= first else max(first, index - (last - first))

    def column(index: int) -> int | None:
        return None if first <= index < last else edge(index)

    return _moved(rules, dimension, edge, edge, column)


def _moved(
    rules: list[Rule],
    dimension: str,
    start: Callable[[int], int],
    end: Callable[[int], int],
    column: Callable[[int], int | None],
) -> list[Rule]:
    first, last = _INDEXES[dimension]
    result: list[Rule] = []
    for rule in rules:
        ranges = []
        for rng in rule["ranges"]:
            if not rng.get(first) and rng.get(last) is None:
                ranges.append(rng)  # whole rows or columns stay whole
                continue
            begin = start(int(rng.get(first) or 0))
            stop = None if rng.get(last) is None else end(int(rng[last]))
            if stop is not None and stop <= begin:
                continue
            changed = dict(rng)
            if rng.get(first) is not None or begin:
                changed[first] = begin
            if stop is not None:
                changed[last] = stop
            ranges.append(changed)
        if ranges:
            moved = {**rule, "ranges": ranges}
            if dimension == "COLUMNS":
                moved = _with_formulas(moved, column)
            result.append(moved)
    return result


def _with_formulas(rule: Rule, move: Callable[[int], int | None]) -> Rule:
    """The rule with the column references of its custom formula moved."""
    condition = rule.get("booleanRule", {}).get("condition", {})
    if condition.get("type") != "CUSTOM_FORMULA":
        return rule
    moved = copy.deepcopy(rule)
    value = moved["booleanRule"]["condition"]["values"][0]
    value["userEnteredValue"] = move_columns(value["userEnteredValue"], move)
    return moved


def move_columns(formula: str, move: Callable[[int], int | None]) -> str:
    """``formula`` with each cell reference's column (0-based) mapped by ``move``; a reference
    whose column ``move`` drops becomes ``#REF!``. Text in string literals is left alone."""

    def replace(match: re.Match[str]) -> str:
        dollar, letters, row = match.groups()
        column = move(column_index(letters) - 1)
        return "#REF!" if column is None else f"{dollar}{column_letters(column + 1)}{row}"

    parts = _STRING.split(formula)
    return "".join(
        part if index % 2 else _REFERENCE.sub(replace, part) for index, part in enumerate(parts)
    )
