"""The Sheets writer, through real gspread and google-auth, against the Sheets emulator.

"The user" edits the spreadsheet with a gspread client of their own (or by seeding cells in
the emulator), the way people sort, insert columns and delete rows in the UI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import gspread
import pytest

from syncd.config.columns import Column
from syncd.config.settings import GoogleSettings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.errors import Action
from syncd.core.retry import Backoff
from syncd.mapping.cells import Row
from syncd.sandbox.servers import free_port
from syncd.sandbox.sheets.auth import generate_service_account_key
from syncd.sandbox.sheets.cells import Formula
from syncd.sandbox.sheets.server import SheetsEmulator
from syncd.sheets import writer as sheets_module
from syncd.sheets.errors import (
    SheetsApiError,
    SheetsAuthError,
    SheetsNotFoundError,
    SheetsPermissionError,
    SheetsRequestError,
    SheetsUnavailable,
)
from syncd.sheets.reports import UpsertReport
from syncd.sheets.writer import SheetsWriter
from syncd.store.rows import RowState
from tests.fixtures_sheets import SheetsSandbox

pytestmark = pytest.mark.usefixtures("no_outbound_network")

ATTEMPTS = 4
FAST_RETRY: dict[str, Any] = {
    "max_attempts": ATTEMPTS,
    "backoff": Backoff(base_seconds=0.001, max_seconds=0.005),
}
MEMBERS = SheetSettings(
    title="Members",
    resource="membership",
    events=("created_membership",),
    columns=(
        Column("Name", "name"),
        Column("Email", "email"),
        Column("Joined", "joined_at", "date"),
    ),
    key_column="URL",
    deleted_column="Deleted",
    filters={},
)
HEADERS = ["Name", "Email", "Joined", "Deleted", "URL"]
JOINED = 45537  # 2024-09-02 as a Sheets serial number


def url(n: int) -> str:
    return f"https://co-up.cobot.me/api/memberships/m{n}"


def member(n: int, name: str | None = None) -> Row:
    return {
        "Name": name or f"Member {n}",
        "Email": f"m{n}@example.org",
        "Joined": JOINED + n,
        "Deleted": "",
        "URL": url(n),
    }


def members(*numbers: int, suffix: str = "") -> dict[str, Row]:
    return {url(n): member(n, f"Member {n}{suffix}") for n in numbers}


def google_settings(sandbox: SheetsSandbox, spreadsheet_id: str | None = None) -> GoogleSettings:
    return GoogleSettings(
        service_account_file=sandbox.key_file,
        service_account_info=sandbox.key_info,
        spreadsheet_id=spreadsheet_id or sandbox.spreadsheet_id,
        api_endpoint=sandbox.url,
        write_requests_per_minute=1000,
        read_requests_per_minute=1000,
        timeout_seconds=10.0,
    )


def new_writer(sandbox: SheetsSandbox, **kwargs: Any) -> SheetsWriter:
    kwargs = {**FAST_RETRY, **kwargs}
    return SheetsWriter(google_settings(sandbox, kwargs.pop("spreadsheet_id", None)), **kwargs)


@pytest.fixture
async def writer(sheets_emulator: SheetsSandbox) -> AsyncIterator[SheetsWriter]:
    writer = new_writer(sheets_emulator)
    yield writer
    writer.close()


async def wait_for_served(emulator: SheetsEmulator, calls: int, timeout: float = 30) -> None:
    """Wait until the emulator has served ``calls`` Sheets API calls (token calls aside)."""
    async with asyncio.timeout(timeout):
        while sum(r.kind is not None for r in emulator.request_log) < calls:
            await asyncio.sleep(0.01)


def table(sandbox: SheetsSandbox, title: str = "Members") -> list[list[Any]]:
    """The tab as stored, rows padded to the header's width (None = empty cell)."""
    rows = sandbox.emulator.values(sandbox.spreadsheet_id, title)
    width = max(len(row) for row in rows)
    return [row + [None] * (width - len(row)) for row in rows]


def records(sandbox: SheetsSandbox, title: str = "Members") -> list[dict[str, Any]]:
    header, *rows = table(sandbox, title)
    return [dict(zip(header, row, strict=True)) for row in rows]


def by_url(sandbox: SheetsSandbox) -> dict[str, dict[str, Any]]:
    return {r["URL"]: r for r in records(sandbox) if r.get("URL")}


