"""Writing a batch of rows so that a poisoned row holds up only itself.

Google refuses a whole write for one bad cell, and an unforeseen exception fails it all the
same. Such a write is split in halves, each written on its own, until the refused rows are
found: every other row is written in the same flush. A temporary failure or a pause concerns
the whole worksheet, so it is not split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Set

from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.engine.work import UnexpectedError
from syncd.mapping.cells import Row
from syncd.sheets.reports import UpsertReport
from syncd.sheets.writer import SheetsWriter

log = logging.getLogger("syncd.worker")


async def upsert_isolating(
    writer: SheetsWriter,
    sheet: SheetSettings,
    rows: Mapping[str, Row],
    unchanged: Set[str],
    reports: list[UpsertReport],
    urls: Sequence[str] | None = None,
) -> dict[str, SyncdError]:
    """Write the rows of ``urls`` (default: all), adding each upsert's report to ``reports``;
    returns the URLs not written, with why."""
    urls = list(rows) if urls is None else urls
    try:
        reports.append(
            await writer.upsert(
                sheet,
                {url: rows[url] for url in urls},
                only_if_missing=unchanged & set(urls),
            )
        )
        return {}
    except SyncdError as exc:
        error: SyncdError = exc
    except Exception as exc:
        log.exception("writing %d row(s) to %s failed", len(urls), sheet.title)
        error = UnexpectedError(exc)
    log.warning("writing %d row(s) to %s failed: %s", len(urls), sheet.title, error)
    if error.action is not Action.DEAD_LETTER or len(urls) == 1:
        return dict.fromkeys(urls, error)
    half = len(urls) // 2
    refused = await upsert_isolating(writer, sheet, rows, unchanged, reports, urls[:half])
    return refused | await upsert_isolating(writer, sheet, rows, unchanged, reports, urls[half:])
