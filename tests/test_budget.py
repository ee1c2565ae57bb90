"""The request budget on virtual time: window, urgent-first order and Retry-After pauses.

Each test runs on a loop whose clock jumps to the next timer, and the budget reads that clock,
so "waits until the oldest request leaves the 60 s window" is asserted exactly and instantly.
"""

from __future__ import annotations

import asyncio

import pytest

from syncd.core.budget import RequestBudget
from tests.virtual_time import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


def budget(per_window: int, window: float = 60.0) -> RequestBudget:
    return RequestBudget(per_window, window, clock=asyncio.get_running_loop().time)


async def acquire_at(limit: RequestBudget, start: float, urgent: bool = True) -> float:
    """Wait until ``start``, take a slot and return the (virtual) time it was granted."""
    await asyncio.sleep(start - now())
    await limit.acquire(urgent=urgent)
    return now()


def test_requests_within_the_limit_go_at_once() -> None:
    async def main() -> list[float]:
        limit = budget(3)
        return [await acquire_at(limit, 0.0) for _ in range(3)]

    assert run_virtual(main()) == [0.0, 0.0, 0.0]


def test_the_next_request_waits_until_the_oldest_leaves_the_window() -> None:
    async def main() -> list[float]:
        limit = budget(3)
        first = [await acquire_at(limit, start) for start in (0.0, 10.0, 20.0)]
        # Two more at t=25: the 4th may go when t=0 leaves the window, the 5th when t=10 does.
        later = await asyncio.gather(acquire_at(limit, 25.0), acquire_at(limit, 25.0))
        return first + sorted(later)

    granted = run_virtual(main())
    assert granted[:3] == [0.0, 10.0, 20.0]
    assert granted[3:] == [pytest.approx(60.0, abs=0.1), pytest.approx(70.0, abs=0.1)]


def test_the_window_is_sliding_not_a_fixed_minute() -> None:
    async def main() -> tuple[float, int]:
        limit = budget(2)
        await acquire_at(limit, 0.0)
        await acquire_at(limit, 59.0)
        # At t=61 only the request from t=59 is still in the window.
        third = await acquire_at(limit, 61.0)
        return third, limit.used_in_window

    assert run_virtual(main()) == (61.0, 2)


def test_an_urgent_waiter_overtakes_an_earlier_background_one() -> None:
    async def main() -> list[tuple[str, float]]:
        limit = budget(1)
        await acquire_at(limit, 0.0)
        order: list[tuple[str, float]] = []

        async def waiter(name: str, start: float, urgent: bool) -> None:
            order.append((name, await acquire_at(limit, start, urgent=urgent)))

        await asyncio.gather(waiter("background", 1.0, False), waiter("urgent", 2.0, True))
        return order

    [(first, first_at), (second, second_at)] = run_virtual(main())
    assert (first, second) == ("urgent", "background")
    assert first_at == pytest.approx(60.0, abs=0.1)
    assert second_at == pytest.approx(120.0, abs=0.1)


def test_background_work_goes_when_no_urgent_work_waits() -> None:
    async def main() -> float:
        limit = budget(1)
        await acquire_at(limit, 0.0)
        return await acquire_at(limit, 1.0, urgent=False)

    assert run_virtual(main()) == pytest.approx(60.0, abs=0.1)


def test_retry_after_pauses_every_caller_waiting_or_new() -> None:
    async def main() -> list[float]:
        limit = budget(100)
        await acquire_at(limit, 0.0)
        limit.pause_for(30.0)
        # A shorter later pause never shortens the longer one.
        limit.pause_for(5.0)
        return sorted(
            await asyncio.gather(
                acquire_at(limit, 0.0),
                acquire_at(limit, 0.0, urgent=False),
                acquire_at(limit, 20.0),
            )
        )

    granted = run_virtual(main())
    assert all(at >= 30.0 for at in granted)
    assert granted == [pytest.approx(30.0, abs=0.1)] * 3


def test_a_pause_ends_and_the_window_still_applies() -> None:
    async def main() -> list[float]:
        limit = budget(1)
        limit.pause_for(10.0)
        return [await acquire_at(limit, 0.0), await acquire_at(limit, 0.0)]

    granted = run_virtual(main())
    assert granted == [pytest.approx(10.0, abs=0.1), pytest.approx(70.0, abs=0.1)]
