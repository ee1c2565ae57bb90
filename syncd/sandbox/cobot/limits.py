"""Cobot's rate limits, and the latency and failures a test injects into API answers.

Cobot allows 60 requests a minute per token and 6 a minute for the membership list; a
request over either limit gets 429 with Retry-After. The knobs are the simulator's plain
attributes, read on every request, so a test may change them while the server runs.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Protocol

from syncd.sandbox.cobot.endpoints import ApiError

MEMBERSHIPS_LIST = "memberships_list"


class LimitKnobs(Protocol):
    """The simulator's attributes that shape limits and faults."""

    rate_limits: bool
    requests_per_window: int
    memberships_list_per_window: int
    rate_window_seconds: float
    latency_seconds: float
    latency_spread: float
    error_rate: float
    error_statuses: tuple[int, ...]


def spread_latency(rng: random.Random, seconds: float, spread: float) -> float:
    """One answer's delay: ``seconds`` times a factor drawn from 1 - spread to 1 + spread,
    as real APIs answer in a range around their typical latency, not in a fixed time."""
    return seconds * rng.uniform(1 - spread, 1 + spread) if spread else seconds


class SlidingWindowLimiter:
    """Counts admitted requests per (token, bucket) over the last `window` seconds.

    Cobot's limits are per user, whatever space is asked: simulators of several spaces may
    share one limiter (each runs on its own thread, hence the lock).
    """

    def __init__(self) -> None:
        self._hits: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def admit(self, token: str, limits: Mapping[str, int], window: float) -> int | None:
        """Record the request, or return whole seconds until every bucket has a free slot."""
        with self._lock:
            return self._admit(token, limits, window)

    def _admit(self, token: str, limits: Mapping[str, int], window: float) -> int | None:
        now = time.monotonic()
        waits = []
        for bucket, limit in limits.items():
            hits = self._hits[(token, bucket)]
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                waits.append(hits[len(hits) - limit] + window - now)
        if waits:
            return max(1, math.ceil(max(waits)))
        for bucket in limits:
            self._hits[(token, bucket)].append(now)
        return None

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


class Limits:
    """What stands between an authorized request and its answer: limits, delay, failure."""

    def __init__(
        self, knobs: LimitKnobs, seed: int, limiter: SlidingWindowLimiter | None = None
    ) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()
        self._limiter = limiter or SlidingWindowLimiter()
        self._fail_next: deque[int] = deque()
        self._fault_rng = random.Random(seed)

    def admit(self, token: str, bucket: str | None) -> None:
        """Count the request against its token (and bucket), or refuse it with 429."""
        knobs = self._knobs
        if not knobs.rate_limits:
            return
        limits = {"all": knobs.requests_per_window}
        if bucket == MEMBERSHIPS_LIST:
            limits[bucket] = knobs.memberships_list_per_window
        with self._lock:
            wait = self._limiter.admit(token, limits, knobs.rate_window_seconds)
        if wait is not None:
            raise ApiError(429, "Rate limit exceeded, retry later", {"Retry-After": str(wait)})

    async def inject_faults(self, faultable: bool) -> None:
        """fail_next hits any API call; error_rate only resource and list reads."""
        knobs = self._knobs
        if knobs.latency_seconds > 0:
            with self._lock:
                delay = spread_latency(self._fault_rng, knobs.latency_seconds, knobs.latency_spread)
            await asyncio.sleep(delay)
        with self._lock:
            forced = self._fail_next.popleft() if self._fail_next else None
            if forced is None and faultable and self._fault_rng.random() < knobs.error_rate:
                forced = self._fault_rng.choice(knobs.error_statuses)
        if forced is not None:
            raise ApiError(forced, "Simulated failure")

    def fail_next(self, n: int, status: int) -> None:
        with self._lock:
            self._fail_next.extend([status] * n)

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._limiter.reset()
