"""Sheet drift, end to end: people edit the worksheet between flushes and the daemon copes.

Between two flushes a person sorts the rows, deletes a synced row, inserts a column of their
own, renames and deletes headers the daemon owns and types into key cells. The running
daemon must re-create what it owns (headers, missing rows), never write into a column it does
not own, never make a second row for a URL, and log each repair.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sheets.a1 import column_letters
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.test_e2e_pipeline import fast_daemon, settle
from tests.test_sheets_writer import User, table

pytestmark = pytest.mark.e2e


def key_rows(daemon: Daemon) -> dict[str, list[int]]:
    """Stripped key cell -> every sheet row number holding it."""
    header, *rows = table(daemon.sheets)
    column = [str(h) for h in header].index("URL")
    found: dict[str, list[int]] = {}
    for number, row in enumerate(rows, start=2):
        cell = row[column] if column < len(row) else None
        if cell not in (None, ""):
            found.setdefault(str(cell).strip(), []).append(number)
    return found


def rows_holding(daemon: Daemon, urls: list[str]) -> dict[str, int]:
    """URL -> how many rows hold it in any cell (a row keyed under a lost header counts)."""
    _header, *rows = table(daemon.sheets)
    return {url: sum(1 for row in rows if url in (str(c).strip() for c in row)) for url in urls}


def column_values(daemon: Daemon, header: str) -> list[Any]:
    head, *rows = table(daemon.sheets)
    index = [str(h) for h in head].index(header)
    return [row[index] if index < len(row) else None for row in rows]


def row_of(daemon: Daemon, url: str) -> int:
    (number,) = key_rows(daemon)[url]
    return number


@pytest.fixture
def synced(make_daemon: MakeDaemon) -> tuple[Daemon, list[str]]:
    """A running daemon whose Members worksheet holds six synced rows."""
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    members = [sim.create("membership", name=f"Member {n}") for n in range(6)]
    settle(daemon)
    return daemon, [sim.url_for("membership", m["id"]) for m in members]


def test_sort_delete_insert_rename_and_key_edits_are_repaired(
    synced: tuple[Daemon, list[str]],
) -> None:
    daemon, urls = synced
    sim, user = daemon.cobot.sim, User(daemon.sheets)
    deleted, garbled, padded, changed = urls[:4]

    header = [str(h) for h in table(daemon.sheets)[0]]
    user.sort_rows(key=lambda row: str(row[header.index("URL")]))
    user.insert_column(1, ["Notes", *[f"note {n}" for n in range(len(urls))]])
    header = [str(h) for h in table(daemon.sheets)[0]]
    user.set_cells([["E-mail (mine)"]], f"{column_letters(header.index('Email') + 1)}1")
    user.set_cells([[""]], f"{column_letters(header.index('Phone') + 1)}1")
    key = column_letters(header.index("URL") + 1)
    user.set_cells([["call them back"]], f"{key}{row_of(daemon, garbled)}")
    user.set_cells([[f"  {padded} "]], f"{key}{row_of(daemon, padded)}")
    user.delete_row(row_of(daemon, deleted))
    theirs = {h: column_values(daemon, h) for h in ("Notes", "E-mail (mine)")}

    # Unchanged resources (as after a re-delivery or a re-sync), and one real change.
    for url in (deleted, garbled, padded):
        sim.emit("updated_membership_details", url)
    sim.update("membership", changed.rsplit("/", 1)[1], name="Member 3 renamed")
    settle(daemon)

    assert rows_holding(daemon, urls) == dict.fromkeys(urls, 1)
    assert {text: len(numbers) for text, numbers in key_rows(daemon).items()} == {
        **dict.fromkeys(urls, 1),
        "call them back": 1,
    }, "one row per URL, and the user's own text left alone"
    for title, before in theirs.items():
        after = column_values(daemon, title)
        assert after[: len(before)] == before, f"the daemon wrote into {title!r}"
        assert not any(after[len(before) :]), f"a re-created row got {title!r} cells"
    header = [str(h) for h in table(daemon.sheets)[0]]
    assert sorted(header[-2:]) == ["Email", "Phone"], header
    names = column_values(daemon, "Name")
    assert names[row_of(daemon, changed) - 2] == "Member 3 renamed"
    logs = daemon.logs()
    assert "added missing header(s)" in logs and "'Email'" in logs and "'Phone'" in logs
    assert "re-created 2 row(s) missing from the sheet" in logs
    assert daemon.stop() == 0


@pytest.mark.parametrize("new_text", ["", "Link"], ids=["deleted", "renamed"])
def test_lost_key_header_never_doubles_the_rows(
    synced: tuple[Daemon, list[str]], new_text: str
) -> None:
    daemon, urls = synced
    sim, user = daemon.cobot.sim, User(daemon.sheets)
    header = [str(h) for h in table(daemon.sheets)[0]]
    user.set_cells([[new_text]], f"{column_letters(header.index('URL') + 1)}1")

    sim.update("membership", urls[0].rsplit("/", 1)[1], name="Member 0 renamed")
    for url in urls[1:]:
        sim.emit("updated_membership_details", url)
    settle(daemon)

    assert rows_holding(daemon, urls) == dict.fromkeys(urls, 1)
    assert set(key_rows(daemon)) == set(urls)
    assert column_values(daemon, "Name")[row_of(daemon, urls[0]) - 2] == "Member 0 renamed"
    assert "restored the key header 'URL'" in daemon.logs()
    assert daemon.stop() == 0
