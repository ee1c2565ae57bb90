"""``syncd backfill``: fill the configured worksheets from Cobot's list endpoints.

The work is the re-sync engine's (syncd/resync.py); this module is the command around it:
choosing the worksheets, showing progress (a bar on a terminal, plain lines otherwise, so a
log or CI keeps every step) and printing the summary table. It is safe while the daemon runs:
both hold the same lock file around every sheet upsert, so neither appends a URL the other is
appending, and an interrupted backfill continues from its checkpoint when run again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import date
from typing import TextIO

from syncd.cobot.client import MEMBERSHIP_LISTS_PER_MINUTE, CobotClient
from syncd.config.settings import Settings, SheetSettings
from syncd.core.errors import UsageError
from syncd.engine.resync import Progress, ProgressCallback, Resync, SheetSummary
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.filelock import sheets_lock_path

BAR_WIDTH = 24


def select_sheets(settings: Settings, names: Sequence[str] | None) -> list[SheetSettings]:
    """The worksheets named (all when none are), in config order."""
    if not names:
        return list(settings.sheets)
    titles = {sheet.title for sheet in settings.sheets}
    unknown = [name for name in names if name not in titles]
    if unknown:
        raise UsageError(
            f"no worksheet named {unknown[0]!r} in {settings.source} "
            f"(configured: {', '.join(sorted(titles))})"
        )
    return [sheet for sheet in settings.sheets if sheet.title in names]


def cli_backfill(
    settings: Settings,
    names: Sequence[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the backfill with progress and summary on ``out``; 0 when it completed."""
    sheets = select_sheets(settings, names)
    if since and until and since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    display = ProgressDisplay(out)
    try:
        summaries = asyncio.run(run_backfill(settings, sheets, since, until, display.update))
    except KeyboardInterrupt:
        print(
            "syncd: backfill interrupted; run the same command again to continue where it stopped",
            file=sys.stderr,
        )
        return 1
    for line in summary_lines(summaries, settings):
        print(line, file=out)
    return 0


async def run_backfill(
    settings: Settings,
    sheets: Sequence[SheetSettings],
    since: date | None = None,
    until: date | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[SheetSummary]:
    store = Store.open(settings.state_dir)
    writer = SheetsWriter(settings.google, lock_path=sheets_lock_path(settings.state_dir))
    try:
        async with CobotClient(settings.cobot) as cobot:
            engine = Resync(settings, store, cobot, writer, on_progress=on_progress)
            return await engine.run(sheets, "backfill", since, until)
    finally:
        writer.close()
        await store.close()


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
    header = ("Worksheet", "Added", "Updated", "Unchanged", "Deleted", "Cobot", "Sheets r/w")
    header += ("Time",)
    rows = [_row(s.sheet, [s]) for s in summaries if s.skipped is None]
    if len(rows) > 1:
        rows.append(_row("Total", [s for s in summaries if s.skipped is None]))
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [_aligned(line, widths) for line in [header, *rows]]
    for s in summaries:
        if s.skipped:
            lines.append(f"{s.sheet}: skipped: {s.skipped}")
        if s.resumed_from:
            lines.append(f"{s.sheet}: continued an interrupted backfill from {s.resumed_from}")
        if s.safety_stop:
            lines.append(f"{s.sheet}: safety stop: {s.safety_stop}")
    cobot, google = settings.cobot, settings.google
    lines.append(
        f"Limits: Cobot {cobot.requests_per_minute} requests/min (membership list "
        f"{MEMBERSHIP_LISTS_PER_MINUTE}/min); Sheets {google.read_requests_per_minute} reads/min, "
        f"{google.write_requests_per_minute} writes/min; windows of "
        f"{settings.resync.window_days} days"
    )
    return lines


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
