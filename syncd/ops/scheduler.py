"""Periodic jobs of the daemon, run by APScheduler on the daemon's own event loop.

Jobs never overlap themselves (``max_instances=1``) and a run missed while the machine slept
is done once, late, rather than several times in a row (``coalesce``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("syncd.scheduler")

Job = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    run: Job
    trigger: BaseTrigger
    run_at_start: bool = False


def every(minutes: float) -> IntervalTrigger:
    return IntervalTrigger(seconds=minutes * 60)


def build_scheduler(jobs: list[ScheduledJob], timezone: str = "UTC") -> AsyncIOScheduler:
    """A scheduler holding the given jobs; call ``start()`` inside the running loop."""
    scheduler = AsyncIOScheduler(timezone=timezone)
    for job in jobs:
        # APScheduler reads an explicit next_run_time=None as "paused", so only pass it
        # when the job should also run right away.
        start = {"next_run_time": datetime.now().astimezone()} if job.run_at_start else {}
        scheduler.add_job(
            _logged(job),
            job.trigger,
            id=job.name,
            name=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **start,
        )
    return scheduler


def _logged(job: ScheduledJob) -> Job:
    """A failing job is logged and retried at its next run; it never stops the scheduler."""

    async def run() -> None:
        try:
            await job.run()
        except Exception as exc:
            log.error("scheduled job %s failed: %s", job.name, exc)
            log.debug("scheduled job %s failure details", job.name, exc_info=True)

    return run
