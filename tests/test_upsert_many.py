"""Rows for several worksheets in one write: a flush's usual cost is one read and one write.

``SheetsWriter.upsert_many`` reads every worksheet's layout in one request (or takes the one
read ahead) and writes every row in one ``values:batchUpdate``; anything beyond that common
case is written one worksheet at a time, with the same row-position guarantees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.core.errors import SyncdError
from syncd.engine.rowplan import SheetBatch, write_batches
from syncd.mapping.cells import Row
from syncd.sheets.errors import SheetsRequestError, SheetsUnavailable
from syncd.sheets.reports import RequestCount, Upsert, UpsertReport
from syncd.sheets.writer import SheetsWriter
from tests.fixtures_sheets import SheetsSandbox
from tests.test_sheets_writer import MEMBERS, User, counts, members, new_writer, records, url

pytestmark = pytest.mark.usefixtures("no_outbound_network")

INVOICES = dataclasses.replace(
    MEMBERS,
    title="Invoices",
    resource="invoice",
    events=("created_invoice",),
    columns=(Column("Number", "invoice_number"), Column("Total", "total_amount", "number")),
)


def invoice_url(n: int) -> str:
    return f"https://co-up.cobot.me/api/invoices/i{n}"


def invoices(*numbers: int, total: float = 10.0) -> dict[str, Row]:
    return {
        invoice_url(n): {
            "Number": f"INV-{n}",
            "Total": total + n,
            "Deleted": "",
            "URL": invoice_url(n),
        }
        for n in numbers
    }


def both(member_numbers: list[int], invoice_numbers: list[int], **kw: float) -> list[Upsert]:
    return [
        Upsert(MEMBERS, members(*member_numbers)),
        Upsert(INVOICES, invoices(*invoice_numbers, **kw)),
    ]


def by_key(sandbox: SheetsSandbox, title: str) -> dict[str, dict[str, object]]:
    return {r["URL"]: r for r in records(sandbox, title) if r.get("URL")}


@pytest.fixture
async def writer(sheets_emulator: SheetsSandbox) -> AsyncIterator[SheetsWriter]:
    writer = new_writer(sheets_emulator)
    # Both worksheets exist and their headers are known, as after a daemon's first flushes.
    await writer.upsert(MEMBERS, members(1))
    await writer.upsert(INVOICES, invoices(1))
    yield writer
    writer.close()


async def test_two_worksheets_cost_one_read_and_one_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    reads, writes = counts(sheets_emulator)

    reports = await writer.upsert_many(both([1, 2], [2, 3], total=100.0))

    assert counts(sheets_emulator) == (reads + 1, writes + 1)
    assert [(r.sheet, r.updated, r.appended) for r in reports] == [
        ("Members", 1, 1),
        ("Invoices", 0, 2),
    ]
    assert sum(r.requests.total for r in reports) == 2, "the reports count what was sent"
    assert [r.shared_with for r in reports] == [("Invoices",), ("Members",)]
    assert set(by_key(sheets_emulator, "Members")) == {url(1), url(2)}
    assert by_key(sheets_emulator, "Invoices")[invoice_url(3)]["Total"] == 103.0


async def test_layouts_read_ahead_in_one_request_place_the_write(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    reads, writes = counts(sheets_emulator)
    await writer.read_ahead([(MEMBERS, [url(2)]), (INVOICES, [invoice_url(2)])])
    assert counts(sheets_emulator) == (reads + 1, writes), "one read for both layouts"

    await writer.upsert_many(both([2], [2]))

    assert counts(sheets_emulator) == (reads + 1, writes + 1), "the write read nothing more"
    assert set(by_key(sheets_emulator, "Invoices")) == {invoice_url(1), invoice_url(2)}


async def test_rows_a_person_sorted_meanwhile_are_found_by_url(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    await writer.upsert_many(both([2, 3, 4], [2, 3, 4]))
    User(sheets_emulator).sort_rows(key=lambda row: str(row[0]), title="Invoices")
    User(sheets_emulator).sort_rows(key=lambda row: str(row[0]), title="Members")
    User(sheets_emulator).sort_rows(key=lambda row: str(row[-1]), title="Members")  # by URL

    await writer.upsert_many(
        [Upsert(MEMBERS, members(3, suffix=" renamed")), Upsert(INVOICES, invoices(2, total=500.0))]
    )

    people = by_key(sheets_emulator, "Members")
    assert people[url(3)]["Name"] == "Member 3 renamed"
    assert {u: r["Name"] for u, r in people.items() if u != url(3)} == {
        url(n): f"Member {n}" for n in (1, 2, 4)
    }
    bills = by_key(sheets_emulator, "Invoices")
    assert bills[invoice_url(2)]["Total"] == 502.0
    assert {u: r["Total"] for u, r in bills.items() if u != invoice_url(2)} == {
        invoice_url(n): 10.0 + n for n in (1, 3, 4)
    }


async def test_a_read_ahead_before_another_process_wrote_is_not_trusted(
    sheets_emulator: SheetsSandbox, tmp_path: Path
) -> None:
    """Another process (`syncd backfill`) appended rows after the layouts were read ahead: the
    lock's turns show it, and the shared write reads afresh and appends below those rows."""
    lock = tmp_path / "sheets.lock"
    daemon, backfill = (new_writer(sheets_emulator, lock_path=lock) for _ in range(2))
    try:
        await daemon.upsert_many(both([1], [1]))
        await daemon.read_ahead([(MEMBERS, [url(5)]), (INVOICES, [invoice_url(5)])])
        await backfill.upsert(MEMBERS, members(2, 3))

        await daemon.upsert_many(both([5], [5]))
    finally:
        daemon.close()
        backfill.close()
    assert set(by_key(sheets_emulator, "Members")) == {url(n) for n in (1, 2, 3, 5)}


