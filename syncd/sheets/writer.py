"""The Sheets writer: upserts rows into worksheets keyed by the resource URL.

Google allows 60 reads and 60 writes per minute per service account and counts a batch as one
request, so one flush of a worksheet costs, whatever the number of rows:

1. one read: ``values:batchGet`` of row 1, the key column and the rows below its last value
   (column-major);
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
layout read while it fetches (``read_ahead``), under the worksheet's lock. The first request
of the next upsert is placed from that read only when no daemon process held the lock in
between (the lock counts its turns) and it is at most ``READ_AHEAD_SECONDS`` old; every other
request and every retry reads afresh (docs/reliability.md, "the row-position rule").

The writer also removes rows (``remove``, see ``removal``) and, when asked, checks how a
worksheet looks (``check_presentation``, see ``presentation``).

This module orchestrates one upsert: ``worksheets`` keeps each worksheet's grid and header
in repair, ``planning`` decides where every cell goes, ``progress`` keeps the upsert's
bookkeeping and ``transport`` sends the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from syncd.config.settings import GoogleSettings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.errors import SyncdError
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff
from syncd.mapping.cells import Row
from syncd.sheets.auth import gspread_client
from syncd.sheets.errors import SheetsRequestError
from syncd.sheets.planning import Layout, Worksheet, check_headers, first_chunk, place, value_ranges
from syncd.sheets.progress import NothingLeft, Progress
from syncd.sheets.removal import remove_rows
from syncd.sheets.transport import DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, ClientFactory, SheetsTransport
from syncd.sheets.worksheets import FlushStats, Worksheets
from syncd.store.filelock import file_lock
from syncd.store.rows import RowState

log = logging.getLogger("syncd.sheets")
T = TypeVar("T")

#: Google recommends payloads under 2 MB; stay well below, counting the JSON we send.
MAX_WRITE_BYTES = 1_000_000
MAX_RANGES_PER_WRITE = 5_000
#: Oldest a layout read ahead may be when the write it places is prepared: a person's sort
#: in that time is the same risk as in the round trip between any read and its write.
READ_AHEAD_SECONDS = 2.0

#: A worksheet's title -> the state of every row written there, with its cells.
StoredRows = Callable[[str], Awaitable[Mapping[str, RowState]]]


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


@dataclass(frozen=True)
class _ReadAhead:
    """A layout read under the worksheet's lock for the next upsert's first request."""

    worksheet: Worksheet
    layout: Layout
    stats: FlushStats
    #: The lock's turn the read was made in.
    turn: int
    read_at: float


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
        self._sheet_locks: dict[str, asyncio.Lock] = {}
        #: The worksheets whose lock the current task holds (see ``locked``).
        self._held: ContextVar[frozenset[str]] = ContextVar("held", default=frozenset())
        #: Locked around every upsert when set, so that another process writing this
        #: spreadsheet (the daemon, `syncd backfill`) cannot append the same URL meanwhile.
        self._lock_path = lock_path
        #: Turns of the lock taken in this process (counted in the lock file when there is
        #: one, so that other processes' turns count too), and the turn each held lock is in.
        self._turns = 0
        self._turn_of: dict[str, int] = {}
        self._ahead: dict[str, _ReadAhead] = {}
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
        report = UpsertReport(
            sheet=sheet.title,
            updated=progress.updated,
            appended=progress.appended,
            unchanged=progress.unchanged,
            requests=RequestCount(stats.reads, stats.writes),
            repairs=tuple(stats.repairs),
            duration=time.monotonic() - started,
        )
        self._record(report)
        return report

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
                self._ahead.pop(sheet.title.casefold(), None)

                async def attempt() -> int:
                    worksheet = await self._worksheets.get(sheet, stats)
                    return await remove_rows(
                        self._worksheets, self._transport, sheet, worksheet, urls, stats
                    )

                removed = await self._refreshing(sheet, stats, attempt)
        report = UpsertReport(
            sheet=sheet.title,
            updated=0,
            appended=0,
            unchanged=0,
            requests=RequestCount(stats.reads, stats.writes),
            repairs=tuple(stats.repairs),
            duration=time.monotonic() - started,
            removed=removed,
        )
        self._record(report)
        return report

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

    async def read_ahead(self, sheet: SheetSettings, urls: Collection[str]) -> None:
        """Read the worksheet's layout now, for the next upsert's first request (see the
        module's docstring); a failure here is left to that upsert, which then reads itself."""
        stats = FlushStats(sheet=sheet.title, max_attempts=1)
        try:
            async with self.locked(sheet.title):
                worksheet = await self._worksheets.get(sheet, stats)
                layout = await self._worksheets.read_layout(sheet, worksheet, urls, stats)
                turn = self._turn_of[sheet.title.casefold()]
                read = _ReadAhead(worksheet, layout, stats, turn, time.monotonic())
                self._ahead[sheet.title.casefold()] = read
        except SyncdError as exc:
            log.info("%s: reading ahead failed (%s); the write reads itself", sheet.title, exc)

    @contextlib.asynccontextmanager
    async def locked(self, title: str) -> AsyncIterator[None]:
        """Hold the worksheet's lock, in this process and against any other writing this
        spreadsheet; upserts inside do not take it again.

        A caller that reads row states, decides the rows, writes them and saves the states
        holds it around all four, so no other writer's decision can fall in between.
        """
        key = title.casefold()
        if key in self._held.get():
            yield
            return
        async with self._sheet_lock(title), self._process_lock() as turn:
            self._turns += 1
            self._turn_of[key] = turn if turn is not None else self._turns
            token = self._held.set(self._held.get() | {key})
            try:
                yield
            finally:
                self._held.reset(token)
                del self._turn_of[key]

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
        self._refills_owed.pop(sheet.title.casefold(), None)
        self._worksheets.remember_keys(sheet.title, progress.keys | set(rows))
        # Rows the caller had written before and expected here: someone deleted them.
        restored = [
            url for url in only_if_missing if url in progress.written and url not in progress.refill
        ]
        if restored:
            shown = ", ".join(restored[:3]) + (", ..." if len(restored) > 3 else "")
            stats.repair(f"re-created {len(restored)} row(s) missing from the sheet: {shown}")
        return progress

    async def _next_request(
        self, sheet: SheetSettings, worksheet: Worksheet, progress: Progress, stats: FlushStats
    ) -> list[dict[str, Any]]:
        """Read the layout and return the value ranges of the next request of the upsert."""
        layout = await self._layout(sheet, worksheet, progress, stats)
        progress.keys = frozenset(filter(None, (cell.strip() for cell in layout.key_cells[1:])))
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
        progress.sending = {url: (placement.targets[url], url in placement.new) for url in urls}
        return data

    async def _layout(
        self, sheet: SheetSettings, worksheet: Worksheet, progress: Progress, stats: FlushStats
    ) -> Layout:
        """The layout read ahead, for the upsert's first attempt when nothing can have moved
        rows since in this or another daemon process; otherwise a fresh read."""
        key = sheet.title.casefold()
        ahead = self._ahead.pop(key, None)
        if (
            ahead is not None
            and not progress.written
            and ahead.worksheet is worksheet
            and ahead.turn + 1 == self._turn_of.get(key)
            and time.monotonic() - ahead.read_at <= READ_AHEAD_SECONDS
        ):
            stats.reads += ahead.stats.reads
            stats.writes += ahead.stats.writes
            stats.repairs.extend(ahead.stats.repairs)
            stats.recreated.extend(ahead.stats.recreated)
            return ahead.layout
        return await self._worksheets.read_layout(sheet, worksheet, progress.pending, stats)

    # -- bookkeeping ---------------------------------------------------------------------

    def _sheet_lock(self, title: str) -> asyncio.Lock:
        """Flushes of one worksheet run one at a time: both would append at the same rows."""
        return self._sheet_locks.setdefault(title.casefold(), asyncio.Lock())

    def _process_lock(self) -> contextlib.AbstractAsyncContextManager[int | None]:
        """The cross-process lock of ``lock_path`` (yielding its turn), or nothing."""
        return file_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()

    def _record(self, report: UpsertReport) -> None:
        written = report.updated + report.appended
        if written:
            self._metrics.rows_written.inc(written, sheet=report.sheet)
        self._metrics.write_latency.observe(report.duration)
        log.info(
            "%s: %d updated, %d appended, %d unchanged%s; %d read(s), %d write(s); %.2f s",
            report.sheet,
            report.updated,
            report.appended,
            report.unchanged,
            f", {report.removed} removed" if report.removed else "",
            report.requests.reads,
            report.requests.writes,
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
                    "duration": round(report.duration, 3),
                }
            },
        )
