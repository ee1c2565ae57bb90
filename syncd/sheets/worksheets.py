"""The worksheets of one spreadsheet as the writer knows them, kept in repair.

Grid metadata (ids, titles, sizes) is cached between flushes, so the steady state reads none;
row 1, the key column and the rows below it are read fresh before every write, because people
move columns, sort and rename headers. What people broke is repaired here: a missing worksheet
or header is created again, a cleared key header is restored over the column that still holds
the keys, the presentation (number formats, the header's look, the highlight of deleted rows)
is put right, and the grid grows before a write would pass its end. Each repair is reported
with the upsert.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config.settings import SheetSettings
from syncd.sheets.a1 import column_letters, quote_title
from syncd.sheets.errors import SheetsUnavailable
from syncd.sheets.planning import (
    Layout,
    Worksheet,
    add_sheet,
    append_dimension,
    cell_text,
    header_cells,
    header_index,
    used_length,
)
from syncd.sheets.presentation import (
    PRESENTATION_FIELDS,
    Found,
    add_highlight,
    bold_header,
    format_requests,
    number_formats,
    presentation_ranges,
    repairs,
)
from syncd.sheets.transport import RequestTally, SheetsTransport

log = logging.getLogger("syncd.sheets")

NEW_SHEET_ROWS = 1000
NEW_SHEET_COLUMNS = 26
MIN_ROW_GROWTH = 100
#: Reads of one flush's layout: unknown header, then the key column; one more after a repair.
MAX_LAYOUT_READS = 3


@dataclass(frozen=True)
class _Tail:
    """The rows from ``start`` down, as read column by column."""

    start: int
    columns: list[list[Any]]


def _tail_range(worksheet: Worksheet, start: int) -> str:
    """Every column of every row from ``start`` down.

    The columns end at the grid's width as last read: Google refuses a range that names a
    column beyond the grid, for reads too; a grid that shrank since is re-read after the 400.
    """
    return f"{quote_title(worksheet.title)}!A{start}:{column_letters(worksheet.column_count)}"


@dataclass
class FlushStats(RequestTally):
    """Requests and repairs of one upsert, for its report and log line."""

    repairs: list[str] = field(default_factory=list)
    #: Owned headers re-created at the end of row 1 in this upsert.
    recreated: list[str] = field(default_factory=list)

    def repair(self, message: str) -> None:
        self.repairs.append(message)
        log.warning("%s: %s", self.sheet, message)


class Worksheets:
    """The worksheets of one spreadsheet: cached grids, fresh layouts, repairs."""

    def __init__(self, transport: SheetsTransport) -> None:
        self._transport = transport
        #: Keyed by casefolded title: Google matches titles case-insensitively.
        self._known: dict[str, Worksheet] = {}
        self._metadata_lock = asyncio.Lock()
        #: Keys of each worksheet as last read or written, by casefolded title: they identify
        #: the key column again if someone clears or renames its header.
        self._last_keys: dict[str, frozenset[str]] = {}

    def forget(self, title: str) -> None:
        """Drop the cached grid of a worksheet, so the next flush reads it again."""
        self._known.pop(title.casefold(), None)

    def remember_keys(self, title: str, keys: frozenset[str]) -> None:
        """The keys a worksheet holds after a flush, to find its key column by content."""
        self._last_keys[title.casefold()] = keys

    # -- grid metadata --------------------------------------------------------------

    async def get(self, sheet: SheetSettings, stats: FlushStats) -> Worksheet:
        """The cached worksheet; metadata is read only for a worksheet not seen yet."""
        key = sheet.title.casefold()
        worksheet = self._known.get(key)
        if worksheet is not None:
            return worksheet
        async with self._metadata_lock:
            if key not in self._known:
                await self.load_metadata(stats)
            if key not in self._known:
                await self._create(sheet, stats)
            return self._known[key]

    async def load_metadata(self, stats: FlushStats) -> str:
        """Read the spreadsheet's grid metadata (1 read); return the spreadsheet's title.

        Worksheets whose id did not change keep their known header, so a refresh caused by
        one worksheet does not cost the others an extra read.
        """
        metadata = await self._transport.metadata(stats)
        previous = self._known
        self._known = {}
        for entry in metadata.get("sheets", []):
            worksheet = Worksheet.from_properties(entry["properties"])
            key = worksheet.title.casefold()
            known = previous.get(key)
            if known is not None and known.sheet_id == worksheet.sheet_id:
                worksheet.header = known.header
                worksheet.tail_start = known.tail_start
            self._known[key] = worksheet
        return str(metadata.get("properties", {}).get("title", ""))

    async def _create(self, sheet: SheetSettings, stats: FlushStats) -> None:
        """Add the worksheet with its header row and its presentation in one batchUpdate
        (1 write).

        The sheet id is chosen here so that the header and formats can address the new sheet
        in the same atomic request. Row 1 is frozen so that sorting in the UI keeps it on top,
        and bold across the grid, so that headers people add later look alike.
        """
        sheet_id = self._new_sheet_id()
        headers = list(sheet.headers)
        worksheet = Worksheet(
            sheet_id=sheet_id,
            title=sheet.title,
            row_count=NEW_SHEET_ROWS,
            column_count=max(NEW_SHEET_COLUMNS, len(headers)),
            header=headers,
            tail_start=2,
        )
        formats = number_formats(sheet, {h: i for i, h in enumerate(headers)})
        highlight = [add_highlight(sheet_id, headers.index(sheet.deleted_column))]
        await self._transport.batch_update(
            [
                add_sheet(worksheet),
                header_cells(sheet_id, 0, headers),
                bold_header(sheet_id, 0, worksheet.column_count),
                *format_requests(sheet_id, formats, 1, worksheet.row_count),
                *(highlight if sheet.highlight_deleted else []),
            ],
            stats,
        )
        self._known[sheet.title.casefold()] = worksheet
        log.info("%s: created the worksheet with %d header(s)", sheet.title, len(headers))

    def _new_sheet_id(self) -> int:
        """A random positive 31-bit id no known worksheet uses (Google's own ids look alike)."""
        taken = {w.sheet_id for w in self._known.values()}
        while True:
            candidate = random.randrange(1, 2**31 - 1)
            if candidate not in taken:
                return candidate

    # -- header row and key column -------------------------------------------------------

    async def read_layout(
        self, sheet: SheetSettings, worksheet: Worksheet, keys: Collection[str], stats: FlushStats
    ) -> Layout:
        """Read row 1, the key column and the rows below it in one request, repairing the
        header row if needed.

        The key column is read where the header known from the last flush puts it; if row 1
        now shows it elsewhere (a user moved it) or it had to be re-created, the read is
        repeated at the right column. The rows below the key column's last value are read
        from where it ended last time; only when that is not known yet, or the column got
        shorter, are they read once more. The steady state is exactly one read.
        """
        for _ in range(MAX_LAYOUT_READS):
            known = header_index(worksheet.header or [])
            wanted = known.get(sheet.key_column)
            header, key_cells, tail = await self._read_header_and_keys(worksheet, wanted, stats)
            if sheet.key_column not in header_index(header):
                header = await self._restore_key_header(sheet, worksheet, header, keys, stats)
            header = await self._add_missing_headers(sheet, worksheet, header, stats)
            columns = header_index(header)
            if header != worksheet.header:
                await self.check_presentation(sheet, worksheet, columns, stats)
            worksheet.header = header
            found = columns[sheet.key_column]
            if found == wanted:
                content_end = await self._content_end(worksheet, key_cells, tail, stats)
                return Layout(columns, key_cells, content_end)
            if wanted is not None:
                log.info(
                    "%s: key column %r moved from %s to %s",
                    sheet.title,
                    sheet.key_column,
                    column_letters(wanted + 1),
                    column_letters(found + 1),
                )
        raise SheetsUnavailable(
            f"the header row of worksheet {sheet.title!r} kept changing while it was read"
        )

    async def read_layouts(
        self, items: Sequence[tuple[SheetSettings, Worksheet, Collection[str], FlushStats]]
    ) -> list[Layout]:
        """The layouts of several worksheets, in one read for those in their steady state
        (counted in the first item's stats).

        A flush that touches several worksheets reads them all in one ``values:batchGet``:
        Google counts it as one read whatever ranges it holds. A worksheet whose header this
        process does not know yet, or whose row 1 reads differently from what it knew (a
        column moved, renamed or deleted), is read again on its own by ``read_layout``,
        which repairs it.
        """
        steady = {
            id(worksheet): self._layout_ranges(worksheet, wanted)
            for sheet, worksheet, _, _ in items
            if (wanted := header_index(worksheet.header or []).get(sheet.key_column)) is not None
        }
        flat = [r for own in steady.values() for r in own]
        read = await self._transport.batch_get_columns(flat, items[0][3]) if flat else []
        layouts = []
        for sheet, worksheet, keys, stats in items:
            own = steady.get(id(worksheet))
            if own is not None:
                values, read = read[: len(own)], read[len(own) :]
                header, key_cells, tail = self._parse_layout(worksheet, values)
                if header == worksheet.header:
                    content_end = await self._content_end(worksheet, key_cells, tail, stats)
                    layouts.append(Layout(header_index(header), key_cells, content_end))
                    continue
            layouts.append(await self.read_layout(sheet, worksheet, keys, stats))
        return layouts

    def _layout_ranges(self, worksheet: Worksheet, key_column: int | None) -> list[str]:
        """Row 1 and, when known, the key column and the rows below its last value as last
        read."""
        title = quote_title(worksheet.title)
        ranges = [f"{title}!1:1"]
        tail_start = worksheet.tail_start
        if key_column is not None:
            letters = column_letters(key_column + 1)
            ranges.append(f"{title}!{letters}:{letters}")
            if tail_start is not None and tail_start <= worksheet.row_count:
                ranges.append(_tail_range(worksheet, tail_start))
        return ranges

    @staticmethod
    def _parse_layout(
        worksheet: Worksheet, read: list[list[list[Any]]]
    ) -> tuple[list[str], list[str], _Tail | None]:
        columns = read[0] if read else []
        header = [cell_text(column[0]) if column else "" for column in columns]
        keys = read[1] if len(read) > 1 else []
        tail_start = worksheet.tail_start
        tail = _Tail(tail_start, read[2]) if len(read) > 2 and tail_start else None
        return header, [cell_text(cell) for cell in (keys[0] if keys else [])], tail

    async def _read_header_and_keys(
        self, worksheet: Worksheet, key_column: int | None, stats: FlushStats
    ) -> tuple[list[str], list[str], _Tail | None]:
        """One ``values:batchGet`` (1 read) of row 1 and, when known, the key column and the
        rows below its last value as last read."""
        ranges = self._layout_ranges(worksheet, key_column)
        read = await self._transport.batch_get_columns(ranges, stats)
        return self._parse_layout(worksheet, read)

    async def _content_end(
        self, worksheet: Worksheet, key_cells: list[str], tail: _Tail | None, stats: FlushStats
    ) -> int:
        """The last row holding anything below the key column's last value (0 if none).

        Reads the rows below again (1 read) only when the read did not cover them all.
        """
        start = used_length(key_cells) + 1
        worksheet.tail_start = start
        if start > worksheet.row_count:
            return 0
        if tail is None or tail.start > start:
            read = await self._transport.batch_get_columns([_tail_range(worksheet, start)], stats)
            tail = _Tail(start, read[0] if read else [])
        height = max(
            (used_length([cell_text(c) for c in column]) for column in tail.columns), default=0
        )
        return tail.start + height - 1 if height else 0

    async def _restore_key_header(
        self,
        sheet: SheetSettings,
        worksheet: Worksheet,
        header: list[str],
        keys: Collection[str],
        stats: FlushStats,
    ) -> list[str]:
        """Write the key header back over the column that still holds the keys (rare).

        Someone cleared or renamed it. Re-creating it at the end, like other lost headers,
        would leave every existing row without its key, and each would be appended a second
        time. The column is recognised by its content (1 read of the whole worksheet): the
        one, among columns without an owned header, holding the most of the keys being
        written or last read. With no such column (a new worksheet) nothing is changed here.
        """
        known = set(keys) | self._last_keys.get(sheet.title.casefold(), frozenset())
        owned = set(sheet.headers)
        columns = await self._read_columns(worksheet, stats)
        hits = [
            0
            if index < len(header) and header[index].strip() in owned
            else sum(1 for cell in cells[1:] if cell_text(cell).strip() in known)
            for index, cells in enumerate(columns)
        ]
        if not any(hits):
            return header
        index = hits.index(max(hits))
        request = header_cells(worksheet.sheet_id, index, [sheet.key_column])
        await self._transport.batch_update([request], stats)
        restored = [*header, *[""] * (index + 1 - len(header))]
        stats.repair(
            f"restored the key header {sheet.key_column!r} in {column_letters(index + 1)}, "
            f"the column holding the rows' keys (row 1 there said {restored[index]!r})"
        )
        restored[index] = sheet.key_column
        return restored

    async def _read_columns(self, worksheet: Worksheet, stats: FlushStats) -> list[list[Any]]:
        """Every used cell of the worksheet, column by column (1 read)."""
        read = await self._transport.batch_get_columns([quote_title(worksheet.title)], stats)
        return read[0] if read else []

    async def _add_missing_headers(
        self, sheet: SheetSettings, worksheet: Worksheet, header: list[str], stats: FlushStats
    ) -> list[str]:
        """Append owned headers missing from row 1 after its last header (1 write, rare).

        Existing headers are never moved or renamed: a header a user renamed is a column of
        theirs now, and the daemon's column is re-created at the end. The grid widens when
        needed and re-created headers are bold and their columns get their number format,
        in the same request.
        """
        present = header_index(header)
        missing = [h for h in sheet.headers if h not in present]
        if not missing:
            return header
        start = used_length(header)
        new_header = [*header[:start], *missing]
        requests: list[dict[str, Any]] = []
        if len(new_header) > worksheet.column_count:
            extra = len(new_header) - worksheet.column_count
            requests.append(append_dimension(worksheet.sheet_id, "COLUMNS", extra))
        requests.append(header_cells(worksheet.sheet_id, start, missing))
        requests.append(bold_header(worksheet.sheet_id, start, len(new_header)))
        added = {h: start + i for i, h in enumerate(missing)}
        formats = number_formats(sheet, added)
        requests.extend(format_requests(worksheet.sheet_id, formats, 1, worksheet.row_count))
        await self._transport.batch_update(requests, stats)
        stats.recreated.extend(missing)
        worksheet.column_count = max(worksheet.column_count, len(new_header))
        where = ", ".join(f"{h!r} in {column_letters(i + 1)}" for h, i in added.items())
        stats.repair(f"added missing header(s): {where}")
        return new_header

    async def check_presentation(
        self,
        sheet: SheetSettings,
        worksheet: Worksheet,
        columns: dict[str, int],
        stats: FlushStats,
    ) -> bool:
        """Put the worksheet's presentation right (see ``presentation``): 1 read, and 1 write
        only when something must change.

        Done whenever row 1 reads differently from what this process knew (so at least once
        per process and worksheet: headers a person made, a column moved or re-created) and
        whenever the caller asks. Returns False, changing nothing, when row 1 no longer reads
        as ``columns``: the caller must read the layout again.
        """
        formats = number_formats(sheet, columns)
        ranges = presentation_ranges(worksheet, formats)
        response = await self._transport.grid_data(ranges, PRESENTATION_FIELDS, stats)
        found = Found.from_response(response)
        if header_index(found.header) != columns:
            return False
        requests, messages = repairs(sheet, worksheet, columns, formats, found)
        if requests:
            await self._transport.batch_update(requests, stats)
            for message in messages:
                stats.repair(message)
        return True

    async def recheck_presentation(
        self, sheet: SheetSettings, worksheet: Worksheet, stats: FlushStats
    ) -> None:
        """The presentation check a caller asks for: from row 1 as this process knows it when
        it still reads so, otherwise through a fresh read of the layout, which repairs row 1
        and then checks."""
        known = worksheet.header
        if known is None or not await self.check_presentation(
            sheet, worksheet, header_index(known), stats
        ):
            await self.read_layout(sheet, worksheet, (), stats)

    # -- grid growth ---------------------------------------------------------------------

    async def grow_rows(
        self,
        sheet: SheetSettings,
        worksheet: Worksheet,
        layout: Layout,
        last_row: int,
        stats: FlushStats,
    ) -> None:
        """Append rows when the write would pass the grid's end (1 write, only then).

        Writing past ``rowCount`` is a 400, so the grid grows first, in chunks so that this is
        rare, and the new rows get their columns' number formats in the same request.
        """
        if last_row <= worksheet.row_count:
            return
        old = worksheet.row_count
        extra = max(last_row - old, old // 10, MIN_ROW_GROWTH)
        formats = number_formats(sheet, layout.columns)
        await self._transport.batch_update(
            [
                append_dimension(worksheet.sheet_id, "ROWS", extra),
                *format_requests(worksheet.sheet_id, formats, old, old + extra),
            ],
            stats,
        )
        worksheet.row_count = old + extra
        log.info("%s: grew the grid from %d to %d rows", sheet.title, old, worksheet.row_count)
