"""Computed columns, row filters and the local copy, end to end (`syncd run` against the
Cobot simulator and the Sheets emulator).

A template joins the member into invoice and booking rows, a number computed by a template
stays a number, a `where:` worksheet gains and loses a row as its resource changes, a column
added to the YAML is filled for every existing row at the next start without asking Cobot,
and a template that fails empties only its own cell.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sheets.a1 import column_letters
from tests.fixtures_daemon import Daemon, MakeDaemon, wait_until
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e

MEMBERS: dict[str, Any] = {
    "resource": "membership",
    "events": ["created_membership", "updated_membership_details", "deleted_membership"],
    "columns": {"Name": "name", "Email": "email"},
}
INVOICES: dict[str, Any] = {
    "resource": "invoice",
    "events": ["created_invoice", "updated_invoice", "deleted_invoice"],
    "columns": {
        "Number": "formatted_invoice_number",
        "Member email": {"template": "{{ member.email }}"},
        "Member": {"template": "{{ member.name }} ({{ member.address.company or '-' }})"},
        "Total": {"path": "total_amount", "type": "number"},
        # Cobot sends amounts as text: `float` makes a number of it, and it stays one.
        "Double": {"template": "{{ total_amount | float * 2 }}"},
        "Paid status": "paid_status",
    },
}
UNPAID: dict[str, Any] = {
    **INVOICES,
    "where": "paid_status == 'unpaid'",
    "columns": {"Number": "formatted_invoice_number", "Paid status": "paid_status"},
}
BOOKINGS: dict[str, Any] = {
    "resource": "booking",
    "events": ["created_booking", "updated_booking", "deleted_booking"],
    "columns": {
        "Title": "title",
        "Hours": {"template": "{{ this['from'] | hours_between(this.to) }}", "type": "number"},
        "Member email": {"template": "{{ member.email }}"},
    },
}


def resource_gets(daemon: Daemon) -> list[str]:
    """Paths of the GETs of resources (not of subscriptions) the simulator answered."""
    return [
        r.path
        for r in daemon.cobot.sim.requests()
        if r.method == "GET" and not r.path.startswith("/api/subscriptions")
    ]


def test_invoice_and_booking_rows_show_their_member(make_daemon: MakeDaemon) -> None:
    sheets = {"Members": MEMBERS, "Invoices": INVOICES, "Bookings": BOOKINGS}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim
    ada = sim.create("membership", name="Ada Example")
    settle(daemon)
    # Bo's membership webhook never arrives: the daemon fetches Bo once, for both rows,
    # the second one written in a later flush (so from the local copy).
    bo = sim.create("membership", name="Bo Sample", emit=False)
    invoice = sim.create("invoice", member=ada["id"])
    bookings = []
    for _ in range(2):
        bookings.append(sim.create("booking", member=bo["id"]))
        settle(daemon)

    invoices = by_url(daemon.rows("Invoices"))
    row = invoices[sim.url_for("invoice", invoice["id"])]
    assert row["Member email"] == ada["email"]
    company = (ada.get("address") or {}).get("company") or "-"
    assert row["Member"] == f"Ada Example ({company})"
    assert row["Double"] == pytest.approx(float(invoice["total_amount"]) * 2)
    assert isinstance(row["Double"], int | float)
    for booking in bookings:
        booked = by_url(daemon.rows("Bookings"))[sim.url_for("booking", booking["id"])]
        assert booked["Member email"] == bo["email"]
        assert isinstance(booked["Hours"], int | float) and booked["Hours"] > 0
    # Ada came from the local copy (her own webhook); Bo was fetched exactly once.
    gets = resource_gets(daemon)
    assert gets.count(f"/api/memberships/{bo['id']}") == 1, gets
    assert gets.count(f"/api/memberships/{ada['id']}") == 1, gets  # her webhook's fetch
    assert daemon.stop() == 0


def test_a_renamed_member_is_shown_anew_in_every_row_that_shows_them(
    make_daemon: MakeDaemon,
) -> None:
    """No webhook comes for an invoice when its member changes: the flush that writes the
    member writes the member's invoice and booking rows again, from the local copy (no Cobot
    request for them), in the same request; another member's rows are not touched."""
    sheets = {"Members": MEMBERS, "Invoices": INVOICES, "Bookings": BOOKINGS}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    ada = sim.create("membership", name="Ada Example")
    other = sim.create("membership", name="Other Person")
    invoices = [sim.create("invoice", member=m["id"]) for m in (ada, ada, other)]
    booking = sim.create("booking", member=ada["id"])
    settle(daemon)
    gets_before, log_start = len(resource_gets(daemon)), len(emulator.request_log)

    sim.update("membership", ada["id"], name="Ada Renamed", email="ada.renamed@example.org")
    settle(daemon)

    rows = by_url(daemon.rows("Invoices"))
    shown = {
        url: rows[sim.url_for("invoice", i["id"])]["Member email"]
        for url, i in [("ada", invoices[0]), ("ada again", invoices[1]), ("other", invoices[2])]
    }
    assert shown == {
        "ada": "ada.renamed@example.org",
        "ada again": "ada.renamed@example.org",
        "other": other["email"],
    }
    booked = by_url(daemon.rows("Bookings"))[sim.url_for("booking", booking["id"])]
    assert booked["Member email"] == "ada.renamed@example.org"
    assert resource_gets(daemon)[gets_before:] == [f"/api/memberships/{ada['id']}"]
    kinds = [r.kind for r in emulator.request_log[log_start:] if r.kind is not None]
    assert kinds == ["read", "write"], kinds
    log = daemon.logs()
    assert "Invoices: 2 row(s) show a member that changed" in log, "the other's row not at all"
    assert "Bookings: 1 row(s) show a member that changed" in log

    # A member without invoices or bookings: their worksheets are not even read.
    loner = sim.create("membership", name="No Invoices")
    settle(daemon)
    log_start = len(emulator.request_log)
    sim.update("membership", loner["id"], name="Still None")
    settle(daemon)
    reads = [r for r in emulator.request_log[log_start:] if r.kind == "read"]
    assert len(reads) == 1 and reads[0].query["ranges"], reads
    assert all(text.startswith("Members!") for text in reads[0].query["ranges"]), reads
    assert daemon.stop() == 0


