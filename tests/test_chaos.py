"""Chaos: thousands of webhooks while Sheets and Cobot fail and the daemon is killed with -9.

The Cobot simulator changes a few hundred resources and delivers Cobot's webhooks for them
(retrying failed deliveries like Cobot, on a compressed schedule); strangers post webhooks
with wrong secrets and foreign URLs in between. The Sheets emulator fails about 30% of its
requests (429/500/503, some answered only after the daemon's timeout, with the change
applied), Cobot fails 10% of the fetches and rate-limits with Retry-After, and the daemon is
SIGKILLed three times at random moments and restarted. In the end every acknowledged
resource has exactly one row holding Cobot's current state, no refused one has a row, and
the inbox is empty.

Size and seed come from the environment, for longer local runs:
``SYNCD_CHAOS_WEBHOOKS`` (default 2000), ``SYNCD_CHAOS_RESOURCES`` (default 200),
``SYNCD_CHAOS_KILLS`` (default 3), ``SYNCD_CHAOS_SEED`` (default: random, printed).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from syncd.config.loading import load_settings
from syncd.mapping.cells import map_row
from syncd.sandbox.cobot.catalogue import KINDS
from syncd.store.schema import DB_FILENAME
from tests.fixtures_cobot import MakeCobotSim
from tests.fixtures_daemon import Daemon, MakeDaemon, example_sheets, wait_until
from tests.fixtures_sheets import MakeSheetsEmulator
from tests.test_e2e_pipeline import by_url

pytestmark = pytest.mark.e2e

WEBHOOKS = int(os.environ.get("SYNCD_CHAOS_WEBHOOKS", "2000"))
RESOURCES = int(os.environ.get("SYNCD_CHAOS_RESOURCES", "200"))
SEED = int(os.environ.get("SYNCD_CHAOS_SEED", str(random.randrange(1_000_000))))
KILLS = int(os.environ.get("SYNCD_CHAOS_KILLS", "3"))
#: Seconds between two changes in Cobot: the stream lasts about WEBHOOKS * PACE.
PACE = 0.005
#: Cobot's delivery retries, compressed from about 20 hours to about half a minute: long
#: enough to outlast a restart of the daemon, as Cobot's real schedule does.
DELIVERY_RETRIES = (0.25, 0.5, 1, 2, 3, 4, 5, 5, 5, 5)
SHEETS = {"membership": "Members", "invoice": "Invoices", "booking": "Bookings"}
#: The field each update changes, so every update really changes the row.
CHANGED = {"membership": "name", "invoice": "comments", "booking": "title"}
#: Only webhooks may bring a resource into the sheet in tests that check what is absent.
NO_RESYNC = {"resync": {"full_schedule": "off", "recent_schedule": "off"}}
FOREIGN_HOSTS = ("https://evil.example", "http://127.0.0.2:9", "http://localhost:1")


@dataclass
class Resource:
    kind: str
    id: str = ""
    version: int = 0
    deleted: bool = False


@dataclass
class Stream:
    """Drives Cobot's side: changes resources and lets the simulator deliver the webhooks."""

    daemon: Daemon
    rng: random.Random
    resources: list[Resource]
    strangers: list[Resource]
    counts: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for number in range(WEBHOOKS):
                self.step()
                if number % 25 == 0:
                    self.stranger_posts()
                time.sleep(PACE)
        finally:
            self.done.set()

    def step(self) -> None:
        sim = self.daemon.cobot.sim
        resource = self.rng.choice(self.resources)
        roll = self.rng.random()
        if not resource.id:
            resource.id = self.create(resource)
            self.counts["created"] += 1
        elif resource.deleted:
            # A late or repeated delivery about a deleted resource: Cobot answers 404.
            event = "created" if roll < 0.5 else "updated"
            sim.emit(_event(resource.kind, event), sim.url_for(resource.kind, resource.id))
            self.counts["late after deletion"] += 1
        elif roll < 0.03:
            sim.delete(resource.kind, resource.id)
            resource.deleted = True
            self.counts["deleted"] += 1
        elif roll < 0.15:
            sim.emit(_event(resource.kind, "created"), sim.url_for(resource.kind, resource.id))
            self.counts["duplicate"] += 1
        else:
            resource.version += 1
            value = f"{resource.kind} {resource.id} v{resource.version}"
            sim.update(resource.kind, resource.id, **{CHANGED[resource.kind]: value})
            self.counts["updated"] += 1

    def create(self, resource: Resource, emit: bool = True) -> str:
        sim = self.daemon.cobot.sim
        member: dict[str, Any] = {}
        if resource.kind != "membership":
            member = {"member": sim.create("membership", emit=False)["id"]}
        return str(sim.create(resource.kind, emit=emit, **member)["id"])

    def stranger_posts(self) -> None:
        """A wrong secret, or the right one with a URL on another host: both must bounce."""
        stranger = self.rng.choice(self.strangers)
        path = self.daemon.cobot.sim.url_for(stranger.kind, stranger.id)
        path = path.removeprefix(self.daemon.cobot.url)
        event = _event(stranger.kind, "created")
        for secret, url in (
            ("not-the-secret-0123456789abcdef", self.daemon.cobot.url + path),
            (None, self.rng.choice(FOREIGN_HOSTS) + path),
        ):
            base = self.daemon.callback_base
            if secret is not None:
                base = base.rsplit("/", 1)[0] + "/" + secret
            try:
                response = requests.post(f"{base}/{event}", json={"url": url}, timeout=5)
            except requests.RequestException:
                continue  # the daemon is being restarted
            self.refused[response.status_code] += 1


