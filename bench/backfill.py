"""Backfill benchmark: ``python bench/backfill.py [--small] [--window-days N]``.

Seeds the Cobot simulator with two years of a coworking space (500 memberships, 3,000
invoices, 2,000 bookings, 1,000 check-ins; ``--small`` a tenth of that), with Cobot's real
rate limits on (60 requests/min, 6/min for the membership listing) and Google's real
per-minute quotas on the Sheets emulator, runs ``syncd backfill`` as its own process against
both, then runs it once more to show what a re-sync of an unchanged space costs.

Prints, per run: Cobot requests (and 429s), Sheets reads and writes, wall time and the
backfill process's peak RSS (from wait4); then the limits as configured and the machine.
Figures are reported, never asserted. The second run starts right after the first, so with
small windows (more than 60 requests a run) Cobot still counts some of the first run's
requests: the odd 429 then is answered by waiting as Cobot's Retry-After asks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository importable (bench.*, and tests.* for the fixtures).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine
from syncd.cobot.client import MEMBERSHIP_LISTS_PER_MINUTE
from tests.fixtures_cobot import start_cobot_sandbox
from tests.fixtures_daemon import Daemon, example_sheets
from tests.fixtures_sheets import new_sandbox_key, start_sheets_sandbox

FULL = {"members": 500, "invoices": 3000, "bookings": 2000, "check_ins": 1000}
SMALL = {name: count // 10 for name, count in FULL.items()}
COBOT_PER_MINUTE = 60
SHEETS_PER_MINUTE = 60


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    cobot: Counter[int]
    sheets: Counter[str]
    peak_rss_kib: int
    output: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/backfill.py", description=__doc__)
    parser.add_argument(
        "--small", action="store_true", help="a tenth of the space, for a quick run"
    )
    parser.add_argument(
        "--window-days", type=int, default=183, help="resync.window_days (default 183)"
    )
    args = parser.parse_args(argv)
    sizes = SMALL if args.small else FULL
    with tempfile.TemporaryDirectory(prefix="syncd-bench-backfill-") as tmp:
        workdir = Path(tmp)
        cobot = start_cobot_sandbox(rate_limits=True)
        sheets = start_sheets_sandbox(
            new_sandbox_key(),
            workdir / "service-account.json",
            read_quota_per_minute=SHEETS_PER_MINUTE,
            write_quota_per_minute=SHEETS_PER_MINUTE,
        )
        try:
            seeded = cobot.sim.seed_space(**sizes, years=2)
            daemon = Daemon(
                cobot=cobot,
                sheets=sheets,
                workdir=workdir,
                sheet_config=example_sheets(),
                extra={"resync": {"window_days": args.window_days}},
            )
            print("seeded: " + ", ".join(f"{n} {kind}" for kind, n in seeded.items()))
            runs = [_run(daemon, "backfill"), _run(daemon, "re-sync, nothing changed")]
        finally:
            cobot.server.stop()
            sheets.server.stop()
    for run in runs:
        _report(run)
    print(
        f"limits: Cobot {COBOT_PER_MINUTE}/min ({MEMBERSHIP_LISTS_PER_MINUTE}/min membership "
        f"list), enforced by the simulator and budgeted by the client; Sheets "
        f"{SHEETS_PER_MINUTE} reads + {SHEETS_PER_MINUTE} writes/min, enforced by the emulator; "
        f"windows of {args.window_days} days over resync.history_days (730)"
    )
    print(f"machine: {machine()}")
    return 0


def _run(daemon: Daemon, label: str) -> Run:
    """One `syncd backfill` process, with what it cost each API and its own peak RSS."""
    cobot_before = len(daemon.cobot.sim.requests())
    sheets_before = len(daemon.sheets.emulator.request_log)
    daemon.write_config()
    output = daemon.workdir / "backfill.out"
    started = time.monotonic()
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "backfill", "--config", str(daemon.config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=daemon.env,
        )
        # wait4 reports the resources of this one child (getrusage would mix all children).
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{label} failed ({process.returncode}):\n{output.read_text()}")
    cobot = Counter(r.status for r in daemon.cobot.sim.requests()[cobot_before:])
    sheets = Counter(
        f"{r.kind} {r.status}"
        for r in daemon.sheets.emulator.request_log[sheets_before:]
        if r.kind is not None
    )
    return Run(label, seconds, cobot, sheets, usage.ru_maxrss, output.read_text())


def _report(run: Run) -> None:
    reads = sum(n for key, n in run.sheets.items() if key.startswith("read"))
    writes = sum(n for key, n in run.sheets.items() if key.startswith("write"))
    print(f"\n== {run.label}")
    print(f"Cobot requests: {sum(run.cobot.values())} ({run.cobot[429]} answered 429)")
    print(f"Sheets requests: {reads} reads, {writes} writes ({_errors(run.sheets)})")
    print(f"wall time: {run.seconds:.1f} s")
    print(f"peak RSS of the backfill process: {run.peak_rss_kib / 1024:.0f} MiB")
    lines = run.output.rstrip().splitlines()
    table = next((i for i, line in enumerate(lines) if line.startswith("Worksheet")), 0)
    print("\n".join("  " + line for line in lines[table:]))


def _errors(sheets: Counter[str]) -> str:
    failed = sum(n for key, n in sheets.items() if not key.endswith(" 200"))
    return f"{failed} failed" if failed else "none failed"


if __name__ == "__main__":
    sys.exit(main())