def test_a_where_sheet_gains_and_loses_a_row(make_daemon: MakeDaemon) -> None:
    sheets = {"Invoices": INVOICES, "Unpaid invoices": UNPAID}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim
    member = sim.create("membership")
    kept = sim.create("invoice", member=member["id"], paid_status="unpaid", paid=False)
    changing = sim.create("invoice", member=member["id"], paid_status="unpaid", paid=False)
    settle(daemon)
    url, other = sim.url_for("invoice", changing["id"]), sim.url_for("invoice", kept["id"])
    assert set(by_url(daemon.rows("Unpaid invoices"))) == {url, other}

    sim.update("invoice", changing["id"], paid_status="paid", paid=True)
    settle(daemon)
    assert set(by_url(daemon.rows("Unpaid invoices"))) == {other}
    assert by_url(daemon.rows("Invoices"))[url]["Paid status"] == "paid"

    sim.update("invoice", changing["id"], paid_status="unpaid", paid=False)
    settle(daemon)
    assert set(by_url(daemon.rows("Unpaid invoices"))) == {url, other}
    assert len(daemon.rows("Unpaid invoices")) == 2
    assert daemon.stop() == 0


def test_a_column_added_to_the_config_is_filled_at_restart_without_cobot(
    make_daemon: MakeDaemon,
) -> None:
    sheets = {"Members": MEMBERS, "Invoices": INVOICES, "Unpaid invoices": UNPAID}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim
    members = [sim.create("membership", name=f"Member {n}") for n in range(5)]
    for member in members:
        sim.create("invoice", member=member["id"], paid_status="paid", paid=True)
    settle(daemon)
    assert daemon.rows("Unpaid invoices") == []
    assert daemon.stop() == 0
    before = len(resource_gets(daemon))

    daemon.sheet_config["Members"]["columns"]["Greeting"] = {"template": "Hello {{ name }}"}
    daemon.sheet_config["Unpaid invoices"]["where"] = "paid_status == 'paid'"  # changed where
    daemon.start()

    def filled() -> bool:
        rows = daemon.rows("Members")
        return len(rows) == 5 and all(row.get("Greeting") for row in rows)

    wait_until(filled, timeout=30, what="the new column to be filled", check=daemon._alive)
    wait_until(
        lambda: len(daemon.rows("Unpaid invoices")) == 5,
        timeout=30,
        what="the changed where: to take effect",
        check=daemon._alive,
    )
    greetings = {row["Name"]: row["Greeting"] for row in daemon.rows("Members")}
    assert greetings == {f"Member {n}": f"Hello Member {n}" for n in range(5)}
    assert resource_gets(daemon)[before:] == []
    assert "rendered 5 row(s) again from the local copy" in daemon.logs()
    assert daemon.stop() == 0