def _event(kind: str, change: str) -> str:
    """Cobot's first created_* or updated_* event of a kind."""
    spec = KINDS[kind]
    return (spec.created if change == "created" else spec.updated)[0]


def chaos_daemon(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim, make_sheets_emulator: MakeSheetsEmulator
) -> Daemon:
    """A daemon between a failing, rate-limiting Cobot and a failing, slow Sheets."""
    cobot = make_cobot_sim(
        seed=SEED,
        error_rate=0.10,
        requests_per_window=100,
        rate_window_seconds=1.0,
        retry_schedule=DELIVERY_RETRIES,
        retry_time_scale=1.0,
    )
    sheets = make_sheets_emulator(seed=SEED, error_rate=0.25, slow_rate=0.05, slow_seconds=2.0)
    google = {
        "service_account_file": str(sheets.key_file),
        "spreadsheet_id": sheets.spreadsheet_id,
        "api_endpoint": sheets.url,
        "timeout_seconds": 1,
        "read_requests_per_minute": 6000,
        "write_requests_per_minute": 6000,
    }
    return make_daemon(
        cobot=cobot,
        sheets=sheets,
        sheet_config={title: example_sheets()[title] for title in SHEETS.values()},
        # The daemon's budget is above the simulator's limit, so Cobot does answer 429.
        cobot_options={"requests_per_minute": 12_000, "timeout_seconds": 2},
        sync={"flush_interval_seconds": 0.3, "retry_max_seconds": 1, "fetch_concurrency": 8},
        extra={"google": google, **NO_RESYNC},
    )


def inbox_counts(daemon: Daemon) -> dict[str, int]:
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM inbox GROUP BY status").fetchall())


def kill_and_restart(daemon: Daemon, stream: Stream, rng: random.Random) -> None:
    """SIGKILL the daemon KILLS times at random moments of the stream, restarting it each time."""
    expected = WEBHOOKS * PACE * 1.5
    moments = sorted(rng.uniform(0.1, 0.8) * expected for _ in range(KILLS))
    started = time.monotonic()
    for moment in moments:
        stream.done.wait(max(0.0, started + moment - time.monotonic()))
        daemon.kill()
        daemon.start(wait_subscriptions=False)


