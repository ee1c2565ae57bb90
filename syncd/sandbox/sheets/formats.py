"""Cell formats: what a field mask changes in a cell's ``userEnteredFormat``, and how a number
format shows a number.

Google stores a format per cell; so does the emulator (a second grid beside the values), so
that formats follow sorted, inserted and deleted rows, and a format given to new rows only is
seen on those rows only. A stored format is a JSON object that is never changed in place:
a change builds a new one, so many cells can share one object.

Rendering is simplified: DATE and DATE_TIME cells show ISO dates whatever their pattern;
NUMBER and PERCENT patterns are honoured for their decimals, grouping, percent sign and
literal text around the number (``#,##0.00``, ``0.0%``, ``"€ "#,##0``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

#: A cell's userEnteredFormat as stored.
Format = Mapping[str, Any]

_MISSING = object()
_ROOT = "userEnteredFormat"
_NUMBER_CORE = re.compile(r"[#0?,]*[#0?](?:\.[#0?]*)?|\.[#0?]+")
_LITERAL = re.compile(r'"([^"]*)"|\\(.)|([^"\\]+)')


def format_masks(paths: set[str]) -> list[list[str]]:
    """The parts of a CellData field mask that name the format, as paths inside it
    (``[]``: the whole format). ``*`` names everything."""
    masks: list[list[str]] = []
    for path in paths:
        if path in ("*", _ROOT):
            masks.append([])
        elif path.startswith(_ROOT + "."):
            masks.append(path.split(".")[1:])
    return masks


def apply_masks(old: Format | None, given: Any, masks: list[list[str]]) -> Format | None:
    """The format a cell has after a request: each masked part taken from ``given`` (the
    request's userEnteredFormat), and cleared where ``given`` lacks it, as Google does."""
    result: Any = old
    source = given if isinstance(given, Mapping) else {}
    for parts in masks:
        value = _lookup(source, parts)
        if not parts:
            result = copy.deepcopy(value) if value is not _MISSING else None
        else:
            result = _assign(result, parts, value)
    return result or None


def _lookup(tree: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(tree, Mapping) or tree.get(part) is None:
            return _MISSING
        tree = tree[part]
    return tree


def _assign(tree: Any, parts: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``tree`` with ``value`` at ``parts`` (removed when missing); emptied
    objects on the way are dropped."""
    copied = dict(tree) if isinstance(tree, Mapping) else {}
    head, rest = parts[0], parts[1:]
    if rest:
        child = _assign(copied.get(head), rest, value)
        if child:
            copied[head] = child
        else:
            copied.pop(head, None)
    elif value is _MISSING:
        copied.pop(head, None)
    else:
        copied[head] = copy.deepcopy(value)
    return copied


def number_format(cell_format: Format | None) -> Mapping[str, Any]:
    """The cell's numberFormat (``{}`` when it has none)."""
    found = (cell_format or {}).get("numberFormat")
    return found if isinstance(found, Mapping) else {}


def render_number(value: float, pattern: str) -> str | None:
    """``value`` shown through a NUMBER or PERCENT pattern, or None when the pattern has no
    digit placeholders (the caller then shows the number plainly). Optional decimals
    (``#``) drop their trailing zeros; an optional integer part drops a lone zero."""
    section = pattern.split(";")[0]
    match = _NUMBER_CORE.search(section)
    if match is None:
        return None
    whole, _, fraction = match.group().partition(".")
    if "%" in section:
        value *= 100
    text = f"{abs(value):{',' if ',' in whole else ''}.{len(fraction)}f}"
    optional = len(fraction) - len(fraction.rstrip("#?"))
    if optional:
        text = text[:-optional] + text[-optional:].rstrip("0")
    if not whole.strip("#?,") and text.startswith("0."):
        text = text[1:]
    sign = "-" if value < 0 and any(digit in text for digit in "123456789") else ""
    prefix, suffix = section[: match.start()], section[match.end() :]
    return f"{sign}{_literal(prefix)}{text}{_literal(suffix)}"


def _literal(text: str) -> str:
    """The literal text of a pattern part: quotes and backslash escapes removed."""
    return "".join(quoted or escaped or plain for quoted, escaped, plain in _LITERAL.findall(text))
