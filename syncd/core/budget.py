"""A shared request budget: at most N requests in any sliding window, urgent work first.

Cobot (60/min per user) and Google Sheets (60 reads and 60 writes/min per user) count requests
per minute. Every caller in the daemon that talks to one API draws from the same budget, so
webhook fetches, re-syncs and backfills together never exceed the quota, and webhook work
(``urgent=True``) is served before background work whenever both are waiting.

Other processes on the same ``state_dir`` (``syncd backfill``, ``syncd check-config``) spend
the same quota: a budget given a ``SharedWindow`` also records each request, and each
Retry-After pause, where they all look, and waits for a slot there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

#: One second longer than the APIs' minute: a server counts a request when it arrives, so a
#: request sent right at the edge of our window (after waiting for a connection, say) could
#: otherwise land inside the server's minute.
DEFAULT_WINDOW_SECONDS = 61.0


class SharedWindow(Protocol):
    """One API's recent requests and pause as every process using it records them."""

    def wait(self, per_window: int, window: float) -> float:
        """Seconds until a slot is free across all processes (0 when one is)."""
        ...

    def take(self, per_window: int, window: float) -> float:
        """Take a slot if one is free and return 0; otherwise take none and return the wait."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every process back for ``seconds`` from now."""
        ...


class RequestBudget:
    def __init__(
        self,
        per_window: int,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedWindow | None = None,
    ) -> None:
        if per_window <= 0:
            raise ValueError("per_window must be positive")
        self.per_window = per_window
        self.window = window_seconds
        self._clock = clock
        self._sent: deque[float] = deque()
        #: Slots taken since the budget was made (the worker paces flushes by it).
        self.taken = 0
        self._paused_until = 0.0
        self._urgent_waiting = 0
        self._changed = asyncio.Event()
        self._shared = shared

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def delay(self) -> float:
        """Seconds until one more request may be sent (0 when it may go now)."""
        wait = self._local_delay()
        if self._shared is not None and wait <= 0:
            wait = self._shared.wait(self.per_window, self.window)
        return wait

    def _local_delay(self) -> float:
        """The wait this process's own requests and pauses impose."""
        now = self._clock()
        self._prune(now)
        wait = max(0.0, self._paused_until - now)
        if len(self._sent) >= self.per_window:
            wait = max(wait, self._sent[0] + self.window - now)
        return wait

    async def acquire(self, urgent: bool = True) -> None:
        """Wait for a slot and take it."""
        if urgent:
            self._urgent_waiting += 1
        try:
            while True:
                wait = self._local_delay()
                if wait <= 0 and (urgent or self._urgent_waiting == 0):
                    # One look at the shared window per slot taken: it takes it if free.
                    if self._shared is not None:
                        wait = self._shared.take(self.per_window, self.window)
                    if wait <= 0:
                        self._sent.append(self._clock())
                        self.taken += 1
                        return
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=max(wait, 0.05))
        finally:
            if urgent:
                self._urgent_waiting -= 1
                self._changed.set()

    def pause_for(self, seconds: float) -> None:
        """Hold every caller back, e.g. for the server's Retry-After after a 429."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        if self._shared is not None:
            self._shared.pause(seconds)

    @property
    def share_left(self) -> float:
        """The share (0..1) of the window's requests this process has not spent yet."""
        return max(0.0, 1 - self.used_in_window / self.per_window)

    @property
    def used_in_window(self) -> int:
        self._prune(self._clock())
        return len(self._sent)
