"""Backfill: fill the configured worksheets from Cobot's list endpoints, in every space.

The work is the re-sync engine's (syncd/engine/resync.py), one engine per space; this module
picks the worksheets and wires the engines to the clients (``syncd backfill`` shows its
progress and summary). It is safe while the daemon runs: both hold the same lock file around
every sheet upsert, so neither appends a URL the other is appending, both draw from the same
request budgets (one per Cobot token, see cobot/spaces.py and store/budgets.py), and an
interrupted backfill continues from its checkpoint when run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from syncd.cobot.spaces import cobot_clients
from syncd.config.settings import Settings, SheetSettings
from syncd.core.errors import UsageError
from syncd.engine.resync import Resync, SheetSummary
from syncd.engine.resync_plan import ProgressCallback
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
    """Backfill ``sheets`` space after space (each space's share of them, in config order)."""
    store = Store.open(settings.state_dir)
    writer = SheetsWriter(
        settings.google,
        **sheets_budgets(settings.state_dir, settings.google),
        lock_path=sheets_lock_path(settings.state_dir),
        stored_rows=store.written_rows,
    )
    tz = ZoneInfo(settings.timezone)
    summaries: list[SheetSummary] = []
    try:
        async with cobot_clients(settings.spaces, settings.state_dir) as clients:
            for space in settings.spaces:
                cobot = clients[space.subdomain]
                engine = Resync(
                    settings.resync, space, tz, store, cobot, writer, on_progress=on_progress
                )
                summaries += await engine.run(sheets, "backfill", since, until)
        return summaries
    finally:
        writer.close()
        await store.close()
