"""Which worksheets a webhook changes, and what a row there holds: the mapped cells, Deleted,
the key, and the fingerprint that tells whether it changed.

The worker, the re-sync and ``syncd preview`` all build rows here, so a row rebuilt by a
re-sync is byte for byte the row a webhook wrote, and an unchanged resource is never
written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row, map_row, row_fingerprint


@dataclass(frozen=True)
class MappedRow:
    """A row's cells, and what is kept of it to tell next time whether it changed."""

    cells: Row
    fingerprint: str
    deleted_at: str | None


def sheet_row(
    sheet: SheetSettings,
    url: str,
    resource: Mapping[str, Any] | None,
    deleted_at: str | None,
    tz: ZoneInfo,
) -> Row:
    """The cells the daemon writes for one resource.

    Without a resource (a deletion that embeds nothing, a 404) only Deleted and the URL are
    written, so the cells that were there stay as the last fetch left them.
    """
    row: Row = map_row(resource, sheet, tz) if resource is not None else {}
    row[sheet.deleted_column] = deleted_at or ""
    row[sheet.key_column] = url
    return row


def mapped_row(
    sheet: SheetSettings,
    url: str,
    resource: Mapping[str, Any] | None,
    tz: ZoneInfo,
    *,
    flagged_at: str | None,
    deleted_now: str | None = None,
) -> MappedRow:
    """The row for a resource, given the Deleted stamp the row has (``flagged_at``).

    A row flagged deleted stays flagged with its first stamp whatever arrives later (a late
    update, a repeated deletion); ``deleted_now`` is the stamp for a deletion seen just now.
    """
    deleted_at = flagged_at or deleted_now
    cells = sheet_row(sheet, url, resource, deleted_at, tz)
    return MappedRow(cells, row_fingerprint(cells), deleted_at)


def sheets_for(sheets: Sequence[SheetSettings], event: str, resource: str) -> list[SheetSettings]:
    """The worksheets a webhook of this event about this kind of resource updates."""
    return [s for s in sheets if event in s.events and s.resource == resource]
