"""Wiring of the daemon: receiver, worker, scheduler and their clean shutdown.

Start-up order matters: the inbox opens first (nothing can be acknowledged without it), the
HTTP listener second (so Cobot's deliveries find a live receiver), and only then are the
subscriptions reconciled. Shutdown runs in reverse: stop accepting, let in-flight requests
and the current flush finish (bounded), close the clients, close the store. Whatever is not
finished stays pending in the inbox and is processed on the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack, suppress
from zoneinfo import ZoneInfo

from aiohttp import web

from syncd.cobot.client import CobotClient
from syncd.cobot.spaces import cobot_clients
from syncd.cobot.subscriptions import reconcile
from syncd.config.cron import cron_trigger
from syncd.config.settings import Settings
from syncd.core.errors import SyncdError
from syncd.core.metrics import Metrics
from syncd.core.redaction import Redactor
from syncd.core.retry import Backoff
from syncd.engine.eventlog import EventLog, event_log_worksheet
from syncd.engine.rerender import Rerender
from syncd.engine.resync import Resync
from syncd.engine.resync_plan import ScheduledResync, resync_schedule
from syncd.engine.worker import Worker
from syncd.intake.receiver import build_receiver_app, web_server_kwargs, web_site_kwargs
from syncd.ops.health import FlowState, add_health_routes
from syncd.ops.notify import SystemdNotifier, watchdog_loop
from syncd.ops.scheduler import ScheduledJob, build_scheduler, every
from syncd.sheets.transport import DEFAULT_BACKOFF
from syncd.sheets.writer import SheetsWriter
from syncd.store.budgets import sheets_budgets
from syncd.store.database import Store
from syncd.store.filelock import sheets_lock_path
from syncd.store.meta import SubscriptionCheck

log = logging.getLogger("syncd.daemon")

#: How long shutdown waits for the current flush before leaving it to the next start.
DRAIN_TIMEOUT_SECONDS = 30.0
DONE_EVENT_RETENTION_SECONDS = 7 * 24 * 3600
#: How often a re-render that failed (or a mapping that changed) is looked at again.
RERENDER_RETRY_MINUTES = 5
#: How often number formats, header style and the highlight rule are checked in every worksheet.
PRESENTATION_CHECK_MINUTES = 60


class ListenError(SyncdError):
    """The receiver could not bind its address."""


async def run_daemon(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain and return."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    store = Store.open(settings.state_dir)
    notifier = SystemdNotifier()
    try:
        await store.adopt_unattributed(settings.spaces[0].subdomain)
        async with AsyncExitStack() as stack:
            cobot = await stack.enter_async_context(
                cobot_clients(settings.spaces, settings.state_dir, metrics=metrics)
            )
            sheets = SheetsWriter(
                settings.google,
                metrics,
                **sheets_budgets(settings.state_dir, settings.google),
                lock_path=sheets_lock_path(settings.state_dir),
                backoff=sheets_backoff(settings.sync.retry_max_seconds),
                stored_rows=store.written_rows,
            )
            stack.callback(sheets.close)
            worker = build_worker(settings, store, cobot, sheets, metrics)
            runners = await _start_http(settings, store, metrics, worker)
            scheduler = build_scheduler(_jobs(settings, store, cobot, sheets), settings.timezone)
            scheduler.start()
            worker_task = asyncio.create_task(worker.run(stop), name="worker")
            summary = f"{len(settings.sheets)} worksheet(s), {len(settings.events)} event(s)"
            log.info("cobot-syncd is running: %s", summary)
            # Everything loaded so far lives as long as the process: exempt it from the
            # cyclic GC, whose full collections otherwise scan it all and pause the receiver.
            gc.freeze()
            notifier.ready(f"serving webhooks; {summary}")

            async def healthy() -> bool:
                await store.stats()
                return not worker_task.done()

            watchdog = asyncio.create_task(watchdog_loop(notifier, healthy, stop))
            try:
                await stop.wait()
                log.info("stopping: no new webhooks are accepted; finishing the current flush")
            finally:
                stop.set()
                notifier.stopping("draining the current flush")
                scheduler.shutdown(wait=False)
                for runner in runners:
                    await runner.cleanup()
                await _drain(worker_task)
                watchdog.cancel()
    finally:
        await store.close()
        notifier.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


def build_worker(
    settings: Settings,
    store: Store,
    cobot: Mapping[str, CobotClient],
    sheets: SheetsWriter,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> Worker:
    """The worker, and its event log, each given the parts of the settings it uses."""
    tz = ZoneInfo(settings.timezone)
    event_log = EventLog(
        event_log_worksheet(settings.event_log_sheet, settings.sheets),
        sheets,
        tz,
        settings.sync.max_attempts,
        Redactor(settings.secret_values()),
    )
    return Worker(
        settings.sync,
        settings.sheets,
        tz,
        store,
        cobot,
        sheets,
        metrics,
        event_log,
        cobot_requests_per_minute=settings.cobot.requests_per_minute,
        clock=clock,
    )


def sheets_backoff(retry_max_seconds: float) -> Backoff:
    """The writer's retries within one flush wait no longer than sync.retry_max_seconds."""
    return dataclasses.replace(
        DEFAULT_BACKOFF, max_seconds=min(DEFAULT_BACKOFF.max_seconds, retry_max_seconds)
    )


