"""Chaos: thousands of webhooks while Sheets and Cobot fail and the daemon is killed with -9.

The Cobot simulator changes a few hundred resources and delivers Cobot's webhooks for them
(retrying failed deliveries like Cobot, on a compressed schedule); strangers post webhooks
with wrong secrets and foreign URLs in between. The Sheets emulator fails about 30% of its
requests (429/500/503, some answered only after the daemon's timeout, with the change
applied), Cobot fails 10% of the fetches and rate-limits with Retry-After, and the daemon is
SIGKILLed three times at random moments of the stream and restarted; once it also dies right
after storing a webhook and before answering it, so Cobot delivers that one again. Each kind
of fault is made to happen at least once and counted: the test fails if one did not occur. In
the end every acknowledged resource has exactly one row holding Cobot's current state (the
expected cells are computed here from Cobot's object, not by the daemon's mapping code), no
refused one has a row, and the inbox is empty.

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
from datetime import date
from typing import Any

import pytest
import requests

from syncd.sandbox.cobot.catalogue import KINDS
from syncd.store.schema import DB_FILENAME
from tests.crashpoints.sitecustomize import (
    AFTER_ENQUEUE,
    CRASH_ENV,
    CRASH_EXIT_CODE,
    crash_marker,
)
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
#: The daemon's Sheets timeout; a slow answer takes longer, with the change already applied.
SHEETS_TIMEOUT = 1.0
SLOW_SECONDS = 2.0
SLOW_RATE = 0.05
#: Cobot's rate limit in the simulator (per second), above which it answers 429.
COBOT_REQUESTS_PER_SECOND = 100


@dataclass
class Resource:
    kind: str
    id: str = ""
    version: int = 0
    deleted: bool = False


@dataclass
class Stream:
    """Drives Cobot's side: changes resources and lets the simulator deliver the webhooks.

    At the changes numbered in ``kill_at`` it SIGKILLs the daemon, so every kill lands while
    the stream is still running; the main thread restarts it (see :func:`keep_running`).
    """

    daemon: Daemon
    rng: random.Random
    resources: list[Resource]
    strangers: list[Resource]
    kill_at: set[int] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    progress: int = 0
    killed_at: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    killed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for number in range(WEBHOOKS):
                self.progress = number
                if number in self.kill_at:
                    with self.lock:
                        self.daemon.kill()
                        self.killed_at.append(number)
                        self.killed.set()
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
        requests_per_window=COBOT_REQUESTS_PER_SECOND,
        rate_window_seconds=1.0,
        retry_schedule=DELIVERY_RETRIES,
        retry_time_scale=1.0,
    )
    sheets = make_sheets_emulator(
        seed=SEED, error_rate=0.25, slow_rate=SLOW_RATE, slow_seconds=SLOW_SECONDS
    )
    google = {
        "service_account_file": str(sheets.key_file),
        "spreadsheet_id": sheets.spreadsheet_id,
        "api_endpoint": sheets.url,
        "timeout_seconds": SHEETS_TIMEOUT,
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


def inbox_rows(daemon: Daemon) -> list[tuple[int, str, str]]:
    """(id, event, url) of every stored webhook, oldest first."""
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        return conn.execute("SELECT id, event, url FROM inbox ORDER BY id").fetchall()


# -- faults made to happen -------------------------------------------------------------------


@dataclass
class Faults:
    """Switches each rare fault on until it is seen to have happened, then back to its rate.

    The random rates alone leave some runs without, say, a write answered after the daemon's
    timeout; forcing each once makes every run exercise every path.
    """

    daemon: Daemon
    crashes: list[int] = field(default_factory=list)
    stored_before_crash: list[tuple[int, str, str]] = field(default_factory=list)
    _sheets_429_sent: bool = False

    def seen(self) -> dict[str, int]:
        """How often each kind of fault happened so far."""
        sheets_log = self.daemon.sheets.emulator.request_log
        cobot = Counter(r.status for r in self.daemon.cobot.sim.requests())
        late_writes = [
            r
            for r in sheets_log
            if r.kind == "write" and r.status == 200 and r.held_seconds > SHEETS_TIMEOUT
        ]
        return {
            "Sheets writes applied but answered after the timeout": len(late_writes),
            "Sheets 429": sum(r.status == 429 for r in sheets_log),
            "Sheets 5xx": sum(r.status >= 500 for r in sheets_log),
            "Cobot 429": cobot[429],
            "Cobot 5xx": sum(n for status, n in cobot.items() if status >= 500),
        }

    def force(self) -> None:
        """Turn on what has not happened yet; turn off what has."""
        seen = self.seen()
        emulator, sim = self.daemon.sheets.emulator, self.daemon.cobot.sim
        late = seen["Sheets writes applied but answered after the timeout"] > 0
        # Forced slowness holds back writes only: slow reads would keep every flush from
        # reaching the write whose late answer is wanted.
        emulator.slow_rate = SLOW_RATE if late else 1.0
        emulator.slow_kinds = frozenset({"read", "write"} if late else {"write"})
        sim.requests_per_window = COBOT_REQUESTS_PER_SECOND if seen["Cobot 429"] else 1
        if not seen["Sheets 429"] and not self._sheets_429_sent:
            emulator.fail_next(1, 429)
            self._sheets_429_sent = True

    def calm(self) -> None:
        self.daemon.sheets.emulator.slow_rate = SLOW_RATE
        self.daemon.sheets.emulator.slow_kinds = frozenset({"read", "write"})
        self.daemon.cobot.sim.requests_per_window = COBOT_REQUESTS_PER_SECOND


def keep_running(daemon: Daemon, stream: Stream, faults: Faults) -> None:
    """Restart the daemon after each of the stream's kills and after its crash point fired,
    and force the faults once a fifth of the stream has gone by, until the stream ends."""
    while not stream.done.is_set() or stream.killed.is_set():
        stream.killed.wait(0.05)
        with stream.lock:
            assert daemon.process is not None or stream.killed.is_set()
            if daemon.process is not None and daemon.process.poll() is not None:
                assert daemon.process.returncode == CRASH_EXIT_CODE, daemon.logs()
                faults.crashes.append(stream.progress)
                faults.stored_before_crash = inbox_rows(daemon)
                daemon.process = None
            if daemon.process is None:
                stream.killed.clear()
                daemon.start(wait_subscriptions=False)
        if stream.progress > WEBHOOKS // 5:
            faults.force()


# -- expected cells, computed from Cobot's object ------------------------------------------


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(part)] if part.isdigit() and int(part) < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def text(path: str) -> Any:
    return lambda obj: "" if dig(obj, path) is None else str(dig(obj, path))


def number(path: str) -> Any:
    return lambda obj: "" if dig(obj, path) is None else pytest.approx(float(dig(obj, path)))


def day(path: str) -> Any:
    """A date cell: the day number Sheets counts from 1899-12-30 (Cobot writes 2025/06/10)."""

    def serial(obj: Any) -> Any:
        value = dig(obj, path)
        if value is None:
            return ""
        year, month, day_of_month = (int(part) for part in value[:10].split("/"))
        return (date(year, month, day_of_month) - date(1899, 12, 30)).days

    return serial


#: Per worksheet, header -> the cell Cobot's current object should produce there.
EXPECTED: dict[str, dict[str, Any]] = {
    "membership": {
        "Name": text("name"),
        "Email": text("email"),
        "Phone": text("phone"),
        "Company": text("address.company"),
        "Country": text("address.country"),
        "Plan": text("plan.name"),
        "Plan price": number("plan.price_per_cycle"),
        "Currency": text("plan.currency"),
        "Payment method": text("payment_method.name"),
        "Customer number": text("customer_number"),
        "Starts": day("starts_at"),
        "Canceled to": day("canceled_to"),
        "Cobot ID": text("id"),
    },
    "invoice": {
        "Number": text("formatted_invoice_number"),
        "Date": day("created_at"),
        "Due": day("due_date"),
        "Recipient": text("address.name"),
        "Company": text("address.company"),
        "Net": number("total_amount_without_taxes"),
        "Total": number("total_amount"),
        "Paid amount": number("total_paid_amount"),
        "Currency": text("currency"),
        "Paid status": text("paid_status"),
        "Sent status": text("sent_status"),
        "First item": text("items.0.description"),
        "Membership ID": text("membership_id"),
    },
    "booking": {
        "Title": text("title"),
        "Resource": text("resource.name"),
        "Member": text("membership.name"),
        "Price": number("price"),
        "Currency": text("currency"),
        "Comments": text("comments"),
    },
}


def assert_sheets_match_cobot(daemon: Daemon, stream: Stream) -> dict[str, int]:
    """One row per created resource, holding Cobot's current state; returns rows per sheet."""
    sim = daemon.cobot.sim
    counts = {}
    for kind, title in SHEETS.items():
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
                wanted = {header: cell(current) for header, cell in EXPECTED[kind].items()}
                assert {header: row[header] for header in wanted} == wanted, row
    return counts


