"""End to end: `syncd run` between the Cobot simulator and the Sheets emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.mapping.cells import SHEETS_EPOCH
from tests.fixtures_daemon import Daemon, MakeDaemon, wait_until
from tests.fixtures_sheets import GOOGLE_QUOTAS, MakeSheetsEmulator

pytestmark = pytest.mark.e2e


def fast_daemon(make_daemon: MakeDaemon, **options: Any) -> Daemon:
    """A daemon whose Cobot budget and simulator limits do not slow the test down.

    The rate limits themselves are proven by the budget, client and backfill tests.
    """
    return make_daemon(
        cobot_knobs={"rate_limits": False}, cobot_options={"requests_per_minute": 6000}, **options
    )


def settle(daemon: Daemon, timeout: float = 60) -> None:
    """Wait until Cobot has delivered everything and the daemon has written it."""
    daemon.cobot.sim.wait_deliveries_idle(timeout)
    wait_until(daemon.inbox_empty, timeout=timeout, what="inbox to drain", check=daemon._alive)


def by_url(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    urls = [row["URL"] for row in rows]
    assert len(urls) == len(set(urls)), (
        f"duplicate rows for {sorted(u for u in urls if urls.count(u) > 1)}"
    )
    return {row["URL"]: row for row in rows}


def serial_date(text: str) -> int:
    day = datetime.strptime(text, "%Y/%m/%d").date()
    return (day - SHEETS_EPOCH.date()).days


def test_fifty_resources_created_updated_and_deleted(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim

    members = [
        sim.create("membership", emit=["created_membership", "confirmed_membership"])
        for _ in range(15)
    ]
    invoices = [sim.create("invoice", member=members[i % 15]["id"]) for i in range(15)]
    bookings = [sim.create("booking", member=members[i % 15]["id"]) for i in range(10)]
    check_ins = [sim.create("check_in", member=members[i % 15]["id"]) for i in range(10)]

    renamed = {m["id"]: f"Renamed Member {i}" for i, m in enumerate(members[:5])}
    for member_id, name in renamed.items():
        sim.update("membership", member_id, name=name)
    for invoice in invoices[:3]:
        sim.update("invoice", invoice["id"], paid_status="paid", paid=True)
    sim.update("booking", bookings[0]["id"], title="Moved workshop")

    deleted = {
        "Members": sim.delete("membership", members[14]["id"]),
        "Invoices": sim.delete("invoice", invoices[14]["id"]),
        "Bookings": sim.delete("booking", bookings[9]["id"]),
    }
    settle(daemon)

    expected_urls = {
        "Members": {sim.url_for("membership", m["id"]) for m in members},
        "Invoices": {sim.url_for("invoice", i["id"]) for i in invoices},
        "Bookings": {sim.url_for("booking", b["id"]) for b in bookings},
        "Check-ins": {sim.url_for("check_in", c["id"]) for c in check_ins},
    }
    sheets = {title: by_url(daemon.rows(title)) for title in expected_urls}
    for title, urls in expected_urls.items():
        assert set(sheets[title]) == urls, title

    kinds = {"Members": "membership", "Invoices": "invoice", "Bookings": "booking"}
    deleted_urls = {sim.url_for(kinds[title], obj["id"]) for title, obj in deleted.items()}
    for rows in sheets.values():
        for url, row in rows.items():
            if url in deleted_urls:
                stamp = datetime.fromisoformat(row["Deleted"])
                assert stamp.tzinfo is not None and stamp <= datetime.now(UTC), row
            else:
                assert row["Deleted"] == "", row

    member_rows = sheets["Members"]
    for member in members:
        row = member_rows[sim.url_for("membership", member["id"])]
        assert row["Name"] == renamed.get(member["id"], member["name"])
        assert row["Email"] == member["email"]
        assert row["Plan"] == member["plan"]["name"]
        assert row["Cobot ID"] == member["id"]
        if member["starts_at"]:
            assert row["Starts"] == serial_date(member["starts_at"])
    deleted_member = member_rows[sim.url_for("membership", members[14]["id"])]
    assert deleted_member["Name"] == members[14]["name"]  # filled from the embedded data

    invoice_rows = sheets["Invoices"]
    for index, invoice in enumerate(invoices):
        row = invoice_rows[sim.url_for("invoice", invoice["id"])]
        assert row["Number"] == invoice["formatted_invoice_number"]
        assert row["Total"] == pytest.approx(float(invoice["total_amount"]))
        assert row["Paid status"] == ("paid" if index < 3 else invoice["paid_status"])

    booking_rows = sheets["Bookings"]
    assert booking_rows[sim.url_for("booking", bookings[0]["id"])]["Title"] == "Moved workshop"
    assert booking_rows[sim.url_for("booking", bookings[9]["id"])]["Title"] == bookings[9]["title"]

    assert daemon.stop() == 0
    assert "stopped" in daemon.logs()


def flushes_in(log_text: str) -> int:
    """How many flushes wrote events, from the daemon's one line per flush."""
    return sum(
        1
        for line in log_text.splitlines()
        if "syncd.worker: flush:" in line and " 0 done" not in line
    )


