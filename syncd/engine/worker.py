"""The worker: drains the inbox in batches through fetch -> map -> write.

One flush takes the due events, folds every event about one URL into one unit of work (one
fetch, one row per worksheet), writes each worksheet's rows in one upsert, and only then marks
the events done, in the same transaction that records each row's fingerprint. A crash at any
point therefore leaves the events pending, and the retry finds the rows by URL instead of
adding them twice.

A failed fetch or write leaves its events to what the error says (``Action``): a temporary
failure is retried with backoff until ``sync.max_attempts``, one that needs a person (a
revoked token, a spreadsheet not shared) holds the events without spending attempts, and one
that is permanent for the event dead-letters it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from syncd.cobot.client import CobotClient, Fetched
from syncd.cobot.fetching import fetch_many, plan_fetches
from syncd.config.settings import SheetSettings, SyncSettings
from syncd.core.errors import Action, SyncdError
from syncd.core.events import EVENTS, embedded_resource, resource_kind_of_path
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff
from syncd.engine.eventlog import EventLog
from syncd.engine.work import Failure, UrlWork, failure_action
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import Row, deletion_stamp
from syncd.mapping.rows import mapped_row, sheets_for
from syncd.sheets.writer import SheetsWriter, UpsertReport
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent
from syncd.store.meta import LastError, LastWrite
from syncd.store.rows import RowState

log = logging.getLogger("syncd.worker")

RETRY_BASE_SECONDS = 5.0
#: An idle worker still looks at the inbox this often, to notice events that another process
#: (``syncd replay``, a backfill) made due without waking it.
IDLE_POLL_SECONDS = 5.0
#: Rows mapped (about a millisecond's work) between two turns given to the event loop.
ROWS_PER_YIELD = 50
#: Longest a full batch waits, in flush intervals, for a flood of webhooks to subside.
MAX_YIELD_INTERVALS = 10
#: Events held for a person are looked at again this often (at most sync.retry_max_seconds):
#: soon after someone fixed the cause, and rarely enough to cost little until then.
PAUSE_SECONDS = 300.0
#: Seconds of the Cobot request budget one flush may spend on single fetches.
FLUSH_FETCH_SECONDS = 10


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
    """Flushes due events from the store through Cobot into the worksheets."""

    def __init__(
        self,
        sync: SyncSettings,
        sheets: Sequence[SheetSettings],
        tz: ZoneInfo,
        store: Store,
        cobot: CobotClient,
        writer: SheetsWriter,
        metrics: Metrics,
        event_log: EventLog,
        *,
        cobot_requests_per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sync = sync
        self.sheets = tuple(sheets)
        self.tz = tz
        self.store = store
        self.cobot = cobot
        self.writer = writer
        self.metrics = metrics
        self.event_log = event_log
        #: Single fetches per flush (see _limit_fetches).
        self.fetch_limit = max(
            sync.fetch_concurrency, cobot_requests_per_minute * FLUSH_FETCH_SECONDS // 60
        )
        self.clock = clock
        self.backoff = Backoff(RETRY_BASE_SECONDS, sync.retry_max_seconds, jitter=0.5)
        self._wake = asyncio.Event()
        self._arrivals = 0
        self._recent_arrivals: deque[float] = deque(maxlen=sync.batch_size)
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
        interval = self.sync.flush_interval_seconds
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
                self.last_error = f"flush failed: {type(exc).__name__}"
                await _sleep_or_stop(stop, 5.0)

    async def _step(self, stop: asyncio.Event) -> None:
        batch_size = self.sync.batch_size
        events = await self.store.claim_due(batch_size, self.clock())
        if not events:
            next_due = await self.store.next_due_at()
            wait = IDLE_POLL_SECONDS if next_due is None else next_due - self.clock()
            await self._wait_for_work(stop, min(wait, IDLE_POLL_SECONDS))
            return
        if len(events) < batch_size:
            # Give a burst a moment to gather, so it costs one flush instead of many.
            oldest = min(event.received_at for event in events)
            remaining = oldest + self.sync.flush_interval_seconds - self.clock()
            if remaining > 0 and self._arrivals < batch_size:
                await self._wait_for_work(stop, remaining, until_full=True)
                return
        else:
            # A full batch, too, flushes at most once per interval: Google's 60 writes a
            # minute allow about one flush a second, so flushing faster in a burst only spends
            # the quota early and takes the event loop from the receiver. Whatever arrives
            # meanwhile is folded into the next flush (see _same_urls).
            interval = self.sync.flush_interval_seconds
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
            if not until_full or self._arrivals >= self.sync.batch_size:
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
        ready = [work for work in works if work.error is None]
        failures = [Failure("fetch", w.error, w.events) for w in works if w.error is not None]
        batches = await self._build_batches(ready)
        done_ids, states, write_failures = await self._write_all(batches, ready)
        failures += write_failures
        # Before anything is marked done, so a crash leaves rows the retry overwrites.
        await self.event_log.record(unmapped, ready, done_ids, failures)
        if unmapped:
            await self.store.complete([event.id for event in unmapped])
        if done_ids:
            await self.store.complete(done_ids, states)
        for failure in failures:
            await self._settle(failure)
        if done_ids:
            self.last_write_at = self.clock()
        reports = [batch.report for batch in batches.values() if batch.report is not None]
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
            fields["error"] = failures[-1].message
        log.log(
            logging.WARNING if failures else logging.INFO,
            "flush: %(events)d event(s) for %(urls)d URL(s): %(done)d done, %(retry)d to retry; "
            "%(rows)d row(s) written with %(sheets_requests)d Sheets request(s) (%(duration).2f s)"
            + ("; last error: %(error)s" if failures else ""),
            fields,
            extra={"fields": fields},
        )

    async def _record_flush(self, reports: list[UpsertReport], failures: Sequence[Failure]) -> None:
        """Leave for `syncd status` each worksheet's last successful write and the last error.

        One transaction per flush; a failure here costs only the status display, not data.
        """
        now = self.clock()
        writes = {r.sheet: LastWrite(now, r.updated + r.appended) for r in reports}
        error = LastError(now, failures[-1].message) if failures else None
        if not writes and error is None:
            return
        try:
            await self.store.meta.record_flush(writes, error)
        except SyncdError as exc:
            log.warning("could not record the flush for `syncd status`: %s", exc)

    def _group(self, events: Iterable[InboxEvent]) -> tuple[list[UrlWork], list[InboxEvent]]:
        by_url: dict[str, UrlWork] = {}
        unmapped: list[InboxEvent] = []
        for event in events:
            sheets = sheets_for(self.sheets, event.event, event.kind)
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
            self.sync.batch_size,
            self.clock(),
        )

    def _limit_fetches(self, works: list[UrlWork]) -> list[UrlWork]:
        """Keep one flush to about ten seconds of the Cobot budget; the rest waits its turn.

        Without this a burst of hundreds of URLs would hold every row back until the last
        fetch returned, minutes later under Cobot's 60/min limit. Only URLs fetched one by one
        count: a kind that fetch_many answers from a listing costs one request per chunk.
        """
        plan = plan_fetches(self.cobot, [w.ref for w in works if w.deletion is None])
        singles = {ref.url for ref in plan.singles}
        kept, fetches = [], 0
        for work in works:
            if work.deletion is None and work.ref.url in singles:
                if fetches >= self.fetch_limit:
                    continue
                fetches += 1
            kept.append(work)
        return kept

    async def _fetch_all(self, works: list[UrlWork]) -> None:
        """Fetch every non-deleted URL, a burst of one kind in as few requests as it allows."""
        wanted = [work for work in works if work.deletion is None]
        results = await fetch_many(
            self.cobot, [w.ref for w in wanted], concurrency=self.sync.fetch_concurrency
        )
        for work in wanted:
            result = results[work.ref.url]
            if isinstance(result, Fetched):
                work.fetched = result
            else:
                work.error = result

    async def _build_batches(self, works: list[UrlWork]) -> dict[str, SheetBatch]:
        batches: dict[str, SheetBatch] = {}
        for sheet in self.sheets:
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
        url = work.ref.url
        resource: Mapping[str, object] | None = None
        deleted_now: str | None = None
        if work.deletion is not None:
            resource = embedded_resource(EVENTS[work.deletion.event], work.deletion.body)
            deleted_now = deletion_stamp(datetime.fromtimestamp(work.deletion.received_at, UTC))
        elif work.fetched is not None and work.fetched.status == "gone":
            deleted_now = deletion_stamp(datetime.fromtimestamp(self.clock(), UTC))
        elif work.fetched is not None:
            resource = work.fetched.data
        row = mapped_row(
            batch.sheet,
            url,
            resource,
            self.tz,
            flagged_at=known.deleted_at if known else None,
            deleted_now=deleted_now,
        )
        if known is not None and known.fingerprint == row.fingerprint:
            batch.unchanged.add(url)
        batch.rows[url] = row.cells
        batch.states[url] = RowState(fingerprint=row.fingerprint, deleted_at=row.deleted_at)

    async def _write_all(
        self, batches: Mapping[str, SheetBatch], works: list[UrlWork]
    ) -> tuple[list[int], dict[str, dict[str, RowState]], list[Failure]]:
        """Upsert each worksheet's rows; a URL is done once every worksheet it goes to is."""
        written: set[tuple[str, str]] = set()
        states: dict[str, dict[str, RowState]] = {}
        errors: dict[str, SyncdError] = {}
        for title, batch in batches.items():
            try:
                batch.report = await self.writer.upsert(
                    batch.sheet, batch.rows, only_if_missing=batch.unchanged
                )
            except SyncdError as exc:
                errors[title] = exc
                log.warning("writing %s failed: %s", title, exc)
                continue
            self.metrics.events_processed.inc(
                sum(1 for w in works if batch.sheet in w.sheets for _ in w.events), sheet=title
            )
            states[title] = batch.states
            written.update((title, url) for url in batch.rows)
        done: list[int] = []
        held: dict[str, list[InboxEvent]] = defaultdict(list)
        for work in works:
            missing = [s.title for s in work.sheets if (s.title, work.ref.url) not in written]
            if missing:
                held[missing[0]].extend(work.events)
            else:
                done.extend(work.ids)
        return done, states, [Failure("write", errors[t], events) for t, events in held.items()]

    async def _settle(self, failure: Failure) -> None:
        """Do with a failure's events what its error says (see ``failure_action``)."""
        self.last_error = failure.message
        self.metrics.events_failed.inc(len(failure.events), stage=failure.stage)
        by_action: dict[Action, list[InboxEvent]] = defaultdict(list)
        for event in failure.events:
            by_action[failure_action(event, failure.error, self.sync.max_attempts)].append(event)
        if dead := by_action[Action.DEAD_LETTER]:
            self.metrics.events_dead_lettered.inc(len(dead))
            log.error(
                "%d event(s) dead-lettered: %s (see `syncd status`, `syncd replay`)",
                len(dead),
                failure.message,
            )
            await self.store.dead_letter([e.id for e in dead], failure.message)
        if paused := by_action[Action.PAUSE]:
            log.error(
                "%d event(s) held until this is fixed (no attempt counted): %s",
                len(paused),
                failure.message,
            )
            pause = min(PAUSE_SECONDS, self.sync.retry_max_seconds)
            await self.store.postpone([e.id for e in paused], failure.message, self.clock() + pause)
        by_attempt: dict[int, list[int]] = defaultdict(list)
        for event in by_action[Action.RETRY]:
            by_attempt[event.attempts + 1].append(event.id)
        for attempt, ids in by_attempt.items():
            delay = self.backoff.delay(attempt)
            await self.store.reschedule(ids, failure.message, self.clock() + delay)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
