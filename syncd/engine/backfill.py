"""Backfill: fill the configured worksheets from Cobot's list endpoints.

The work is the re-sync engine's (syncd/engine/resync.py); this module picks the worksheets
and wires the engine to the clients (``syncd backfill`` shows its progress and summary). It is
safe while the daemon runs: both hold the same lock file around every sheet upsert, so neither
appends a URL the other is appending, both draw from the same request budgets (see
store/budgets.py), and an interrupted backfill continues from its
checkpoint when run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from syncd.cobot.client import CobotClient
from syncd.config.settings import Settings, SheetSettings
from syncd.core.errors import UsageError
from syncd.engine.resync import ProgressCallback, Resync, SheetSummary
from syncd.sheets.writer import SheetsWriter
from syncd.store.budgets import sheets_budgets
from syncd.store.database import Store
from syncd.store.filelock import sheets_lock_path


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


async def run_backfill(
    settings: Settings,
    sheets: Sequence[SheetSettings],
    since: date | None = None,
    until: date | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[SheetSummary]:
    store = Store.open(settings.state_dir)
    writer = SheetsWriter(
        settings.google,
        **sheets_budgets(settings.state_dir, settings.google),
        lock_path=sheets_lock_path(settings.state_dir),
        stored_rows=store.written_rows,
    )
    try:
        async with CobotClient(settings.cobot, state_dir=settings.state_dir) as cobot:
            engine = Resync(
                settings.resync,
                settings.cobot,
                ZoneInfo(settings.timezone),
                store,
                cobot,
                writer,
                on_progress=on_progress,
            )
            return await engine.run(sheets, "backfill", since, until)
    finally:
        writer.close()
        await store.close()
