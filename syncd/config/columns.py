"""A worksheet column as the config declares it: a path into the resource or a template."""

from __future__ import annotations

from dataclasses import dataclass

COLUMN_TYPES = ("text", "number", "date", "datetime", "bool")


@dataclass(frozen=True)
class Column:
    """One owned column: a path into the resource, or a template computing the value; either
    way the value is converted to ``type`` the same way."""

    header: str
    #: Dotted path into the resource; empty for a template column.
    path: str = ""
    #: One of COLUMN_TYPES.
    type: str = "text"
    #: Jinja2 source rendered in the sandbox (syncd/config/templating.py, docs/templates.md);
    #: None for a path column.
    template: str | None = None
    #: Google Sheets number-format pattern (``#,##0.00``) kept on the column's cells, or None.
    format: str | None = None