def test_nothing_lost_nothing_doubled_under_faults_and_kill_9(
    make_daemon: MakeDaemon,
    make_cobot_sim: MakeCobotSim,
    make_sheets_emulator: MakeSheetsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    print(f"chaos: {WEBHOOKS} changes, {RESOURCES} resources, {KILLS} kills, seed {SEED}")
    started = time.monotonic()
    rng = random.Random(SEED)
    # The first webhook the daemon stores kills it before it answers.
    monkeypatch.setenv(CRASH_ENV, AFTER_ENQUEUE)
    daemon = chaos_daemon(make_daemon, make_cobot_sim, make_sheets_emulator).start()
    sim = daemon.cobot.sim
    kinds = rng.choices(list(SHEETS), weights=(4, 3, 3), k=RESOURCES)
    kill_rng = random.Random(SEED + 1)
    kill_at = {int(kill_rng.uniform(0.1, 0.8) * WEBHOOKS) for _ in range(KILLS)}
    stream = Stream(daemon, rng, [Resource(kind) for kind in kinds], [], kill_at)
    for kind in SHEETS:
        stranger = Resource(kind)
        stranger.id = stream.create(stranger, emit=False)
        stream.strangers.append(stranger)
    faults = Faults(daemon)

    with ThreadPoolExecutor(1) as pool:
        future: Future[None] = pool.submit(stream.run)
        keep_running(daemon, stream, faults)
        future.result()
    sim.wait_deliveries_idle(timeout=120)
    try:
        wait_until(
            lambda: inbox_counts(daemon).keys() <= {"done"} and all(faults.seen().values()),
            timeout=120,
            what="the inbox to drain and every fault to happen",
            check=lambda: (faults.force(), daemon._alive()),
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {inbox_counts(daemon)}, {faults.seen()}") from None
    faults.calm()

    # Every fault happened: kills while the stream ran, the crash point, and each API fault.
    assert sorted(stream.killed_at) == sorted(kill_at), stream.killed_at
    assert all(number < WEBHOOKS - 1 for number in stream.killed_at)
    assert len(faults.crashes) == 1 and crash_marker(AFTER_ENQUEUE, daemon.state_dir).exists()
    assert all(faults.seen().values()), faults.seen()

    deliveries = sim.deliveries()
    acknowledged = [d for d in deliveries if d.ok]
    assert len(acknowledged) == sum(1 for d in deliveries if d.attempt == 1), "one never got in"
    assert all(s["active"] for s in sim.subscriptions())
    # Every acknowledged webhook was stored and is done; the one whose answer the crash point
    # swallowed was delivered again and stored a second time.
    stored = inbox_rows(daemon)
    assert inbox_counts(daemon) == {"done": len(stored)}
    assert len(stored) > len(acknowledged)
    [first, *_] = faults.stored_before_crash
    assert [(e, u) for i, e, u in stored if i > first[0]].count(first[1:]) >= 1, first
    rows = assert_sheets_match_cobot(daemon, stream)

    assert stream.refused and set(stream.refused) <= {404, 422}, stream.refused
    fetched = {r.path for r in sim.requests() if r.method == "GET"}
    for stranger in stream.strangers:
        url = sim.url_for(stranger.kind, stranger.id)
        assert url.removeprefix(daemon.cobot.url) not in fetched
        assert all(url not in by_url(daemon.rows(title)) for title in SHEETS.values())

    print(
        f"chaos: {dict(stream.counts)}; killed at changes {sorted(stream.killed_at)}, crashed "
        f"at {faults.crashes}; {len(deliveries)} delivery attempts, {len(acknowledged)} "
        f"acknowledged, {len(stored)} stored; strangers refused {dict(stream.refused)}; rows "
        f"{rows}; faults {faults.seen()}; {time.monotonic() - started:.0f} s"
    )
    assert daemon.stop() == 0
