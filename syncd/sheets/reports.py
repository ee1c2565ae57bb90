"""What the writer is asked to write, and what it reports having done."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row


@dataclass(frozen=True)
class Upsert:
    """Rows for one worksheet (see ``SheetsWriter.upsert``)."""

    sheet: SheetSettings
    rows: Mapping[str, Row]
    only_if_missing: Collection[str] = ()


@dataclass(frozen=True)
class RequestCount:
    """Requests sent to Google, as the quota counts them (every attempt counts)."""

    reads: int = 0
    writes: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class UpsertReport:
    """What one upsert did to one worksheet."""

    sheet: str
    updated: int
    appended: int
    #: Rows passed in ``only_if_missing`` that were found in the sheet and left alone.
    unchanged: int
    requests: RequestCount
    repairs: tuple[str, ...]
    duration: float
    #: Rows deleted (``SheetsWriter.remove``); an upsert deletes none.
    removed: int = 0
    #: The other worksheets written in the same requests (``SheetsWriter.upsert_many``),
    #: whose report counts those requests: the first worksheet's.
    shared_with: tuple[str, ...] = ()
