"""Cron expressions: crontab's meaning (weekday 0 and 7 are Sunday), and six fields for seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from syncd.config.cron import cron_trigger

MONDAY = datetime(2025, 6, 16, 12, 0, tzinfo=UTC)


def fire_times(expression: str, count: int, start: datetime = MONDAY) -> list[datetime]:
    trigger = cron_trigger(expression, "UTC")
    times: list[datetime] = []
    previous, now = None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("1", ["Mon"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0,6", ["Sat", "Sun"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ],
)
def test_weekdays_count_from_sunday_as_in_crontab(weekday: str, days: list[str]) -> None:
    fired = {fire.strftime("%a") for fire in fire_times(f"30 3 * * {weekday}", 14)}
    assert fired == set(days)


def test_six_fields_put_seconds_first() -> None:
    times = fire_times("*/5 * * * * *", 3)
    assert [b - a for a, b in pairwise(times)] == [timedelta(seconds=5)] * 2
    assert all(t.second % 5 == 0 for t in times)


def test_schedules_run_in_the_configured_timezone() -> None:
    berlin = cron_trigger("30 3 * * *", "Europe/Berlin").get_next_fire_time(None, MONDAY)
    assert berlin is not None
    assert berlin.astimezone(UTC).hour == 1  # 03:30 in summer time


@pytest.mark.parametrize("expression", ["* * * *", "1 2 3 4 5 6 7", "61 * * * *", "0 0 * * 8"])
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(expression, "UTC")
