"""One upsert's bookkeeping: what it has written, what is left, and the refill of columns a
person deleted.

An upsert may take several requests (a large batch, a retry), each placed from a fresh read;
``Progress`` carries what stays true across them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from syncd.config.settings import SheetSettings
from syncd.mapping.cells import Row
from syncd.sheets.planning import Layout, Placement
from syncd.sheets.worksheets import FlushStats
from syncd.store.rows import RowState


class NothingLeft(Exception):
    """The fresh read found every remaining row already in place: nothing to send."""


@dataclass
class Progress:
    """What one upsert has written so far, and what is left to write."""

    pending: dict[str, Row]
    only_if_missing: set[str]
    #: Rows whose re-created columns are refilled: written only where they are found.
    refill: set[str] = field(default_factory=set)
    #: Whether the rows of re-created columns were looked up already.
    refill_planned: bool = False
    #: URL -> (row, whether the row is new) of the request being sent.
    sending: dict[str, tuple[int, bool]] = field(default_factory=dict)
    #: URL -> the row it was written to.
    written: dict[str, int] = field(default_factory=dict)
    #: The keys in the key column as last read.
    keys: frozenset[str] = frozenset()
    updated: int = 0
    appended: int = 0
    unchanged: int = 0

    def skip(self, urls: Collection[str]) -> None:
        """Rows left alone: found but wanted only if missing (counted unchanged), or refills
        of rows no longer in the sheet."""
        for url in urls:
            del self.pending[url]
            self.unchanged += url not in self.refill

    def saw(self, layout: Layout) -> None:
        """The key column as just read: what the worksheet holds."""
        self.keys = frozenset(filter(None, (cell.strip() for cell in layout.key_cells[1:])))

    def send(self, placement: Placement, urls: Collection[str]) -> None:
        """The request about to be sent writes the rows of ``urls``, placed as ``placement``."""
        self.sending = {url: (placement.targets[url], url in placement.new) for url in urls}

    def sent(self) -> int:
        """The request being sent succeeded; returns the last row it wrote."""
        for url, (number, new) in self.sending.items():
            del self.pending[url]
            self.written[url] = number
            if url not in self.refill:
                self.appended += new
                self.updated += not new
        last = max((number for number, _ in self.sending.values()), default=0)
        self.sending = {}
        return last

    def add_refills(
        self,
        sheet: SheetSettings,
        stored: Mapping[str, RowState],
        recreated: set[str],
        stats: FlushStats,
    ) -> None:
        """Add to the upsert the re-created columns' cells of every other row in the sheet.

        A person deleted or renamed a column the daemon owns; re-creating its header alone
        would leave it empty for every row whose resource does not change, so each row is
        given the cells it was last written with (its Deleted stamp, at least), from the
        stored row states (``stored``): no request to Cobot.
        """
        for url in self.keys:
            state = stored.get(url)
            kept = dict((state.cells if state else None) or {})
            if state is not None:
                kept.setdefault(sheet.deleted_column, state.deleted_at or "")
            given = self.pending.get(url)
            if given is not None and url not in self.only_if_missing:
                # Written anyway; a row written in part (a deletion) gets the rest as kept.
                lost = {header: kept[header] for header in recreated & kept.keys()}
                self.pending[url] = {**lost, **given}
                continue
            cells = {**kept, **(given or {})}
            refill = {header: value for header, value in cells.items() if header in recreated}
            if refill:
                self.pending[url] = refill
                self.only_if_missing.discard(url)
                self.refill.add(url)
        if self.refill:
            stats.repair(
                f"refilled {', '.join(map(repr, sorted(recreated)))} in "
                f"{len(self.refill)} row(s) from the rows last written"
            )
