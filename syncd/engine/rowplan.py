"""One worksheet's share of a flush or a re-sync chunk: the rows decided, and writing them.

The worker, the re-sync and the re-render decide rows with the same rule (``mapped_row``) and
write them the same way, under the worksheet's lock: rows upserted, rows that stopped
matching ``where:`` removed, then their states saved, so a crash in between leaves states that
the retry corrects and never states for rows that were not written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.engine.isolation import upsert_isolating
from syncd.mapping.cells import Row
from syncd.mapping.rows import MappedRow, Observation, Outcome, mapped_row
from syncd.sheets.reports import Upsert, UpsertReport
from syncd.sheets.writer import SheetsWriter
from syncd.store.rows import RowState

log = logging.getLogger("syncd.rows")


@dataclass
class SheetBatch:
    """The rows one worksheet gets, what is saved of them, and what was left alone."""

    sheet: SheetSettings
    rows: dict[str, Row] = field(default_factory=dict)
    states: dict[str, RowState] = field(default_factory=dict)
    #: Rows decided unchanged: written only if they went missing from the sheet.
    unchanged: set[str] = field(default_factory=set)
    #: Rows to remove: their resource stopped matching the worksheet's ``where:``.
    removals: set[str] = field(default_factory=set)
    #: The row states the rows were decided on.
    known: dict[str, RowState] = field(default_factory=dict)
    #: URLs whose row holds a later observation than this batch's: left as they are.
    superseded: set[str] = field(default_factory=set)
    #: What the writes did (more than one when a refused batch was split).
    reports: list[UpsertReport] = field(default_factory=list)

    def decide(self, seen: Observation, tz: ZoneInfo, held: RowState | None) -> MappedRow | None:
        """Decide (again) what the row of ``seen.url`` becomes, replacing an earlier decision."""
        url = seen.url
        self.forget(url)
        row = mapped_row(self.sheet, seen, tz, held)
        if row is None:
            self.superseded.add(url)
            return None
        if row.problems and row.outcome is Outcome.WRITE:
            log.warning(
                "%s: %s: %s; the cell is left empty",
                self.sheet.title,
                url,
                "; ".join(row.problems),
            )
        self.states[url] = RowState(row.fingerprint, row.deleted_at, row.observed_at, row.cells)
        if row.outcome is Outcome.REMOVE:
            self.removals.add(url)
        elif row.outcome in (Outcome.WRITE, Outcome.UNCHANGED):
            self.rows[url] = row.cells
            if row.outcome is Outcome.UNCHANGED:
                self.unchanged.add(url)
        return row

    def forget(self, url: str) -> None:
        """Drop what was decided for ``url``: the batch leaves its row alone."""
        for decided in (self.rows, self.states):
            decided.pop(url, None)
        for marked in (self.unchanged, self.removals, self.superseded):
            marked.discard(url)

    @property
    def settled(self) -> set[str]:
        """URLs this batch is done with once written: their rows, removals and the rest."""
        return {*self.states, *self.superseded}


async def write_batch(writer: SheetsWriter, batch: SheetBatch) -> dict[str, SyncdError]:
    """Upsert the batch's rows and remove its removals; the caller holds the worksheet's lock
    and saves the states of every URL not returned (those not written, with why)."""
    refused = await upsert_isolating(
        writer, batch.sheet, batch.rows, batch.unchanged, batch.reports
    )
    if batch.removals:
        try:
            batch.reports.append(await writer.remove(batch.sheet, sorted(batch.removals)))
        except SyncdError as exc:
            log.warning(
                "removing %d row(s) from %s failed: %s", len(batch.removals), batch.sheet.title, exc
            )
            refused.update(dict.fromkeys(batch.removals, exc))
    return refused


async def write_batches(
    writer: SheetsWriter, batches: Sequence[SheetBatch]
) -> dict[str, dict[str, SyncdError]]:
    """Write several worksheets' batches, their rows in one request when they fit
    (``SheetsWriter.upsert_many``); by worksheet title, the URLs not written, with why.

    The caller holds every worksheet's lock. Only a write refused for its content is
    written again one worksheet at a time (where a poisoned row is isolated); a temporary
    failure or a pause concerns every row of the request.
    """
    shared = [batch for batch in batches if batch.rows]
    if len(shared) > 1 and not any(batch.removals for batch in batches):
        jobs = [Upsert(batch.sheet, batch.rows, batch.unchanged) for batch in shared]
        try:
            reports = await writer.upsert_many(jobs)
        except SyncdError as exc:
            if exc.action is not Action.DEAD_LETTER:
                return {b.sheet.title: dict.fromkeys(b.rows, exc) for b in batches}
            log.warning("writing %d worksheets at once failed: %s", len(shared), exc)
        else:
            for batch, report in zip(shared, reports, strict=True):
                batch.reports.append(report)
            return {batch.sheet.title: {} for batch in batches}
    return {batch.sheet.title: await write_batch(writer, batch) for batch in batches}
