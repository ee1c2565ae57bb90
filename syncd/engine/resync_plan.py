"""What a re-sync reads and when: the kinds Cobot lists, date windows, which rows are a
space's, and the schedule.

Pure planning, no I/O: the engine (``syncd.engine.resync``) lists and writes what these say,
and the daemon turns the schedule into jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from syncd.config.settings import CobotSettings, ResyncSettings, SheetSettings
from syncd.intake.resources import InvalidResourceURL, parse_resource_url
from syncd.store.resources import Kept

log = logging.getLogger("syncd.resync")

Mode = Literal["backfill", "full", "recent"]

#: Bookings are made ahead of time: full re-syncs and backfills read this far ahead.
BOOKING_HORIZON_DAYS = 365
#: Kinds listed completely in one request; absence from the listing means deleted.
COMPLETE_KINDS = frozenset({"membership"})
#: Kinds listed by date windows.
WINDOWED_KINDS = frozenset({"invoice", "booking", "check_in"})
LISTED_KINDS = COMPLETE_KINDS | WINDOWED_KINDS


def unlisted_reason(sheet: SheetSettings) -> str:
    return f"Cobot has no list endpoint for {sheet.resource} resources; webhooks keep it in step"


def owns(space: CobotSettings, url: str, copy: Kept | None) -> bool:
    """Whether the row of ``url`` is ``space``'s: its local copy's space says; a row kept
    before spaces were recorded (or not kept at all) is the space's whose host its URL is on."""
    if copy is not None and copy.space:
        return copy.space == space.subdomain
    try:
        parse_resource_url(url, space)
    except InvalidResourceURL:
        return False
    return True


def record_name(sheet: SheetSettings, space: str) -> str:
    """The name a worksheet's re-sync records (runs, checkpoints, safety stops) are kept by in
    one space: ``space/title`` when several spaces are configured (the worksheet then has a
    Space column), so each space resumes and reports on its own; the title alone otherwise,
    as a single-space installation always kept them."""
    return f"{space}/{sheet.title}" if sheet.space_column and space else sheet.title


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The days from ``start`` up to, not including, ``end``."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def halves(self) -> tuple[Window, Window]:
        middle = self.start + timedelta(days=self.days // 2)
        return Window(self.start, middle), Window(middle, self.end)

    def __str__(self) -> str:
        return f"{self.start} to {self.last_day}"


@dataclass(frozen=True)
class Progress:
    """One listing step of one worksheet done: ``done`` of ``total`` windows listed.

    ``sheet`` names the worksheet as summaries do (with its space when several are configured).
    """

    sheet: str
    done: int
    total: int
    listed: int
    window: Window | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Span:
    """The days one run reads, both ends included."""

    since: date
    until: date

    def windows(self, window_days: int, start: date | None = None) -> list[Window]:
        """Consecutive windows of ``window_days`` from ``start`` (default: since) to until."""
        windows, first, end = [], start or self.since, self.until + timedelta(days=1)
        while first < end:
            stop = min(first + timedelta(days=window_days), end)
            windows.append(Window(first, stop))
            first = stop
        return windows


def default_span(
    resync: ResyncSettings,
    kind: str,
    mode: Mode,
    today: date,
    since: date | None = None,
    until: date | None = None,
) -> Span:
    """``history_days`` (recent: ``recent_days``) back; bookings also ahead.

    The day after today is included: a space east of UTC already dates its invoices by
    tomorrow while it is still today in UTC.
    """
    back = resync.recent_days if mode == "recent" else resync.history_days
    ahead = 1
    if kind == "booking":
        ahead = resync.recent_days if mode == "recent" else BOOKING_HORIZON_DAYS
    return Span(since or today - timedelta(days=back), until or today + timedelta(days=ahead))


# --------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledResync:
    """One re-sync the daemon runs on a cron schedule."""

    sheet: SheetSettings
    mode: Mode
    #: A cron expression (``config.cron``), in the configured time zone.
    schedule: str
    #: The subdomain of the space whose Cobot it reads ("": the one space there is).
    space: str = ""

    @property
    def name(self) -> str:
        return f"resync-{self.mode}:{record_name(self.sheet, self.space)}"


def resync_schedule(
    sheets: Iterable[SheetSettings], resync: ResyncSettings, spaces: Sequence[str] = ("",)
) -> list[ScheduledResync]:
    """Per worksheet and space it holds: the full re-sync on its schedule
    (``sheets.<title>.resync``, default ``resync.full_schedule``) and, for windowed kinds, the
    recent window on ``resync.recent_schedule``. ``spaces`` are the subdomains (the default:
    one space, unnamed). Each space is its own job, so one space's failure (a revoked token)
    holds up only its own re-syncs.
    """
    planned = []
    for sheet in sheets:
        if sheet.resource not in LISTED_KINDS:
            log.info("%s: no scheduled re-sync: %s", sheet.title, unlisted_reason(sheet))
            continue
        for space in spaces:
            if space and not sheet.holds(space):
                continue
            if sheet.resync:
                planned.append(ScheduledResync(sheet, "full", sheet.resync, space))
            if resync.recent_schedule and sheet.resource in WINDOWED_KINDS:
                planned.append(ScheduledResync(sheet, "recent", resync.recent_schedule, space))
    return planned