async def test_rows_past_the_grid_end_are_written_one_worksheet_at_a_time(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    many = list(range(2, 1_100))  # past the 1,000 rows of a new worksheet
    writes = counts(sheets_emulator)[1]

    await writer.upsert_many(both(many, [2]))

    assert len(by_key(sheets_emulator, "Members")) == len(many) + 1
    assert set(by_key(sheets_emulator, "Invoices")) == {invoice_url(1), invoice_url(2)}
    assert counts(sheets_emulator)[1] - writes >= 3, "grew the grid, then one write each"


async def test_a_refused_shared_write_is_written_one_worksheet_at_a_time(
    sheets_emulator: SheetsSandbox, writer: SheetsWriter
) -> None:
    """Google refuses the whole request for one bad cell: the rows of the other worksheet
    still go in, and the refusal reaches the caller (which isolates the bad row)."""
    sheets_emulator.emulator.refuse_writes_containing("INV-9")

    with pytest.raises(SheetsRequestError):
        await writer.upsert_many(both([2], [9]))

    assert set(by_key(sheets_emulator, "Members")) == {url(1), url(2)}
    assert set(by_key(sheets_emulator, "Invoices")) == {invoice_url(1)}


# -- the worker's side: what a failed shared write leaves ----------------------------------------


class SharedWriteFails:
    """A writer whose shared write raises ``error``; one worksheet at a time, only rows
    holding ``poison`` are refused."""

    def __init__(self, error: SyncdError, poison: str = "") -> None:
        self.error, self.poison = error, poison
        self.upserts: list[tuple[str, list[str]]] = []

    async def upsert_many(self, jobs: list[Upsert]) -> list[UpsertReport]:
        raise self.error

    async def upsert(
        self, sheet: SheetSettings, rows: dict[str, Row], *, only_if_missing: object = ()
    ) -> UpsertReport:
        self.upserts.append((sheet.title, sorted(rows)))
        if self.poison and self.poison in rows:
            raise SheetsRequestError("Invalid value at 'data.values'")
        return UpsertReport(sheet.title, 0, len(rows), 0, RequestCount(0, 1), (), 0.0)


def batches() -> list[SheetBatch]:
    return [
        SheetBatch(MEMBERS, rows=members(1, 2)),
        SheetBatch(INVOICES, rows=invoices(1, 2)),
    ]


async def test_a_refused_shared_write_is_retried_per_worksheet_isolating_the_bad_row() -> None:
    writer = SharedWriteFails(SheetsRequestError("Invalid value"), poison=invoice_url(2))

    refused = await write_batches(writer, batches())  # type: ignore[arg-type]

    assert {title: set(urls) for title, urls in refused.items()} == {
        "Members": set(),
        "Invoices": {invoice_url(2)},
    }
    assert ("Members", [url(1), url(2)]) in writer.upserts
    assert ("Invoices", [invoice_url(1)]) in writer.upserts, "the good half went in"


async def test_a_temporary_failure_of_a_shared_write_holds_every_row_without_more_requests() -> (
    None
):
    writer = SharedWriteFails(SheetsUnavailable("Google answered 503"))

    refused = await write_batches(writer, batches())  # type: ignore[arg-type]

    assert {title: set(urls) for title, urls in refused.items()} == {
        "Members": {url(1), url(2)},
        "Invoices": {invoice_url(1), invoice_url(2)},
    }
    assert writer.upserts == [], "an outage is not made longer by a write per worksheet"
