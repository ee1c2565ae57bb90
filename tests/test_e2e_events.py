"""End to end: Cobot events beyond the everyday ones, each reaching the right row or none.

Deletions in all three payload forms and without payload, API 2 resources, subscription
filters, events about a kind no worksheet holds, and the optional event log worksheet.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import date
from typing import Any

import pytest

from syncd.mapping.cells import SHEETS_EPOCH
from syncd.store.schema import DB_FILENAME
from tests.fixtures_daemon import WEBHOOK_SECRET, Daemon, MakeDaemon, example_sheets, wait_until
from tests.fixtures_example import optional_sheets
from tests.test_e2e_pipeline import by_url, fast_daemon, serial_date, settle

pytestmark = pytest.mark.e2e

EVENT_LOG = "Event log"


def sheets_with(*optional: str) -> dict[str, Any]:
    """The example's four worksheets plus the named optional ones, as shipped."""
    extra = optional_sheets()
    return {**example_sheets(), **{title: extra[title] for title in optional}}


def assert_flagged(row: dict[str, Any]) -> None:
    assert row["Deleted"].endswith("Z") and len(row["Deleted"]) == len("2025-01-01T00:00:00Z")


def deliveries_of(daemon: Daemon, event: str) -> list[Any]:
    return [d for d in daemon.cobot.sim.deliveries() if d.event == event]


