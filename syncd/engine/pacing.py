"""When a flush starts: at once while the request budgets have room, then at an even pace.

A lone change should reach the sheet in about two round trips, so an idle pipeline flushes a
new event at once, and events arriving while a flush is in flight simply wait for the next
one. At a steady rate, flushing that eagerly would spend Google's 60 requests a minute (and
Cobot's) early, and then every flush would queue for a slot of the budget's window, delaying
them all by seconds. So each budget is paced as a token bucket: it earns back
``SUSTAINED_SHARE`` of its quota's rate and holds at most the rest of a window's requests, a
small burst. Once a budget has spent its burst, flushes are spaced by what a flush has lately
cost it, at the rate it earns: a rising rate costs fewer, larger flushes, evenly spaced (an
event's wait is at most one spacing, not a long gap after a short one), and the window,
which counts every request of the last minute (start-up and re-syncs included), never fills.
Requests spent between flushes (subscription checks, re-syncs) lower the bucket; a flush
waits while the bucket owes more than a burst.

A flood of webhooks is told apart by the events already waiting: more than one round of
fetches gathers for a flush interval, as before, so a burst costs a few large flushes and
the receiver, sharing the event loop, keeps answering quickly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from syncd.config.settings import SyncSettings
from syncd.core.budget import RequestBudget

#: Share of a quota's rate flushes may spend for as long as a stream lasts; the rest of the
#: window is the burst an idle pipeline may spend at once.
SUSTAINED_SHARE = 0.9
#: Longest, in flush intervals, pacing holds an event back.
MAX_PACE_INTERVALS = 10.0


class _Bucket:
    """One budget as a token bucket, fed by what the budget counts as taken."""

    def __init__(self, budget: RequestBudget, now: float) -> None:
        self._budget = budget
        self.rate = SUSTAINED_SHARE * budget.per_window / budget.window
        self.capacity = max(1.0, budget.per_window - self.rate * budget.window)
        self._tokens = self.capacity
        self._taken = budget.taken
        self._at = now
        #: Requests a flush spent of this budget, on average of late (halved each flush).
        self.cost = 1.0
        self._taken_at_start = budget.taken

    def wait(self, now: float, since_start: float) -> float:
        """Seconds until the next flush, ``since_start`` after the last one started."""
        earned = max(0.0, now - self._at) * self.rate
        spent = self._budget.taken - self._taken
        self._tokens = min(self.capacity, self._tokens + earned) - spent
        self._at, self._taken = max(now, self._at), self._budget.taken
        if self._tokens > self.capacity - 0.5:
            return 0.0  # idle: the burst is there to spend
        spacing = self.cost / self.rate - since_start
        owed = (1 - self.capacity - self._tokens) / self.rate
        return max(0.0, spacing, owed)

    def started(self) -> None:
        self._taken_at_start = self._budget.taken

    def finished(self) -> None:
        self.cost = (self.cost + self._budget.taken - self._taken_at_start) / 2


class Pacer:
    """Paces flushes by what the request budgets earn back and what a flush costs them."""

    def __init__(
        self,
        budgets: Sequence[RequestBudget],
        sync: SyncSettings,
        clock: Callable[[], float],
    ) -> None:
        self._sync = sync
        self._clock = clock
        self._buckets = [_Bucket(budget, clock()) for budget in budgets]
        self._started_at = float("-inf")

    def started(self) -> None:
        """A flush starts now."""
        self._started_at = self._clock()
        for bucket in self._buckets:
            bucket.started()

    def finished(self) -> None:
        """The flush is over: what it spent paces the next ones."""
        for bucket in self._buckets:
            bucket.finished()

    def wait(self, waiting: int, oldest: float, retrying: bool = False) -> float:
        """Seconds from now until a flush of ``waiting`` events, the oldest received at
        ``oldest``, should start (zero or less: now). Events ``retrying`` a failure are not
        paced: their backoff spaces them already, and an outage must not slow it further."""
        now = self._clock()
        interval = self._sync.flush_interval_seconds
        start = oldest + interval if waiting > self._sync.fetch_concurrency else oldest
        if not retrying:
            since = now - self._started_at
            pace = max((bucket.wait(now, since) for bucket in self._buckets), default=0.0)
            start = max(start, min(now + pace, oldest + MAX_PACE_INTERVALS * interval))
        return start - now
