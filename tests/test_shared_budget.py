"""Processes on one state_dir draw from one request budget, Retry-After pauses included.

Each process here is a real Python process taking slots from ``shared_budget`` with a window
far longer than the test, so nothing frees up while it runs: the slots granted are counted,
and any process that got more than the shared share shows up as a count, not as a timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Takes up to ``tries`` slots of a 5-per-10-minutes budget, giving up on a slot after
#: ``patience`` seconds; a positive ``pause`` first applies a Retry-After. Prints the count.
TAKER = """
import asyncio, sys
from pathlib import Path
from syncd.store.budgets import shared_budget

async def main(state_dir, tries, patience, pause):
    budget = shared_budget(Path(state_dir), "cobot", 5, 600.0)
    if pause:
        budget.pause_for(pause)
    granted = 0
    for _ in range(tries):
        try:
            await asyncio.wait_for(budget.acquire(), patience)
        except TimeoutError:
            break
        granted += 1
    print(granted)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
"""


def takers(state_dir: Path, *runs: tuple[int, float, float]) -> list[int]:
    """Start one process per (tries, patience, pause) at once; the slots each was granted."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, str(state_dir), *map(str, run)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * len(runs)
    return [int(output) for output in outputs]


def test_two_processes_together_get_one_budget_not_two(tmp_path: Path) -> None:
    granted = takers(tmp_path, (5, 3.0, 0), (5, 3.0, 0))
    assert sum(granted) == 5, granted


def test_a_later_process_finds_the_window_used_up(tmp_path: Path) -> None:
    assert takers(tmp_path, (4, 3.0, 0)) == [4]
    assert takers(tmp_path, (5, 2.0, 0)) == [1]


def test_a_retry_after_in_one_process_holds_back_the_others(tmp_path: Path) -> None:
    assert takers(tmp_path, (0, 1.0, 600.0)) == [0]
    assert takers(tmp_path, (1, 2.0, 0)) == [0]
