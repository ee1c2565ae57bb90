"""The request budget shared by every process on one state_dir (store/budgets.py).

Two budgets over one file stand for two processes: what one spends or pauses, the other waits
for. Both read the same virtual clock, as processes read the same wall clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from syncd.core.budget import RequestBudget
from syncd.store.budgets import FileWindow, shared_budget
from tests.virtual_time import run_virtual


def pair(path: Path, per_window: int) -> tuple[RequestBudget, RequestBudget]:
    clock = asyncio.get_running_loop().time
    return tuple(  # type: ignore[return-value]
        RequestBudget(per_window, 60.0, clock=clock, shared=FileWindow(path, clock=clock))
        for _ in range(2)
    )


def test_two_processes_together_stay_within_one_window(tmp_path: Path) -> None:
    async def scenario() -> list[float]:
        first, second = pair(tmp_path / "budget-cobot.json", 3)
        for _ in range(2):
            await first.acquire()
        await second.acquire()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await second.acquire()  # the shared window is full: waits for the oldest to leave
        return [loop.time() - started, first.delay(), second.used_in_window]

    waited, delay, used = run_virtual(scenario())
    assert waited == 60.0
    assert delay == 0.0  # the oldest left the window; a slot is free again
    assert used == 1  # its own first request left the window too


def test_a_retry_after_in_one_process_pauses_the_other(tmp_path: Path) -> None:
    async def scenario() -> float:
        first, second = pair(tmp_path / "budget-sheets-write.json", 60)
        first.pause_for(30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await second.acquire()
        return loop.time() - started

    assert run_virtual(scenario()) == 30.0


def test_a_damaged_file_counts_as_no_requests(tmp_path: Path) -> None:
    path = tmp_path / "budget-cobot.json"
    path.write_text("{not json")
    window = FileWindow(path, clock=lambda: 100.0)
    assert window.take(1, 60.0) == 0.0
    assert window.take(1, 60.0) == 60.0


def test_without_a_state_dir_the_budget_is_the_process_own(tmp_path: Path) -> None:
    budget = shared_budget(tmp_path / "missing", "cobot", 5)
    assert budget.delay() == 0.0
    assert not (tmp_path / "missing").exists()
