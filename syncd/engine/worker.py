"""The worker: drains the inbox in batches through fetch -> map -> write.

One flush takes the due events, folds every event about one URL into one unit of work (one
fetch, one row per worksheet), writes each worksheet's rows in one upsert, and only then marks
the events done, in the same transaction that records each row's fingerprint. A crash at any
point therefore leaves the events pending, and the retry finds the rows by URL instead of
adding them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from syncd.cobot.client import CobotClient, Fetched
from syncd.cobot.fetching import MEMBERSHIP_LISTING_MIN, fetch_many
from syncd.config.settings import Settings, SheetSettings
from syncd.core.errors import SyncdError
from syncd.core.events import EVENTS, embedded_resource, resource_kind_of_path
from syncd.core.metrics import Metrics
from syncd.engine.eventlog import EventLog, is_last_attempt
from syncd.engine.testhooks import crash_point
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import Row, deletion_stamp, map_row, row_fingerprint
from syncd.ops.status import LAST_WRITE_META, WORKER_ERROR_META
from syncd.sheets.writer import SheetsWriter, UpsertReport
from syncd.store.database import InboxEvent, RowState, Store

log = logging.getLogger("syncd.worker")

RETRY_BASE_SECONDS = 5.0
#: An idle worker still looks at the inbox this often, to notice events that another process
#: (``syncd replay``, a backfill) made due without waking it.
IDLE_POLL_SECONDS = 5.0
#: Rows mapped (about a millisecond's work) between two turns given to the event loop.
ROWS_PER_YIELD = 50
#: Longest a full batch waits, in flush intervals, for a flood of webhooks to subside.
MAX_YIELD_INTERVALS = 10


@dataclass
class UrlWork:
    """Everything one flush knows about one resource URL."""

    ref: ResourceRef
    events: list[InboxEvent]
    sheets: list[SheetSettings]
    #: The newest deletion event among them, if any: it wins over every update.
    deletion: InboxEvent | None = None
    fetched: Fetched | None = None
    error: str | None = None

    @property
    def ids(self) -> list[int]:
        return [event.id for event in self.events]


@dataclass
class SheetBatch:
    """The rows one worksheet gets in this flush, and the events waiting on them."""

    sheet: SheetSettings
    rows: dict[str, Row] = field(default_factory=dict)
    states: dict[str, RowState] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)
    #: What the upsert did, once it succeeded.
    report: UpsertReport | None = None


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cobot: CobotClient,
        sheets: SheetsWriter,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cobot = cobot
        self.sheets = sheets
        self.metrics = metrics
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self.event_log = EventLog(settings, sheets)
        self._wake = asyncio.Event()
        self._arrivals = 0
        self._recent_arrivals: deque[float] = deque(maxlen=settings.sync.batch_size)
        self._last_flush_at = float("-inf")
        self.last_write_at: float | None = None
        self.last_error: str | None = None

    # -- scheduling ------------------------------------------------------------------------

    def wake(self) -> None:
        """Called by the receiver after each commit; a full batch flushes at once."""
        self._arrivals += 1
        self._recent_arrivals.append(self.clock())
        self._wake.set()

    def _receiver_busy(self) -> bool:
        """Whether a whole batch of webhooks arrived within the last flush interval."""
        recent = self._recent_arrivals
        interval = self.settings.sync.flush_interval_seconds
        return len(recent) == recent.maxlen and recent[0] > self.clock() - interval

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until ``stop`` is set; an in-flight flush always completes first."""
        while not stop.is_set():
            try:
                await self._step(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not kill the daemon: log, back off, go on
                log.exception("flush failed unexpectedly; retrying in 5 s")
                self._record_error(f"flush failed: {type(exc).__name__}")
                await _sleep_or_stop(stop, 5.0)

    async def _step(self, stop: asyncio.Event) -> None:
        batch_size = self.settings.sync.batch_size
        events = await self.store.claim_due(batch_size, self.clock())
        if not events:
            next_due = await self.store.next_due_at()
            wait = IDLE_POLL_SECONDS if next_due is None else next_due - self.clock()
            await self._wait_for_work(stop, min(wait, IDLE_POLL_SECONDS))
            return
        if len(events) < batch_size:
            # Give a burst a moment to gather, so it costs one flush instead of many.
            oldest = min(event.received_at for event in events)
            remaining = oldest + self.settings.sync.flush_interval_seconds - self.clock()
            if remaining > 0 and self._arrivals < batch_size:
                await self._wait_for_work(stop, remaining, until_full=True)
                return
        else:
            # A full batch, too, flushes at most once per interval: Google's 60 writes a
            # minute allow about one flush a second, so flushing faster in a burst only spends
            # the quota early and takes the event loop from the receiver. Whatever arrives
            # meanwhile is folded into the next flush (see _same_urls).
            interval = self.settings.sync.flush_interval_seconds
            pause = self._last_flush_at + interval - self.clock()
            if pause > 0:
                await _sleep_or_stop(stop, pause)
                return
            # While webhooks pour in faster than a batch per interval, the receiver, which
            # shares this event loop, goes first: the flush waits (a while at most), so that
            # acknowledgements stay quick, and then takes more of the flood in one go.
            oldest = min(event.received_at for event in events)
            if self._receiver_busy() and self.clock() < oldest + MAX_YIELD_INTERVALS * interval:
                await _sleep_or_stop(stop, interval / 10)
                return
        self._arrivals = 0
        self._last_flush_at = self.clock()
        await self.flush(events)

    async def _wait_for_work(
        self, stop: asyncio.Event, timeout: float, until_full: bool = False
    ) -> None:
        deadline = self.clock() + max(0.0, timeout)
        while not stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if not until_full or self._arrivals >= self.settings.sync.batch_size:
                return

    # -- one flush ------------------------------------------------------------------------

    async def flush(self, events: list[InboxEvent]) -> None:
        """Process one batch of due events end to end."""
        started = time.monotonic()
        works, unmapped = self._group(events)
        works = self._limit_fetches(works)
        extra = await self._same_urls(works, events)
        if extra:  # regrouped with the works kept: still one unit of work per URL
            events = [*events, *extra]
            works, late = self._group([*(e for work in works for e in work.events), *extra])
            unmapped += late
        if unmapped:
            log.info("%d event(s) concern no configured worksheet; marked done", len(unmapped))
        await self._fetch_all(works)
        failed = [work for work in works if work.error is not None]
        ready = [work for work in works if work.error is None]
        batches = await self._build_batches(ready)
        done_ids, states, write_failures = await self._write_all(batches, ready)
        if done_ids:
            crash_point("after_write", self.settings.state_dir)
        fetch_failures = [(work.error or "fetch failed", work.events) for work in failed]
        # Before anything is marked done, so a crash leaves rows the retry overwrites.
        await self.event_log.record(unmapped, ready, done_ids, fetch_failures + write_failures)
        if unmapped:
            await self.store.complete([event.id for event in unmapped])
        if done_ids:
            await self.store.complete(done_ids, states)
        for error, failed_events in fetch_failures:
            await self._retry_later(failed_events, error, "fetch")
        for error, failed_events in write_failures:
            await self._retry_later(failed_events, error, "write")
        if done_ids:
            self.last_write_at = self.clock()
        reports = [batch.report for batch in batches.values() if batch.report is not None]
        failures = fetch_failures + write_failures
        await self._record_flush(reports, failures)
        fields: dict[str, object] = {
            "events": len(events),
            "urls": len(works),
            "done": len(done_ids),
            "retry": len(events) - len(unmapped) - len(done_ids),
            "rows": sum(r.updated + r.appended for r in reports),
            "sheets_requests": sum(r.requests.total for r in reports),
            "duration": round(time.monotonic() - started, 3),
        }
        if failures:
            fields["error"] = failures[-1][0]
        log.log(
            logging.WARNING if failures else logging.INFO,
            "flush: %(events)d event(s) for %(urls)d URL(s): %(done)d done, %(retry)d to retry; "
            "%(rows)d row(s) written with %(sheets_requests)d Sheets request(s) (%(duration).2f s)"
            + ("; last error: %(error)s" if failures else ""),
            fields,
            extra={"fields": fields},
        )

    async def _record_flush(
        self, reports: list[UpsertReport], failures: list[tuple[str, list[InboxEvent]]]
    ) -> None:
        """Leave for `syncd status` each worksheet's last successful write and the last error.

        One transaction per flush; a failure here costs only the status display, not data.
        """
        now = self.clock()
        meta: dict[str, object] = {
            f"{LAST_WRITE_META}{r.sheet}": {"time": now, "rows": r.updated + r.appended}
            for r in reports
        }
        if failures:
            meta[WORKER_ERROR_META] = {"time": now, "error": failures[-1][0]}
        if not meta:
            return
        try:
            await self.store.set_meta_many(meta)
        except SyncdError as exc:
            log.warning("could not record the flush for `syncd status`: %s", exc)

    def _group(self, events: Iterable[InboxEvent]) -> tuple[list[UrlWork], list[InboxEvent]]:
        by_url: dict[str, UrlWork] = {}
        unmapped: list[InboxEvent] = []
        for event in events:
            sheets = self.settings.sheets_for(event.event, event.kind)
            if not sheets:
                log.warning(
                    "event %s about a %s is not mapped to any worksheet", event.event, event.kind
                )
                unmapped.append(event)
                continue
            work = by_url.get(event.url)
            if work is None:
                # Not always the last segment: /spaces/<id>/subscription.
                _, resource_id = resource_kind_of_path(urlsplit(event.url).path) or ("", "")
                ref = ResourceRef(kind=event.kind, id=resource_id, url=event.url)
                work = by_url[event.url] = UrlWork(ref=ref, events=[], sheets=[])
            work.events.append(event)
            work.sheets.extend(s for s in sheets if s not in work.sheets)
            if EVENTS[event.event].deletion and (
                work.deletion is None or event.id > work.deletion.id
            ):
                work.deletion = event
        return list(by_url.values()), unmapped

    async def _same_urls(self, works: list[UrlWork], claimed: list[InboxEvent]) -> list[InboxEvent]:
        """The other due events about the URLs of ``works``, to be settled by this flush.

        A URL is fetched once per flush, after all of them arrived, so that one fetch answers
        them all: a burst of several events per resource then costs one fetch and one row
        write per resource, instead of one per claimed batch that holds one of its events.
        At most a batch of them: the store's one thread also commits incoming webhooks, and a
        far larger read would hold those acknowledgements up.
        """
        return await self.store.claim_due_for_urls(
            [work.ref.url for work in works],
            [event.id for event in claimed],
            self.settings.sync.batch_size,
            self.clock(),
        )

    def _limit_fetches(self, works: list[UrlWork]) -> list[UrlWork]:
        """Keep one flush to about ten seconds of the Cobot budget; the rest waits its turn.

        Without this a burst of hundreds of URLs would hold every row back until the last
        fetch returned, minutes later under Cobot's 60/min limit. Only URLs fetched one by one
        count: a kind that fetch_many answers from a listing costs one request per chunk.
        """
        limit = max(
            self.settings.sync.fetch_concurrency, self.settings.cobot.requests_per_minute // 6
        )
        listed = self._listed_kinds(Counter(w.ref.kind for w in works if w.deletion is None))
        kept, fetches = [], 0
        for work in works:
            if work.deletion is None and work.ref.kind not in listed:
                if fetches >= limit:
                    continue
                fetches += 1
            kept.append(work)
        return kept

    def _listed_kinds(self, counts: Counter[str]) -> set[str]:
        """The kinds fetch_many will answer from a listing for these counts (its plan)."""
        listed = {"invoice"} if counts["invoice"] > 1 else set()
        if (
            counts["membership"] >= MEMBERSHIP_LISTING_MIN
            and self.cobot.membership_listing_budget.delay() == 0
        ):
            listed.add("membership")
        return listed

    async def _fetch_all(self, works: list[UrlWork]) -> None:
        """Fetch every non-deleted URL, a burst of one kind in as few requests as it allows."""
        wanted = [work for work in works if work.deletion is None]
        results = await fetch_many(
            self.cobot, [w.ref for w in wanted], concurrency=self.settings.sync.fetch_concurrency
        )
        for work in wanted:
            result = results[work.ref.url]
            if isinstance(result, Fetched):
                work.fetched = result
            else:
                work.error = str(result)

    async def _build_batches(self, works: list[UrlWork]) -> dict[str, SheetBatch]:
        batches: dict[str, SheetBatch] = {}
        for sheet in self.settings.sheets:
            urls = [w.ref.url for w in works if sheet in w.sheets]
            if not urls:
                continue
            known = await self.store.row_states(sheet.title, urls)
            batch = batches[sheet.title] = SheetBatch(sheet)
            for count, work in enumerate(w for w in works if sheet in w.sheets):
                self._add_row(batch, work, known.get(work.ref.url))
                if count % ROWS_PER_YIELD == ROWS_PER_YIELD - 1:
                    await asyncio.sleep(0)  # the receiver shares this loop: let it answer
        return batches

    def _add_row(self, batch: SheetBatch, work: UrlWork, known: RowState | None) -> None:
        """Decide the cells of one row; an unchanged row is only re-created if missing."""
        sheet, url = batch.sheet, work.ref.url
        deleted_at = known.deleted_at if known else None
        resource: dict | None = None
        if work.deletion is not None:
            resource = embedded_resource(EVENTS[work.deletion.event], work.deletion.body)
            deleted_at = deleted_at or deletion_stamp(
                datetime.fromtimestamp(work.deletion.received_at, UTC)
            )
        elif work.fetched is not None and work.fetched.status == "gone":
            deleted_at = deleted_at or deletion_stamp(datetime.fromtimestamp(self.clock(), UTC))
        elif work.fetched is not None:
            resource = work.fetched.data
        row = sheet_row(sheet, url, resource, deleted_at, self.tz)
        fingerprint = row_fingerprint(row)
        if known is not None and known.fingerprint == fingerprint:
            batch.unchanged.add(url)
        batch.rows[url] = row
        batch.states[url] = RowState(fingerprint=fingerprint, deleted_at=deleted_at)

    async def _write_all(
        self, batches: Mapping[str, SheetBatch], works: list[UrlWork]
    ) -> tuple[list[int], dict[str, dict[str, RowState]], list[tuple[str, list[InboxEvent]]]]:
        written: set[tuple[str, str]] = set()
        states: dict[str, dict[str, RowState]] = {}
        errors: dict[str, str] = {}
        for title, batch in batches.items():
            try:
                batch.report = await self.sheets.upsert(
                    batch.sheet, batch.rows, only_if_missing=batch.unchanged
                )
            except SyncdError as exc:
                errors[title] = str(exc)
                log.warning("writing %s failed: %s", title, exc)
                continue
            self.metrics.events_processed.inc(
                sum(1 for w in works if batch.sheet in w.sheets for _ in w.events), sheet=title
            )
            states[title] = batch.states
            written.update((title, url) for url in batch.rows)
        done: list[int] = []
        failures: dict[str, list[InboxEvent]] = defaultdict(list)
        for work in works:
            missing = [s.title for s in work.sheets if (s.title, work.ref.url) not in written]
            if missing:
                failures[errors[missing[0]]].extend(work.events)
            else:
                done.extend(work.ids)
        return done, states, list(failures.items())

    async def _retry_later(self, events: list[InboxEvent], error: str, stage: str) -> None:
        """Back off exponentially with jitter; give up into the dead-letter state at the end."""
        self._record_error(error)
        self.metrics.events_failed.inc(len(events), stage=stage)
        give_up = [e.id for e in events if is_last_attempt(e, self.settings.sync.max_attempts)]
        retry = [e for e in events if e.id not in set(give_up)]
        if give_up:
            self.metrics.events_dead_lettered.inc(len(give_up))
            log.error(
                "%d event(s) dead-lettered after %d attempts: %s (see `syncd status`, "
                "`syncd replay`)",
                len(give_up),
                self.settings.sync.max_attempts,
                error,
            )
            await self.store.dead_letter(give_up, error)
        by_attempt: dict[int, list[int]] = defaultdict(list)
        for event in retry:
            by_attempt[event.attempts].append(event.id)
        for attempts, ids in by_attempt.items():
            delay = min(self.settings.sync.retry_max_seconds, RETRY_BASE_SECONDS * 2**attempts)
            delay *= random.uniform(0.5, 1.0)
            await self.store.reschedule(ids, error, self.clock() + delay)

    def _record_error(self, error: str) -> None:
        self.last_error = error


def sheet_row(
    sheet: SheetSettings, url: str, resource: Mapping | None, deleted_at: str | None, tz: ZoneInfo
) -> Row:
    """The cells the daemon writes for one resource (``syncd preview`` shows the same).

    Without a resource (a deletion that embeds nothing, a 404) only Deleted and the URL are
    written, so the cells that were there stay as the last fetch left them.
    """
    row: Row = map_row(resource, sheet, tz) if resource is not None else {}
    row[sheet.deleted_column] = deleted_at or ""
    row[sheet.key_column] = url
    return row


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
