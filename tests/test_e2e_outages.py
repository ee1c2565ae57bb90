"""End to end: outages, a revoked share, a poisoned row and an over-long value lose nothing.

`syncd run` between the Cobot simulator and the Sheets emulator, with the emulator made to
fail the way Google does: every call answered 503 for longer than the whole retry schedule,
the spreadsheet unshared from the service account, one row's write refused as invalid, and a
cell over Google's 50,000-character limit refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import gspread
import pytest
import requests

from syncd.mapping.cells import MAX_CELL_CHARS
from syncd.sandbox.sheets.cells import CELL_TOO_LONG
from syncd.store.schema import DB_FILENAME
from tests.fixtures_daemon import Daemon, MakeDaemon, example_sheets, wait_until
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e


def sheets(*titles: str) -> dict[str, Any]:
    return {title: example_sheets()[title] for title in titles}


def pending_attempts(daemon: Daemon) -> list[int]:
    """The attempts spent so far by each pending event."""
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        rows = conn.execute("SELECT attempts FROM inbox WHERE status = 'pending'").fetchall()
    return [attempts for (attempts,) in rows]


def status_json(daemon: Daemon) -> dict[str, Any]:
    result = daemon.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def test_a_sheets_outage_longer_than_the_retry_schedule_loses_nothing(
    make_daemon: MakeDaemon,
) -> None:
    max_attempts = 2
    daemon = fast_daemon(
        make_daemon,
        sheet_config=sheets("Members", "Bookings", "Check-ins"),
        sync={"max_attempts": max_attempts, "retry_max_seconds": 0.5},
    ).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    member = sim.create("membership")
    booking = sim.create("booking", member=member["id"])
    settle(daemon)

    emulator.set_outage(503)
    members = [sim.create("membership") for _ in range(3)]
    check_in = sim.create("check_in", member=member["id"])
    sim.update("membership", member["id"], name="Renamed During Outage")
    sim.delete("booking", booking["id"])  # a deletion: no re-sync would heal it
    sim.wait_deliveries_idle(30)
    # Every event went past the attempt that would dead-letter it, and still waits.
    wait_until(
        lambda: min(pending_attempts(daemon), default=0) > max_attempts,
        timeout=240,
        what="the outage to outlast the retry schedule",
        check=daemon._alive,
    )
    failed = [r for r in emulator.request_log if r.status == 503]
    assert len(failed) > max_attempts  # the outage really answered the daemon's writes
    assert status_json(daemon)["inbox"]["dead"] == 0

    emulator.set_outage(None)
    settle(daemon, timeout=90)
    status = status_json(daemon)
    assert (status["inbox"]["dead"], status["inbox"]["pending"]) == (0, 0)
    rows = by_url(daemon.rows("Members"))
    assert set(rows) == {sim.url_for("membership", m["id"]) for m in [member, *members]}
    assert rows[sim.url_for("membership", member["id"])]["Name"] == "Renamed During Outage"
    assert sim.url_for("check_in", check_in["id"]) in by_url(daemon.rows("Check-ins"))
    booking_row = by_url(daemon.rows("Bookings"))[sim.url_for("booking", booking["id"])]
    assert booking_row["Deleted"] != ""


def test_a_revoked_share_pauses_with_the_reason_and_resumes_by_itself(
    make_daemon: MakeDaemon,
) -> None:
    # The production pause: looked at again every 30 s, not a compressed schedule.
    daemon = fast_daemon(
        make_daemon, sheet_config=sheets("Members"), sync={"retry_max_seconds": 3600}
    ).start()
    sim, emulator, sid = daemon.cobot.sim, daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    shared = emulator.shared_with(sid)
    emulator.share(sid, set())  # someone unshared the spreadsheet
    member = sim.create("membership")
    wait_until(lambda: daemon.health()[0] == 503, timeout=30, what="a pause", check=daemon._alive)
    code, health = daemon.health()
    assert (code, health["status"]) == (503, "paused")
    reason = health["paused"]["Members"]["reason"]
    assert "share the spreadsheet" in reason
    assert any(r.status == 403 for r in emulator.request_log)  # Google really refused
    status = status_json(daemon)
    assert status["paused"]["Members"]["reason"] == reason
    assert status["inbox"]["dead"] == 0
    held = pending_attempts(daemon)
    assert held and all(attempts == 0 for attempts in held)  # a pause spends no attempt
    shown = daemon.cli("status")
    assert "PAUSED Members since" in shown.stdout and "share the spreadsheet" in shown.stdout
    metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
    assert "syncd_paused 1" in metrics

    emulator.share(sid, shared)  # fixed: no restart, no replay
    wait_until(
        lambda: daemon.health()[0] == 200 and daemon.inbox_empty(),
        timeout=60,
        what="the pipeline to resume within a minute",
        check=daemon._alive,
    )
    assert daemon.health()[1]["paused"] == {}
    assert sim.url_for("membership", member["id"]) in by_url(daemon.rows("Members"))
    assert "PAUSED" not in daemon.cli("status").stdout


def test_a_poisoned_row_does_not_hold_up_the_others(make_daemon: MakeDaemon) -> None:
    # A long flush interval gathers the whole burst into one batch with the poisoned row.
    daemon = fast_daemon(
        make_daemon,
        sheet_config=sheets("Members"),
        sync={"max_attempts": 2, "flush_interval_seconds": 3},
    ).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    emulator.refuse_writes_containing("Poison Pill")
    poison = sim.create("membership", name="Poison Pill")
    others = [sim.create("membership") for _ in range(5)]
    settle(daemon, timeout=90)

    rows = by_url(daemon.rows("Members"))
    assert set(rows) == {sim.url_for("membership", m["id"]) for m in others}
    split = [int(n) for n in re.findall(r"writing (\d+) row\(s\) to Members failed", daemon.logs())]
    assert max(split) > 1  # the poison was in a batch with others, which were written anyway
    [letter] = status_json(daemon)["dead_letters"]
    assert (letter["url"], letter["attempts"]) == (sim.url_for("membership", poison["id"]), 2)
    assert daemon.health()[1]["inbox"]["dead"] == 1
    metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
    assert "syncd_inbox_dead_letters 1" in metrics


def test_a_value_over_googles_cell_limit_arrives_capped(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, sheet_config=sheets("Members")).start()
    sim = daemon.cobot.sim
    long_name = "N" * 60_000
    member = sim.create("membership", name=long_name)
    neighbour = sim.create("membership")
    settle(daemon)

    rows = by_url(daemon.rows("Members"))
    name = rows[sim.url_for("membership", member["id"])]["Name"]
    assert len(name) == MAX_CELL_CHARS < 50_000
    assert name.startswith("NNNN") and name.endswith("of 60,000 characters]")
    assert sim.url_for("membership", neighbour["id"]) in rows
    assert status_json(daemon)["inbox"]["dead"] == 0

    # The emulator refuses what Google refuses, with Google's message.
    worksheet = (
        daemon.sheets.client().open_by_key(daemon.sheets.spreadsheet_id).worksheet("Members")
    )
    with pytest.raises(gspread.exceptions.APIError) as refused:
        worksheet.update([["x" * 50_001]], "A1", raw=True)
    assert refused.value.response.status_code == 400
    assert CELL_TOO_LONG in str(refused.value)
