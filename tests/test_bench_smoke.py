"""The benchmark keeps working: a tiny run of every scenario prints every figure.

Speed is never asserted here (shared machines are noisy); bench/run.py reports it. What is
asserted is that each scenario completes, prints its rows with a value, and writes the same
table with the machine it ran on to the results file; and that every acknowledged webhook
was stored, which is correctness, not speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_daemon import REPO

pytestmark = pytest.mark.e2e

TINY = (
    "--webhooks=200",
    "--intake-rounds=2",
    "--senders=10",
    "--steady-seconds=2",
    "--burst-events=40",
    "--burst-resources=10",
    "--scale-rows=2000",
    "--lone-changes=2",
    "--rerender-rows=200",
    "--settle-timeout=30",
)
API_USE = (
    "Sheets reads per event",
    "Sheets writes per event",
    "HTTP 429 from Sheets / Cobot",
)
STEADY = ("ack -> row visible p50 / p99", *API_USE, "Cobot requests per event")
FIGURES = {
    "intake": (
        "throughput, daemon",
        "throughput, bare aiohttp (ceiling)",
        "daemon / ceiling",
        "ack latency p50 / p95 / p99, daemon",
        "ack latency p50 / p95 / p99, ceiling",
        "ack latency p99, daemon / ceiling",
        "acks durable (inbox rows after the run)",
        "daemon CPU per webhook",
    ),
    "lone changes": (
        "ack -> value visible p50 / p90 / max",
        "floor: one Cobot GET + one Sheets write",
        "p50 / floor",
        *API_USE,
        "Cobot requests per event",
    ),
    "steady 1/s, an invoice run": STEADY,
    "steady 3/s, an invoice run": STEADY,
    "steady 1/s, half new memberships": STEADY,
    "burst": (
        "ack -> row visible p50 / p99",
        "all rows visible after (from the first webhook)",
        *API_USE,
        "Cobot requests per distinct resource",
    ),
    "scale": (
        "reads in one flush (ranges)",
        "rows written in one flush",
        "bytes of that flush (to / from Google)",
        "duration of that flush",
        "daemon peak RSS (VmHWM)",
    ),
    "re-render": (
        "rows filled",
        "Cobot requests for resources",
        "Sheets requests since the start",
        "duration of the re-render",
        "daemon peak RSS (VmHWM)",
    ),
}


def markdown_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """(scenario, figure) -> [value, target, verdict] from the results table."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if len(cells) == 5 and cells[0] != "section" and not cells[0].startswith("---"):
            rows[(cells[0].split(" (")[0], cells[1])] = cells[2:]
    return rows


def test_a_tiny_run_prints_every_figure_with_the_machine(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    run = subprocess.run(
        [sys.executable, "bench/run.py", *TINY, f"--write-results={results}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    machine = next(line for line in run.stdout.splitlines() if line.startswith("machine: "))
    assert "CPU(s)" in machine and "Python 3." in machine, machine

    written = results.read_text()
    assert machine.removeprefix("machine: ") in written
    rows = markdown_rows(written)
    expected = {(scenario, name) for scenario, names in FIGURES.items() for name in names}
    assert set(rows) == expected
    for (scenario, name), (value, _, _) in rows.items():
        assert value and "nan" not in value, (scenario, name, value)
        assert name in run.stdout
    assert rows[("intake", "acks durable (inbox rows after the run)")][2] == "met"
    # Correctness, not speed: the re-render filled every row without asking Cobot.
    assert rows[("re-render", "rows filled")][2] == "met"
    assert rows[("re-render", "Cobot requests for resources")][2] == "met"
    # The lone changes ran against emulators answering as slowly as the real APIs.
    assert rows[("lone changes", "floor: one Cobot GET + one Sheets write")][0].startswith("0.40 s")


def test_the_committed_results_are_one_whole_run_of_the_current_benchmark() -> None:
    """bench/RESULTS.md holds exactly what --write-results writes: no hand-typed section, and
    the figures the benchmark prints today (a renamed or added figure means a stale file)."""
    committed = (REPO / "bench" / "RESULTS.md").read_text()
    assert committed.startswith("# Benchmark results\n\n- command: `python bench/run.py")
    assert "--write-results" in committed.splitlines()[2]
    assert [line for line in committed.splitlines() if line.startswith("#")] == [
        "# Benchmark results"
    ]
    expected = {(scenario, name) for scenario, names in FIGURES.items() for name in names}
    assert set(markdown_rows(committed)) == expected
