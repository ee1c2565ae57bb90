"""Which worksheets a task holds, in which turn, and layouts read ahead of a write.

Every upsert holds its worksheet's lock: in this process an ``asyncio.Lock`` per worksheet,
and against other processes writing the spreadsheet (``syncd backfill``) an exclusive lock on
one file that counts its turns. A layout read under the lock in turn N may place the first
request of the upsert that holds the lock in turn N + 1: no process held it in between, so
nothing of ours moved rows, and a person's sort within ``READ_AHEAD_SECONDS`` is the same risk
as in the round trip between any read and its write (docs/reliability.md, "the row-position
rule").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from syncd.config.settings import SheetSettings
from syncd.core.errors import SyncdError
from syncd.sheets.planning import Layout, Worksheet
from syncd.sheets.progress import Progress
from syncd.sheets.worksheets import FlushStats, Worksheets
from syncd.store.filelock import file_lock

log = logging.getLogger("syncd.sheets")

#: Oldest a layout read ahead may be when the write it places is prepared: a person's sort
#: in that time is the same risk as in the round trip between any read and its write.
READ_AHEAD_SECONDS = 2.0


@dataclass(frozen=True)
class _ReadAhead:
    """A layout read under the worksheet's lock for the next upsert's first request."""

    worksheet: Worksheet
    layout: Layout
    stats: FlushStats
    #: The lock's turn the read was made in.
    turn: int
    read_at: float


class Turns:
    """The worksheet locks of one spreadsheet, and the layouts read ahead under them."""

    def __init__(self, worksheets: Worksheets, lock_path: Path | None) -> None:
        self._worksheets = worksheets
        self._sheet_locks: dict[str, asyncio.Lock] = {}
        #: The worksheets whose lock the current task holds (see ``locked``).
        self._held: ContextVar[frozenset[str]] = ContextVar("held", default=frozenset())
        #: Locked around every upsert when set, so that another process writing this
        #: spreadsheet (the daemon, `syncd backfill`) cannot append the same URL meanwhile.
        self._lock_path = lock_path
        #: Turns of the lock taken in this process (counted in the lock file when there is
        #: one, so that other processes' turns count too), and the turn each held lock is in.
        self._turns = 0
        self._turn_of: dict[str, int] = {}
        self._ahead: dict[str, _ReadAhead] = {}

    @contextlib.asynccontextmanager
    async def locked(self, *titles: str) -> AsyncIterator[None]:
        """Hold the worksheets' locks, in this process and against any other writing this
        spreadsheet; upserts inside do not take them again.

        A caller that reads row states, decides the rows, writes them and saves the states
        holds it around all four, so no other writer's decision can fall in between. Several
        worksheets are locked in one turn of the process lock (in a fixed order, so two
        callers cannot each hold what the other waits for).
        """
        held = self._held.get()
        keys = sorted({title.casefold() for title in titles} - held)
        if not keys:
            yield
            return
        async with contextlib.AsyncExitStack() as stack:
            for key in keys:
                await stack.enter_async_context(self._sheet_lock(key))
            turn = await stack.enter_async_context(self._process_lock())
            self._turns += 1
            for key in keys:
                self._turn_of[key] = turn if turn is not None else self._turns
            token = self._held.set(held | set(keys))
            try:
                yield
            finally:
                self._held.reset(token)
                for key in keys:
                    del self._turn_of[key]

    async def read_ahead(
        self, wanted: Sequence[tuple[SheetSettings, Collection[str]]]
    ) -> dict[str, list[str]]:
        """Read the layouts of these worksheets now, in one request, for the next upsert's
        first request (see the module's docstring); a failure here is left to that upsert,
        which then reads itself. ``wanted``: each worksheet with the URLs to be written.

        Returns, by title, the owned headers the read re-created (a person had removed them):
        their columns are owed a refill whether or not the layout is used after all.
        """
        if not wanted:
            return {}
        items = [
            (sheet, FlushStats(sheet=sheet.title, max_attempts=1), urls) for sheet, urls in wanted
        ]
        try:
            async with self.locked(*(sheet.title for sheet, _ in wanted)):
                worksheets = [await self._worksheets.get(s, stats) for s, stats, _ in items]
                layouts = await self._worksheets.read_layouts(
                    [
                        (s, w, urls, stats)
                        for (s, stats, urls), w in zip(items, worksheets, strict=True)
                    ]
                )
                now = time.monotonic()
                for (sheet, stats, _), worksheet, layout in zip(
                    items, worksheets, layouts, strict=True
                ):
                    key = sheet.title.casefold()
                    turn = self._turn_of[key]
                    self._ahead[key] = _ReadAhead(worksheet, layout, stats, turn, now)
        except SyncdError as exc:
            log.info("reading ahead failed (%s); the write reads itself", exc)
        return {sheet.title: stats.recreated for sheet, stats, _ in items if stats.recreated}

    def take_ahead(
        self, sheet: SheetSettings, worksheet: Worksheet, progress: Progress, stats: FlushStats
    ) -> Layout | None:
        """The layout read ahead, for the upsert's first attempt when nothing can have moved
        rows since in this or another daemon process (its requests count in ``stats``)."""
        key = sheet.title.casefold()
        ahead = self._ahead.pop(key, None)
        if (
            ahead is None
            or progress.written
            or ahead.worksheet is not worksheet
            or ahead.turn + 1 != self._turn_of.get(key)
            or time.monotonic() - ahead.read_at > READ_AHEAD_SECONDS
        ):
            return None
        stats.reads += ahead.stats.reads
        stats.writes += ahead.stats.writes
        stats.repairs.extend(ahead.stats.repairs)
        stats.recreated.extend(ahead.stats.recreated)
        return ahead.layout

    def drop_ahead(self, title: str) -> None:
        """Forget the layout read ahead: rows are about to move."""
        self._ahead.pop(title.casefold(), None)

    def _sheet_lock(self, title: str) -> asyncio.Lock:
        """Flushes of one worksheet run one at a time: both would append at the same rows."""
        return self._sheet_locks.setdefault(title.casefold(), asyncio.Lock())

    def _process_lock(self) -> contextlib.AbstractAsyncContextManager[int | None]:
        """The cross-process lock of ``lock_path`` (yielding its turn), or nothing."""
        return file_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()
