"""The Sheets writer: upserts rows into worksheets keyed by the resource URL.

Google allows 60 reads and 60 writes per minute per service account and counts a batch as one
request, so one flush of a worksheet costs, whatever the number of rows:

1. one read: ``values:batchGet`` of row 1 and the key column (column-major);
2. one write: ``values:batchUpdate`` (RAW) with one range per contiguous run of cells per row.

Only when the grid must grow does a ``spreadsheets:batchUpdate`` (``appendDimension`` plus the
date formats of the new rows) come in between. Setting up costs more, once per worksheet and
process: ``spreadsheets.get`` for the grid metadata, an ``addSheet`` for a missing worksheet,
a ``batchUpdate`` that re-creates owned headers someone removed, a second read when the header
or the key column's position was not known yet.

People share these worksheets: they sort rows, move and insert columns, add columns of their
own. So every column is found by its header text in row 1 and every row by its URL in the key
column, both read fresh in each flush; only cells the caller gives are written, never a cell of
a column the daemon does not own. Each write addresses fixed rows and is therefore idempotent,
which is what makes retrying it safe (``values.append`` is not, and is never used).

All gspread calls run on one dedicated thread: gspread is synchronous and its requests session
is not thread-safe. Retries, backoff and the request budgets live on the asyncio side, so a
waiting retry never holds the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol, TypeVar

import gspread
import requests
from google.auth import exceptions as auth_exceptions
from gspread.http_client import HTTPClient

from syncd.config.settings import GoogleSettings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.errors import SheetsError
from syncd.core.metrics import Metrics
from syncd.mapping.cells import NUMBER_FORMATS, CellValue, Row
from syncd.sheets.a1 import column_letters
from syncd.sheets.gclient import gspread_client
from syncd.store.filelock import file_lock

log = logging.getLogger("syncd.sheets")

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 10.0
NEW_SHEET_ROWS = 1000
NEW_SHEET_COLUMNS = 26
MIN_ROW_GROWTH = 100
#: Google recommends payloads under 2 MB; stay well below, counting the JSON we send.
MAX_WRITE_BYTES = 1_000_000
MAX_RANGES_PER_WRITE = 5_000
#: Reads of one flush's layout: unknown header, then the key column; one more after a repair.
MAX_LAYOUT_READS = 3


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class SheetsApiError(SheetsError):
    """A Google Sheets failure; ``transient`` says whether trying again later can help."""

    transient: bool = False


class SheetsUnavailable(SheetsApiError):
    """Google did not answer usefully within the retries (quota, 5xx, network): retry later."""

    transient = True


class SheetsPermissionError(SheetsApiError):
    """The service account may not edit the spreadsheet (403)."""


class SheetsNotFoundError(SheetsApiError):
    """The spreadsheet id names no spreadsheet (404)."""


class SheetsAuthError(SheetsApiError):
    """The service-account key cannot get an access token (revoked key, wrong clock...)."""


class SheetsRequestError(SheetsApiError):
    """Google refused a request as invalid (400), with Google's own message."""


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestCount:
    """Requests sent to Google, as the quota counts them (every attempt counts)."""

    reads: int = 0
    writes: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class UpsertReport:
    """What one upsert did to one worksheet."""

    sheet: str
    updated: int
    appended: int
    #: Rows passed in ``only_if_missing`` that were found in the sheet and left alone.
    unchanged: int
    requests: RequestCount
    repairs: tuple[str, ...]
    duration: float


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, as Google advises for 429 and 5xx."""

    attempts: int = 6
    base_seconds: float = 1.0
    max_seconds: float = 32.0

    def delay(self, attempt: int, retry_after: float = 0.0) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        The jitter spreads the retries of several flushes; a server's Retry-After wins when it
        asks for longer, capped like the backoff itself.
        """
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        return max(jittered, min(retry_after, self.max_seconds))


class ClientFactory(Protocol):
    def __call__(
        self,
        key_info: dict[str, Any],
        api_endpoint: str | None,
        timeout: tuple[float, float] = ...,
    ) -> gspread.Client: ...


