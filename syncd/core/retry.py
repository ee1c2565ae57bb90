"""When to try again: one backoff rule and one Retry-After parser for every client.

Cobot, Google and the worker all retry with jittered exponential backoff, so retrying callers
spread out instead of firing together, and all honour a server's ``Retry-After`` the same way.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff, capped, with a random share of each delay (jitter).

    ``jitter`` is the share of the delay that is random: 1.0 is "full jitter" (anywhere from 0
    to the delay), 0.5 waits between half and all of it. A server's Retry-After wins when it
    asks for longer, up to ``max_retry_after_seconds`` (by default the backoff's own cap): a
    client that waits less than asked only earns another refusal.
    """

    base_seconds: float
    max_seconds: float
    jitter: float = 0.5
    max_retry_after_seconds: float | None = None

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        # min() before the power would overflow a float for very large attempt counts.
        backoff = self.max_seconds if exponent > 60 else self.base_seconds * 2**exponent
        backoff = min(self.max_seconds, backoff)
        jittered = backoff * rand(1.0 - self.jitter, 1.0)
        longest_asked = (
            self.max_seconds
            if self.max_retry_after_seconds is None
            else self.max_retry_after_seconds
        )
        return max(jittered, min(retry_after or 0.0, longest_asked))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from now: a number, or an HTTP date; None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
