"""The worker: drains the inbox in batches through fetch -> map -> write.

One flush takes the due events, folds every event about one URL into one unit of work (one
fetch, one row per worksheet), and under its worksheets' locks decides the rows from the row
states (the ordering rule of mapping/rows.py; memberrows adds rows showing a changed member),
writes them in one request and saves their states; only then are the events marked done. A
crash therefore leaves the events pending, and the retry finds the rows by URL again.

A failed fetch or write leaves its events to what the error says (``Action``): a temporary
failure is retried with capped backoff for as long as it lasts, one that needs a person (a
revoked token, a spreadsheet not shared) holds the events without spending attempts and is
reported as a pause until a fetch or write succeeds again, and one tied to the event itself
is dead-lettered after ``sync.max_attempts``. A write refused for a batch is split in halves
until the refused rows are found, so one poisoned row never holds the others up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from syncd.cobot.client import CobotClient, Fetched
from syncd.config.settings import SheetSettings, SyncSettings
from syncd.core.errors import SyncdError
from syncd.core.events import EVENTS, embedded_resource
from syncd.core.metrics import Metrics
from syncd.engine import memberrows
from syncd.engine.eventlog import EventLog
from syncd.engine.localcopy import Subject, kept_copy, stamp_at
from syncd.engine.pacing import Pacer
from syncd.engine.rowplan import SheetBatch, write_batches
from syncd.engine.settle import RETRY_BASE_SECONDS, Settler
from syncd.engine.spaces import Spaces
from syncd.engine.work import Failure, UnexpectedError, UrlWork
from syncd.intake.resources import ref_of_url
from syncd.mapping.computed import NO_CONTEXT, RowContext
from syncd.mapping.rows import Observation, sheets_for
from syncd.sheets.reports import UpsertReport
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent
from syncd.store.meta import LastError, LastWrite

log = logging.getLogger("syncd.worker")

#: An idle worker still looks at the inbox this often, to notice events that another process
#: (``syncd replay``, a backfill) made due without waking it.
IDLE_POLL_SECONDS = 5.0
#: Rows mapped (about a millisecond's work) between two turns given to the event loop.
ROWS_PER_YIELD = 50
#: Longest a full batch waits, in flush intervals, for a flood of webhooks to subside.
MAX_YIELD_INTERVALS = 10
#: Seconds of the Cobot request budget one flush may spend on single fetches.
FLUSH_FETCH_SECONDS = 10


class Worker:
    """Flushes due events from the store through Cobot into the worksheets."""

    def __init__(
        self,
        sync: SyncSettings,
        sheets: Sequence[SheetSettings],
        tz: ZoneInfo,
        store: Store,
        cobot: Mapping[str, CobotClient],
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
        #: Each space's Cobot client, by subdomain.
        self.spaces = Spaces(cobot, store, concurrency=sync.fetch_concurrency)
        self.writer = writer
        self.metrics = metrics
        self.event_log = event_log
        #: Single fetches per flush (see _limit_fetches).
        self.fetch_limit = max(
            sync.fetch_concurrency, cobot_requests_per_minute * FLUSH_FETCH_SECONDS // 60
        )
        self.clock = clock
        self.settler = Settler(sync, store, metrics, clock)
        #: What is held for a person, by what it holds up (Cobot, a space's Cobot, or a
        #: worksheet's title).
        self.pauses = self.settler.pauses
        self._wake = asyncio.Event()
        self._arrivals = 0
        self._recent_arrivals: deque[float] = deque(maxlen=sync.batch_size)
        self._last_flush_at = float("-inf")
        self.pacer = Pacer([*writer.request_budgets(), *self.spaces.budgets()], sync, clock)
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
        await self.pauses.reset()
        while not stop.is_set():
            try:
                await self._step(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store failed, or a bug: log, back off, go on
                log.exception("the worker failed unexpectedly; trying again in 5 s")
                self.last_error = str(UnexpectedError(exc))
                await _sleep_or_stop(stop, RETRY_BASE_SECONDS)

    async def _step(self, stop: asyncio.Event) -> None:
        batch_size = self.sync.batch_size
        events = await self.store.claim_due(batch_size, self.clock())
        if not events:
            next_due = await self.store.next_due_at()
            wait = IDLE_POLL_SECONDS if next_due is None else next_due - self.clock()
            await self._wait_for_work(stop, min(wait, IDLE_POLL_SECONDS))
            return
        if len(events) < batch_size:
            # Events that arrived while the last flush was in flight are all here; more
            # gather only for a flood or as the request budgets run low (engine/pacing.py).
            oldest = min(event.received_at for event in events)
            remaining = self.pacer.wait(len(events), oldest, any(e.attempts for e in events))
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
        self.pacer.started()
        try:
            await self.flush(events)
        finally:
            self.pacer.finished()

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
        """Process one batch of due events end to end; an unforeseen exception cannot stall it.

        The batch is split in halves (whole URLs each) and each half flushed on its own, down
        to a single URL, whose events then spend an attempt like any refused event's. So the
        other events go through, and the poisoned one is dead-lettered after its attempts.
        """
        try:
            await self._flush(events)
        except SyncdError:
            raise  # foreseen, and not about these events (the store failed): run() waits
        except Exception as exc:
            urls = list(dict.fromkeys(event.url for event in events))
            if len(urls) == 1:
                log.exception("flush of %d event(s) for one URL failed", len(events))
                await self._settle(Failure("flush", UnexpectedError(exc), events))
                return
            log.exception("flush of %d URL(s) failed; flushing each half alone", len(urls))
            first = set(urls[: len(urls) // 2])
            await self.flush([e for e in events if e.url in first])
            await self.flush([e for e in events if e.url not in first])

    async def _flush(self, events: list[InboxEvent]) -> None:
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
        shown = await memberrows.kept_of_members_in(self.sheets, self.store, works)
        await self._fetch_all(works, shown)
        ready = [work for work in works if work.error is None]
        failures = [
            Failure("fetch", w.error, w.events, where=self.spaces.scope(w.space))
            for w in works
            if w.error is not None
        ]
        contexts = await self._keep_and_join(ready)
        batches = await self._build_batches(ready, contexts)
        failures += [Failure("map", w.error, w.events) for w in ready if w.error is not None]
        ready = [work for work in ready if work.error is None]
        rows_shown = memberrows.rows_of_changed_members
        member_rows = await rows_shown(self.sheets, self.spaces, shown, ready)
        for sheet in (s for s in self.sheets if s.title in member_rows):
            batches.setdefault(sheet.title, SheetBatch(sheet))
        done_ids, write_failures = await self._write_all(batches, ready, contexts, member_rows)
        failures += write_failures
        # Before anything is marked done, so a crash leaves rows the retry overwrites.
        await self.event_log.record(unmapped, ready, done_ids, failures)
        if unmapped:
            await self.store.complete([event.id for event in unmapped])
        if done_ids:
            await self.store.complete(done_ids)
        for failure in failures:
            await self._settle(failure)
        succeeded = [title for title, batch in batches.items() if batch.reports]
        fetched = {self.spaces.scope(w.space) for w in works if w.fetched}
        await self.pauses.end([*succeeded, *sorted(fetched)])
        if done_ids:
            self.last_write_at = self.clock()
        reports = [report for batch in batches.values() for report in batch.reports]
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
            space = self.spaces.space_of(event.space)
            sheets = sheets_for(self.sheets, event.event, event.kind, space)
            if not sheets:
                log.warning(
                    "event %s about a %s is not mapped to any worksheet", event.event, event.kind
                )
                unmapped.append(event)
                continue
            work = by_url.get(event.url)
            if work is None:
                ref = ref_of_url(event.kind, event.url)
                work = by_url[event.url] = UrlWork(ref=ref, events=[], sheets=[], space=space)
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
        singles = self.spaces.singles(w for w in works if w.deletion is None)
        kept, fetches = [], 0
        for work in works:
            if work.deletion is None and work.ref.url in singles:
                if fetches >= self.fetch_limit:
                    continue
                fetches += 1
            kept.append(work)
        return kept

    async def _fetch_all(self, works: list[UrlWork], shown: Container[str]) -> None:
        """Fetch every non-deleted URL, a burst of one kind in as few requests as it allows.

        A flush fetching in one round has the layouts it writes (its worksheets', and those
        ``shown`` a member of it) read meanwhile in one request: a lone change costs about one
        Cobot and one Sheets round trip instead of three in a row."""
        wanted = [work for work in works if work.deletion is None]
        fetching = self.spaces.fetch(wanted)
        if 0 < len(wanted) <= self.sync.fetch_concurrency:
            touched = [
                (sheet, [w.ref.url for w in works if sheet in w.sheets])
                for sheet in self.sheets
                if sheet.title in shown or any(sheet in w.sheets for w in works)
            ]
            results, _ = await asyncio.gather(fetching, self.writer.read_ahead(touched))
        else:
            results = await fetching
        for work in wanted:
            result = results[work.ref.url]
            if isinstance(result, Fetched):
                work.fetched = result
            else:
                work.error = result

    async def _keep_and_join(self, works: list[UrlWork]) -> dict[str, RowContext]:
        """Keep what this flush observed in the local copy, and join each row's member."""
        seen = {work.ref.url: (work, self._observation(work, NO_CONTEXT)) for work in works}
        await self.store.keep(
            kept_copy(work.ref, obs.resource, obs.observed_at, obs.deleted_now, work.space)
            for work, obs in seen.values()
        )
        subjects = {
            url: (work.space, Subject(work.ref.kind, obs.resource))
            for url, (work, obs) in seen.items()
        }
        return await self.spaces.contexts(self.sheets, subjects)

    @staticmethod
    def _observation(work: UrlWork, context: RowContext) -> Observation:
        """What this flush saw of the resource: a deletion's embedded data, or the fetch."""
        url = work.ref.url
        if work.deletion is not None:
            observed_at = work.deletion.received_at
            resource = embedded_resource(EVENTS[work.deletion.event], work.deletion.body)
            return Observation(url, resource, observed_at, stamp_at(observed_at), context)
        if work.fetched is None:
            raise AssertionError(f"{url} was neither fetched nor deleted")
        observed_at = work.fetched.observed_at
        if work.fetched.status == "gone":
            return Observation(url, None, observed_at, stamp_at(observed_at), context)
        return Observation(url, work.fetched.data, observed_at, None, context)

    async def _build_batches(
        self, works: list[UrlWork], contexts: Mapping[str, RowContext]
    ) -> dict[str, SheetBatch]:
        batches: dict[str, SheetBatch] = {}
        for sheet in self.sheets:
            urls = [w.ref.url for w in works if sheet in w.sheets]
            if not urls:
                continue
            known = await self.store.row_states(sheet.title, urls)
            batch = batches[sheet.title] = SheetBatch(sheet, known=known)
            for count, work in enumerate(w for w in works if sheet in w.sheets):
                try:
                    seen = self._observation(work, contexts.get(work.ref.url, NO_CONTEXT))
                    batch.decide(seen, self.tz, known.get(work.ref.url))
                except Exception as exc:  # data no rule foresaw: this URL fails, not the flush
                    log.exception("mapping %s for %s failed", work.ref.url, sheet.title)
                    work.error = UnexpectedError(exc)
                if count % ROWS_PER_YIELD == ROWS_PER_YIELD - 1:
                    await asyncio.sleep(0)  # the receiver shares this loop: let it answer
        return batches

    async def _decide_again(
        self, batch: SheetBatch, works: list[UrlWork], contexts: Mapping[str, RowContext]
    ) -> None:
        """Under the worksheet's lock: decide again each row whose state another writer (a
        re-sync, a backfill) saved since the batch was built, so no decision is stale."""
        urls = sorted(batch.settled)
        fresh = await self.store.row_states(batch.sheet.title, urls)
        for work in works:
            url = work.ref.url
            if url in urls and fresh.get(url) != batch.known.get(url):
                seen = self._observation(work, contexts.get(url, NO_CONTEXT))
                batch.decide(seen, self.tz, fresh.get(url))

    async def _write_all(
        self,
        batches: Mapping[str, SheetBatch],
        works: list[UrlWork],
        contexts: Mapping[str, RowContext],
        member_rows: Mapping[str, Sequence[memberrows.MemberRow]],
    ) -> tuple[list[int], list[Failure]]:
        """Upsert each worksheet's rows and save their states; a URL is done once every
        worksheet it goes to is."""
        written: set[tuple[str, str]] = set()
        errors: dict[tuple[str, str], SyncdError] = {}
        # Decide, write and save under the locks: see mapping/rows.py's ordering rule. All of
        # the flush's worksheets at once, so their rows can share one write.
        async with self.writer.locked(*batches):
            for batch in batches.values():
                await self._decide_again(batch, works, contexts)
                await memberrows.decide_member_rows(
                    batch, member_rows.get(batch.sheet.title, ()), self.store, self.tz
                )
            refusals = await write_batches(self.writer, list(batches.values()))
            for title, batch in batches.items():
                refused = refusals[title]
                saved = {u: s for u, s in batch.states.items() if u not in refused}
                await self.store.complete([], {title: saved})
        for title, batch in batches.items():
            refused = refusals[title]
            errors.update(((title, url), error) for url, error in refused.items())
            self.metrics.events_processed.inc(
                sum(
                    len(w.events)
                    for w in works
                    if batch.sheet in w.sheets
                    and w.ref.url in batch.rows
                    and w.ref.url not in refused
                ),
                sheet=title,
            )
            written.update((title, url) for url in batch.settled)
            written.difference_update((title, url) for url in refused)
        done: list[int] = []
        held: dict[tuple[str, int], list[InboxEvent]] = defaultdict(list)
        for work in works:
            missing = [s.title for s in work.sheets if (s.title, work.ref.url) not in written]
            if missing:
                held[missing[0], id(errors[missing[0], work.ref.url])].extend(work.events)
            else:
                done.extend(work.ids)
        return (
            done,
            [
                Failure("write", errors[title, events[0].url], events, where=title)
                for (title, _), events in held.items()
            ],
        )

    async def _settle(self, failure: Failure) -> None:
        """Do with a failure's events what its error says (see engine/settle.py)."""
        self.last_error = failure.message
        await self.settler.settle(failure)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
