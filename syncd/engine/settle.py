"""What becomes of the events a failed fetch or write held up: the error's action decides.

A temporary failure reschedules them with capped backoff, for as long as it lasts, counting
each attempt; one that needs a person holds them without counting and begins a pause; one
tied to the event itself retries it likewise until ``sync.max_attempts``, then dead-letters
it (see ``failure_action``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from syncd.config.settings import SyncSettings
from syncd.core.errors import Action
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff
from syncd.engine.pauses import Pauses
from syncd.engine.work import Failure, failure_action
from syncd.store.database import Store
from syncd.store.inbox import InboxEvent

log = logging.getLogger("syncd.worker")

RETRY_BASE_SECONDS = 5.0
#: Events held for a person are looked at again this often (at most sync.retry_max_seconds):
#: the pipeline resumes well within a minute of someone fixing the cause, at the cost of a
#: request or two a minute until then.
PAUSE_SECONDS = 30.0


class Settler:
    """Settles failures for the worker, and keeps the pauses they begin."""

    def __init__(
        self, sync: SyncSettings, store: Store, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self.sync = sync
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.backoff = Backoff(RETRY_BASE_SECONDS, sync.retry_max_seconds, jitter=0.5)
        self.pauses = Pauses(store, clock)

    async def settle(self, failure: Failure) -> None:
        """Do with a failure's events what its error says."""
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
            await self.pauses.begin(failure.where, failure.message)
        by_attempt: dict[int, list[int]] = defaultdict(list)
        for event in by_action[Action.RETRY]:
            by_attempt[event.attempts + 1].append(event.id)
        for attempt, ids in by_attempt.items():
            delay = self.backoff.delay(attempt)
            await self.store.reschedule(ids, failure.message, self.clock() + delay)
