"""The sheet stays a true mirror while people work in it, end to end.

A person sorts the rows or inserts a column while a write waits for its retry, writes a
totals row below the table, deletes or renames the daemon's columns, or makes the header row
themselves: the running daemon still writes every resource into its own row, never into a
row or column of theirs, and gives back every column it owns, filled and formatted.
"""

from __future__ import annotations

import pytest

from syncd.sandbox.sheets.cells import Formula
from syncd.sheets.a1 import column_letters
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.test_e2e_pipeline import fast_daemon, settle
from tests.test_sheets_writer import table

pytestmark = pytest.mark.e2e


def header(daemon: Daemon) -> list[str]:
    return [str(h) for h in table(daemon.sheets)[0]]


def letter(daemon: Daemon, title: str) -> str:
    return column_letters(header(daemon).index(title) + 1)


def sort_rows_reversed(daemon: Daemon) -> None:
    """Reverse the data rows directly in the emulator (row 1 stays), as a sort in the UI."""
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    _head, *rows = emulator.values(spreadsheet, "Members")
    width = max(len(row) for row in rows)
    cells = [[("" if v is None else v) for v in row] + [""] * (width - len(row)) for row in rows]
    emulator.set_values(spreadsheet, "Members", cells[::-1], "A2")


def insert_notes_column(daemon: Daemon, sheet_id: int) -> None:
    """Insert a column of a person's notes before column A, directly in the emulator."""
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    span = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": 0, "endIndex": 1}
    emulator.apply(spreadsheet, [{"insertDimension": {"range": span}}])
    rows = len(emulator.values(spreadsheet, "Members"))
    notes = [["Notes"], *[[f"note {n}"] for n in range(2, rows + 1)]]
    emulator.set_values(spreadsheet, "Members", notes, "A1")


def sheet_id(daemon: Daemon, title: str = "Members") -> int:
    """The worksheet's id, asked over HTTP (never from inside an emulator hook)."""
    spreadsheet = daemon.sheets.client().open_by_key(daemon.sheets.spreadsheet_id)
    return int(spreadsheet.worksheet(title).id)


@pytest.fixture
def synced(make_daemon: MakeDaemon) -> tuple[Daemon, dict[str, str]]:
    """A running daemon whose Members worksheet holds six synced rows; URL -> Cobot id."""
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    members = [sim.create("membership", name=f"Member {n}") for n in range(6)]
    settle(daemon)
    return daemon, {sim.url_for("membership", m["id"]): str(m["id"]) for m in members}


def test_a_retried_write_follows_rows_sorted_and_columns_inserted_meanwhile(
    synced: tuple[Daemon, dict[str, str]],
) -> None:
    daemon, ids = synced
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    members_id = sheet_id(daemon)

    def person_edits_then_google_fails() -> None:
        sort_rows_reversed(daemon)
        insert_notes_column(daemon, members_id)
        emulator.fail_next(1, 503)

    # The person's edits land after the daemon read the layout, as its write arrives.
    emulator.on_next("values:batchUpdate", person_edits_then_google_fails)
    urls = list(ids)
    for url in urls[:2]:
        sim.update("membership", ids[url], name=f"renamed {ids[url]}")
    settle(daemon)

    writes = [r for r in emulator.request_log if r.path.endswith("values:batchUpdate")]
    assert 503 in [r.status for r in writes], "the write the person's edits raced never failed"
    rows = daemon.rows("Members")
    assert sorted(row["URL"] for row in rows) == sorted(urls), "one row per resource"
    for row in rows:
        cobot_id = ids[row["URL"]]
        assert str(row["Cobot ID"]) == cobot_id, f"a row holds another resource's cells: {row}"
        expected = f"renamed {cobot_id}" if row["URL"] in urls[:2] else None
        assert expected is None or row["Name"] == expected, row
    notes = [str(row[0]) for row in emulator.values(daemon.sheets.spreadsheet_id, "Members")]
    assert notes == ["Notes", *[f"note {n}" for n in range(2, len(urls) + 2)]], notes
    assert daemon.stop() == 0


def test_new_rows_go_below_a_persons_totals_row_and_notes(
    synced: tuple[Daemon, dict[str, str]],
) -> None:
    daemon, ids = synced
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    spreadsheet = daemon.sheets.spreadsheet_id
    price = letter(daemon, "Plan price")
    emulator.set_values(
        spreadsheet,
        "Members",
        [["TOTAL"]],
        f"{letter(daemon, 'Name')}9",
    )
    emulator.set_values(
        spreadsheet, "Members", [[f"=SUM({price}2:{price}7)"]], f"{price}9", "USER_ENTERED"
    )
    emulator.set_values(spreadsheet, "Members", [["call Ana back"]], "A10")
    before = emulator.values(spreadsheet, "Members")[8:10]

    new = [sim.create("membership", name=f"New {n}") for n in range(3)]
    settle(daemon)

    grid = emulator.values(spreadsheet, "Members")
    assert grid[8:10] == before, "the person's rows were written into"
    assert isinstance(grid[8][header(daemon).index("Plan price")], Formula)
    key = header(daemon).index("URL")
    new_urls = [sim.url_for("membership", m["id"]) for m in new]
    assert sorted(str(row[key]) for row in grid[10:13]) == sorted(new_urls)
    assert grid[7] == [] or not any(grid[7]), "row 8, empty, stays empty"
    keys = [str(row[key]) for row in grid[1:] if key < len(row) and row[key]]
    assert sorted(keys) == sorted([*ids, *new_urls]), "one row per resource"
    assert daemon.stop() == 0