class User:
    """Someone editing the spreadsheet by hand, through their own API client."""

    def __init__(self, sandbox: SheetsSandbox) -> None:
        self.sandbox = sandbox
        self.spreadsheet = sandbox.client().open_by_key(sandbox.spreadsheet_id)

    def worksheet(self, title: str = "Members") -> gspread.Worksheet:
        return self.spreadsheet.worksheet(title)

    def request(self, request: Mapping[str, Any]) -> None:
        self.spreadsheet.batch_update({"requests": [request]})

    def insert_column(self, index: int, values: list[Any], title: str = "Members") -> None:
        """Insert a column before 0-based ``index`` and fill it from row 1 down."""
        sheet_id = self.worksheet(title).id
        span = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": index}
        self.request({"insertDimension": {"range": {**span, "endIndex": index + 1}}})
        self.set_cells([[v] for v in values], gspread.utils.rowcol_to_a1(1, index + 1), title)

    def delete_row(self, number: int, title: str = "Members") -> None:
        sheet_id = self.worksheet(title).id
        span = {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": number - 1}
        self.request({"deleteDimension": {"range": {**span, "endIndex": number}}})

    def set_cells(self, rows: list[list[Any]], start: str, title: str = "Members") -> None:
        self.sandbox.emulator.set_values(self.sandbox.spreadsheet_id, title, rows, start)

    def sort_rows(self, key: Any, title: str = "Members") -> None:
        """Reorder the data rows (row 1 stays), as a sort in the UI does."""
        _header, *rows = table(self.sandbox, title)
        ordered = sorted(rows, key=key)
        self.set_cells([["" if v is None else v for v in row] for row in ordered], "A2", title)


def counts(sandbox: SheetsSandbox) -> tuple[int, int]:
    return sandbox.emulator.reads, sandbox.emulator.writes


# -- creating, appending, updating ---------------------------------------------------------


async def test_creates_worksheet_with_headers_and_appends_rows(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    report = await writer.upsert(MEMBERS, members(1, 2))

    assert (report.updated, report.appended) == (0, 2)
    assert table(sheets_emulator) == [
        HEADERS,
        ["Member 1", "m1@example.org", JOINED + 1, None, url(1)],
        ["Member 2", "m2@example.org", JOINED + 2, None, url(2)],
    ]
    metadata = sheets_emulator.client().open_by_key(sheets_emulator.spreadsheet_id)
    assert metadata.worksheet("Members").frozen_row_count == 1


async def test_second_upsert_updates_in_place(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2))
    report = await writer.upsert(MEMBERS, {**members(2, 1, suffix=" (new)"), **members(3)})

    assert (report.updated, report.appended) == (2, 1)
    assert [r["Name"] for r in records(sheets_emulator)] == [
        "Member 1 (new)",
        "Member 2 (new)",
        "Member 3",
    ]


async def test_user_sort_and_own_column_are_respected(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3))
    user = User(sheets_emulator)
    user.sort_rows(key=lambda row: -row[2])  # by Joined, newest first: m3, m2, m1
    user.insert_column(1, ["Notes", "note on 3", "note on 2", "note on 1"])

    report = await writer.upsert(MEMBERS, members(1, 2, 3, suffix=" (new)"))

    assert (report.updated, report.appended) == (3, 0)
    assert table(sheets_emulator) == [
        ["Name", "Notes", "Email", "Joined", "Deleted", "URL"],
        ["Member 3 (new)", "note on 3", "m3@example.org", JOINED + 3, None, url(3)],
        ["Member 2 (new)", "note on 2", "m2@example.org", JOINED + 2, None, url(2)],
        ["Member 1 (new)", "note on 1", "m1@example.org", JOINED + 1, None, url(1)],
    ]


async def test_moved_key_column_is_found_again(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, caplog: pytest.LogCaptureFixture
) -> None:
    await writer.upsert(MEMBERS, members(1))
    User(sheets_emulator).insert_column(0, ["Mine", "x"])
    sheets_emulator.emulator.reset_counters()

    with caplog.at_level(logging.INFO, logger="syncd.sheets"):
        report = await writer.upsert(MEMBERS, members(1, suffix=" (new)"))

    assert report.updated == 1
    assert records(sheets_emulator)[0]["Mine"] == "x"
    assert records(sheets_emulator)[0]["Name"] == "Member 1 (new)"
    # The re-read at the key column's new place, and the date formats checked once, since
    # row 1 changed.
    assert counts(sheets_emulator) == (3, 1)
    assert "key column 'URL' moved from E to F" in caplog.text


