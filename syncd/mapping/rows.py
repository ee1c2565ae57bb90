"""Which worksheets a webhook changes, and what a row there holds: the mapped cells, Deleted,
the key, and the fingerprint that tells whether it changed.

The worker, the re-sync and ``syncd preview`` all build rows here, so a row rebuilt by a
re-sync is byte for byte the row a webhook wrote, and an unchanged resource is never
written twice.

Every writer also decides here whether it may write at all (the ordering rule): data observed
at Cobot at time T never replaces data observed later, and a deletion is undone only by the
resource observed present after the deletion was. A re-sync that listed Cobot before a
webhook's fetch therefore cannot overwrite what the webhook wrote after it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row, map_row, row_fingerprint
from syncd.mapping.computed import NO_CONTEXT, RowContext, row_kept


class Held(Protocol):
    """What a row holds now, as far as the ordering rule needs to know."""

    @property
    def fingerprint(self) -> str | None: ...

    @property
    def deleted_at(self) -> str | None: ...

    @property
    def observed_at(self) -> float | None: ...


#: The fingerprint kept for a resource that has no row in a worksheet because the worksheet's
#: ``where:`` does not match it (its row was removed, or never added).
FILTERED_OUT = "filtered-out"


class Outcome(enum.Enum):
    """What a worksheet's row becomes for one observation."""

    #: Cells to write (a new or changed row).
    WRITE = "write"
    #: The same cells as last written: written only if the row went missing.
    UNCHANGED = "unchanged"
    #: The row holds a later observation: left alone, nothing saved.
    SUPERSEDED = "superseded"
    #: The resource stopped matching ``where:``: its row is removed.
    REMOVE = "remove"
    #: The resource does not match ``where:`` and has no row: nothing to write.
    FILTERED = "filtered"


@dataclass(frozen=True)
class Observation:
    """One resource as seen at Cobot at one time, with what its row may join."""

    url: str
    #: The resource's JSON (fetched, listed, or embedded in a deletion), or None.
    resource: Mapping[str, Any] | None
    #: When it was observed at Cobot, epoch seconds.
    observed_at: float
    #: The Deleted stamp when this is the observation of a deletion, else None.
    deleted_now: str | None = None
    context: RowContext = NO_CONTEXT


@dataclass(frozen=True)
class MappedRow:
    """A row's cells, and what is kept of it to tell next time whether it changed."""

    outcome: Outcome
    cells: Row
    fingerprint: str
    deleted_at: str | None
    #: When the data (or the deletion) the row holds was observed at Cobot, epoch seconds.
    observed_at: float
    #: Templates or ``where:`` that failed for this resource (their cells are empty).
    problems: tuple[str, ...] = ()


def sheet_row(
    sheet: SheetSettings,
    url: str,
    resource: Mapping[str, Any] | None,
    deleted_at: str | None,
    tz: ZoneInfo,
    context: RowContext = NO_CONTEXT,
    problems: list[str] | None = None,
) -> Row:
    """The cells the daemon writes for one resource.

    Without a resource (a deletion that embeds nothing, a 404) only Deleted and the URL are
    written, so the cells that were there stay as the last fetch left them.
    """
    row: Row = map_row(resource, sheet, tz, context, problems) if resource is not None else {}
    if sheet.space_column is not None:
        row[sheet.space_column] = context.space
    row[sheet.deleted_column] = deleted_at or ""
    row[sheet.key_column] = url
    return row


def mapped_row(
    sheet: SheetSettings, seen: Observation, tz: ZoneInfo, held: Held | None
) -> MappedRow | None:
    """What the row becomes for a resource ``seen`` at Cobot, or None when it must stay as it
    is because what it ``held`` was observed later (see the module's ordering rule).

    A deletion observed flags the row (a row already flagged keeps its first stamp); any other
    observation is of the resource present, and clears the flag. A worksheet's ``where:``
    decides whether the resource has a row there at all; a deletion that embeds nothing keeps
    the row it has, and adds none.
    """
    if held is not None and held.observed_at is not None and seen.observed_at < held.observed_at:
        return None
    deleted_at = None
    if seen.deleted_now is not None:
        deleted_at = (held.deleted_at if held is not None else None) or seen.deleted_now
    has_row = held is not None and held.fingerprint != FILTERED_OUT
    problems: list[str] = []
    if sheet.where is not None:
        wanted = (
            has_row
            if seen.resource is None
            else row_kept(sheet, seen.resource, seen.context, problems, tz)
        )
        if not wanted:
            outcome = Outcome.REMOVE if has_row else Outcome.FILTERED
            return MappedRow(
                outcome, {}, FILTERED_OUT, deleted_at, seen.observed_at, tuple(problems)
            )
    cells = sheet_row(sheet, seen.url, seen.resource, deleted_at, tz, seen.context, problems)
    fingerprint = row_fingerprint(cells)
    unchanged = held is not None and held.fingerprint == fingerprint
    return MappedRow(
        Outcome.UNCHANGED if unchanged else Outcome.WRITE,
        cells,
        fingerprint,
        deleted_at,
        seen.observed_at,
        tuple(problems),
    )


def mapping_fingerprint(sheet: SheetSettings, timezone: str) -> str:
    """A hash of everything that decides a worksheet's rows from a resource: when it changes
    between two starts, every row is rendered again from the local copy."""
    shape = {
        "columns": [dataclasses.astuple(column) for column in sheet.columns],
        "key": sheet.key_column,
        "deleted": sheet.deleted_column,
        "where": sheet.where,
        "resource": sheet.resource,
        "spaces": [sheet.spaces, sheet.space_column],
        "timezone": timezone,
    }
    return row_fingerprint({"mapping": json.dumps(shape, sort_keys=True, default=str)})


def sheets_for(
    sheets: Sequence[SheetSettings], event: str, resource: str, space: str = ""
) -> list[SheetSettings]:
    """The worksheets a webhook of this event about this kind of resource, delivered for
    ``space`` (a subdomain; "" for any), updates."""
    return [
        s
        for s in sheets
        if event in s.events and s.resource == resource and (not space or s.holds(space))
    ]