def assert_sheets_match_cobot(daemon: Daemon, stream: Stream) -> dict[str, int]:
    """One row per created resource, holding Cobot's current state; returns rows per sheet."""
    sim = daemon.cobot.sim
    settings = load_settings(daemon.config_path, environ={"TEST_COBOT_TOKEN": daemon.cobot.token})
    tz = ZoneInfo(settings.timezone)
    counts = {}
    for kind, title in SHEETS.items():
        sheet = next(s for s in settings.sheets if s.title == title)
        rows = by_url(daemon.rows(title))  # fails on a second row for any URL
        counts[title] = len(rows)
        created = [r for r in stream.resources if r.kind == kind and r.id]
        assert set(rows) == {sim.url_for(kind, r.id) for r in created}, title
        for resource in created:
            row = rows[sim.url_for(kind, resource.id)]
            current = sim.get(kind, resource.id)
            if current is None:
                assert row["Deleted"], row
            else:
                assert row["Deleted"] == "", row
                wanted = map_row(current, sheet, tz)
                assert {header: row[header] for header in wanted} == wanted, row
    return counts


def test_nothing_lost_nothing_doubled_under_faults_and_kill_9(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim, make_sheets_emulator: MakeSheetsEmulator
) -> None:
    print(f"chaos: {WEBHOOKS} changes, {RESOURCES} resources, {KILLS} kills, seed {SEED}")
    started = time.monotonic()
    rng = random.Random(SEED)
    daemon = chaos_daemon(make_daemon, make_cobot_sim, make_sheets_emulator).start()
    sim = daemon.cobot.sim
    kinds = rng.choices(list(SHEETS), weights=(4, 3, 3), k=RESOURCES)
    stream = Stream(daemon, rng, [Resource(kind) for kind in kinds], [])
    for kind in SHEETS:
        stranger = Resource(kind)
        stranger.id = stream.create(stranger, emit=False)
        stream.strangers.append(stranger)

    with ThreadPoolExecutor(1) as pool:
        future: Future[None] = pool.submit(stream.run)
        kill_and_restart(daemon, stream, random.Random(SEED + 1))
        future.result()
    sim.wait_deliveries_idle(timeout=120)
    wait_until(
        lambda: inbox_counts(daemon).keys() <= {"done"},
        timeout=120,
        what="the inbox to drain (no event pending or dead)",
        check=daemon._alive,
    )

    deliveries = sim.deliveries()
    acknowledged = [d for d in deliveries if d.ok]
    assert len(acknowledged) == sum(1 for d in deliveries if d.attempt == 1), "one never got in"
    assert all(s["active"] for s in sim.subscriptions())
    # Every acknowledged webhook was stored (a few twice: answer lost in a kill) and is done.
    assert inbox_counts(daemon)["done"] >= len(acknowledged)
    rows = assert_sheets_match_cobot(daemon, stream)

    assert stream.refused and set(stream.refused) <= {404, 422}, stream.refused
    fetched = {r.path for r in sim.requests() if r.method == "GET"}
    for stranger in stream.strangers:
        url = sim.url_for(stranger.kind, stranger.id)
        assert url.removeprefix(daemon.cobot.url) not in fetched
        assert all(url not in by_url(daemon.rows(title)) for title in SHEETS.values())

    sheets_log = daemon.sheets.emulator.request_log
    print(
        f"chaos: {dict(stream.counts)}; {len(deliveries)} delivery attempts, "
        f"{len(acknowledged)} acknowledged; strangers refused {dict(stream.refused)}; "
        f"rows {rows}; inbox {inbox_counts(daemon)}; Sheets answered "
        f"{dict(Counter(r.status for r in sheets_log if r.kind))}; Cobot answered "
        f"{dict(Counter(r.status for r in sim.requests()))}; {time.monotonic() - started:.0f} s"
    )
    assert daemon.stop() == 0
