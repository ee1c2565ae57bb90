"""Rendering rows again from the local copy after the mapping changed.

A column added to the config, a changed template or type, a changed ``where:`` or time zone
changes what every existing row should hold, but no webhook will come for rows whose resource
did not change. So at start, each worksheet whose mapping differs from the one its rows were
last rendered with (a fingerprint kept in meta) is rendered again from the local copy of
Cobot's data: no Cobot request, and only rows whose cells changed are written (a row is
compared with its stored fingerprint, as everywhere), in a few large upserts. Rows that stop
matching ``where:`` are removed, resources that start matching get their row. Rows the local
copy does not hold (written before it existed) keep their cells until their resource changes
or the next re-sync lists it.

Each copy is rendered as its own space's (the space the local copy keeps with it): its Space
cell, the ``space`` template variable, its member joined from that space. A worksheet narrowed
with ``spaces:`` leaves other spaces' copies alone.

The fingerprint is saved only after every row is written, so an interrupted re-render runs
again at the next attempt (rows already written then compare unchanged).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.core.events import within_filters
from syncd.engine.localcopy import MemberJoin, Subject
from syncd.engine.rowplan import SheetBatch, write_batch
from syncd.mapping.computed import RowContext
from syncd.mapping.rows import Observation, mapping_fingerprint
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.resources import Kept

log = logging.getLogger("syncd.rerender")

#: Rows decided and written per upsert: few requests, and the lock free again soon.
CHUNK_ROWS = 2000


@dataclass
class RerenderSummary:
    """What rendering one worksheet again did."""

    sheet: str
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    #: Rows whose resource the local copy does not hold: left as they are.
    not_kept: int = 0
    sheets_reads: int = 0
    sheets_writes: int = 0
    duration: float = 0.0


class Rerender:
    """Renders the worksheets whose mapping changed since their rows were last rendered.

    ``default_space`` is the space of copies kept before spaces were recorded: the first
    configured space's subdomain (they were all the one space's then).
    """

    def __init__(
        self,
        sheets: Sequence[SheetSettings],
        timezone: str,
        store: Store,
        writer: SheetsWriter,
        *,
        default_space: str = "",
    ) -> None:
        self.sheets = tuple(sheets)
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.store = store
        self.writer = writer
        self.default_space = default_space
        #: One member join per space (without a client: the re-render asks Cobot nothing).
        self._joins: dict[str, MemberJoin] = {}

    def _space_of(self, copy: Kept) -> str:
        return copy.space or self.default_space

    async def run(self) -> list[RerenderSummary]:
        """Render every worksheet whose mapping changed; unchanged ones cost one meta read."""
        summaries = []
        for sheet in self.sheets:
            fingerprint = mapping_fingerprint(sheet, self.timezone)
            if await self.store.meta.mapping_fingerprint(sheet.title) == fingerprint:
                continue
            summaries.append(await self.render(sheet))
            await self.store.meta.save_mapping_fingerprint(sheet.title, fingerprint)
        return summaries

    async def render(self, sheet: SheetSettings) -> RerenderSummary:
        """Render one worksheet's rows from the local copy, writing only what changed."""
        started = time.monotonic()
        summary = RerenderSummary(sheet.title)
        index = await self.store.kept_urls(sheet.resource)
        known = await self.store.all_row_states(sheet.title)
        summary.not_kept = len(known.keys() - index.keys())
        # A resource only ever seen gone gets no row where it has none (a member fetched
        # for a join that answered 404, say); another space's copy none where its worksheet
        # holds only some spaces. Bodies are read a chunk at a time, to keep memory flat.
        wanted = [
            url
            for url, (space, has_body) in index.items()
            if sheet.holds(space or self.default_space) and (url in known or has_body)
        ]
        for first in range(0, len(wanted), CHUNK_ROWS):
            chunk = await self.store.kept(wanted[first : first + CHUNK_ROWS])
            copies = [
                copy
                for copy in chunk.values()
                if copy.url in known
                or (copy.body is not None and within_filters(sheet.filters, copy.body))
            ]
            await self._render_chunk(sheet, copies, summary)
        summary.duration = time.monotonic() - started
        if not wanted and not summary.not_kept:
            return summary  # a new worksheet, and nothing kept of its kind yet
        log.info(
            "%s: the mapping changed; rendered %d row(s) again from the local copy: %d written, "
            "%d unchanged, %d removed (where:), %d not in the local copy yet; %d Sheets "
            "read(s), %d write(s), no Cobot request (%.1f s)",
            sheet.title,
            summary.written + summary.unchanged + summary.removed,
            summary.written,
            summary.unchanged,
            summary.removed,
            summary.not_kept,
            summary.sheets_reads,
            summary.sheets_writes,
            summary.duration,
        )
        return summary

    async def _render_chunk(
        self, sheet: SheetSettings, chunk: list[Kept], summary: RerenderSummary
    ) -> None:
        contexts = await self._contexts(sheet, chunk)
        async with self.writer.locked(sheet.title):
            known = await self.store.row_states(sheet.title, [copy.url for copy in chunk])
            batch = SheetBatch(sheet, known=known)
            for copy in chunk:
                seen = Observation(
                    copy.url, copy.body, copy.observed_at, copy.deleted_at, contexts[copy.url]
                )
                batch.decide(seen, self.tz, known.get(copy.url))
            refused = await write_batch(self.writer, batch) if batch.rows or batch.removals else {}
            saved = {url: state for url, state in batch.states.items() if url not in refused}
            await self.store.complete([], {sheet.title: saved})
        for report in batch.reports:
            summary.sheets_reads += report.requests.reads
            summary.sheets_writes += report.requests.writes
        summary.written += len(set(batch.rows) - batch.unchanged)
        summary.unchanged += len(batch.unchanged)
        summary.removed += len(batch.removals - refused.keys())
        if refused:
            raise next(iter(refused.values()))

    async def _contexts(self, sheet: SheetSettings, chunk: list[Kept]) -> dict[str, RowContext]:
        """Each copy's row context, built in its own space."""
        by_space: dict[str, dict[str, Subject]] = defaultdict(dict)
        for copy in chunk:
            by_space[self._space_of(copy)][copy.url] = Subject(copy.kind, copy.body)
        contexts: dict[str, RowContext] = {}
        for space, subjects in by_space.items():
            join = self._joins.setdefault(space, MemberJoin(self.store, None, space=space))
            contexts.update(await join.contexts([sheet], subjects))
        return contexts
