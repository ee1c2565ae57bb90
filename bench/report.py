"""The benchmark's output: one table of figures with their targets, and the machine it ran on."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``met`` is None when the figure has no target."""

    section: str
    name: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def machine() -> str:
    """Platform, CPU model and count, memory, Python, aiohttp and SQLite versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{platform.platform()}; {os.cpu_count()} CPU(s) ({cpu}){memory}; "
        f"Python {platform.python_version()} ({sys.implementation.name}); "
        f"aiohttp {aiohttp.__version__}; SQLite {sqlite3.sqlite_version}"
    )


def load_average() -> str:
    """The 1-minute load average: other work on a shared machine skews every figure."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def revision() -> str:
    """The checkout's commit, marked dirty when it has uncommitted changes."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def text_table(figures: Iterable[Figure]) -> str:
    rows = [("section", "figure", "value", "target", "")]
    rows += [(f.section, f.name, f.value, f.target, f.verdict) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: Iterable[Figure]) -> str:
    lines = ["| section | figure | value | target | |", "|---|---|---|---|---|"]
    for f in figures:
        cells = (f.section, f.name, f.value, f.target, f.verdict)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def results_markdown(
    command: str, figures: Sequence[Figure], notes: Sequence[str], started: datetime
) -> str:
    """The body of bench/RESULTS.md for one run."""
    missed = [f"{f.section}: {f.name}" for f in figures if f.met is False]
    verdict = (
        "Every target was met." if not missed else "Targets missed: " + "; ".join(missed) + "."
    )
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"- command: `{command}`",
            f"- run: {started.astimezone(UTC):%Y-%m-%d %H:%M} UTC, revision {revision()}",
            f"- machine: {machine()}",
            "- written whole by the command above; what the figures mean: bench/NOTES.md",
            "",
            markdown_table(figures),
            "",
            verdict,
            "",
            *(f"- {note}" for note in notes),
            "",
        ]
    )
