"""One backoff rule and one Retry-After parser, with the numbers each client uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.core.retry import Backoff, parse_retry_after
from syncd.sheets.transport import DEFAULT_BACKOFF

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


def test_sheets_backoff_grows_is_jittered_and_capped() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (9, 32.0)]:
        delay = DEFAULT_BACKOFF.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert DEFAULT_BACKOFF.delay(1, retry_after=20.0) == 20.0
    assert DEFAULT_BACKOFF.delay(1, retry_after=600.0) == 32.0


@pytest.mark.parametrize(("jitter", "shortest"), [(1.0, 0.0), (0.5, 2.0), (0.0, 4.0)])
def test_jitter_is_the_random_share_of_the_delay(jitter: float, shortest: float) -> None:
    backoff = Backoff(base_seconds=1.0, max_seconds=30.0, jitter=jitter)
    assert backoff.delay(3, rand=lowest) == shortest
    assert backoff.delay(3, rand=highest) == 4.0


def test_full_jitter_spreads_retries_between_zero_and_the_delay() -> None:
    backoff = Backoff(base_seconds=0.5, max_seconds=30.0, jitter=1.0)
    delays = {backoff.delay(4) for _ in range(50)}
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert len(delays) > 1


def test_attempt_zero_and_huge_attempts_stay_in_bounds() -> None:
    backoff = Backoff(base_seconds=1.0, max_seconds=30.0)
    assert backoff.delay(0, rand=highest) == 1.0
    assert backoff.delay(10_000, rand=highest) == 30.0


def test_retry_after_is_a_floor_capped_by_the_longest_wait_honoured() -> None:
    backoff = Backoff(base_seconds=0.5, max_seconds=30.0, jitter=1.0)
    assert backoff.delay(1, retry_after=0.05, rand=lowest) == 0.05
    assert backoff.delay(1, retry_after=90.0) == 30.0
    longer = Backoff(0.5, 30.0, jitter=1.0, max_retry_after_seconds=120.0)
    assert longer.delay(1, retry_after=90.0) == 90.0
    assert longer.delay(1, retry_after=600.0) == 120.0
    assert longer.delay(1, retry_after=None, rand=lowest) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        ("Sun, 01 Jun 2025 12:00:30 GMT", 30.0),
        ("Sun, 01 Jun 2025 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
