"""``syncd backfill``: the command around the re-sync engine's backfill.

It chooses the worksheets and the span, shows progress (a bar on a terminal, plain lines
otherwise, so a log or CI keeps every step) and prints the summary table: one row per worksheet
and, when several spaces are configured, per space ("Members (co-up)"). The work itself,
safe while the daemon runs and continued from its checkpoint after an interruption, is
``syncd.engine.backfill``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date
from typing import TextIO

from syncd.cobot.client import MEMBERSHIP_LISTS_PER_MINUTE
from syncd.commands.command import (
    Command,
    add_config_option,
    add_logging_options,
    configured_settings,
)
from syncd.config.settings import Settings
from syncd.core.errors import UsageError
from syncd.engine.backfill import run_backfill, select_sheets
from syncd.engine.resync import SheetSummary
from syncd.engine.resync_plan import Progress

BAR_WIDTH = 24


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--sheet",
        dest="sheets",
        action="append",
        metavar="NAME",
        help="only this worksheet (repeatable; default: all)",
    )
    for option, default in (
        ("--since", "resync.history_days ago"),
        ("--until", "today; bookings a year ahead"),
    ):
        parser.add_argument(
            option,
            type=_day,
            metavar="YYYY-MM-DD",
            help=f"span of invoices, bookings and check-ins (default: {default})",
        )
    add_logging_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run the backfill with progress and the summary on stdout; 0 when it completed."""
    # Progress and the summary tell the story; --log-level info shows every step.
    args.log_level = args.log_level or "warning"
    settings = configured_settings(args)
    sheets = select_sheets(settings, args.sheets)
    since, until = args.since, args.until
    if since and until and since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    display = ProgressDisplay(sys.stdout)
    try:
        summaries = asyncio.run(run_backfill(settings, sheets, since, until, display.update))
    except KeyboardInterrupt:
        print(
            "syncd: backfill interrupted; run the same command again to continue where it stopped",
            file=sys.stderr,
        )
        return 1
    for line in summary_lines(summaries, settings):
        print(line)
    return 0


class ProgressDisplay:
    """A bar redrawn in place on a terminal; one plain line per step anywhere else."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def update(self, progress: Progress) -> None:
        window = f" ({progress.window})" if progress.window else ""
        counts = f"{progress.done}/{progress.total}, {progress.listed} listed"
        if not self.tty:
            print(f"{progress.sheet}: {counts}{window}", file=self.out, flush=True)
            return
        filled = BAR_WIDTH * progress.done // max(progress.total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        end = "\n" if progress.done >= progress.total else ""
        self.out.write(f"\r\x1b[2K{progress.sheet} [{bar}] {counts}{window}{end}")
        self.out.flush()


def summary_lines(summaries: Sequence[SheetSummary], settings: Settings) -> list[str]:
    """The final table, one row per worksheet plus the total, then notes and limits."""
    header = (
        "Worksheet",
        "Added",
        "Updated",
        "Unchanged",
        "Deleted",
        "Cobot",
        "Sheets r/w",
        "Time",
    )
    rows = [_row(s.label, [s]) for s in summaries if s.skipped is None]
    if len(rows) > 1:
        rows.append(_row("Total", [s for s in summaries if s.skipped is None]))
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [_aligned(line, widths) for line in [header, *rows]]
    # A kind Cobot cannot list is skipped in every space alike: said once per worksheet.
    skipped = {s.sheet: s.skipped for s in summaries if s.skipped}
    lines += [f"{sheet}: skipped: {reason}" for sheet, reason in skipped.items()]
    for s in summaries:
        if s.resumed_from:
            lines.append(f"{s.label}: continued an interrupted backfill from {s.resumed_from}")
        if s.safety_stop:
            lines.append(f"{s.label}: safety stop: {s.safety_stop}")
    cobot, google = settings.cobot, settings.google
    tokens = len({space.access_token for space in settings.spaces})
    per = f" per token ({tokens} for {len(settings.spaces)} spaces)" if tokens > 1 else ""
    lines.append(
        f"Limits: Cobot {cobot.requests_per_minute} requests/min{per} (membership list "
        f"{MEMBERSHIP_LISTS_PER_MINUTE}/min); Sheets {google.read_requests_per_minute} reads/min, "
        f"{google.write_requests_per_minute} writes/min; windows of "
        f"{settings.resync.window_days} days"
    )
    return lines


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {text!r}") from None


def _aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The first column left-aligned, the numbers right-aligned."""
    first, *rest = [(cell, width) for cell, width in zip(cells, widths, strict=True)]
    return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)])


def _row(label: str, summaries: Sequence[SheetSummary]) -> tuple[str, ...]:
    def total(name: str) -> int:
        return sum(getattr(s, name) for s in summaries)

    return (
        label,
        str(total("added")),
        str(total("updated")),
        str(total("unchanged")),
        str(total("deleted")),
        str(total("cobot_requests")),
        f"{total('sheets_reads')}/{total('sheets_writes')}",
        f"{sum(s.duration for s in summaries):.1f}s",
    )


COMMAND = Command(
    "backfill",
    "Fill the worksheets from Cobot's list endpoints; safe while the daemon runs, "
    "continues where an interrupted run stopped.",
    add_arguments,
    run,
)
