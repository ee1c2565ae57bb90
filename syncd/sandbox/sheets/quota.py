"""Why a Sheets call may fail before it does anything: per-minute quotas and injected faults.

Google counts reads and writes per user over a sliding minute and answers 429 with a
structured body once a quota is used up; retry code keys on that body, so it is reproduced
exactly, for real quota exhaustion and for injected 429s alike.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

from syncd.sandbox.sheets.errors import ApiError

PROJECT_NUMBER = "123456789012"


def quota_error(kind: str) -> ApiError:
    """The 429 Google sends when the per-user read or write quota is used up."""
    metric = "Read requests" if kind == "read" else "Write requests"
    limit_id = "ReadRequestsPerMinutePerUser" if kind == "read" else "WriteRequestsPerMinutePerUser"
    message = (
        f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per user' "
        f"of service 'sheets.googleapis.com' for consumer 'project_number:{PROJECT_NUMBER}'."
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "quota_metric": f"sheets.googleapis.com/{kind}_requests",
                "quota_limit": limit_id,
                "service": "sheets.googleapis.com",
                "consumer": f"projects/{PROJECT_NUMBER}",
            },
        }
    ]
    return ApiError(429, message, details)


class SlidingWindow:
    """Request times in a sliding window, for per-minute quotas."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def admit(self, limit: int | None, window: float, now: float) -> bool:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if limit is not None and len(self.times) >= limit:
            return False
        self.times.append(now)
        return True


def injected_fault(
    kind: str,
    scheduled: deque[int],
    rng: random.Random,
    error_rate: float,
    error_statuses: Sequence[int],
) -> ApiError | None:
    """The error a ``kind`` call fails with on purpose: the next ``scheduled`` status if any,
    else one of ``error_statuses`` at ``error_rate``. A 429 carries the quota body."""
    status = scheduled.popleft() if scheduled else None
    if status is None and error_rate > 0 and rng.random() < error_rate:
        status = rng.choice(error_statuses)
    if status is None:
        return None
    return quota_error(kind) if status == 429 else ApiError(status)


def slow_delay(rng: random.Random, slow_rate: float, slow_seconds: float) -> float:
    """Seconds to hold a response back: ``slow_seconds`` for ``slow_rate`` of the calls."""
    if slow_rate > 0 and rng.random() < slow_rate:
        return slow_seconds
    return 0.0