def test_a_broken_template_empties_only_its_cell(make_daemon: MakeDaemon) -> None:
    members = {
        **MEMBERS,
        "columns": {**MEMBERS["columns"], "Broken": {"template": "{{ (name | length) / 0 }}"}},
    }
    daemon = fast_daemon(make_daemon, sheet_config={"Members": members}).start()
    sim = daemon.cobot.sim
    created = [sim.create("membership", name=f"Member {n}") for n in range(3)]
    settle(daemon)

    rows = by_url(daemon.rows("Members"))
    assert len(rows) == 3
    for member in created:
        row = rows[sim.url_for("membership", member["id"])]
        assert row["Name"] == member["name"] and row["Email"] == member["email"]
        assert row.get("Broken", "") == ""
    logs = daemon.logs()
    assert logs.count("ZeroDivisionError") + logs.count("division by zero") >= 3
    assert daemon.stop() == 0


def column_formats(daemon: Daemon, title: str, header: str) -> list[dict[str, Any]]:
    """The number format of each data cell of a column, as the emulator stores it."""
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    head = [str(h) for h in emulator.values(spreadsheet, title)[0]]
    letter = column_letters(head.index(header) + 1)
    rows = len(daemon.rows(title)) + 1
    cells = emulator.cell_formats(spreadsheet, title, f"{letter}2:{letter}{rows}")
    return [row[0].get("numberFormat", {}) for row in cells]


def test_formats_and_the_deleted_highlight_come_back_after_a_person_clears_them(
    make_daemon: MakeDaemon,
) -> None:
    invoices = {
        **INVOICES,
        "highlight_deleted": True,
        "columns": {
            "Number": "formatted_invoice_number",
            "Total": {"path": "total_amount", "type": "number", "format": "#,##0.00"},
        },
    }
    daemon = fast_daemon(make_daemon, sheet_config={"Invoices": invoices}).start()
    sim = daemon.cobot.sim
    member = sim.create("membership")
    for _ in range(3):
        sim.create("invoice", member=member["id"])
    settle(daemon)
    wanted = {"type": "NUMBER", "pattern": "#,##0.00"}
    assert column_formats(daemon, "Invoices", "Total") == [wanted] * 3
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    (rule,) = emulator.conditional_formats(spreadsheet, "Invoices")
    assert daemon.stop() == 0

    emulator.clear_formats(spreadsheet, "Invoices")
    sheet_id = rule_sheet(daemon)
    emulator.apply(
        spreadsheet, [{"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": 0}}]
    )
    assert column_formats(daemon, "Invoices", "Total") == [{}] * 3
    assert emulator.conditional_formats(spreadsheet, "Invoices") == []

    daemon.start()
    wait_until(
        lambda: column_formats(daemon, "Invoices", "Total") == [wanted] * 3,
        timeout=30,
        what="the number format to come back",
        check=daemon._alive,
    )
    assert emulator.conditional_formats(spreadsheet, "Invoices") == [rule]
    assert daemon.stop() == 0


def rule_sheet(daemon: Daemon) -> int:
    spreadsheet = daemon.sheets.client().open_by_key(daemon.sheets.spreadsheet_id)
    return int(spreadsheet.worksheet("Invoices").id)