async def test_deleted_owned_header_is_recreated_at_the_end(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, caplog: pytest.LogCaptureFixture
) -> None:
    await writer.upsert(MEMBERS, members(1))
    User(sheets_emulator).set_cells([[""]], "B1")  # the Email header is cleared

    with caplog.at_level(logging.WARNING, logger="syncd.sheets"):
        report = await writer.upsert(MEMBERS, members(1, 2))

    header = table(sheets_emulator)[0]
    assert header == ["Name", None, "Joined", "Deleted", "URL", "Email"]
    assert report.repairs == ("added missing header(s): 'Email' in F",)
    assert "added missing header(s): 'Email' in F" in caplog.text
    rows = by_url(sheets_emulator)
    assert rows[url(2)]["Email"] == "m2@example.org"
    assert table(sheets_emulator)[2][1] is None  # the old, now unnamed column is not written


async def test_deleted_column_is_refilled_with_the_stored_deletion_stamps(
    sheets_emulator: SheetsSandbox,
) -> None:
    stamp = "2024-05-01 10:00:00"
    # Rows written before their cells were kept: the stored Deleted stamp is all there is.
    stored = {url(1): RowState("f1", stamp), url(2): RowState("f2", None)}

    async def stored_rows(title: str) -> Mapping[str, RowState]:
        assert title == "Members"
        return stored

    writer = new_writer(sheets_emulator, stored_rows=stored_rows)
    try:
        await writer.upsert(MEMBERS, {url(1): {**member(1), "Deleted": stamp}, **members(2)})
        user = User(sheets_emulator)
        index = HEADERS.index("Deleted")
        span = {"sheetId": user.worksheet().id, "dimension": "COLUMNS", "startIndex": index}
        user.request({"deleteDimension": {"range": {**span, "endIndex": index + 1}}})
        report = await writer.upsert(MEMBERS, members(3))
    finally:
        writer.close()

    assert {r["URL"]: r["Deleted"] for r in records(sheets_emulator)} == {
        url(1): stamp,
        url(2): None,
        url(3): None,
    }
    assert (report.updated, report.appended) == (0, 1)
    assert "refilled 'Deleted' in 2 row(s) from the rows last written" in report.repairs


async def test_header_beyond_the_grid_widens_it(sheets_emulator: SheetsSandbox) -> None:
    emulator = sheets_emulator.emulator
    emulator.add_sheet(sheets_emulator.spreadsheet_id, "Members", rows=10, cols=3)
    emulator.set_values(sheets_emulator.spreadsheet_id, "Members", [["Mine", "Name", "Email"]])
    writer = new_writer(sheets_emulator)
    try:
        await writer.upsert(MEMBERS, members(1))
    finally:
        writer.close()

    assert table(sheets_emulator)[0] == ["Mine", "Name", "Email", "Joined", "Deleted", "URL"]
    assert emulator.grid_size(sheets_emulator.spreadsheet_id, "Members") == (10, 6)


async def test_columns_deleted_by_a_person_narrow_the_grid_without_losing_the_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    """The read below the table names the grid's width as last known; after a person deletes
    columns it is too wide, Google answers 400, and the writer re-reads the grid and goes on."""
    await writer.upsert(MEMBERS, members(1))
    user = User(sheets_emulator)
    sheet_id = user.worksheet().id
    span = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": 10, "endIndex": 26}
    user.request({"deleteDimension": {"range": span}})  # 26 columns -> 10
    refused_before = sum(r.status == 400 for r in sheets_emulator.emulator.request_log)

    report = await writer.upsert(MEMBERS, members(1, 2))

    assert sum(r.status == 400 for r in sheets_emulator.emulator.request_log) > refused_before
    assert (report.updated, report.appended) == (1, 1)
    assert set(by_url(sheets_emulator)) == {url(1), url(2)}


async def test_row_deleted_by_user_is_appended_again(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1, 2, 3))
    User(sheets_emulator).delete_row(3)  # m2
    sheets_emulator.emulator.reset_counters()

    report = await writer.upsert(MEMBERS, members(1, 2, 3), only_if_missing={url(1), url(2)})

    assert (report.updated, report.appended, report.unchanged) == (1, 1, 1)
    assert [r["URL"] for r in records(sheets_emulator)] == [url(1), url(3), url(2)]