async def _start_http(
    settings: Settings, store: Store, metrics: Metrics, worker: Worker
) -> list[web.AppRunner]:
    app = build_receiver_app(
        settings.webhook, settings.cobot, settings.sheets, store, metrics, on_stored=worker.wake
    )
    flow = FlowState(
        last_write_at=lambda: worker.last_write_at,
        last_error=lambda: worker.last_error,
        pauses=lambda: worker.pauses.current,
        started_at=time.time(),
    )
    health_app = app
    if settings.health.listen is not None:
        health_app = web.Application()
    add_health_routes(health_app, settings.health, store, metrics, flow)
    listeners = [(app, (settings.webhook.listen_host, settings.webhook.listen_port))]
    if health_app is not app and settings.health.listen is not None:
        listeners.append((health_app, settings.health.listen))
    runners: list[web.AppRunner] = []
    for application, (host, port) in listeners:
        runner = web.AppRunner(application, **web_server_kwargs())
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, **web_site_kwargs()).start()
        except OSError as exc:
            await runner.cleanup()
            for started in runners:
                await started.cleanup()
            raise ListenError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (is "
                f"another process using it? change webhook.listen)"
            ) from None
        log.info("listening on %s:%d", host, port)
        runners.append(runner)
    return runners


def _jobs(
    settings: Settings, store: Store, cobot: Mapping[str, CobotClient], sheets: SheetsWriter
) -> list[ScheduledJob]:
    redact = Redactor(settings.secret_values()).redact

    async def record_check(space: str, summary: str | None, errors: list[str]) -> None:
        """Leave the outcome for `syncd status` (Cobot's error texts may quote a callback URL)."""
        check = SubscriptionCheck(time.time(), summary, [redact(e) for e in errors])
        await store.meta.record_subscription_check(space, check)

    started = False
    several = len(settings.spaces) > 1

    async def check_subscriptions() -> None:
        # The start-up run keeps a rotated-out secret's subscriptions alive until the next
        # check, so Cobot's retries of deliveries that failed during the restart still land.
        # A space that fails does not keep the others from being checked.
        nonlocal started
        retire_previous, started = started, True
        failure: SyncdError | None = None
        for space in settings.spaces:
            client = cobot[space.subdomain]
            try:
                report = await reconcile(settings, space, client, retire_previous=retire_previous)
            except SyncdError as exc:
                await record_check(space.subdomain, None, [str(exc)])
                failure = exc
                continue
            await record_check(space.subdomain, report.summary(), report.errors)
            log.info("%s%s", f"{space.subdomain}: " if several else "", report.summary())
        if failure is not None:
            raise failure

    async def prune() -> None:
        await store.prune_done(DONE_EVENT_RETENTION_SECONDS)

    return [
        ScheduledJob(
            "subscriptions",
            check_subscriptions,
            every(settings.sync.subscription_check_minutes),
            run_at_start=True,
        ),
        ScheduledJob("prune-inbox", prune, every(60)),
        _rerender_job(settings, store, sheets),
        _presentation_job(settings, sheets),
        *_resync_jobs(settings, store, cobot, sheets),
    ]


def _rerender_job(settings: Settings, store: Store, sheets: SheetsWriter) -> ScheduledJob:
    """Rows rendered again from the local copy when the mapping changed (engine/rerender.py):
    at start, and again every few minutes until it succeeded (Google may be down at start);
    once done, each run costs a meta read per worksheet."""
    rerender = Rerender(
        settings.sheets,
        settings.timezone,
        store,
        sheets,
        default_space=settings.spaces[0].subdomain,
    )

    async def run() -> None:
        await rerender.run()

    return ScheduledJob("rerender", run, every(RERENDER_RETRY_MINUTES), run_at_start=True)


def _presentation_job(settings: Settings, sheets: SheetsWriter) -> ScheduledJob:
    """Number formats, the header's style and the highlight rule kept in place: a person who
    cleared them gets them back at start and within the hour (1 read per worksheet)."""

    async def run() -> None:
        for sheet in settings.sheets:
            await sheets.check_presentation(sheet)

    return ScheduledJob("presentation", run, every(PRESENTATION_CHECK_MINUTES), run_at_start=True)


def _resync_jobs(
    settings: Settings, store: Store, cobot: Mapping[str, CobotClient], sheets: SheetsWriter
) -> list[ScheduledJob]:
    """The scheduled re-syncs (``resync_schedule``) of every space; one missed while down
    runs at start."""
    tz = ZoneInfo(settings.timezone)
    engines = {
        space.subdomain: Resync(settings.resync, space, tz, store, cobot[space.subdomain], sheets)
        for space in settings.spaces
    }
    planned = resync_schedule(settings.sheets, settings.resync, list(engines))
    return [_resync_job(engines[each.space], each, tz) for each in planned]


def _resync_job(engine: Resync, planned: ScheduledResync, tz: ZoneInfo) -> ScheduledJob:
    trigger = cron_trigger(planned.schedule, tz)
    started = False

    async def run() -> None:
        nonlocal started
        if not started:
            started = True
            if not await engine.missed_run(planned.sheet, planned.mode, trigger):
                return
            log.info(
                "%s: running the %s re-sync missed while down", planned.sheet.title, planned.mode
            )
        await engine.run_sheet(planned.sheet, planned.mode)

    return ScheduledJob(planned.name, run, trigger, run_at_start=True)


async def _drain(worker_task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(worker_task), DRAIN_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning(
            "the current flush did not finish in %.0f s; its events stay pending and "
            "are processed on the next start",
            DRAIN_TIMEOUT_SECONDS,
        )
        worker_task.cancel()
        with suppress(asyncio.CancelledError):
            await worker_task