def test_deletion_payload_forms_flag_and_fill_the_row(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    # Never announced, so each row can only come from its deletion's embedded data.
    member = sim.create("membership", emit=False)
    booking = sim.create("booking", member=member["id"], emit=False)
    top_level, nested = (sim.create("invoice", member=member["id"], emit=False) for _ in "ab")

    sim.delete("booking", booking["id"])
    sim.delete("membership", member["id"])
    sim.delete("invoice", top_level["id"])
    sim.deleted_invoice_form = "nested"
    sim.delete("invoice", nested["id"])
    settle(daemon)

    bodies = {d.body["url"]: d.body for d in sim.deliveries()}
    urls = {
        "booking": sim.url_for("booking", booking["id"]),
        "member": sim.url_for("membership", member["id"]),
        "top_level": sim.url_for("invoice", top_level["id"]),
        "nested": sim.url_for("invoice", nested["id"]),
    }
    assert set(bodies[urls["booking"]]) == {"url", "booking"}
    assert set(bodies[urls["member"]]) == {"url", "membership"}
    assert "formatted_invoice_number" in bodies[urls["top_level"]]
    assert set(bodies[urls["nested"]]) == {"url", "invoice"}
    fetched = {r.path for r in sim.requests() if r.method == "GET"}
    assert not any(url.removeprefix(sim.base_url) in fetched for url in urls.values())

    row = by_url(daemon.rows("Bookings"))[urls["booking"]]
    assert_flagged(row)
    assert (row["Title"], row["Resource"], row["Member"]) == (
        booking["title"],
        booking["resource"]["name"],
        member["name"],
    )
    assert row["Price"] == pytest.approx(booking["price"])
    row = by_url(daemon.rows("Members"))[urls["member"]]
    assert_flagged(row)
    assert (row["Name"], row["Email"], row["Plan"]) == (
        member["name"],
        member["email"],
        member["plan"]["name"],
    )
    invoices = by_url(daemon.rows("Invoices"))
    for key, invoice in (("top_level", top_level), ("nested", nested)):
        row = invoices[urls[key]]
        assert_flagged(row)
        assert row["Number"] == invoice["formatted_invoice_number"], key
        assert row["Total"] == pytest.approx(float(invoice["total_amount"])), key


def test_deletions_without_payload_flag_the_row_by_url_only(make_daemon: MakeDaemon) -> None:
    sheets = sheets_with("Admins", "Guest accounts", "Check-in tokens")
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    admin = sim.create("admin")
    guest = sim.create("guest_account")
    token = sim.create("check_in_token", member=member["id"])
    settle(daemon)
    before = {title: by_url(daemon.rows(title)) for title in sheets}

    # Cobot's copy changes unannounced; a deletion must neither fetch it nor blank cells.
    sim.update("admin", admin["id"], emit=False, name="Renamed Before Removal")
    sim.delete("admin", admin["id"])
    sim.delete("guest_account", guest["id"])
    sim.delete("check_in_token", token["id"])
    settle(daemon)

    urls = {
        "Admins": sim.url_for("admin", admin["id"]),
        "Guest accounts": sim.url_for("guest_account", guest["id"]),
        "Check-in tokens": sim.url_for("check_in_token", token["id"]),
    }
    assert {d.body["url"] for d in deliveries_of(daemon, "deleted_admin")} == {
        urls["Admins"],
        urls["Guest accounts"],
    }
    assert all(set(d.body) == {"url"} for d in sim.deliveries() if d.event.startswith("deleted"))
    for title, url in urls.items():
        rows = by_url(daemon.rows(title))
        assert set(rows) == {url}, title  # deleted_admin reached only the sheet of its kind
        assert_flagged(rows[url])
        untouched = {h: v for h, v in rows[url].items() if h != "Deleted"}
        assert untouched == {h: v for h, v in before[title][url].items() if h != "Deleted"}
    assert by_url(daemon.rows("Admins"))[urls["Admins"]]["Name"] == admin["name"]
    assert by_url(daemon.rows("Guest accounts"))[urls["Guest accounts"]]["Login"] == guest["login"]
    assert (
        by_url(daemon.rows("Check-in tokens"))[urls["Check-in tokens"]]["Token"] == (token["token"])
    )


def test_api2_drop_in_pass_and_space_subscription_rows(make_daemon: MakeDaemon) -> None:
    optional = optional_sheets()
    sheets = {title: optional[title] for title in ("Drop-in passes", "Space subscription")}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim
    drop_in = sim.create("drop_in_pass")
    space = sim.update("space_subscription", sim.space_id, planName="Cobot Enterprise")
    settle(daemon)

    url = sim.url_for("drop_in_pass", drop_in["data"]["id"])
    assert url.startswith(f"{sim.base_url}/drop_in_passes/")
    attributes = drop_in["data"]["attributes"]
    row = by_url(daemon.rows("Drop-in passes"))[url]
    assert (row["Name"], row["Email"], row["Currency"]) == (
        attributes["name"],
        attributes["email"],
        attributes["price"]["currency"],
    )
    valid_on = date.fromisoformat(attributes["validOn"])
    assert row["Valid on"] == (valid_on - SHEETS_EPOCH.date()).days
    assert row["Price"] == pytest.approx(float(attributes["price"]["gross"]))
    assert row["Deleted"] == ""

    row = by_url(daemon.rows("Space subscription"))[sim.url_for("space_subscription", sim.space_id)]
    assert row["Plan"] == "Cobot Enterprise"
    extras = space["data"]["attributes"]["extras"]
    assert json.loads(row["Extras"]) == extras


def test_filters_are_sent_and_a_filter_change_resubscribes(make_daemon: MakeDaemon) -> None:
    sheets = example_sheets()
    sheets["Bookings"]["filters"] = {"resource_id": "room-1", "lead_time": 30}
    sheets["Members"]["filters"] = {"fields": ["Locker", "Badge"]}
    daemon = fast_daemon(make_daemon, sheet_config=sheets).start()
    sim = daemon.cobot.sim

    filters = {s["event"]: s.get("filters") for s in sim.subscriptions()}
    for event in ("created_booking", "updated_booking", "deleted_booking"):
        assert filters[event] == {"resource_id": "room-1"}, event
    assert filters["booking_will_begin"] == {"lead_time": 30}
    assert filters["updated_custom_field"] == {"fields": ["Locker", "Badge"]}
    assert filters["booking_has_ended"] is None
    assert filters["created_membership"] is None

    def book(room: str) -> str:
        booking = sim.create("booking", resource={"id": room, "name": f"Room {room}"})
        return sim.url_for("booking", booking["id"])

    first_room, other_room = book("room-1"), book("room-2")
    settle(daemon)
    assert set(by_url(daemon.rows("Bookings"))) == {first_room}

    daemon.stop()
    sheets["Bookings"]["filters"] = {"resource_id": "room-2", "lead_time": 30}
    daemon.start()
    wait_until(
        lambda: (
            {s["event"]: s.get("filters") for s in sim.subscriptions()}["created_booking"]
            == {"resource_id": "room-2"}
        ),
        timeout=20,
        what="the re-subscription with the new filter",
    )
    assert "(filters changed)" in daemon.log_path.read_text()
    assert len(sim.subscriptions()) == len(filters)
    second_room = book("room-2")
    settle(daemon)
    assert set(by_url(daemon.rows("Bookings"))) == {first_room, second_room}
    assert other_room not in by_url(daemon.rows("Bookings"))


def inbox_statuses(daemon: Daemon) -> dict[tuple[str, str], str]:
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        rows = conn.execute("SELECT event, url, status FROM inbox").fetchall()
    return {(event, url): status for event, url, status in rows}


def test_event_about_a_kind_no_sheet_maps_is_stored_and_done(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    invoice = sim.create("invoice", member=member["id"])
    settle(daemon)
    member_url = sim.url_for("membership", member["id"])
    invoice_url = sim.url_for("invoice", invoice["id"])

    # Booking callbacks carrying a membership and an invoice URL (the deletion with a body).
    sim.emit("created_booking", member_url)
    sim.emit("deleted_booking", invoice_url)
    later = sim.create("booking", member=member["id"])
    settle(daemon)

    odd = [d for d in sim.deliveries() if d.body["url"] in (member_url, invoice_url)]
    assert sorted((d.event, d.status) for d in odd) == [
        ("created_booking", 202),
        ("created_invoice", 202),
        ("deleted_booking", 202),
    ]
    statuses = inbox_statuses(daemon)
    assert statuses[("created_booking", member_url)] == "done"
    assert statuses[("deleted_booking", invoice_url)] == "done"
    logs = daemon.logs()
    assert "event created_booking about a membership is not mapped to any worksheet" in logs
    assert "event deleted_booking about a invoice is not mapped to any worksheet" in logs
    assert "Traceback" not in logs

    assert daemon.rows("Members") == []
    invoice_row = by_url(daemon.rows("Invoices"))[invoice_url]
    assert invoice_row["Deleted"] == ""
    assert invoice_row["Number"] == invoice["formatted_invoice_number"]
    assert set(by_url(daemon.rows("Bookings"))) == {sim.url_for("booking", later["id"])}
    assert daemon.health()[0] == 200
    assert daemon.stop() == 0


def sheets_serial(moment: float) -> float:
    return moment / 86400 + serial_date("1970/01/01")


def test_event_log_sheet_has_one_row_per_webhook_with_its_outcome(
    make_daemon: MakeDaemon,
) -> None:
    daemon = fast_daemon(
        make_daemon, extra={"event_log_sheet": EVENT_LOG}, sync={"max_attempts": 2}
    ).start()
    sim = daemon.cobot.sim
    started = time.time()
    member = sim.create("membership")
    booking = sim.create("booking", member=member["id"])
    settle(daemon)
    sim.delete("booking", booking["id"])
    member_url = sim.url_for("membership", member["id"])
    sim.emit("created_booking", member_url)
    settle(daemon)
    # Every fetch fails from here on: the invoice's event is retried once, then given up.
    sim.error_statuses, sim.error_rate = (400,), 1.0
    failing = sim.create("invoice", member=member["id"])
    failing_url = sim.url_for("invoice", failing["id"])

    def outcome_of(event: str, url: str) -> str | None:
        rows = daemon.rows(EVENT_LOG)
        return next((r["Outcome"] for r in rows if (r["Event"], r["URL"]) == (event, url)), None)

    wait_until(
        lambda: outcome_of("created_invoice", failing_url) == "dead-lettered",
        timeout=20,
        what="the failing event to be dead-lettered",
        check=daemon._alive,
    )
    sim.error_rate = 0.0
    finished = time.time()

    grid = daemon.sheets.emulator.values(daemon.sheets.spreadsheet_id, EVENT_LOG)
    assert grid[0] == ["Received at", "Event", "URL", "Outcome", "Event ID"]
    rows = daemon.rows(EVENT_LOG)
    acknowledged = [d for d in sim.deliveries() if d.ok]
    assert len(rows) == len(acknowledged) == 5
    assert len({row["Event ID"] for row in rows}) == 5
    booking_url = sim.url_for("booking", booking["id"])
    assert {(r["Event"], r["URL"]): r["Outcome"] for r in rows} == {
        ("created_membership", member_url): "written",
        ("created_booking", booking_url): "written",
        ("deleted_booking", booking_url): "deleted",
        ("created_booking", member_url): "not mapped",
        ("created_invoice", failing_url): "dead-lettered",
    }
    for row in rows:
        assert sheets_serial(started - 1) <= row["Received at"] <= sheets_serial(finished + 1)
    everything = str(daemon.sheets.emulator.dump(daemon.sheets.spreadsheet_id))
    assert WEBHOOK_SECRET not in everything and daemon.cobot.token not in everything
    assert failing_url not in by_url(daemon.rows("Invoices"))