# --------------------------------------------------------------------------------------------
# Internal state of one flush and of one worksheet
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Op:
    """One kind of API request: its metrics label and which quota bucket it draws from."""

    name: str
    write: bool


_GET = _Op("get", write=False)
_BATCH_GET = _Op("batchGet", write=False)
_BATCH_UPDATE = _Op("batchUpdate", write=True)
_VALUES_UPDATE = _Op("values.batchUpdate", write=True)


@dataclass
class _Worksheet:
    """What the writer remembers about a worksheet between flushes (saves metadata reads)."""

    sheet_id: int
    title: str
    row_count: int
    column_count: int
    #: Row 1 as last read or written; tells which column to read as the key column.
    header: list[str] | None = None

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> _Worksheet:
        grid = properties.get("gridProperties", {})
        return cls(
            sheet_id=int(properties["sheetId"]),
            title=str(properties["title"]),
            row_count=int(grid.get("rowCount", 0)),
            column_count=int(grid.get("columnCount", 0)),
        )


@dataclass
class _Stats:
    """Requests and repairs of one upsert, for its report and log line."""

    sheet: str
    reads: int = 0
    writes: int = 0
    repairs: list[str] = field(default_factory=list)

    def count(self, op: _Op) -> None:
        if op.write:
            self.writes += 1
        else:
            self.reads += 1

    def repair(self, message: str) -> None:
        self.repairs.append(message)
        log.warning("%s: %s", self.sheet, message)


@dataclass(frozen=True)
class _Layout:
    """Row 1 and the key column as read in this flush."""

    #: Stripped header text -> 0-based column index (the first column wins on duplicates).
    columns: dict[str, int]
    #: The key column top-down as text; index 0 is row 1.
    key_cells: list[str]


@dataclass(frozen=True)
class _Placement:
    """Where each URL's row goes in this flush."""

    #: URL -> 1-based row number to write.
    targets: dict[str, int]
    updated: int
    appended: int
    unchanged: int
    #: URL -> every row holding it, for URLs found more than once.
    duplicates: dict[str, list[int]]

    @property
    def last_row(self) -> int:
        return max(self.targets.values(), default=0)


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


