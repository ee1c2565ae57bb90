"""The Sheets writer: upserts rows into worksheets keyed by the resource URL.

Google allows 60 reads and 60 writes per minute per service account and counts a batch as one
request, so one flush costs, whatever the number of rows and of worksheets (``upsert_many``):

1. one read: ``values:batchGet`` of each worksheet's row 1, key column and the rows below its
   last value (column-major);
2. one write: ``values:batchUpdate`` (RAW) with one range per contiguous run of cells per row.

Only when the grid must grow does a ``spreadsheets:batchUpdate`` (``appendDimension`` plus the
number formats of the new rows) come in between. Setting up costs more, once per worksheet and
process: ``spreadsheets.get`` for the grid metadata, an ``addSheet`` for a missing worksheet,
a ``batchUpdate`` that re-creates owned headers someone removed, a second read when the header
or the key column's position was not known yet, and whenever row 1 reads differently from what
the process knew, the presentation check (1 read, 1 write when something needs repair).

People share these worksheets: they sort rows, move and insert columns, add columns of their
own. So every column is found by its header text in row 1 and every row by its URL in the key
column, both read fresh before every request and every retry of one (a sort while a retry
waits must not send a row into another's; ``read_ahead`` below is the one bounded exception);
only cells the caller gives are written, never a cell of a column the daemon does not own, and
new rows go below any row holding anything.
A column the daemon owns that a person deleted comes back filled from the stored rows. Each
write addresses fixed rows and is therefore idempotent, which is what makes retrying it safe
(``values.append`` is not, and is never used).

A lone change should cost about one Cobot GET and one Sheets write, so a caller may have the
layouts read while it fetches (``read_ahead``), under the worksheets' locks. The first request
of the next upsert is placed from that read only when no daemon process held the lock in
between and it is at most ``READ_AHEAD_SECONDS`` old (``turns``); every other request and
every retry reads afresh (docs/reliability.md, "the row-position rule").

The writer also removes rows (``remove``, see ``removal``) and, when asked, checks how a
worksheet looks (``check_presentation``, see ``presentation``).

This module orchestrates one upsert: ``worksheets`` keeps each worksheet's grid and header
in repair, ``planning`` decides where every cell goes, ``progress`` keeps the upsert's
bookkeeping, ``turns`` the locks and layouts read ahead, and ``transport`` sends the requests.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from syncd.config.settings import GoogleSettings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff
from syncd.mapping.cells import Row
from syncd.sheets.auth import gspread_client
from syncd.sheets.errors import SheetsRequestError
from syncd.sheets.planning import (
    Layout,
    Placement,
    Worksheet,
    check_headers,
    first_chunk,
    place,
    value_ranges,
)
from syncd.sheets.progress import NothingLeft, Progress
from syncd.sheets.removal import remove_rows
from syncd.sheets.reports import RequestCount, Upsert, UpsertReport
from syncd.sheets.transport import DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, ClientFactory, SheetsTransport
from syncd.sheets.turns import Turns
from syncd.sheets.worksheets import FlushStats, Worksheets
from syncd.store.rows import RowState

log = logging.getLogger("syncd.sheets")
T = TypeVar("T")

#: Google recommends payloads under 2 MB; stay well below, counting the JSON we send.
MAX_WRITE_BYTES = 1_000_000
MAX_RANGES_PER_WRITE = 5_000

#: A worksheet's title -> the state of every row written there, with its cells.
StoredRows = Callable[[str], Awaitable[Mapping[str, RowState]]]


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
        stored_rows: StoredRows | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._budgets = (
            read_budget or RequestBudget(settings.read_requests_per_minute),
            write_budget or RequestBudget(settings.write_requests_per_minute),
        )
        self._transport = SheetsTransport(
            settings,
            self._metrics,
            read_budget=self._budgets[0],
            write_budget=self._budgets[1],
            client_factory=client_factory,
            max_attempts=max_attempts,
            backoff=backoff,
        )
        self._worksheets = Worksheets(self._transport)
        self._turns = Turns(self._worksheets, lock_path)
        #: See ``Turns.locked``.
        self.locked = self._turns.locked
        #: The rows last written in a worksheet, to refill the columns a person deleted.
        self._stored_rows = stored_rows
        #: Re-created columns not refilled yet, by casefolded title: an upsert that failed
        #: after re-creating them leaves the refill to the next one.
        self._refills_owed: dict[str, set[str]] = {}

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
        is appended below the last row holding anything, so no row with content is ever
        written into. URLs in
        ``only_if_missing`` are appended when absent and otherwise left alone, so a row a user
        deleted comes back without rewriting unchanged rows.
        """
        check_headers(sheet, rows)
        started = time.monotonic()
        stats = FlushStats(sheet=sheet.title)
        progress = Progress({}, set())
        if rows:
            async with self.locked(sheet.title):
                upsert = functools.partial(self._upsert_once, sheet, rows, only_if_missing, stats)
                progress = await self._refreshing(sheet, stats, upsert)
        return self._report(progress, stats, started)

    async def upsert_many(self, jobs: Sequence[Upsert]) -> list[UpsertReport]:
        """Upsert into several worksheets, in one write when each one's rows fit one request.

        A flush often touches two or three worksheets, and Google counts a
        ``values:batchUpdate`` as one write whatever ranges it holds, so one request for all
        of them spends a third to a half of the writes and round trips. The layouts are read
        in one request too, or taken from ``read_ahead``. Anything beyond the common case (a
        grid to grow, columns to refill, rows for more than one request, a 400) is done as
        one ``upsert`` per worksheet instead, with the same guarantees.
        """
        for job in jobs:
            check_headers(job.sheet, job.rows)
        jobs = [job for job in jobs if job.rows]
        started = time.monotonic()
        async with self.locked(*(job.sheet.title for job in jobs)):
            if len(jobs) > 1:
                together = _Together(jobs)
                try:
                    await self._upsert_together(together)
                except _Apart:
                    pass
                except SheetsRequestError as exc:
                    log.info("one write for %d worksheets was refused (%s)", len(jobs), exc)
                else:
                    titles = [job.sheet.title for job in jobs]
                    return [
                        self._report(
                            progress, stats, started, tuple(t for t in titles if t != stats.sheet)
                        )
                        for progress, stats in zip(together.progress, together.stats, strict=True)
                    ]
            return [
                await self.upsert(job.sheet, job.rows, only_if_missing=job.only_if_missing)
                for job in jobs
            ]

    async def remove(self, sheet: SheetSettings, urls: Collection[str]) -> UpsertReport:
        """Delete every row of ``sheet`` holding one of ``urls`` (duplicates too); URLs no row
        holds are gone already. Costs 1 read and 1 write (none when ``urls`` is empty).

        Rows are found by a fresh read of the key column before each attempt and deleted in
        one request (see ``removal``); row 1 and rows holding other keys are never touched.
        The report counts the deleted rows in ``removed``.
        """
        started = time.monotonic()
        stats = FlushStats(sheet=sheet.title)
        removed = 0
        if urls:
            async with self.locked(sheet.title):
                # Rows move up: a layout read before would place the next write wrongly.
                self._turns.drop_ahead(sheet.title)

                async def attempt() -> int:
                    worksheet = await self._worksheets.get(sheet, stats)
                    return await remove_rows(
                        self._worksheets, self._transport, sheet, worksheet, urls, stats
                    )

                removed = await self._refreshing(sheet, stats, attempt)
        return self._report(Progress({}, set()), stats, started, removed=removed)

    async def check_presentation(self, sheet: SheetSettings) -> tuple[str, ...]:
        """Put the worksheet's number formats, header row and highlight rule right (see
        ``presentation``), as after a person cleared them; returns the repairs made.

        Costs 1 read, plus 1 write when something must change; when row 1 changed since this
        process last read it, the layout is read and repaired first.
        """
        stats = FlushStats(sheet=sheet.title)
        async with self.locked(sheet.title):

            async def attempt() -> None:
                worksheet = await self._worksheets.get(sheet, stats)
                await self._worksheets.recheck_presentation(sheet, worksheet, stats)

            await self._refreshing(sheet, stats, attempt)
        return tuple(stats.repairs)

    def request_budgets(self) -> tuple[RequestBudget, ...]:
        """The read and write budgets, by which the worker paces its flushes."""
        return self._budgets

    async def read_ahead(self, wanted: Sequence[tuple[SheetSettings, Collection[str]]]) -> None:
        """Read these worksheets' layouts now for the next upsert (see ``Turns.read_ahead``)."""
        for title, recreated in (await self._turns.read_ahead(wanted)).items():
            self._refills_owed.setdefault(title.casefold(), set()).update(recreated)

    def close(self) -> None:
        """Stop the request thread without waiting for a request in flight."""
        self._transport.close()

    # -- one upsert ----------------------------------------------------------------------

    async def _refreshing(
        self, sheet: SheetSettings, stats: FlushStats, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``attempt``; after a 400, forget the cached grid and run it once more.

        A 400 mostly means the cached metadata went stale: the worksheet was renamed or
        deleted, or rows or columns were removed since it was last read.
        """
        try:
            return await attempt()
        except SheetsRequestError as exc:
            self._worksheets.forget(sheet.title)
            stats.repair(f"re-read the worksheet's grid after Google refused a request: {exc}")
            return await attempt()

    async def _upsert_once(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        only_if_missing: Collection[str],
        stats: FlushStats,
    ) -> Progress:
        """Write the rows in requests of bounded size, each placed from a read just before it.

        The common case is one read and one write; a large upsert reads again before each
        further request, and a retried request reads again before each attempt.
        """
        worksheet = await self._worksheets.get(sheet, stats)
        progress = Progress(dict(rows), set(only_if_missing))
        while progress.pending:
            prepare = functools.partial(self._next_request, sheet, worksheet, progress, stats)
            try:
                await self._transport.write_values(prepare, stats)
            except NothingLeft:
                break
            last_row = progress.sent()
            worksheet.tail_start = max(worksheet.tail_start or 0, last_row + 1)
        self._finish(Upsert(sheet, rows, only_if_missing), progress, stats)
        return progress

    def _finish(self, job: Upsert, progress: Progress, stats: FlushStats) -> None:
        """Remember what an upsert left in the worksheet, and report the rows it restored."""
        self._refills_owed.pop(job.sheet.title.casefold(), None)
        self._worksheets.remember_keys(job.sheet.title, progress.keys | set(job.rows))
        # Rows the caller had written before and expected here: someone deleted them.
        restored = [
            url
            for url in job.only_if_missing
            if url in progress.written and url not in progress.refill
        ]
        if restored:
            shown = ", ".join(restored[:3]) + (", ..." if len(restored) > 3 else "")
            stats.repair(f"re-created {len(restored)} row(s) missing from the sheet: {shown}")

    async def _upsert_together(self, together: _Together) -> None:
        """One write of every job's rows, each placed from a read just before the attempt."""
        for job, stats in zip(together.jobs, together.stats, strict=True):
            together.worksheets.append(await self._worksheets.get(job.sheet, stats))
        prepare = functools.partial(self._prepare_together, together)
        with contextlib.suppress(NothingLeft):
            await self._transport.write_values(prepare, together.stats[0])
        for job, worksheet, progress, stats in zip(
            together.jobs, together.worksheets, together.progress, together.stats, strict=True
        ):
            if progress.sending:
                worksheet.tail_start = max(worksheet.tail_start or 0, progress.sent() + 1)
            self._finish(job, progress, stats)

    async def _prepare_together(self, together: _Together) -> list[dict[str, Any]]:
        """The value ranges of every job, or ``_Apart`` when one needs more than one request."""
        items = list(
            zip(together.jobs, together.worksheets, together.progress, together.stats, strict=True)
        )
        ahead = [self._turns.take_ahead(j.sheet, w, p, s) for j, w, p, s in items]
        layouts = [layout for layout in ahead if layout is not None]
        if len(layouts) < len(items):
            layouts = await self._worksheets.read_layouts(
                [(j.sheet, w, p.pending, s) for j, w, p, s in items]
            )
        groups: list[tuple[str, list[dict[str, Any]]]] = []
        for (job, worksheet, progress, stats), layout in zip(items, layouts, strict=True):
            progress.saw(layout)
            owed = self._refills_owed.setdefault(job.sheet.title.casefold(), set())
            owed.update(stats.recreated)
            if owed:
                raise _Apart  # refilled by upsert, which reads the stored rows
            placement = place(layout, progress.pending, progress.only_if_missing)
            progress.skip(placement.skipped)
            if placement.last_row > worksheet.row_count:
                raise _Apart
            own = value_ranges(
                worksheet.title, job.sheet.key_column, layout, placement.targets, progress.pending
            )
            _warn_duplicates(job.sheet, placement, [url for url, _ in own])
            progress.send(placement, [url for url, _ in own])
            groups.extend(own)
        urls, data = first_chunk(groups, MAX_WRITE_BYTES, MAX_RANGES_PER_WRITE)
        if len(urls) < len(groups):
            raise _Apart
        if not data:
            raise NothingLeft
        return data

    async def _next_request(
        self, sheet: SheetSettings, worksheet: Worksheet, progress: Progress, stats: FlushStats
    ) -> list[dict[str, Any]]:
        """Read the layout and return the value ranges of the next request of the upsert."""
        layout = await self._layout(sheet, worksheet, progress, stats)
        progress.saw(layout)
        owed = self._refills_owed.setdefault(sheet.title.casefold(), set())
        owed.update(stats.recreated)
        if owed and not progress.refill_planned:
            progress.refill_planned = True
            stored = await self._stored_rows(sheet.title) if self._stored_rows else {}
            progress.add_refills(sheet, stored, owed, stats)
        placement = place(layout, progress.pending, progress.only_if_missing, progress.refill)
        progress.skip(placement.skipped)
        if not placement.targets:
            raise NothingLeft
        await self._worksheets.grow_rows(sheet, worksheet, layout, placement.last_row, stats)
        groups = value_ranges(
            worksheet.title, sheet.key_column, layout, placement.targets, progress.pending
        )
        urls, data = first_chunk(groups, MAX_WRITE_BYTES, MAX_RANGES_PER_WRITE)
        _warn_duplicates(sheet, placement, urls)
        progress.send(placement, urls)
        return data

    async def _layout(
        self, sheet: SheetSettings, worksheet: Worksheet, progress: Progress, stats: FlushStats
    ) -> Layout:
        """The layout read ahead when it may still be used, otherwise a fresh read."""
        ahead = self._turns.take_ahead(sheet, worksheet, progress, stats)
        if ahead is not None:
            return ahead
        return await self._worksheets.read_layout(sheet, worksheet, progress.pending, stats)

    # -- bookkeeping ---------------------------------------------------------------------

    def _report(
        self,
        progress: Progress,
        stats: FlushStats,
        started: float,
        shared_with: tuple[str, ...] = (),
        removed: int = 0,
    ) -> UpsertReport:
        report = UpsertReport(
            sheet=stats.sheet,
            updated=progress.updated,
            appended=progress.appended,
            unchanged=progress.unchanged,
            requests=RequestCount(stats.reads, stats.writes),
            repairs=tuple(stats.repairs),
            duration=time.monotonic() - started,
            removed=removed,
            shared_with=shared_with,
        )
        self._record(report)
        return report

    def _record(self, report: UpsertReport) -> None:
        written = report.updated + report.appended
        if written:
            self._metrics.rows_written.inc(written, sheet=report.sheet)
        self._metrics.write_latency.observe(report.duration)
        log.info(
            "%s: %d updated, %d appended, %d unchanged%s; %d read(s), %d write(s)%s; %.2f s",
            report.sheet,
            report.updated,
            report.appended,
            report.unchanged,
            f", {report.removed} removed" if report.removed else "",
            report.requests.reads,
            report.requests.writes,
            f" shared with {', '.join(report.shared_with)}" if report.shared_with else "",
            report.duration,
            extra={
                "fields": {
                    "sheet": report.sheet,
                    "updated": report.updated,
                    "appended": report.appended,
                    "unchanged": report.unchanged,
                    "removed": report.removed,
                    "reads": report.requests.reads,
                    "writes": report.requests.writes,
                    "repairs": len(report.repairs),
                    "shared_with": list(report.shared_with),
                    "duration": round(report.duration, 3),
                }
            },
        )


class _Apart(Exception):
    """The jobs of ``upsert_many`` cannot share one request: one upsert each instead."""


class _Together:
    """One ``upsert_many`` write: the jobs with their worksheets, progress and requests."""

    def __init__(self, jobs: Sequence[Upsert]) -> None:
        self.jobs = list(jobs)
        self.worksheets: list[Worksheet] = []
        self.progress = [Progress(dict(j.rows), set(j.only_if_missing)) for j in jobs]
        self.stats = [FlushStats(sheet=j.sheet.title) for j in jobs]


def _warn_duplicates(sheet: SheetSettings, placement: Placement, urls: Collection[str]) -> None:
    for url in urls:
        if url in placement.duplicates:
            numbers = placement.duplicates[url]
            log.warning(
                "%s: %s is in rows %s; updated row %d only",
                sheet.title,
                url,
                ", ".join(map(str, numbers)),
                numbers[0],
            )
