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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row, map_row, row_fingerprint


class Held(Protocol):
    """What a row holds now, as far as the ordering rule needs to know."""

    @property
    def deleted_at(self) -> str | None: ...

    @property
    def observed_at(self) -> float | None: ...


@dataclass(frozen=True)
class MappedRow:
    """A row's cells, and what is kept of it to tell next time whether it changed."""

    cells: Row
    fingerprint: str
    deleted_at: str | None
    #: When the data (or the deletion) the row holds was observed at Cobot, epoch seconds.
    observed_at: float


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
    observed_at: float,
    held: Held | None,
    deleted_now: str | None = None,
) -> MappedRow | None:
    """The row for a resource observed at ``observed_at``, or None when the row must stay as
    it is because what it ``held`` was observed later (see the module's ordering rule).

    ``deleted_now`` is the stamp of a deletion observed at ``observed_at``; a row already
    flagged keeps its first stamp. Any other observation is of the resource present, and
    clears the flag.
    """
    if held is not None and held.observed_at is not None and observed_at < held.observed_at:
        return None
    deleted_at = None
    if deleted_now is not None:
        deleted_at = (held.deleted_at if held is not None else None) or deleted_now
    cells = sheet_row(sheet, url, resource, deleted_at, tz)
    return MappedRow(cells, row_fingerprint(cells), deleted_at, observed_at)


def sheets_for(sheets: Sequence[SheetSettings], event: str, resource: str) -> list[SheetSettings]:
    """The worksheets a webhook of this event about this kind of resource updates."""
    return [s for s in sheets if event in s.events and s.resource == resource]