class SheetsWriter:
    """Writes rows into the worksheets of one spreadsheet; one instance per spreadsheet."""

    def __init__(
        self,
        settings: GoogleSettings,
        metrics: Metrics | None = None,
        *,
        read_budget: RequestBudget | None = None,
        write_budget: RequestBudget | None = None,
        client_factory: ClientFactory = gspread_client,
        retry: RetryPolicy | None = None,
        lock_path: Path | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._read_budget = read_budget or RequestBudget(settings.read_requests_per_minute)
        self._write_budget = write_budget or RequestBudget(settings.write_requests_per_minute)
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-sheets")
        self._http: HTTPClient | None = None
        self._closed = False
        #: Keyed by casefolded title: Google matches titles case-insensitively.
        self._worksheets: dict[str, _Worksheet] = {}
        self._metadata_lock = asyncio.Lock()
        self._sheet_locks: dict[str, asyncio.Lock] = {}
        #: Keys of each worksheet as last read or written, by casefolded title: they identify
        #: the key column again if someone clears or renames its header.
        self._last_keys: dict[str, frozenset[str]] = {}
        #: Locked around every upsert when set, so that another process writing this
        #: spreadsheet (the daemon, `syncd backfill`) cannot append the same URL meanwhile.
        self._lock_path = lock_path

    # -- public API ----------------------------------------------------------------------

    async def check_access(self) -> str:
        """Open the spreadsheet and return its title; raise the clear errors otherwise."""
        return await self._load_metadata(_Stats(sheet="(spreadsheet)"))

    async def upsert(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        *,
        only_if_missing: Collection[str] = (),
    ) -> UpsertReport:
        """Write ``rows`` (URL -> the cells to write) into ``sheet``, one row per URL.

        A URL already in the key column has its given cells overwritten in place; any other URL
        is appended after the last non-empty cell of the key column. URLs in
        ``only_if_missing`` are appended when absent and otherwise left alone, so a row a user
        deleted comes back without rewriting unchanged rows.
        """
        _check_headers(sheet, rows)
        started = time.monotonic()
        stats = _Stats(sheet=sheet.title)
        placement = _Placement({}, 0, 0, 0, {})
        if rows:
            async with self._sheet_lock(sheet.title), self._process_lock():
                placement = await self._upsert_with_refresh(sheet, rows, only_if_missing, stats)
        report = UpsertReport(
            sheet=sheet.title,
            updated=placement.updated,
            appended=placement.appended,
            unchanged=placement.unchanged,
            requests=RequestCount(stats.reads, stats.writes),
            repairs=tuple(stats.repairs),
            duration=time.monotonic() - started,
        )
        self._record(report)
        return report

    def close(self) -> None:
        """Stop the worker thread without waiting for it.

        Requests still queued fail at once; a request in flight ends at its timeout, after
        which the session is closed on the worker thread and the thread exits.
        """
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._close_session)
        self._executor.shutdown(wait=False)

    # -- one upsert ----------------------------------------------------------------------

    async def _upsert_with_refresh(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        only_if_missing: Collection[str],
        stats: _Stats,
    ) -> _Placement:
        """Upsert; after a 400, forget the cached grid and try once more.

        A 400 mostly means the cached metadata went stale: the worksheet was renamed or
        deleted, or rows or columns were removed since it was last read.
        """
        try:
            return await self._upsert_once(sheet, rows, only_if_missing, stats)
        except SheetsRequestError as exc:
            self._worksheets.pop(sheet.title.casefold(), None)
            stats.repair(f"re-read the worksheet's grid after Google refused a request: {exc}")
            return await self._upsert_once(sheet, rows, only_if_missing, stats)

    async def _upsert_once(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        only_if_missing: Collection[str],
        stats: _Stats,
    ) -> _Placement:
        worksheet = await self._worksheet(sheet, stats)
        layout = await self._read_layout(sheet, worksheet, rows.keys(), stats)
        placement = _place(layout.key_cells, rows, only_if_missing)
        for url, numbers in placement.duplicates.items():
            log.warning(
                "%s: %s is in rows %s; updated row %d only",
                sheet.title,
                url,
                ", ".join(map(str, numbers)),
                numbers[0],
            )
        await self._grow_rows(sheet, worksheet, layout, placement.last_row, stats)
        data = _value_ranges(worksheet.title, sheet.key_column, layout, placement.targets, rows)
        for chunk in _chunks(data, MAX_WRITE_BYTES, MAX_RANGES_PER_WRITE):
            body = {"valueInputOption": "RAW", "data": chunk}
            await self._request(
                _VALUES_UPDATE, lambda http, b=body: http.values_batch_update(self._id, b), stats
            )
        stripped = (cell.strip() for cell in layout.key_cells[1:])
        self._last_keys[sheet.title.casefold()] = frozenset(filter(None, stripped)) | set(rows)
        # Rows the caller had written before and expected here: someone deleted them.
        restored = [url for url in only_if_missing if url in placement.targets]
        if restored:
            shown = ", ".join(restored[:3]) + (", ..." if len(restored) > 3 else "")
            stats.repair(f"re-created {len(restored)} row(s) missing from the sheet: {shown}")
        return placement

    # -- worksheet metadata --------------------------------------------------------------

    async def _worksheet(self, sheet: SheetSettings, stats: _Stats) -> _Worksheet:
        """The cached worksheet; metadata is read only for a worksheet not seen yet."""
        key = sheet.title.casefold()
        worksheet = self._worksheets.get(key)
        if worksheet is not None:
            return worksheet
        async with self._metadata_lock:
            if key not in self._worksheets:
                await self._load_metadata(stats)
            if key not in self._worksheets:
                await self._create_worksheet(sheet, stats)
            return self._worksheets[key]

    async def _load_metadata(self, stats: _Stats) -> str:
        """Read the spreadsheet's grid metadata (1 read); return the spreadsheet's title.

        Worksheets whose id did not change keep their known header, so a refresh caused by
        one worksheet does not cost the others an extra read.
        """
        metadata = await self._request(
            _GET, lambda http: http.fetch_sheet_metadata(self._id), stats
        )
        previous = self._worksheets
        self._worksheets = {}
        for entry in metadata.get("sheets", []):
            worksheet = _Worksheet.from_properties(entry["properties"])
            key = worksheet.title.casefold()
            known = previous.get(key)
            if known is not None and known.sheet_id == worksheet.sheet_id:
                worksheet.header = known.header
            self._worksheets[key] = worksheet
        return str(metadata.get("properties", {}).get("title", ""))

    async def _create_worksheet(self, sheet: SheetSettings, stats: _Stats) -> None:
        """Add the worksheet with its header row and date formats in one batchUpdate (1 write).

        The sheet id is chosen here so that the header and formats can address the new sheet
        in the same atomic request. Row 1 is frozen so that sorting in the UI keeps it on top.
        """
        sheet_id = self._new_sheet_id()
        headers = list(sheet.headers)
        worksheet = _Worksheet(
            sheet_id=sheet_id,
            title=sheet.title,
            row_count=NEW_SHEET_ROWS,
            column_count=max(NEW_SHEET_COLUMNS, len(headers)),
            header=headers,
        )
        add_sheet = {
            "addSheet": {
                "properties": {
                    "sheetId": sheet_id,
                    "title": sheet.title,
                    "gridProperties": {
                        "rowCount": worksheet.row_count,
                        "columnCount": worksheet.column_count,
                        "frozenRowCount": 1,
                    },
                }
            }
        }
        typed = _typed_columns(sheet, {h: i for i, h in enumerate(headers)})
        await self._batch_update(
            [
                add_sheet,
                _header_cells(sheet_id, 0, headers),
                *_date_formats(sheet_id, typed, 1, worksheet.row_count),
            ],
            stats,
        )
        self._worksheets[sheet.title.casefold()] = worksheet
        log.info("%s: created the worksheet with %d header(s)", sheet.title, len(headers))

    def _new_sheet_id(self) -> int:
        """A random positive 31-bit id no known worksheet uses (Google's own ids look alike)."""
        taken = {w.sheet_id for w in self._worksheets.values()}
        while True:
            candidate = random.randrange(1, 2**31 - 1)
            if candidate not in taken:
                return candidate

    # -- header row and key column -------------------------------------------------------

    async def _read_layout(
        self, sheet: SheetSettings, worksheet: _Worksheet, keys: Collection[str], stats: _Stats
    ) -> _Layout:
        """Read row 1 and the key column in one request, repairing the header row if needed.

        The key column is read where the header known from the last flush puts it; if row 1
        now shows it elsewhere (a user moved it) or it had to be re-created, the read is
        repeated at the right column. The steady state is exactly one read.
        """
        for _ in range(MAX_LAYOUT_READS):
            known = _header_index(worksheet.header or [])
            wanted = known.get(sheet.key_column)
            header, key_cells = await self._read_header_and_keys(worksheet, wanted, stats)
            if sheet.key_column not in _header_index(header):
                header = await self._restore_key_header(sheet, worksheet, header, keys, stats)
            header = await self._add_missing_headers(sheet, worksheet, header, stats)
            worksheet.header = header
            columns = _header_index(header)
            found = columns[sheet.key_column]
            if found == wanted:
                return _Layout(columns, key_cells)
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

    async def _read_header_and_keys(
        self, worksheet: _Worksheet, key_column: int | None, stats: _Stats
    ) -> tuple[list[str], list[str]]:
        """One ``values:batchGet`` (1 read) of row 1 and, when known, the key column."""
        title = _quote_title(worksheet.title)
        ranges = [f"{title}!1:1"]
        if key_column is not None:
            letters = column_letters(key_column + 1)
            ranges.append(f"{title}!{letters}:{letters}")
        value_ranges = await self._batch_get_columns(ranges, stats)
        columns = value_ranges[0] if value_ranges else []
        header = [_text(column[0]) if column else "" for column in columns]
        keys = value_ranges[1] if len(value_ranges) > 1 else []
        return header, [_text(cell) for cell in (keys[0] if keys else [])]

    async def _restore_key_header(
        self,
        sheet: SheetSettings,
        worksheet: _Worksheet,
        header: list[str],
        keys: Collection[str],
        stats: _Stats,
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
            else sum(1 for cell in cells[1:] if _text(cell).strip() in known)
            for index, cells in enumerate(columns)
        ]
        if not any(hits):
            return header
        index = hits.index(max(hits))
        request = _header_cells(worksheet.sheet_id, index, [sheet.key_column])
        await self._batch_update([request], stats)
        restored = [*header, *[""] * (index + 1 - len(header))]
        stats.repair(
            f"restored the key header {sheet.key_column!r} in {column_letters(index + 1)}, "
            f"the column holding the rows' keys (row 1 there said {restored[index]!r})"
        )
        restored[index] = sheet.key_column
        return restored

    async def _read_columns(self, worksheet: _Worksheet, stats: _Stats) -> list[list[Any]]:
        """Every used cell of the worksheet, column by column (1 read)."""
        value_ranges = await self._batch_get_columns([_quote_title(worksheet.title)], stats)
        return value_ranges[0] if value_ranges else []

    async def _batch_get_columns(self, ranges: list[str], stats: _Stats) -> list[list[list[Any]]]:
        """One ``values:batchGet`` (1 read): each range's cells, column by column."""
        params = {"majorDimension": "COLUMNS"}
        response = await self._request(
            _BATCH_GET,
            lambda http: http.values_batch_get(self._id, ranges, params=dict(params)),
            stats,
        )
        return [value_range.get("values", []) for value_range in response.get("valueRanges", [])]

    async def _add_missing_headers(
        self, sheet: SheetSettings, worksheet: _Worksheet, header: list[str], stats: _Stats
    ) -> list[str]:
        """Append owned headers missing from row 1 after its last header (1 write, rare).

        Existing headers are never moved or renamed: a header a user renamed is a column of
        theirs now, and the daemon's column is re-created at the end. The grid widens when
        needed and re-created date columns get their number format, in the same request.
        """
        present = _header_index(header)
        missing = [h for h in sheet.headers if h not in present]
        if not missing:
            return header
        start = _used_length(header)
        new_header = [*header[:start], *missing]
        requests: list[dict[str, Any]] = []
        if len(new_header) > worksheet.column_count:
            extra = len(new_header) - worksheet.column_count
            requests.append(_append_dimension(worksheet.sheet_id, "COLUMNS", extra))
        requests.append(_header_cells(worksheet.sheet_id, start, missing))
        added = {h: start + i for i, h in enumerate(missing)}
        typed = _typed_columns(sheet, added)
        requests.extend(_date_formats(worksheet.sheet_id, typed, 1, worksheet.row_count))
        await self._batch_update(requests, stats)
        worksheet.column_count = max(worksheet.column_count, len(new_header))
        where = ", ".join(f"{h!r} in {column_letters(i + 1)}" for h, i in added.items())
        stats.repair(f"added missing header(s): {where}")
        return new_header

    # -- grid growth ---------------------------------------------------------------------

    async def _grow_rows(
        self,
        sheet: SheetSettings,
        worksheet: _Worksheet,
        layout: _Layout,
        last_row: int,
        stats: _Stats,
    ) -> None:
        """Append rows when the write would pass the grid's end (1 write, only then).

        Writing past ``rowCount`` is a 400, so the grid grows first, in chunks so that this is
        rare, and the new rows get the date formats in the same request.
        """
        if last_row <= worksheet.row_count:
            return
        old = worksheet.row_count
        extra = max(last_row - old, old // 10, MIN_ROW_GROWTH)
        typed = _typed_columns(sheet, layout.columns)
        await self._batch_update(
            [
                _append_dimension(worksheet.sheet_id, "ROWS", extra),
                *_date_formats(worksheet.sheet_id, typed, old, old + extra),
            ],
            stats,
        )
        worksheet.row_count = old + extra
        log.info("%s: grew the grid from %d to %d rows", sheet.title, old, worksheet.row_count)

    # -- requests ------------------------------------------------------------------------

    @property
    def _id(self) -> str:
        return self._settings.spreadsheet_id

    async def _batch_update(self, requests: list[dict[str, Any]], stats: _Stats) -> None:
        body = {"requests": requests}
        await self._request(_BATCH_UPDATE, lambda http: http.batch_update(self._id, body), stats)

    async def _request(self, op: _Op, call: Callable[[HTTPClient], T], stats: _Stats) -> T:
        """Run one API request with bounded, jittered retries of transient failures.

        Every attempt first takes a slot of the read or write budget, so retries count
        against the quota like any request. After a 429 the whole budget pauses for the
        backoff, holding back the other flushes too.
        """
        budget = self._write_budget if op.write else self._read_budget
        attempts = self._retry.attempts
        attempt = 0
        while True:
            attempt += 1
            await budget.acquire()
            stats.count(op)
            try:
                result = await self._in_thread(call)
            except SheetsApiError:
                raise
            except Exception as exc:
                status, error = self._classify(exc)
                self._metrics.sheets_requests.inc(kind=op.name, status=status)
                if not error.transient:
                    raise error from exc
                if attempt == attempts:
                    raise SheetsUnavailable(
                        f"Google Sheets failed {attempts} times in a row ({op.name}): {error}"
                    ) from exc
                delay = self._retry.delay(attempt, _retry_after(exc))
                if status == "429":
                    budget.pause_for(delay)
                log.info(
                    "%s: %s failed (%s); retry %d/%d in %.1f s",
                    stats.sheet,
                    op.name,
                    error,
                    attempt,
                    attempts - 1,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self._metrics.sheets_requests.inc(kind=op.name, status="200")
                return result

    def _classify(self, exc: Exception) -> tuple[str, SheetsApiError]:
        """Map a failure to its metrics status and the error it means for the caller.

        Transient failures come back as ``SheetsUnavailable``; anything not recognised is a
        bug and is re-raised unchanged.
        """
        email = self._settings.service_account_email or "the service account"
        if isinstance(exc, gspread.exceptions.APIError):
            return _classify_api_error(exc, self._id, email)
        if isinstance(exc, requests.Timeout):
            return "timeout", SheetsUnavailable("Google Sheets did not answer in time")
        if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return "connection", SheetsUnavailable(f"cannot reach Google Sheets: {exc}")
        if isinstance(exc, auth_exceptions.TransportError):
            return "auth", SheetsUnavailable("cannot reach Google's token endpoint")
        if isinstance(exc, auth_exceptions.RefreshError):
            return "auth", _refresh_error(exc, email)
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            return "auth", SheetsAuthError(f"the service-account key of {email} is unusable")
        raise exc

    # -- the worker thread ---------------------------------------------------------------

    async def _in_thread(self, call: Callable[[HTTPClient], T]) -> T:
        if self._closed:
            raise SheetsUnavailable("the Sheets writer is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, call)

    def _run(self, call: Callable[[HTTPClient], T]) -> T:
        """Runs on the worker thread, which alone creates and uses the gspread client."""
        if self._closed:
            raise SheetsUnavailable("the Sheets writer is closed")
        if self._http is None:
            timeout = (
                min(CONNECT_TIMEOUT_SECONDS, self._settings.timeout_seconds),
                self._settings.timeout_seconds,
            )
            client = self._client_factory(
                self._settings.service_account_info, self._settings.api_endpoint, timeout=timeout
            )
            self._http = client.http_client
        return call(self._http)

    def _close_session(self) -> None:
        if self._http is not None:
            self._http.session.close()

    # -- bookkeeping ---------------------------------------------------------------------

    def _sheet_lock(self, title: str) -> asyncio.Lock:
        """Flushes of one worksheet run one at a time: both would append at the same rows."""
        return self._sheet_locks.setdefault(title.casefold(), asyncio.Lock())

    def _process_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The cross-process lock of ``lock_path``, or nothing when there is none."""
        return file_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()

    def _record(self, report: UpsertReport) -> None:
        written = report.updated + report.appended
        if written:
            self._metrics.rows_written.inc(written, sheet=report.sheet)
        self._metrics.write_latency.observe(report.duration)
        log.info(
            "%s: %d updated, %d appended, %d unchanged; %d read(s), %d write(s); %.2f s",
            report.sheet,
            report.updated,
            report.appended,
            report.unchanged,
            report.requests.reads,
            report.requests.writes,
            report.duration,
            extra={
                "fields": {
                    "sheet": report.sheet,
                    "updated": report.updated,
                    "appended": report.appended,
                    "unchanged": report.unchanged,
                    "reads": report.requests.reads,
                    "writes": report.requests.writes,
                    "repairs": len(report.repairs),
                    "duration": round(report.duration, 3),
                }
            },
        )


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def _check_headers(sheet: SheetSettings, rows: Mapping[str, Row]) -> None:
    """Refuse cells outside the owned columns: the writer must never touch a user's column."""
    owned = set(sheet.headers)
    unknown = sorted({h for row in rows.values() for h in row if h not in owned})
    if unknown:
        raise ValueError(f"{sheet.title}: rows name headers the sheet does not own: {unknown}")


def _place(
    key_cells: list[str], urls: Collection[str], only_if_missing: Collection[str]
) -> _Placement:
    """Decide the row of every URL from the key column as read.

    A URL is matched against each key cell's stripped text; cells holding anything else are
    ignored. New rows go after the last non-empty cell of the key column, not after the last
    used row of the sheet: rows below that hold only a user's own notes are written into
    (in the daemon's columns only), rather than pushing the table ever further down.
    """
    wanted = set(urls)
    found: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    last_used = 1
    for number, cell in enumerate(key_cells, start=1):
        text = cell.strip()
        if not text:
            continue
        last_used = number
        if number == 1 or text not in wanted:
            continue
        if text in found:
            duplicates.setdefault(text, [found[text]]).append(number)
        else:
            found[text] = number
    targets: dict[str, int] = {}
    updated = appended = unchanged = 0
    for url in urls:
        if url in found and url in only_if_missing:
            unchanged += 1
        elif url in found:
            targets[url] = found[url]
            updated += 1
        else:
            last_used += 1
            targets[url] = last_used
            appended += 1
    return _Placement(targets, updated, appended, unchanged, duplicates)


def _value_ranges(
    title: str,
    key_column: str,
    layout: _Layout,
    targets: Mapping[str, int],
    rows: Mapping[str, Row],
) -> list[dict[str, Any]]:
    """One ``ValueRange`` per contiguous run of given cells per row, in row order.

    Runs stop at any column the daemon does not write in this row, so a user's column between
    two of ours is never overwritten. The key cell is always written, so a new row has it.
    """
    quoted = _quote_title(title)
    data: list[dict[str, Any]] = []
    for url, number in sorted(targets.items(), key=itemgetter(1)):
        cells = {**rows[url], key_column: url}
        placed = sorted(((layout.columns[h], v) for h, v in cells.items()), key=itemgetter(0))
        for first, values in _runs(placed):
            last = column_letters(first + len(values))
            data.append(
                {
                    "range": f"{quoted}!{column_letters(first + 1)}{number}:{last}{number}",
                    "values": [values],
                }
            )
    return data


def _runs(placed: list[tuple[int, CellValue]]) -> Iterator[tuple[int, list[CellValue]]]:
    """Group (column, value) pairs sorted by column into runs of adjacent columns."""
    start: int | None = None
    values: list[CellValue] = []
    for column, value in placed:
        if start is not None and column != start + len(values):
            yield start, values
            start, values = None, []
        if start is None:
            start = column
        values.append(value)
    if start is not None:
        yield start, values


def _chunks(
    data: list[dict[str, Any]], max_bytes: int, max_ranges: int
) -> Iterator[list[dict[str, Any]]]:
    """Split value ranges into requests of bounded size; each stays idempotent on retry."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in data:
        item_size = len(json.dumps(item))
        if chunk and (size + item_size > max_bytes or len(chunk) >= max_ranges):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _header_index(header: list[str]) -> dict[str, int]:
    """Header text (stripped) -> column index; the first of duplicated headers wins."""
    index: dict[str, int] = {}
    for position, text in enumerate(header):
        name = text.strip()
        if name:
            index.setdefault(name, position)
    return index


def _used_length(cells: list[str]) -> int:
    """Length of a list of cells without its trailing blanks."""
    length = len(cells)
    while length and not cells[length - 1].strip():
        length -= 1
    return length


def _typed_columns(sheet: SheetSettings, columns: Mapping[str, int]) -> list[tuple[int, str]]:
    """(column index, column type) of the date/datetime columns among ``columns``."""
    return [
        (columns[c.header], c.type)
        for c in sheet.columns
        if c.type in NUMBER_FORMATS and c.header in columns
    ]


def _date_formats(
    sheet_id: int, typed: list[tuple[int, str]], start_row: int, end_row: int
) -> list[dict[str, Any]]:
    """``repeatCell`` requests giving date columns their number format over a row span.

    Date cells hold serial numbers (see syncd.mapping); without the format they show as
    plain numbers. Only rows the daemon creates are formatted, so a user's own date pattern
    on existing rows is kept.
    """
    return [
        {
            "repeatCell": {
                "range": {
                    "sheetId": sheet_id,
                    "startRowIndex": start_row,
                    "endRowIndex": end_row,
                    "startColumnIndex": column,
                    "endColumnIndex": column + 1,
                },
                "cell": {"userEnteredFormat": {"numberFormat": NUMBER_FORMATS[kind]}},
                "fields": "userEnteredFormat.numberFormat",
            }
        }
        for column, kind in typed
        if end_row > start_row
    ]


def _header_cells(sheet_id: int, start_column: int, headers: list[str]) -> dict[str, Any]:
    """An ``updateCells`` request writing header texts into row 1 from ``start_column``."""
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": start_column},
            "rows": [{"values": [{"userEnteredValue": {"stringValue": h}} for h in headers]}],
            "fields": "userEnteredValue",
        }
    }


def _append_dimension(sheet_id: int, dimension: str, length: int) -> dict[str, Any]:
    return {"appendDimension": {"sheetId": sheet_id, "dimension": dimension, "length": length}}


def _quote_title(title: str) -> str:
    """A worksheet title as the sheet part of an A1 range; quoting is always valid."""
    return "'" + title.replace("'", "''") + "'"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _retry_after(exc: Exception) -> float:
    """The server's Retry-After in seconds, when it sent one as a number."""
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(header)) if header else 0.0
    except ValueError:
        return 0.0


def _classify_api_error(
    exc: gspread.exceptions.APIError, spreadsheet_id: str, email: str
) -> tuple[str, SheetsApiError]:
    """Turn an HTTP error from the Sheets API into the error the user can act on."""
    code = exc.code if exc.code > 0 else exc.response.status_code
    message = str(exc.error.get("message", "")).strip()[:500]
    status = str(code)
    if code in (408, 429) or code >= 500:
        return status, SheetsUnavailable(f"Google Sheets answered {code}: {message}")
    if code == 403:
        return status, SheetsPermissionError(
            f"the service account {email} may not edit spreadsheet {spreadsheet_id}: share the "
            f"spreadsheet with {email} as Editor (Google said: {message})"
        )
    if code == 404:
        return status, SheetsNotFoundError(
            f"spreadsheet {spreadsheet_id} not found: check google.spreadsheet_id"
        )
    if code == 401:
        return status, SheetsAuthError(
            f"Google rejected the credentials of {email}: check google.service_account_file"
        )
    return status, SheetsRequestError(f"Google Sheets refused the request ({code}): {message}")


def _refresh_error(exc: auth_exceptions.RefreshError, email: str) -> SheetsApiError:
    """A failed token request; only Google's error code and description are quoted."""
    reason = str(exc.args[0]) if exc.args else "no reason given"
    if "invalid_grant" in reason:
        return SheetsAuthError(
            f"Google refused the service-account key of {email} (invalid_grant): the key was "
            "probably revoked or deleted (create a new one) or this machine's clock is wrong"
        )
    if exc.retryable:
        return SheetsUnavailable(f"Google's token endpoint failed: {reason[:200]}")
    return SheetsAuthError(f"cannot get a Google access token for {email}: {reason[:200]}")
