"""End to end: `syncd backfill` and the daemon's scheduled re-sync against both emulators."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from syncd.store.database import Store
from syncd.store.meta import ResyncCheckpoint
from tests.fixtures_daemon import Daemon, MakeDaemon, example_sheets, wait_until
from tests.fixtures_sheets import GOOGLE_QUOTAS, MakeSheetsEmulator
from tests.resync_support import UNTHROTTLED, list_requests
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e

TITLES = {"membership": "Members", "invoice": "Invoices", "booking": "Bookings"}
TITLES["check_in"] = "Check-ins"
#: Per kind, cells to check against the simulator's objects: header -> value of the object.
CHECKS: dict[str, dict[str, Any]] = {
    "membership": {"Name": lambda o: o["name"], "Email": lambda o: o["email"]},
    "invoice": {
        "Number": lambda o: o["formatted_invoice_number"],
        "Total": lambda o: pytest.approx(float(o["total_amount"])),
        "Paid status": lambda o: o["paid_status"],
    },
    "booking": {
        "Title": lambda o: o["title"],
        "Member": lambda o: (o["membership"] or {}).get("name", ""),
    },
    "check_in": {"Membership ID": lambda o: o["membership"]["id"]},
}


def assert_sheets_match_cobot(daemon: Daemon) -> None:
    """Exactly one row per Cobot resource, none flagged deleted, with the resource's values."""
    sim = daemon.cobot.sim
    for kind, title in TITLES.items():
        rows = by_url(daemon.rows(title))  # fails on any duplicate URL
        objects = {sim.url_for(kind, o["id"]): o for o in sim.objects(kind)}
        assert set(rows) == set(objects), title
        for url, obj in objects.items():
            expected = {header: value(obj) for header, value in CHECKS[kind].items()}
            assert {h: rows[url][h] for h in expected} == expected, url
            assert rows[url]["Deleted"] == ""


def read_checkpoint(daemon: Daemon, mode: str, sheet: str) -> ResyncCheckpoint | None:
    async def read() -> ResyncCheckpoint | None:
        async with Store.open(daemon.state_dir, readonly=True) as store:
            return await store.meta.resync_checkpoint(mode, sheet)

    return asyncio.run(read())


def summary_total(stdout: str) -> dict[str, str]:
    """The Total row of the backfill's summary table, by column."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("Worksheet")).split()
    total = next(line for line in lines if line.startswith("Total")).split()
    return dict(zip(header, total, strict=False))


def test_backfill_of_two_years_is_exact_within_rate_limits_and_a_resync_writes_nothing(
    make_daemon: MakeDaemon, make_sheets_emulator: MakeSheetsEmulator
) -> None:
    # Both emulators enforce the real limits: Cobot 60/min (6/min for the membership list),
    # Sheets 60 reads and 60 writes per minute. Monthly windows over two years take more
    # Cobot requests than one minute's budget, so the daemon has to hold itself back.
    daemon = make_daemon(resync={"window_days": 61}, sheets=make_sheets_emulator(**GOOGLE_QUOTAS))
    sim = daemon.cobot.sim
    sim.seed_space(members=500, invoices=3000, bookings=2000, check_ins=1000, years=2)

    # More than a minute's worth of requests: the budget makes the backfill wait.
    first = daemon.cli("backfill", timeout=240)
    assert first.returncode == 0, first.stderr
    assert summary_total(first.stdout)["Added"] == "6500"
    assert_sheets_match_cobot(daemon)
    writes = daemon.sheets.emulator.writes

    again = daemon.cli("backfill", timeout=240)
    assert again.returncode == 0, again.stderr
    assert daemon.sheets.emulator.writes == writes
    total = summary_total(again.stdout)
    assert (total["Added"], total["Updated"], total["Unchanged"]) == ("0", "0", "6500")
    cobot_requests = sim.requests()
    assert len(cobot_requests) > 60
    assert Counter(r.status for r in cobot_requests) == {200: len(cobot_requests)}
    sheets_statuses = Counter(r.status for r in daemon.sheets.emulator.request_log)
    assert sheets_statuses == {200: sum(sheets_statuses.values())}


def test_backfill_killed_at_a_random_point_continues_without_duplicates(
    make_daemon: MakeDaemon,
) -> None:
    daemon = make_daemon(
        cobot_knobs={"rate_limits": False},
        cobot_options=UNTHROTTLED,
        resync={"window_days": 31},
    )
    sim = daemon.cobot.sim
    sim.seed_space(members=50, invoices=3000, bookings=600, check_ins=300, years=2)
    seed = random.randrange(10**6)
    # Progress lines: one for Members, then one per 31-day invoice window (24), and so on;
    # killed while invoices are under way, after at least one chunk of them was written.
    kill_after = random.Random(seed).randint(6, 22)
    daemon.write_config()
    command = [sys.executable, "-m", "syncd", "backfill", "--config", str(daemon.config_path)]
    with (daemon.workdir / "killed.err").open("w") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, env=daemon.env
        )
        assert process.stdout is not None
        for number, _ in enumerate(process.stdout, 1):
            if number == kill_after:
                process.send_signal(signal.SIGKILL)
                break
        process.stdout.close()
        assert process.wait(30) == -signal.SIGKILL, f"finished before the kill (seed {seed})"

    checkpoint = read_checkpoint(daemon, "backfill", "Invoices")
    listed_before = len(list_requests(daemon, "/api/invoices"))

    rerun = daemon.cli("backfill")
    assert rerun.returncode == 0, rerun.stderr
    assert checkpoint is not None, f"no checkpoint after {kill_after} lines (seed {seed})"
    assert f"Invoices: continued an interrupted backfill from {checkpoint.next}" in rerun.stdout
    assert len(list_requests(daemon, "/api/invoices")) - listed_before < 24
    assert_sheets_match_cobot(daemon)


def test_a_webhook_missed_while_down_is_healed_by_the_scheduled_resync(
    make_daemon: MakeDaemon,
) -> None:
    sheets = example_sheets()
    for sheet in sheets.values():
        sheet["resync"] = "off"
    daemon = fast_daemon(
        make_daemon, sheet_config=sheets, resync={"recent_schedule": "off"}
    ).start()
    sim = daemon.cobot.sim
    member = sim.create("membership")
    settle(daemon)
    url = sim.url_for("membership", member["id"])
    assert by_url(daemon.rows("Members"))[url]["Name"] == member["name"]
    assert daemon.stop() == 0

    sim.update("membership", member["id"], name="Renamed While Down", emit=False)
    sheets["Members"]["resync"] = "*/2 * * * * *"  # six fields: every two seconds
    daemon.start(wait_subscriptions=False)
    wait_until(
        lambda: by_url(daemon.rows("Members"))[url]["Name"] == "Renamed While Down",
        timeout=30,
        what="the scheduled re-sync to heal the row",
        check=daemon._alive,
    )
    assert "Members: full re-sync:" in daemon.logs()
    assert (daemon.state_dir / "sheets.lock").exists()  # the daemon's upserts take the lock
    assert daemon.stop() == 0