def test_burst_costs_few_sheets_requests_and_one_fetch_per_url(
    make_daemon: MakeDaemon, make_sheets_emulator: MakeSheetsEmulator
) -> None:
    # The Sheets emulator enforces Google's per-user quotas (60 reads, 60 writes a minute).
    daemon = fast_daemon(
        make_daemon,
        sheets=make_sheets_emulator(**GOOGLE_QUOTAS),
        sync={"flush_interval_seconds": 3},
    ).start()
    sim = daemon.cobot.sim
    # Warm-up: every worksheet exists and its key column is known before the measured burst.
    member = sim.create("membership")
    sim.create("invoice", member=member["id"])
    sim.create("booking", member=member["id"])
    sim.create("check_in", member=member["id"])
    settle(daemon)
    resources = [("membership", sim.create("membership", emit=False)) for _ in range(10)]
    resources += [
        ("invoice", sim.create("invoice", member=member["id"], emit=False)) for _ in range(10)
    ]
    resources += [
        ("booking", sim.create("booking", member=member["id"], emit=False)) for _ in range(10)
    ]
    resources += [
        ("check_in", sim.create("check_in", member=member["id"], emit=False)) for _ in range(10)
    ]
    event_of = {
        "membership": "updated_membership_details",
        "invoice": "updated_invoice",
        "booking": "updated_booking",
        "check_in": "created_checkout",
    }
    log_start = len(daemon.sheets.emulator.request_log)
    log_text_start = len(daemon.log_path.read_text())
    fetches_before = len(sim.requests())
    for _ in range(5):
        for kind, obj in resources:
            sim.emit(event_of[kind], sim.url_for(kind, obj["id"]))
    settle(daemon)
    # Events are marked done before their flush logs its line: wait for the line too.
    wait_until(
        lambda: flushes_in(daemon.log_path.read_text()[log_text_start:]) >= 1,
        timeout=10,
        what="the flush's log line",
    )

    flushes = flushes_in(daemon.log_path.read_text()[log_text_start:])
    records = [r for r in daemon.sheets.emulator.request_log[log_start:] if r.kind is not None]
    reads = [r for r in records if r.kind == "read"]
    # Each flush reads each worksheet it writes once (header row + key column in one batchGet)
    # and writes it once (one values.batchUpdate), plus a grid growth when rows run out; the
    # first event may start a flush of its own at once.
    assert 1 <= flushes <= 2
    for title in ("Members", "Invoices", "Bookings", "Check-ins"):
        read = [r for r in reads if any(title in rng for rng in r.query.get("ranges", []))]
        assert 1 <= len(read) <= flushes, records
    assert len(records) <= 3 * 4 * flushes, records
    assert [r for r in daemon.sheets.emulator.request_log if r.status == 429] == []
    # At most one Cobot request per distinct URL, fewer where a list serves many: invoices
    # by ids=, memberships from one listing (but for the few events the first flush took
    # at once, one round of fetches at most).
    fetched = [r.path for r in sim.requests()[fetches_before:] if r.method == "GET"]
    single = [path for path in fetched if path.count("/") == 3]
    assert len(single) == len(set(single)) and len(fetched) <= 40, fetched
    assert all(fetched.count(path) <= flushes for path in fetched), "a listing twice a flush"
    listed_kinds = [p for p in single if "/invoices/" in p or "/memberships/" in p]
    assert len(listed_kinds) <= 4, single  # sync.fetch_concurrency, by default
    for kind, obj in resources:
        rows = by_url(
            daemon.rows(
                {
                    "membership": "Members",
                    "invoice": "Invoices",
                    "booking": "Bookings",
                    "check_in": "Check-ins",
                }[kind]
            )
        )
        assert sim.url_for(kind, obj["id"]) in rows


def test_kill_9_after_acknowledging_loses_nothing(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, sync={"flush_interval_seconds": 30}).start()
    sim = daemon.cobot.sim
    # Cobot's API answers far too slowly for a flush to finish (its webhooks go out as
    # usual): every webhook is acknowledged, none written yet, when the daemon is killed.
    sim.latency_seconds = 30.0
    members = [sim.create("membership") for _ in range(20)]
    sim.wait_deliveries_idle(20)
    acknowledged = {d.body["url"] for d in sim.deliveries() if d.ok}
    assert len(acknowledged) == 20
    daemon.kill()
    assert daemon.rows("Members") == []

    sim.latency_seconds = 0.0
    daemon.sync = {"flush_interval_seconds": 0.3}
    daemon.start(wait_subscriptions=False)
    settle(daemon)
    rows = by_url(daemon.rows("Members"))
    assert set(rows) == acknowledged
    assert {row["Name"] for row in rows.values()} == {m["name"] for m in members}
    assert daemon.stop() == 0


def test_formula_like_names_stay_literal_text(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    hostile = sim.create("membership", name='=HYPERLINK("http://x")', phone="+1 555")
    settle(daemon)
    row = by_url(daemon.rows("Members"))[sim.url_for("membership", hostile["id"])]
    assert row["Name"] == '=HYPERLINK("http://x")'
    assert row["Phone"] == "+1 555"
    emulator = daemon.sheets.emulator
    formulas = emulator.dump(daemon.sheets.spreadsheet_id)
    assert '=HYPERLINK("http://x")' in str(formulas["Members"])
    from syncd.sandbox.sheets.cells import Formula

    grid = emulator.values(daemon.sheets.spreadsheet_id, "Members")
    assert not any(isinstance(cell, Formula) for line in grid for cell in line)
