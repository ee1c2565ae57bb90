"""Re-sync: rebuild worksheets from Cobot's list endpoints, so a sheet is complete and right
even when webhooks were missed (daemon down longer than Cobot retries, a deactivated
subscription). One engine serves ``syncd backfill`` and the daemon's scheduled re-syncs.

Planned around Cobot's limits: v1 lists are bare arrays cut by date windows, and Cobot allows
60 requests per minute per user, the membership list only 6. So a worksheet costs:

- memberships: one complete listing (``all=true``), which also reveals deletions: a known row
  the listing lacks is fetched alone and flagged deleted only on a 404, unless the listing
  lacks more than ``resync.max_deleted_share`` of the sheet (then none is: a safety stop);
- invoices, bookings, check-ins: one request per ``resync.window_days`` window over the span
  (``history_days`` back, bookings also ahead); a window Cobot refuses (422) is split in half,
  and later windows of that kind are kept as small;
- other kinds have no list endpoint and are left to their webhooks;
- a worksheet whose rows join ``member``: one membership listing first, kept in the local copy
  (none when memberships were listed within ``MEMBERS_FRESH_SECONDS``).

Every Cobot request is background work (``urgent=False``): webhook fetches go first on the
shared budget. Rows are built exactly as the worker builds them, under the same ordering rule
(a row holding a later observation than the listing's is left alone), and compared with the
stored fingerprints; they are written in chunks of ``CHUNK_ROWS``, each chunk's row states read,
its rows decided and written (one read and, only when something changed or a row is missing,
one write) and its states saved under the worksheet's lock. A re-sync of an unchanged space
therefore writes nothing.

Resumable: after each window whose rows are in the sheet, a checkpoint per (worksheet, mode)
(and space, when several are configured) in meta records where the next window starts; a rerun
of the same span continues there, and rows it writes again are found by URL, never twice.

One engine serves one space: its host, its token, its subdomain in each row's Space column.
A worksheet holds every space's rows, so deletion by absence weighs a listing against its own
space's rows only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from datetime import time as day_start
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from syncd.cobot.client import CobotClient
from syncd.cobot.errors import CobotRequestError
from syncd.config.settings import CobotSettings, ResyncSettings, SheetSettings
from syncd.core.errors import SyncdError
from syncd.core.events import within_filters
from syncd.engine.localcopy import MemberJoin, Subject, kept_copy, stamp_at
from syncd.engine.resync_plan import (
    COMPLETE_KINDS,
    LISTED_KINDS,
    Mode,
    Progress,
    ProgressCallback,
    Span,
    Window,
    default_span,
    owns,
    record_name,
    unlisted_reason,
)
from syncd.engine.rowplan import SheetBatch, write_batch
from syncd.intake.resources import listed_url, ref_of_url
from syncd.mapping.computed import uses_member
from syncd.mapping.rows import FILTERED_OUT, Observation
from syncd.sheets.reports import UpsertReport
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.meta import ResyncCheckpoint, ResyncRun, SafetyStop
from syncd.store.rows import RowState

log = logging.getLogger("syncd.resync")

JSONObject = dict[str, Any]

#: Rows per upsert: one read and at most one write each, and the cross-process lock held
#: only briefly, so webhook flushes of the same worksheet are not held up for long.
CHUNK_ROWS = 500
#: How long memberships listed for member joins count as fresh for the next worksheet.
MEMBERS_FRESH_SECONDS = 600


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class SheetSummary:
    """What one run did to one worksheet."""

    sheet: str
    resource: str
    mode: str
    #: The space listed, when several are configured ("" otherwise).
    space: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    #: Rows removed because their resource stopped matching the worksheet's ``where:``.
    removed: int = 0
    cobot_requests: int = 0
    sheets_reads: int = 0
    sheets_writes: int = 0
    duration: float = 0.0
    resumed_from: str | None = None
    skipped: str | None = None
    safety_stop: str | None = None

    def record(self, report: UpsertReport) -> None:
        self.added += report.appended
        self.updated += report.updated
        self.unchanged += report.unchanged
        self.sheets_reads += report.requests.reads
        self.sheets_writes += report.requests.writes

    def record_of(self, at: float) -> ResyncRun:
        """What meta keeps of the run (it is kept by sheet and mode), for `syncd status`."""
        fields = asdict(self)
        for name in ("sheet", "resource", "mode", "space", "skipped"):
            del fields[name]
        fields["duration"] = round(self.duration, 1)
        return ResyncRun(at, {k: v for k, v in fields.items() if v is not None})

    @property
    def label(self) -> str:
        """The worksheet, and the space when several are configured: ``Members (co-up)``."""
        return f"{self.sheet} ({self.space})" if self.space else self.sheet

    def describe(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} flagged deleted, {self.removed} removed (where:); "
            f"{self.cobot_requests} Cobot request(s), "
            f"{self.sheets_reads} Sheets read(s), {self.sheets_writes} write(s); "
            f"{self.duration:.1f} s"
        )


@dataclass(frozen=True)
class Seen:
    """A resource as one Cobot request showed it (None: gone), and when it was asked."""

    resource: JSONObject | None
    observed_at: float


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class Resync:
    """Lists one space's Cobot, builds every row as the worker would, and writes only what
    changed; ``cobot_settings`` and ``cobot`` are that space's settings and client."""

    def __init__(
        self,
        resync: ResyncSettings,
        cobot_settings: CobotSettings,
        tz: ZoneInfo,
        store: Store,
        cobot: CobotClient,
        sheets: SheetsWriter,
        *,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resync = resync
        self.cobot_settings = cobot_settings
        #: The space's subdomain: each row's Space, the local copy's space, the member join's.
        self.space = cobot_settings.subdomain
        self.tz = tz
        self.store = store
        self.cobot = cobot
        self.sheets = sheets
        self.on_progress = on_progress
        self.clock = clock
        #: Per kind, the largest window Cobot accepted after refusing a larger one.
        self._window_limits: dict[str, int] = {}
        self.join = MemberJoin(store, cobot, space=self.space, urgent=False)
        #: When every membership was last listed (and kept) by this engine.
        self._members_listed_at = float("-inf")

    async def run(
        self,
        sheets: Iterable[SheetSettings],
        mode: Mode,
        since: date | None = None,
        until: date | None = None,
    ) -> list[SheetSummary]:
        """Re-sync the worksheets that hold this space, one after the other."""
        return [
            await self.run_sheet(sheet, mode, since, until)
            for sheet in sheets
            if sheet.holds(self.space)
        ]

    async def _list_members(self, sheet: SheetSettings, summary: SheetSummary) -> None:
        """Keep every membership first when a worksheet of other rows joins ``member``: one
        listing request instead of one fetch per member the local copy lacks; not again within
        MEMBERS_FRESH_SECONDS (Cobot allows 6 membership listings a minute)."""
        observed_at = self.clock()
        if not uses_member(sheet) or sheet.resource == "membership":
            return
        if observed_at < self._members_listed_at + MEMBERS_FRESH_SECONDS:
            return
        self._members_listed_at = observed_at
        summary.cobot_requests += 1
        items = await self.cobot.list_memberships(all=True)
        listed = self._by_url("membership", items, observed_at)
        await self.store.keep(
            kept_copy(ref_of_url("membership", url), s.resource, observed_at, None, self.space)
            for url, s in listed.items()
        )

    async def run_sheet(
        self,
        sheet: SheetSettings,
        mode: Mode,
        since: date | None = None,
        until: date | None = None,
    ) -> SheetSummary:
        """Re-sync one worksheet; ``since``/``until`` narrow the windowed kinds' span. A
        worksheet narrowed to other spaces (``spaces:``) is left alone."""
        # Summaries name the space only when several are configured (with a Space column).
        space = self.space if sheet.space_column else ""
        summary = SheetSummary(sheet.title, sheet.resource, mode, space)
        if not sheet.holds(self.space):
            summary.skipped = f"it holds only {', '.join(sheet.spaces)} (spaces:)"
            log.debug("%s: skipped: %s", summary.label, summary.skipped)
            return summary
        if sheet.resource not in LISTED_KINDS:
            summary.skipped = unlisted_reason(sheet)
            log.info("%s: skipped: %s", summary.label, summary.skipped)
            return summary
        started = time.monotonic()
        if mode != "recent":
            # Formats, the header's style and the highlight rule a person cleared come back.
            await self.sheets.check_presentation(sheet)
        await self._list_members(sheet, summary)
        if sheet.resource in COMPLETE_KINDS:
            await self._complete_listing(sheet, summary)
        else:
            today = datetime.fromtimestamp(self.clock(), UTC).date()
            span = default_span(self.resync, sheet.resource, mode, today, since, until)
            await self._windowed(sheet, mode, span, summary)
        summary.duration = time.monotonic() - started
        run = summary.record_of(self.clock())
        await self.store.meta.record_resync_run(mode, self._record(sheet), run)
        log.info("%s: %s re-sync: %s", summary.label, mode, summary.describe())
        return summary

    def _record(self, sheet: SheetSettings) -> str:
        return record_name(sheet, self.space)

    async def missed_run(self, sheet: SheetSettings, mode: Mode, trigger: BaseTrigger) -> bool:
        """Whether a scheduled run fell due after the last completed one (daemon was down).

        With no run recorded yet, the schedule starts now: nothing was missed, and a new
        installation is filled by ``syncd backfill``, not by surprise at the first start.
        """
        name = self._record(sheet)
        last = await self.store.meta.resync_run(mode, name)
        since = await self.store.meta.resync_schedule_start(mode, name)
        reference = since if last is None else last.at
        if reference is None:
            await self.store.meta.start_resync_schedule(mode, name, self.clock())
            return False
        due = trigger.get_next_fire_time(None, datetime.fromtimestamp(reference, UTC))
        return due is not None and due.timestamp() <= self.clock()

    # -- memberships: one complete listing ------------------------------------------------

    async def _complete_listing(self, sheet: SheetSettings, summary: SheetSummary) -> None:
        observed_at = self._members_listed_at = self.clock()
        items = await self.cobot.list_memberships(all=True)
        summary.cobot_requests += 1
        listed = self._by_url(sheet.resource, items, observed_at)
        known = await self._own_rows(sheet)
        absent = [
            url
            for url, s in known.items()
            if s.deleted_at is None and s.fingerprint != FILTERED_OUT and url not in listed
        ]
        if await self._within_share(sheet, absent, len(known), summary):
            listed.update(await self._confirm_absent(sheet.resource, absent, summary))
        await self._write(sheet, listed, summary)
        self._progress(Progress(summary.label, 1, 1, len(items)))

    async def _own_rows(self, sheet: SheetSettings) -> dict[str, RowState]:
        """The worksheet's rows of this space: another space's rows are never in this space's
        listing, and must neither be flagged deleted nor count towards the safety stop."""
        known = await self.store.all_row_states(sheet.title)
        if not sheet.space_column:
            return known
        kept = await self.store.kept(known)
        return {u: s for u, s in known.items() if owns(self.cobot_settings, u, kept.get(u))}

    async def _confirm_absent(
        self, kind: str, absent: list[str], summary: SheetSummary
    ) -> dict[str, Seen]:
        """Each absent URL as its own GET shows it: only a 404 flags a row deleted.

        A listing's completeness rests on a parameter Cobot does not document (``all=true``);
        deletions are rare, so asking for each absent resource costs a few requests. One that
        cannot be fetched now is left as it is until the next run.
        """
        seen: dict[str, Seen] = {}
        for url in absent:
            summary.cobot_requests += 1
            try:
                fetched = await self.cobot.fetch(ref_of_url(kind, url), urgent=False)
            except SyncdError as exc:
                log.warning("%s is missing from the listing and could not be fetched: %s", url, exc)
                continue
            seen[url] = Seen(fetched.data, fetched.observed_at)
            if fetched.status == "gone":
                summary.deleted += 1
        return seen

    async def _within_share(
        self, sheet: SheetSettings, absent: list[str], rows: int, summary: SheetSummary
    ) -> bool:
        """Whether the absent rows are few enough to be deletions rather than a fault.

        An empty or truncated listing (a Cobot bug, a token that lost its admin rights)
        must not flag a whole sheet deleted; a safety stop is recorded otherwise.
        """
        share, name = self.resync.max_deleted_share, self._record(sheet)
        if absent and len(absent) > share * rows:
            listing = f"{summary.space}'s complete listing" if summary.space else "complete listing"
            message = (
                f"Cobot's {listing} lacks {len(absent)} of the {rows} known rows, more than "
                f"resync.max_deleted_share ({share:g}); flagged none of them deleted. If they "
                f"really were deleted, raise resync.max_deleted_share for one run"
            )
            log.warning("%s: safety stop: %s", summary.label, message)
            summary.safety_stop = message
            stop = SafetyStop(self.clock(), len(absent), rows, message)
            await self.store.meta.save_safety_stop(name, stop)
            return False
        if await self.store.meta.safety_stop(name) is not None:
            await self.store.meta.save_safety_stop(name, None)
        return True

    # -- invoices, bookings, check-ins: date windows --------------------------------------

    async def _windowed(
        self, sheet: SheetSettings, mode: Mode, span: Span, summary: SheetSummary
    ) -> None:
        name = self._record(sheet)
        saved = await self.store.meta.resync_checkpoint(mode, name)
        start = span.since
        if saved is not None and (saved.since, saved.until) == (span.since, span.until):
            start = saved.next
            summary.resumed_from = start.isoformat()
            log.info("%s: continuing the interrupted %s from %s", summary.label, mode, start)
        windows = span.windows(self.resync.window_days, start)
        pending: dict[str, Seen] = {}
        listed = 0
        for number, window in enumerate(windows, 1):
            observed_at = self.clock()
            items = await self._list_window(sheet.resource, window, summary)
            items = [item for item in items if within_filters(sheet.filters, item)]
            listed += len(items)
            pending.update(self._by_url(sheet.resource, items, observed_at))
            last = number == len(windows)
            if last or len(pending) >= CHUNK_ROWS:
                await self._write(sheet, pending, summary)
                pending = {}
            if not pending:
                checkpoint = None if last else ResyncCheckpoint(span.since, span.until, window.end)
                await self.store.meta.save_resync_checkpoint(mode, name, checkpoint)
            self._progress(Progress(summary.label, number, len(windows), listed, window))
        if not windows:
            await self.store.meta.save_resync_checkpoint(mode, name, None)

    async def _list_window(
        self, kind: str, window: Window, summary: SheetSummary
    ) -> list[JSONObject]:
        """One window's items; a window Cobot refuses as too large is listed in halves."""
        limit = self._window_limits.get(kind)
        if limit is None or window.days <= limit:
            summary.cobot_requests += 1
            try:
                return await self._list(kind, window)
            except CobotRequestError as exc:
                if exc.status != 422 or window.days < 2:
                    raise
            self._window_limits[kind] = window.days - window.days // 2
            log.info(
                "Cobot refused the %d-day %s window %s; listing it in halves",
                window.days,
                kind,
                window,
            )
        first, second = window.halves()
        return [
            *await self._list_window(kind, first, summary),
            *await self._list_window(kind, second, summary),
        ]

    async def _list(self, kind: str, window: Window) -> list[JSONObject]:
        if kind == "invoice":
            return await self.cobot.list_invoices(date_from=window.start, date_to=window.last_day)
        start = datetime.combine(window.start, day_start(), UTC)
        end = datetime.combine(window.end, day_start(), UTC)
        if kind == "booking":
            return await self.cobot.list_bookings(start=start, end=end)
        return await self.cobot.list_work_sessions(start=start, end=end)

    # -- rows -----------------------------------------------------------------------------

    def _by_url(
        self, kind: str, items: Sequence[JSONObject], observed_at: float
    ) -> dict[str, Seen]:
        """Items by canonical URL, rebuilt from the id exactly as the webhook path does, seen
        present when the listing was asked for (no later than Cobot answered it)."""
        found: dict[str, Seen] = {}
        unusable = 0
        for item in items:
            url = listed_url(kind, item.get("id"), self.cobot_settings)
            if url is None:
                unusable += 1
            else:
                found[url] = Seen(item, observed_at)
        if unusable:
            log.warning("%d %s item(s) from Cobot had no usable id; skipped", unusable, kind)
        return found

    async def _write(
        self, sheet: SheetSettings, seen: Mapping[str, Seen], summary: SheetSummary
    ) -> None:
        """Keep what was listed in the local copy, then upsert changed and missing rows in
        chunks, each under the worksheet's lock: read the chunk's row states, decide its rows,
        write them (and remove those that stopped matching ``where:``), save their states.

        A resource seen as None flags the row deleted, keeping its other cells.
        """
        stamps = {u: stamp_at(s.observed_at) for u, s in seen.items() if s.resource is None}
        await self.store.keep(
            kept_copy(
                ref_of_url(sheet.resource, u),
                s.resource,
                s.observed_at,
                stamps.get(u),
                self.space,
            )
            for u, s in seen.items()
        )
        urls = list(seen)
        for first in range(0, len(urls), CHUNK_ROWS):
            chunk = urls[first : first + CHUNK_ROWS]
            contexts = await self.join.contexts(
                [sheet], {url: Subject(sheet.resource, seen[url].resource) for url in chunk}
            )
            async with self.sheets.locked(sheet.title):
                known = await self.store.row_states(sheet.title, chunk)
                batch = SheetBatch(sheet, known=known)
                for url in chunk:
                    at, body = seen[url].observed_at, seen[url].resource
                    seen_now = Observation(url, body, at, stamps.get(url), contexts[url])
                    batch.decide(seen_now, self.tz, known.get(url))
                if batch.superseded:
                    log.info(
                        "%s: left %d row(s) that hold later data than this listing",
                        sheet.title,
                        len(batch.superseded),
                    )
                if not batch.rows and not batch.removals:
                    await self.store.complete([], {sheet.title: batch.states})
                    continue
                refused = await write_batch(self.sheets, batch)
                saved = {u: s for u, s in batch.states.items() if u not in refused}
                await self.store.complete([], {sheet.title: saved})
            for report in batch.reports:
                summary.record(report)
            summary.removed += len(batch.removals - refused.keys())
            if refused:
                raise next(iter(refused.values()))

    def _progress(self, progress: Progress) -> None:
        log.debug("%s: step %d/%d", progress.sheet, progress.done, progress.total)
        if self.on_progress is not None:
            self.on_progress(progress)
