"""When a flush starts: at once while the request budgets are plentiful, paced as they run low.

A lone change should reach the sheet in about two round trips, so an idle pipeline flushes a
new event at once, and events arriving while a flush is in flight simply wait for the next
one. At a steady rate that would spend Google's 60 requests a minute (and Cobot's) early,
and then every flush would queue for a budget slot, delaying them all by seconds. So once
less than ``EAGER_QUOTA_SHARE`` of a budget is left, the next flush starts only when the
budgets have earned back what the last one spent: the events gather meanwhile, a rising rate
costs fewer, larger flushes, and latency stays flat instead of growing with a queue.

A flood of webhooks is told apart by the events already waiting: more than one round of
fetches gathers for a flush interval, as before, so a burst costs a few large flushes and
the receiver, sharing the event loop, keeps answering quickly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from syncd.config.settings import SyncSettings
from syncd.core.budget import RequestBudget

#: Share of every budget left above which a flush starts at once.
EAGER_QUOTA_SHARE = 0.5
#: Paced flushes earn back more than they spent: the requests spent while flushes were
#: eager are still in the window and must drain, and some requests no flush counted.
PACE_MARGIN = 1.2
#: Longest, in flush intervals, pacing holds a flush back.
MAX_PACE_INTERVALS = 10.0


class Pacer:
    """Paces flushes by what the last one spent of the request budgets."""

    def __init__(
        self,
        budgets: Sequence[RequestBudget],
        sync: SyncSettings,
        clock: Callable[[], float],
    ) -> None:
        self._budgets = tuple(budgets)
        self._sync = sync
        self._clock = clock
        self._started_at = float("-inf")
        self._taken_at_start = [0] * len(self._budgets)

    def started(self) -> None:
        """A flush starts now: what the budgets give from here on paces the next one."""
        self._started_at = self._clock()
        self._taken_at_start = [budget.taken for budget in self._budgets]

    def wait(self, waiting: int, oldest: float, retrying: bool = False) -> float:
        """Seconds from now until a flush of ``waiting`` events, the oldest received at
        ``oldest``, should start (zero or less: now). Events ``retrying`` a failure are not
        paced: their backoff spaces them already, and an outage must not slow it further."""
        interval = self._sync.flush_interval_seconds
        start = oldest + interval if waiting > self._sync.fetch_concurrency else oldest
        if not retrying and self.quota_left() <= EAGER_QUOTA_SHARE:
            pace = min(self._earn_back_seconds(), MAX_PACE_INTERVALS * interval)
            start = max(start, self._started_at + pace)
        return start - self._clock()

    def quota_left(self) -> float:
        """The share left of the scarcest budget."""
        return min((budget.share_left for budget in self._budgets), default=1.0)

    def _earn_back_seconds(self) -> float:
        """How long the budgets take to earn back what was spent since the last flush began."""
        return PACE_MARGIN * max(
            (
                (budget.taken - before) * budget.window / budget.per_window
                for budget, before in zip(self._budgets, self._taken_at_start, strict=True)
            ),
            default=0.0,
        )
