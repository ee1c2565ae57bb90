"""A crash between "rows written to Sheets" and "events marked done" adds no duplicate row.

The worker writes a flush's rows first and marks its events done afterwards, so a crash in
between leaves the events pending with their rows already in the sheet. The retry must find
those rows by URL and overwrite them, never append them a second time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.crashpoints.sitecustomize import CRASH_ENV, CRASH_EXIT_CODE, crash_marker
from tests.fixtures_daemon import CRASHPOINTS, MakeDaemon, wait_until
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

#: Marks one event done with a row written, in a process started the way `syncd run` is.
COMPLETE_SCRIPT = """
import asyncio
from syncd.store.database import Store
from syncd.store.rows import RowState

URL = "https://co-up.cobot.me/api/memberships/1"

async def main():
    async with Store.open({dir!r}) as store:
        event = await store.enqueue("created_membership", URL, "membership", {{"url": URL}})
        await store.complete([event], {{"Members": {{URL: RowState("f", None)}}}})

asyncio.run(main())
"""


def complete_in_subprocess(state_dir: Path, env_value: str | None) -> int:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CRASHPOINTS)}
    env |= {CRASH_ENV: env_value} if env_value else {}
    script = COMPLETE_SCRIPT.format(dir=str(state_dir))
    return subprocess.run([sys.executable, "-c", script], env=env, timeout=30).returncode


def test_crash_point_is_inert_without_its_variable(tmp_path: Path) -> None:
    assert complete_in_subprocess(tmp_path, env_value=None) == 0
    assert complete_in_subprocess(tmp_path, env_value="some_other_point") == 0
    assert not crash_marker("after_write", tmp_path).exists()


def test_crash_point_fires_once_right_before_events_are_marked_done(tmp_path: Path) -> None:
    assert complete_in_subprocess(tmp_path, env_value="after_write") == CRASH_EXIT_CODE
    assert crash_marker("after_write", tmp_path).stat().st_mode & 0o077 == 0
    assert complete_in_subprocess(tmp_path, env_value="after_write") == 0


@pytest.mark.e2e
def test_crash_after_write_before_done_adds_no_duplicate_rows(
    make_daemon: MakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CRASH_ENV, "after_write")
    daemon = fast_daemon(make_daemon, sync={"flush_interval_seconds": 1.0}).start()
    sim = daemon.cobot.sim
    members = [sim.create("membership") for _ in range(8)]
    bookings = [sim.create("booking", member=members[0]["id"]) for _ in range(4)]
    sim.wait_deliveries_idle(20)
    assert all(d.ok for d in sim.deliveries())

    assert daemon.process is not None
    wait_until(lambda: daemon.process.poll() is not None, timeout=30, what="the crash point")
    assert daemon.process.returncode == CRASH_EXIT_CODE
    assert "crash point after_write reached" in daemon.logs()
    member_urls = {sim.url_for("membership", m["id"]) for m in members}
    booking_urls = {sim.url_for("booking", b["id"]) for b in bookings}
    # The crashed flush's rows reached the sheet (a lone first webhook may have flushed on
    # its own), but their events were never marked done.
    written = set(by_url(daemon.rows("Members"))) | set(by_url(daemon.rows("Bookings")))
    assert written and written <= member_urls | booking_urls
    assert not daemon.inbox_empty()

    monkeypatch.delenv(CRASH_ENV)
    daemon.start(wait_subscriptions=False)
    settle(daemon)
    member_rows = by_url(daemon.rows("Members"))  # by_url fails on a duplicate URL
    assert set(member_rows) == member_urls
    assert {row["Name"] for row in member_rows.values()} == {m["name"] for m in members}
    assert set(by_url(daemon.rows("Bookings"))) == booking_urls
    assert daemon.stop() == 0