async def test_duplicate_url_updates_the_first_row_only(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, caplog: pytest.LogCaptureFixture
) -> None:
    await writer.upsert(MEMBERS, members(1, 2))
    User(sheets_emulator).set_cells([["copy", "", "", "", url(1)]], "A4")

    with caplog.at_level(logging.WARNING, logger="syncd.sheets"):
        report = await writer.upsert(MEMBERS, members(1, suffix=" (new)"))

    assert (report.updated, report.appended) == (1, 0)
    assert [r["Name"] for r in records(sheets_emulator)] == ["Member 1 (new)", "Member 2", "copy"]
    assert f"{url(1)} is in rows 2, 4; updated row 2 only" in caplog.text


async def test_key_cells_match_after_stripping_and_ignore_other_text(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    User(sheets_emulator).set_cells([[f"  {url(1)} "], ["total: 1"]], "E2")

    report = await writer.upsert(MEMBERS, members(1, 2))

    assert (report.updated, report.appended) == (1, 1)
    assert [r["URL"] for r in records(sheets_emulator)] == [url(1), "total: 1", url(2)]


async def test_deletion_only_row_writes_only_the_deleted_cell(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    sheets_emulator.emulator.reset_counters()

    stamp = "2025-06-01T12:00:00Z"
    await writer.upsert(MEMBERS, {url(1): {"Deleted": stamp, "URL": url(1)}})

    assert records(sheets_emulator) == [{**member(1), "Deleted": stamp}]
    write = [r for r in sheets_emulator.emulator.request_log if r.kind == "write"]
    assert len(write) == 1 and write[0].path.endswith("values:batchUpdate")


async def test_new_deletion_row_holds_only_its_cells(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    stamp = "2025-06-01T12:00:00Z"
    await writer.upsert(MEMBERS, {url(7): {"Deleted": stamp, "URL": url(7)}})

    assert table(sheets_emulator)[1] == [None, None, None, stamp, url(7)]


async def test_date_column_gets_its_number_format(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))

    dumped = sheets_emulator.emulator.dump(sheets_emulator.spreadsheet_id)["Members"]
    assert dumped[1][2] == "2024-09-03"  # the serial number, shown as a date
    assert table(sheets_emulator)[1][2] == JOINED + 1


async def test_formula_like_text_is_stored_as_text(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    text = '=HYPERLINK("http://x")'
    await writer.upsert(MEMBERS, {url(1): {**member(1), "Name": text}})

    stored = table(sheets_emulator)[1][0]
    assert stored == text and not isinstance(stored, Formula)
    assert sheets_emulator.emulator.dump(sheets_emulator.spreadsheet_id)["Members"][1][0] == text


async def test_existing_tab_is_matched_case_insensitively(sheets_emulator: SheetsSandbox) -> None:
    sheets_emulator.emulator.add_sheet(sheets_emulator.spreadsheet_id, "members")
    writer = new_writer(sheets_emulator)
    try:
        await writer.upsert(MEMBERS, members(1))
    finally:
        writer.close()

    assert sheets_emulator.emulator.sheet_titles(sheets_emulator.spreadsheet_id) == [
        "Sheet1",
        "members",
    ]
    assert [r["URL"] for r in records(sheets_emulator, "members")] == [url(1)]


async def test_unknown_header_in_a_row_is_refused(writer: SheetsWriter) -> None:
    with pytest.raises(ValueError, match="Notes"):
        await writer.upsert(MEMBERS, {url(1): {"Notes": "x", "URL": url(1)}})


async def test_worksheet_deleted_by_user_is_created_again(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    user = User(sheets_emulator)
    user.request({"deleteSheet": {"sheetId": user.worksheet().id}})

    report = await writer.upsert(MEMBERS, members(2))

    assert report.appended == 1 and len(report.repairs) == 1
    assert [r["URL"] for r in records(sheets_emulator)] == [url(2)]


# -- request counts ------------------------------------------------------------------------


async def test_burst_then_steady_state_request_counts(sheets_emulator: SheetsSandbox) -> None:
    read_budget, write_budget = RequestBudget(1000), RequestBudget(1000)
    writer = new_writer(sheets_emulator, read_budget=read_budget, write_budget=write_budget)
    try:
        await writer.upsert(MEMBERS, members(0))  # setup: metadata, addSheet
        sheets_emulator.emulator.reset_counters()

        burst = await writer.upsert(MEMBERS, members(*range(1, 41)))
        assert burst.appended == 40
        assert sum(counts(sheets_emulator)) <= 3

        sheets_emulator.emulator.reset_counters()
        steady = await writer.upsert(MEMBERS, members(*range(41), suffix=" (new)"))
        assert steady.updated == 41
        assert counts(sheets_emulator) == (1, 1)
        assert (steady.requests.reads, steady.requests.writes) == (1, 1)
    finally:
        writer.close()
    assert len(records(sheets_emulator)) == 41
    # Every request drew from the budgets: setup (get, addSheet, read, write) + 2 + 2.
    assert (read_budget.used_in_window, write_budget.used_in_window) == (4, 4)


async def test_restarted_writer_learns_the_header_once(sheets_emulator: SheetsSandbox) -> None:
    first = new_writer(sheets_emulator)
    await first.upsert(MEMBERS, members(1))
    first.close()
    sheets_emulator.emulator.reset_counters()

    second = new_writer(sheets_emulator)
    try:
        report = await second.upsert(MEMBERS, members(1, 2))
        # get, row 1, layout; then once: the date formats, the rows below the last key
        assert (report.requests.reads, report.requests.writes) == (5, 1)
        report = await second.upsert(MEMBERS, members(1, 2))
        assert (report.requests.reads, report.requests.writes) == (1, 1)
    finally:
        second.close()


async def test_grid_grows_past_1000_rows(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(0))
    sheets_emulator.emulator.reset_counters()

    report = await writer.upsert(MEMBERS, members(*range(1, 1100)))

    assert report.appended == 1099
    assert counts(sheets_emulator) == (1, 2)  # read, grow, write
    rows, _ = sheets_emulator.emulator.grid_size(sheets_emulator.spreadsheet_id, "Members")
    assert rows == 1101  # header, m0, and 1099 new rows: grown by exactly what is needed
    dumped = sheets_emulator.emulator.dump(sheets_emulator.spreadsheet_id)["Members"]
    assert dumped[1100][4] == url(1099)


async def test_large_write_is_split_into_bounded_requests(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await writer.upsert(MEMBERS, members(0))
    monkeypatch.setattr(sheets_module, "MAX_RANGES_PER_WRITE", 10)
    sheets_emulator.emulator.reset_counters()

    report = await writer.upsert(MEMBERS, members(*range(1, 26)))

    assert report.requests.writes == 3
    assert len(records(sheets_emulator)) == 26


async def test_each_request_of_a_large_write_is_placed_from_a_fresh_read(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await writer.upsert(MEMBERS, members(*range(10)))
    monkeypatch.setattr(sheets_module, "MAX_RANGES_PER_WRITE", 4)
    emulator = sheets_emulator.emulator
    sorted_rows: list[bool] = []

    def reverse_rows() -> None:
        _header, *rows = table(sheets_emulator)
        emulator.set_values(sheets_emulator.spreadsheet_id, "Members", rows[::-1], "A2")
        sorted_rows.append(True)

    # A person sorts the rows once the first request is written, before the next is placed.
    emulator.on_next(
        "values:batchUpdate", lambda: emulator.on_next("values:batchGet", reverse_rows)
    )
    report = await writer.upsert(MEMBERS, members(*range(10), suffix=" v2"))

    assert sorted_rows and report.requests.writes == 3 and report.updated == 10
    assert {r["URL"]: (r["Name"], r["Email"]) for r in records(sheets_emulator)} == {
        url(n): (f"Member {n} v2", f"m{n}@example.org") for n in range(10)
    }


# -- errors --------------------------------------------------------------------------------


async def test_unshared_spreadsheet_names_the_service_account(
    sheets_emulator: SheetsSandbox,
) -> None:
    sheets_emulator.emulator.create_spreadsheet("unshared", shared_with=set())
    writer = new_writer(sheets_emulator, spreadsheet_id="unshared")
    email = sheets_emulator.key_info["client_email"]
    try:
        with pytest.raises(SheetsPermissionError) as caught:
            await writer.check_access()
    finally:
        writer.close()
    assert email in str(caught.value) and "Editor" in str(caught.value)
    assert caught.value.action is Action.PAUSE


async def test_unknown_spreadsheet_points_at_the_config_key(
    sheets_emulator: SheetsSandbox,
) -> None:
    writer = new_writer(sheets_emulator, spreadsheet_id="nope")
    try:
        with pytest.raises(SheetsNotFoundError, match=r"check google\.spreadsheet_id"):
            await writer.upsert(MEMBERS, members(1))
    finally:
        writer.close()


async def test_check_access_returns_the_title(writer: SheetsWriter) -> None:
    assert await writer.check_access() == "Cobot sync"


async def test_unknown_key_is_a_clear_auth_error(sheets_emulator: SheetsSandbox) -> None:
    rogue = generate_service_account_key(sheets_emulator.url + "/token")
    settings = replace(google_settings(sheets_emulator), service_account_info=rogue)
    writer = SheetsWriter(settings, **FAST_RETRY)
    try:
        with pytest.raises(SheetsAuthError) as caught:
            await writer.check_access()
    finally:
        writer.close()
    assert caught.value.action is Action.PAUSE
    message = str(caught.value)
    assert "invalid_grant" in message and rogue["client_email"] in message
    assert "PRIVATE KEY" not in message and rogue["private_key_id"] not in message


async def test_quota_and_server_errors_are_retried(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    sheets_emulator.emulator.fail_next(1, 429)
    sheets_emulator.emulator.fail_next(1, 503)

    report = await writer.upsert(MEMBERS, members(1, 2))

    assert report.appended == 1
    assert report.requests.reads == 3  # two failed attempts, then the read
    statuses = [r.status for r in sheets_emulator.emulator.request_log if r.kind]
    assert statuses[-4:] == [429, 503, 200, 200]


async def test_persistent_outage_gives_up_after_bounded_attempts(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert(MEMBERS, members(1))
    sheets_emulator.emulator.fail_next(100, 503)

    with pytest.raises(SheetsUnavailable) as caught:
        await writer.upsert(MEMBERS, members(1))

    assert caught.value.action is Action.RETRY
    failed = [r for r in sheets_emulator.emulator.request_log if r.status == 503]
    assert len(failed) == ATTEMPTS


async def test_unreachable_api_gives_up_after_bounded_attempts(
    sheets_emulator: SheetsSandbox,
) -> None:
    settings = replace(
        google_settings(sheets_emulator), api_endpoint=f"http://127.0.0.1:{free_port()}"
    )
    writer = SheetsWriter(settings, **FAST_RETRY)
    try:
        with pytest.raises(SheetsUnavailable, match="failed 4 times in a row") as caught:
            await writer.check_access()
    finally:
        writer.close()
    assert caught.value.action is Action.RETRY


@pytest.mark.parametrize(
    ("status", "error", "action"),
    [
        (400, SheetsRequestError, Action.DEAD_LETTER),
        (401, SheetsAuthError, Action.PAUSE),
        (403, SheetsPermissionError, Action.PAUSE),
        (404, SheetsNotFoundError, Action.PAUSE),
        (408, SheetsUnavailable, Action.RETRY),
        (429, SheetsUnavailable, Action.RETRY),
        (500, SheetsUnavailable, Action.RETRY),
        (503, SheetsUnavailable, Action.RETRY),
    ],
)
async def test_each_status_raises_the_error_that_says_what_to_do(
    sheets_emulator: SheetsSandbox,
    writer: SheetsWriter,
    status: int,
    error: type[SheetsApiError],
    action: Action,
) -> None:
    sheets_emulator.emulator.fail_next(ATTEMPTS, status)
    with pytest.raises(SheetsApiError) as caught:
        await writer.check_access()
    assert type(caught.value) is error
    assert caught.value.action is action


async def test_close_is_final(sheets_emulator: SheetsSandbox, writer: SheetsWriter) -> None:
    await writer.upsert(MEMBERS, members(1))
    writer.close()
    writer.close()
    with pytest.raises(SheetsUnavailable, match="closed"):
        await writer.upsert(MEMBERS, members(1))


async def test_close_does_not_wait_for_a_slow_request(sheets_emulator: SheetsSandbox) -> None:
    emulator = sheets_emulator.emulator
    # Every Sheets call is served at once but answered 4 s late, so it is logged while its
    # response is still held back.
    emulator.slow_rate, emulator.slow_seconds = 1.0, 4.0
    writer = new_writer(sheets_emulator)
    pending = asyncio.ensure_future(writer.check_access())
    await wait_for_served(emulator, 1)
    writer.close()
    # Had close() waited for the request, its answer would be in by now.
    await asyncio.sleep(0.05)
    assert not pending.done()
    assert await pending == "Cobot sync"  # the request in flight still completes


# -- the report ----------------------------------------------------------------------------


async def test_report_and_log_line(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="syncd.sheets"):
        report = await writer.upsert(MEMBERS, members(1))

    assert isinstance(report, UpsertReport)
    assert report.requests.total == 4 and report.duration > 0
    assert "Members: 0 updated, 1 appended, 0 unchanged; 2 read(s), 2 write(s)" in caplog.text
