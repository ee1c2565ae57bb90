"""The Sheets writer: upserts rows into worksheets keyed by the resource URL.

Google allows 60 reads and 60 writes per minute per service account and counts a batch as one
request, so one flush of a worksheet costs, whatever the number of rows:

1. one read: ``values:batchGet`` of row 1 and the key column (column-major);
2. one write: ``values:batchUpdate`` (RAW) with one range per contiguous run of cells per row.

Only when the grid must grow does a ``spreadsheets:batchUpdate`` (``appendDimension`` plus the
date formats of the new rows) come in between. Setting up costs more, once per worksheet and
process: ``spreadsheets.get`` for the grid metadata, an ``addSheet`` for a missing worksheet,
a ``batchUpdate`` that re-creates owned headers someone removed, a second read when the header
or the key column's position was not known yet.

People share these worksheets: they sort rows, move and insert columns, add columns of their
own. So every column is found by its header text in row 1 and every row by its URL in the key
column, both read fresh in each flush; only cells the caller gives are written, never a cell of
a column the daemon does not own. Each write addresses fixed rows and is therefore idempotent,
which is what makes retrying it safe (``values.append`` is not, and is never used).

This module orchestrates one upsert: ``worksheets`` keeps each worksheet's grid and header
in repair, ``planning`` decides where every cell goes and ``transport`` sends the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from syncd.config.settings import GoogleSettings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff
from syncd.mapping.cells import Row
from syncd.sheets.auth import gspread_client
from syncd.sheets.errors import SheetsRequestError
from syncd.sheets.planning import Placement, check_headers, chunks, place, value_ranges
from syncd.sheets.transport import DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, ClientFactory, SheetsTransport
from syncd.sheets.worksheets import FlushStats, Worksheets
from syncd.store.filelock import file_lock

log = logging.getLogger("syncd.sheets")

#: Google recommends payloads under 2 MB; stay well below, counting the JSON we send.
MAX_WRITE_BYTES = 1_000_000
MAX_RANGES_PER_WRITE = 5_000


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


class SheetsWriter:
    """Writes rows into the worksheets of one spreadsheet; one instance per spreadsheet."""

    def __init__(
        self,
        settings: GoogleSettings,
        metrics: Metrics | None = None,
        *,
        read_budget: RequestBudget | None = None,
        write_budget: RequestBudget | None = None,
        client_factory: ClientFactory = gspread_client,
        max_attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = DEFAULT_BACKOFF,
        lock_path: Path | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._transport = SheetsTransport(
            settings,
            self._metrics,
            read_budget=read_budget or RequestBudget(settings.read_requests_per_minute),
            write_budget=write_budget or RequestBudget(settings.write_requests_per_minute),
            client_factory=client_factory,
            max_attempts=max_attempts,
            backoff=backoff,
        )
        self._worksheets = Worksheets(self._transport)
        self._sheet_locks: dict[str, asyncio.Lock] = {}
        #: Locked around every upsert when set, so that another process writing this
        #: spreadsheet (the daemon, `syncd backfill`) cannot append the same URL meanwhile.
        self._lock_path = lock_path

    # -- public API ----------------------------------------------------------------------

    async def check_access(self) -> str:
        """Open the spreadsheet and return its title; raise the clear errors otherwise."""
        return await self._worksheets.load_metadata(FlushStats(sheet="(spreadsheet)"))

    async def upsert(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        *,
        only_if_missing: Collection[str] = (),
    ) -> UpsertReport:
        """Write ``rows`` (URL -> the cells to write) into ``sheet``, one row per URL.

        A URL already in the key column has its given cells overwritten in place; any other URL
        is appended after the last non-empty cell of the key column. URLs in
        ``only_if_missing`` are appended when absent and otherwise left alone, so a row a user
        deleted comes back without rewriting unchanged rows.
        """
        check_headers(sheet, rows)
        started = time.monotonic()
        stats = FlushStats(sheet=sheet.title)
        placement = Placement({}, 0, 0, 0, {})
        if rows:
            async with self._sheet_lock(sheet.title), self._process_lock():
                placement = await self._upsert_with_refresh(sheet, rows, only_if_missing, stats)
        report = UpsertReport(
            sheet=sheet.title,
            updated=placement.updated,
            appended=placement.appended,
            unchanged=placement.unchanged,
            requests=RequestCount(stats.reads, stats.writes),
            repairs=tuple(stats.repairs),
            duration=time.monotonic() - started,
        )
        self._record(report)
        return report

    def close(self) -> None:
        """Stop the request thread without waiting for a request in flight."""
        self._transport.close()

    # -- one upsert ----------------------------------------------------------------------

    async def _upsert_with_refresh(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        only_if_missing: Collection[str],
        stats: FlushStats,
    ) -> Placement:
        """Upsert; after a 400, forget the cached grid and try once more.

        A 400 mostly means the cached metadata went stale: the worksheet was renamed or
        deleted, or rows or columns were removed since it was last read.
        """
        try:
            return await self._upsert_once(sheet, rows, only_if_missing, stats)
        except SheetsRequestError as exc:
            self._worksheets.forget(sheet.title)
            stats.repair(f"re-read the worksheet's grid after Google refused a request: {exc}")
            return await self._upsert_once(sheet, rows, only_if_missing, stats)

    async def _upsert_once(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        only_if_missing: Collection[str],
        stats: FlushStats,
    ) -> Placement:
        worksheet = await self._worksheets.get(sheet, stats)
        layout = await self._worksheets.read_layout(sheet, worksheet, rows.keys(), stats)
        placement = place(layout.key_cells, rows, only_if_missing)
        for url, numbers in placement.duplicates.items():
            log.warning(
                "%s: %s is in rows %s; updated row %d only",
                sheet.title,
                url,
                ", ".join(map(str, numbers)),
                numbers[0],
            )
        await self._worksheets.grow_rows(sheet, worksheet, layout, placement.last_row, stats)
        data = value_ranges(worksheet.title, sheet.key_column, layout, placement.targets, rows)
        for chunk in chunks(data, MAX_WRITE_BYTES, MAX_RANGES_PER_WRITE):
            await self._transport.write_values(chunk, stats)
        stripped = (cell.strip() for cell in layout.key_cells[1:])
        self._worksheets.remember_keys(sheet.title, frozenset(filter(None, stripped)) | set(rows))
        # Rows the caller had written before and expected here: someone deleted them.
        restored = [url for url in only_if_missing if url in placement.targets]
        if restored:
            shown = ", ".join(restored[:3]) + (", ..." if len(restored) > 3 else "")
            stats.repair(f"re-created {len(restored)} row(s) missing from the sheet: {shown}")
        return placement

    # -- bookkeeping ---------------------------------------------------------------------

    def _sheet_lock(self, title: str) -> asyncio.Lock:
        """Flushes of one worksheet run one at a time: both would append at the same rows."""
        return self._sheet_locks.setdefault(title.casefold(), asyncio.Lock())

    def _process_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The cross-process lock of ``lock_path``, or nothing when there is none."""
        return file_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()

    def _record(self, report: UpsertReport) -> None:
        written = report.updated + report.appended
        if written:
            self._metrics.rows_written.inc(written, sheet=report.sheet)
        self._metrics.write_latency.observe(report.duration)
        log.info(
            "%s: %d updated, %d appended, %d unchanged; %d read(s), %d write(s); %.2f s",
            report.sheet,
            report.updated,
            report.appended,
            report.unchanged,
            report.requests.reads,
            report.requests.writes,
            report.duration,
            extra={
                "fields": {
                    "sheet": report.sheet,
                    "updated": report.updated,
                    "appended": report.appended,
                    "unchanged": report.unchanged,
                    "reads": report.requests.reads,
                    "writes": report.requests.writes,
                    "repairs": len(report.repairs),
                    "duration": round(report.duration, 3),
                }
            },
        )
