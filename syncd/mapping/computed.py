"""Pure: what templates and ``where:`` see of a resource, and what they make of it.

The caller joins the related membership (``RowContext.member``) from its local copy; nothing
here fetches or logs. A template or ``where:`` that fails for one resource adds a line to the
caller's ``problems`` and affects only its own cell (or the row's filter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, tzinfo
from typing import Any

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.config.templating import (
    BadTemplate,
    TemplateFailure,
    compile_expression,
    compile_template,
    undefined,
)

MEMBERSHIP = "membership"
#: The kinds whose membership is ``membership.id`` (or ``membership_id``) in their body.
_EMBEDDING = ("booking", "check_in")


@dataclass(frozen=True)
class RowContext:
    """What a row may join beyond its own resource."""

    #: The related membership (the daemon's local copy), or None when there is none.
    member: Mapping[str, Any] | None = None
    #: The space's subdomain.
    space: str = ""


NO_CONTEXT = RowContext()


def member_id(kind: str, resource: Mapping[str, Any] | None) -> str | None:
    """The id of the membership a resource belongs to: a membership's own id, an invoice's
    ``membership_id``, a booking's or check-in's ``membership.id``; None for other kinds."""
    if resource is None:
        return None
    if kind == MEMBERSHIP:
        ident = resource.get("id")
    elif kind == "invoice":
        ident = resource.get("membership_id")
    elif kind in _EMBEDDING:
        embedded = resource.get("membership")
        ident = embedded.get("id") if isinstance(embedded, Mapping) else None
        ident = ident if ident is not None else resource.get("membership_id")
    else:
        return None
    return None if ident is None or ident == "" else str(ident)


def uses_member(sheet: SheetSettings) -> bool:
    """Whether a column template or the sheet's ``where:`` reads ``member`` (so the caller
    must join the membership)."""
    try:
        sources = [compile_template(c.template) for c in sheet.columns if c.template is not None]
        if sheet.where is not None:
            sources.append(compile_expression(sheet.where))
    except BadTemplate:  # refused by config validation already; it renders nothing
        return False
    return any("member" in compiled.variables for compiled in sources)


def variables(kind: str, resource: Mapping[str, Any] | None, context: RowContext) -> dict[str, Any]:
    """A template's variables: the resource's top-level fields, then ``this``, ``space`` and
    ``member``, which win over fields of the same name."""
    member: Any = context.member
    if member is None:
        member = resource if kind == MEMBERSHIP and resource is not None else undefined("member")
    fields = resource if isinstance(resource, Mapping) else {}
    return {**fields, "this": resource, "space": context.space, "member": member}


def column_value(
    column: Column, found: Mapping[str, Any], zone: tzinfo, problems: list[str] | None
) -> Any:
    """A template column's value for ``to_cell``; None (an empty cell) when it fails."""
    try:
        return _plain(compile_template(column.template or "").render(found, zone))
    except (BadTemplate, TemplateFailure) as exc:
        if problems is not None:
            problems.append(f'column "{column.header}": template failed: {exc}')
        return None


def row_kept(
    sheet: SheetSettings,
    resource: Mapping[str, Any] | None,
    context: RowContext,
    problems: list[str],
    zone: tzinfo = UTC,
) -> bool:
    """Whether the sheet's ``where:`` keeps this resource (always, without one); a ``where:``
    that fails counts as false and adds a problem."""
    if sheet.where is None:
        return True
    try:
        found = variables(sheet.resource, resource, context)
        return bool(compile_expression(sheet.where).render(found, zone))
    except (BadTemplate, TemplateFailure) as exc:
        problems.append(f"where failed: {exc}")
        return False


def _plain(value: Any) -> Any:
    """A rendered value as a cell takes it: dates as ISO text, odd objects as their text."""
    if value is None or isinstance(value, str | int | list | dict | tuple):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