def test_deleted_and_renamed_columns_come_back_filled_for_every_row(
    synced: tuple[Daemon, dict[str, str]],
) -> None:
    daemon, ids = synced
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    spreadsheet, urls = daemon.sheets.spreadsheet_id, list(ids)
    sim.delete("membership", ids[urls[5]])
    settle(daemon)
    before = {row["URL"]: row for row in daemon.rows("Members")}
    assert before[urls[5]]["Deleted"], "the deletion was flagged"

    head = header(daemon)
    doomed = sorted((head.index("Deleted"), head.index("Email")), reverse=True)
    members_id = sheet_id(daemon)
    for index in doomed:  # the person deletes two columns, the right-most first
        span = {"sheetId": members_id, "dimension": "COLUMNS", "startIndex": index}
        emulator.apply(
            spreadsheet, [{"deleteDimension": {"range": {**span, "endIndex": index + 1}}}]
        )
    emulator.set_values(spreadsheet, "Members", [["Plan (mine)"]], f"{letter(daemon, 'Plan')}1")

    sim.update("membership", ids[urls[0]], name="Member 0 renamed")  # one row changes
    settle(daemon)

    after = {row["URL"]: row for row in daemon.rows("Members")}
    assert sorted(after) == sorted(urls), "one row per resource"
    for url in urls:
        assert after[url]["Email"] == before[url]["Email"], f"Email not refilled in {url}"
        assert after[url]["Plan"] == before[url]["Plan"], f"Plan not refilled in {url}"
        assert after[url]["Plan (mine)"] == before[url]["Plan"], "the person's column changed"
        assert bool(after[url]["Deleted"]) == (url == urls[5]), f"Deleted wrong in {url}"
    assert after[urls[5]]["Deleted"] == before[urls[5]]["Deleted"]
    assert after[urls[0]]["Name"] == "Member 0 renamed"
    assert sorted(header(daemon)[-3:]) == ["Deleted", "Email", "Plan"]
    assert "refilled 'Deleted', 'Email', 'Plan' in 5 row(s)" in daemon.logs()
    assert daemon.stop() == 0


DATE_COLUMNS = {"Starts": "DATE", "Confirmed": "DATE_TIME", "Next invoice": "DATE"}


def number_format_types(daemon: Daemon, column: str) -> set[str | None]:
    """The number format type of every data row's cell in a column, as Google reports it."""
    spreadsheet = daemon.sheets.client().open_by_key(daemon.sheets.spreadsheet_id)
    rows = len(daemon.sheets.emulator.values(daemon.sheets.spreadsheet_id, "Members"))
    params = {
        "ranges": [f"Members!{letter(daemon, column)}2:{letter(daemon, column)}{rows}"],
        "fields": "sheets(data(rowData(values(userEnteredFormat(numberFormat(type))))))",
    }
    (sheet,) = spreadsheet.client.fetch_sheet_metadata(spreadsheet.id, params)["sheets"]
    cells = [row.get("values", [{}])[0] for row in sheet["data"][0].get("rowData", [])]
    found = {
        cell.get("userEnteredFormat", {}).get("numberFormat", {}).get("type") for cell in cells
    }
    return found | ({None} if len(cells) < rows - 1 else set())


def shown_dates(daemon: Daemon) -> dict[str, list[str]]:
    """The date columns' cells as a person sees them (FORMATTED_VALUE)."""
    head, *rows = daemon.sheets.emulator.dump(daemon.sheets.spreadsheet_id)["Members"]
    return {
        c: [str(row[head.index(c)]) for row in rows if row[head.index(c)]] for c in DATE_COLUMNS
    }


def assert_dates_shown_as_dates(daemon: Daemon) -> None:
    for column, shown in shown_dates(daemon).items():
        assert shown, f"no {column} values to check"
        assert all("-" in text for text in shown), f"{column} shows serial numbers: {shown}"
        assert number_format_types(daemon, column) == {DATE_COLUMNS[column]}, column


def test_date_columns_under_headers_a_person_made_show_dates(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon)
    columns = list(daemon.sheet_config["Members"]["columns"])
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    emulator.add_sheet(spreadsheet, "Members")
    emulator.set_values(spreadsheet, "Members", [["URL", *reversed(columns), "Deleted"]])
    daemon.start()
    for n in range(3):
        daemon.cobot.sim.create("membership", name=f"Member {n}")
    settle(daemon)

    assert len(daemon.rows("Members")) == 3
    assert_dates_shown_as_dates(daemon)
    assert "restored the number format of" in daemon.logs()
    assert daemon.stop() == 0


def test_a_column_whose_type_changed_gets_its_date_format(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon)
    members = daemon.sheet_config["Members"]["columns"]
    typed = {column: members[column] for column in DATE_COLUMNS}
    for column in DATE_COLUMNS:  # first configured as text
        members[column] = typed[column]["path"]
    daemon.start()
    sim = daemon.cobot.sim
    urls = [sim.url_for("membership", sim.create("membership")["id"]) for _ in range(3)]
    settle(daemon)
    assert daemon.stop() == 0

    members.update(typed)  # now typed as dates: the cells become serial numbers
    daemon.start()
    for url in urls:
        sim.emit("updated_membership_details", url)
    settle(daemon)

    assert_dates_shown_as_dates(daemon)
    assert daemon.stop() == 0
