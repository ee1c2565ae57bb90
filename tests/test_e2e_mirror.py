"""End to end: the sheet stays Cobot's current state whatever order the writers run in.

The real `syncd run` and `syncd backfill` against both emulators: a listing read before a
webhook's change never overwrites it, a deletion can be undone by a later observation, keys
are compared as Cobot resources, every process shares one request budget, and deletion by
absence is confirmed by the resource's own GET.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from syncd.sheets.a1 import column_letters
from tests.fixtures_daemon import Daemon, MakeDaemon, example_sheets, wait_until
from tests.resync_support import UNTHROTTLED
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e


def listed(daemon: Daemon, path: str) -> int:
    """How many times Cobot was asked for the listing at ``path``."""
    return sum(1 for r in daemon.cobot.sim.requests() if r.path == path)


def start_backfill(daemon: Daemon, *sheets: str, span: int = 0) -> subprocess.Popen[str]:
    """`syncd backfill` of ``sheets``; a ``span`` (days) lists only that much around today."""
    daemon.write_config()
    command = [sys.executable, "-m", "syncd", "backfill", "--config", str(daemon.config_path)]
    for sheet in sheets:
        command += ["--sheet", sheet]
    if span:
        today = date.today()
        since, until = today - timedelta(days=span), today + timedelta(days=span)
        command += ["--since", since.isoformat(), "--until", until.isoformat()]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def row(daemon: Daemon, title: str, url: str) -> dict[str, Any]:
    return by_url(daemon.rows(title))[url]


def test_a_backfill_that_listed_before_a_webhook_never_undoes_what_the_webhook_wrote(
    make_daemon: MakeDaemon,
) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    ada = sim.create("membership", name="Ada")
    booking = sim.create("booking", member=ada["id"], title="Stand-up")
    settle(daemon)
    member_url = sim.url_for("membership", ada["id"])
    booking_url = sim.url_for("booking", booking["id"])
    # Each listing shows Cobot's state when asked, and takes seconds to arrive.
    sim.slow_answers = {"/api/memberships": 3.0, "/api/bookings": 3.0}

    backfill = start_backfill(daemon, "Members", "Bookings", span=2)
    wait_until(lambda: sim.answers_held == 1, timeout=30, what="the membership listing")
    sim.update("membership", ada["id"], name="Ada Newer")
    wait_until(
        lambda: row(daemon, "Members", member_url)["Name"] == "Ada Newer",
        timeout=30,
        what="the webhook's newer name",
        check=daemon._alive,
    )
    wait_until(lambda: sim.answers_held == 2, timeout=60, what="the booking listing")
    sim.delete("booking", booking["id"])
    wait_until(
        lambda: row(daemon, "Bookings", booking_url)["Deleted"] != "",
        timeout=30,
        what="the deletion",
        check=daemon._alive,
    )
    deleted_at = row(daemon, "Bookings", booking_url)["Deleted"]
    finished(backfill)

    assert row(daemon, "Members", member_url)["Name"] == "Ada Newer"
    assert row(daemon, "Bookings", booking_url)["Deleted"] == deleted_at
    assert daemon.stop() == 0


def test_a_deletion_is_undone_by_the_resource_found_again(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    ada = sim.create("membership", name="Ada")
    settle(daemon)
    url = sim.url_for("membership", ada["id"])

    sim.fail_next(1, status=404)  # one fetch answers 404, as during a Cobot hiccup
    sim.emit("updated_membership_details", url)
    settle(daemon)
    assert row(daemon, "Members", url)["Deleted"] != ""
    assert Counter(r.status for r in sim.requests())[404] == 1

    sim.update("membership", ada["id"], name="Ada Again")  # a 200 fetch after the 404
    settle(daemon)
    assert row(daemon, "Members", url)["Deleted"] == ""
    assert row(daemon, "Members", url)["Name"] == "Ada Again"

    sim.fail_next(1, status=404)
    sim.emit("updated_membership_details", url)
    settle(daemon)
    assert row(daemon, "Members", url)["Deleted"] != ""
    finished(start_backfill(daemon, "Members"))  # a listing observed after the 404
    assert row(daemon, "Members", url)["Deleted"] == ""
    assert daemon.stop() == 0


def test_keys_are_compared_as_cobot_resources(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    invoice = sim.create("invoice", emit=False)
    url = sim.url_for("invoice", invoice["id"])
    assert url.startswith("http://127.0.0.1:")
    # Cobot documents deleted_invoice bodies with the other scheme: same host, same invoice.
    other_scheme = "https://" + url.removeprefix("http://")
    reply = requests.post(
        f"{daemon.callback_base}/deleted_invoice",
        json={"url": other_scheme, "id": invoice["id"]},
        timeout=10,
    )
    assert reply.status_code < 300, reply.text
    settle(daemon)
    assert row(daemon, "Invoices", url)["Deleted"] != ""

    # A person pasted a member's URL with the other scheme and a trailing slash.
    sim.create("membership", name="Grace")
    settle(daemon)
    ada = sim.create("membership", name="Ada", emit=False)
    member_url = sim.url_for("membership", ada["id"])
    typed = "https://" + member_url.removeprefix("http://") + "/"
    emulator, spreadsheet = daemon.sheets.emulator, daemon.sheets.spreadsheet_id
    header = [str(cell) for cell in emulator.values(spreadsheet, "Members")[0]]
    key_column = column_letters(header.index("URL") + 1)
    emulator.set_values(spreadsheet, "Members", [[typed]], start=f"{key_column}3")
    sim.update("membership", ada["id"], name="Ada Typed")
    settle(daemon)
    rows = by_url(daemon.rows("Members"))
    assert typed not in rows, "the typed row was taken over, not left beside a second one"
    assert rows[member_url]["Name"] == "Ada Typed"
    assert daemon.stop() == 0


def test_backfill_and_daemon_share_one_cobot_budget(make_daemon: MakeDaemon) -> None:
    # Cobot allows 35 a minute here; each process is configured for 30 of them. The member
    # join is left out: each booking's member would cost one more request of the budget.
    bookings = example_sheets()["Bookings"]
    bookings["columns"] = {h: c for h, c in bookings["columns"].items() if "member" not in str(c)}
    daemon = make_daemon(
        sheet_config={"Bookings": bookings},
        cobot_knobs={"requests_per_window": 35},
        cobot_options={"requests_per_minute": 30},
        resync={"window_days": 7},
    ).start()
    sim = daemon.cobot.sim
    for _ in range(15):
        sim.create("booking")  # each webhook costs the daemon a fetch
    settle(daemon)
    backfill = start_backfill(daemon)  # about a hundred weekly windows
    wait_until(lambda: len(sim.requests()) >= 30, timeout=60, what="the budget to be spent")
    time.sleep(5)  # long enough for a second, unshared budget to overspend
    backfill.kill()
    backfill.wait(10)
    statuses = Counter(r.status for r in sim.requests())
    assert statuses[429] == 0, statuses
    assert len(sim.requests()) <= 30, statuses
    fetches = [r for r in sim.requests() if r.path.startswith("/api/bookings/")]
    assert listed(daemon, "/api/bookings") > 0 and fetches, "both processes spent the budget"
    assert (daemon.state_dir / "budget-cobot.json").exists()
    assert daemon.stop() == 0


def test_deletion_by_absence_is_confirmed_by_the_resources_own_fetch(
    make_daemon: MakeDaemon,
) -> None:
    daemon = make_daemon(cobot_knobs={"rate_limits": False}, cobot_options=UNTHROTTLED).start()
    sim = daemon.cobot.sim
    current = [sim.create("membership") for _ in range(12)]
    pending = sim.create("membership", confirmed_at=None)  # not a current member
    gone = current.pop()
    settle(daemon)
    sim.delete("membership", gone["id"], emit=False)  # deleted while nobody listened
    sim.all_param_honoured = False  # a Cobot that lists only current members

    out = finished(start_backfill(daemon, "Members"))
    rows = by_url(daemon.rows("Members"))
    assert rows[sim.url_for("membership", pending["id"])]["Deleted"] == "", out
    assert rows[sim.url_for("membership", gone["id"])]["Deleted"] != ""
    assert all(rows[sim.url_for("membership", m["id"])]["Deleted"] == "" for m in current)
    fetched = {r.path for r in sim.requests() if r.path.startswith("/api/memberships/")}
    assert f"/api/memberships/{pending['id']}" in fetched
    assert Counter(r.status for r in sim.requests())[404] == 1  # the deleted one's GET
    assert daemon.stop() == 0
