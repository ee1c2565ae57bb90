"""What the benchmark-driven changes must keep: fast paths answer like the slow ones, and a
flush settles a burst in as few Cobot and Sheets requests as it promises.

The speed itself is measured by bench/run.py, never here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.metrics import Metrics
from syncd.intake.receiver import RedactedAccessLogger
from syncd.intake.resources import InvalidResourceURL, parse_resource_url
from syncd.mapping.cells import SHEETS_EPOCH, to_cell
from syncd.ops.daemon import build_worker
from syncd.store.database import Store
from tests.fixtures_daemon import MakeDaemon
from tests.resync_support import single_fetches, wired
from tests.test_ordering import FakeCobot, FakeSheets, worker_settings

MEMBERSHIP = "https://co-up.cobot.me/api/memberships/m{}"
BERLIN = ZoneInfo("Europe/Berlin")


# -- mapping, receiver, resource URLs ----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 30)),
    offset=st.sampled_from(["+0000", "-0500", "+0530", "+1400"]),
    seconds=st.booleans(),
)
def test_cobot_datetimes_read_without_strptime_match_strptime(
    moment: datetime, offset: str, seconds: bool
) -> None:
    layout = "%Y/%m/%d %H:%M:%S %z" if seconds else "%Y/%m/%d %H:%M %z"
    text = moment.strftime(layout.removesuffix(" %z")) + " " + offset
    parsed = datetime.strptime(text, layout).astimezone(BERLIN).replace(tzinfo=None)
    expected = round((parsed - SHEETS_EPOCH).total_seconds() / 86400, 10)
    assert to_cell(text, "datetime", BERLIN) == pytest.approx(expected, abs=1e-9)
    day = moment.strftime("%Y/%m/%d")
    assert to_cell(day, "date", BERLIN) == (moment.date() - SHEETS_EPOCH.date()).days


def test_impossible_cobot_dates_stay_visible_as_text() -> None:
    assert to_cell("2025/02/30", "date", BERLIN) == "2025/02/30"
    assert to_cell("2025/06/01 25:00:00 +0000", "datetime", BERLIN) == "2025/06/01 25:00:00 +0000"


def test_access_log_is_skipped_entirely_when_its_logger_is_off() -> None:
    logger = logging.getLogger("test.fast_paths.access")
    logger.setLevel(logging.WARNING)
    assert RedactedAccessLogger(logger, "").enabled is False
    logger.setLevel(logging.INFO)
    assert RedactedAccessLogger(logger, "").enabled is True


@pytest.mark.parametrize("url", ["https://[co-up.cobot.me/api/memberships/1", "a://["])
def test_a_url_python_cannot_split_is_refused_not_a_crash(url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidResourceURL):
        parse_resource_url(url, worker_settings(tmp_path).cobot)


# -- the store ---------------------------------------------------------------------------------


async def test_claim_due_for_urls_takes_the_other_due_events_of_those_urls(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        ids = [
            await store.enqueue(
                "updated_membership_details", MEMBERSHIP.format(n % 3), "membership", {}
            )
            for n in range(9)
        ]
        later = await store.enqueue(
            "updated_membership_details", MEMBERSHIP.format(0), "membership", {}
        )
        await store.reschedule([later], "Cobot answered 502", time.time() + 3600)
        taken = await store.claim_due_for_urls(
            [MEMBERSHIP.format(0), MEMBERSHIP.format(1)], exclude=[ids[0]], limit=10
        )
        # Due and pending only, oldest first, without the excluded or a third URL's events.
        assert [event.id for event in taken] == [ids[1], ids[3], ids[4], ids[6], ids[7]]
        limited = await store.claim_due_for_urls([MEMBERSHIP.format(0)], [], limit=2)
        assert [event.id for event in limited] == [ids[0], ids[3]]
    finally:
        await store.close()


# -- the worker's flushes ------------------------------------------------------------------------


async def test_one_flush_settles_every_due_event_of_its_urls(make_daemon: MakeDaemon) -> None:
    """Events of one URL spread over several claims cost one fetch and one row, not one each."""
    daemon = make_daemon()
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    bookings = [sim.create("booking", member=member["id"], emit=False) for _ in range(5)]
    urls = [sim.url_for("booking", b["id"]) for b in bookings]
    async with wired(daemon) as wiring:
        for _ in range(3):
            for url in urls:
                await wiring.store.enqueue("updated_booking", url, "booking", {"url": url})
        worker = wiring.worker()
        # The claim holds the first round only; the other two rounds come along.
        await worker.flush(await wiring.store.claim_due(len(urls)))
        assert await wiring.store.claim_due(100) == []
    assert sorted(r.path for r in single_fetches(daemon, "/api/bookings/")) == sorted(
        f"/api/bookings/{b['id']}" for b in bookings
    )
    assert {row["URL"] for row in daemon.rows("Bookings")} == set(urls)


async def test_a_listed_burst_is_not_cut_to_the_single_fetch_limit(
    make_daemon: MakeDaemon,
) -> None:
    """At Cobot's real 60/min, a flush fetches about ten URLs one by one; invoices come by
    the chunk of ids, so a burst of them is settled by one flush all the same."""
    daemon = make_daemon()  # the shipped budget: requests_per_minute 60
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    invoices = [sim.create("invoice", member=member["id"], emit=False) for _ in range(25)]
    bookings = [sim.create("booking", member=member["id"], emit=False) for _ in range(25)]
    async with wired(daemon) as wiring:
        for kind, event, objects in (
            ("invoice", "updated_invoice", invoices),
            ("booking", "updated_booking", bookings),
        ):
            for obj in objects:
                url = sim.url_for(kind, obj["id"])
                await wiring.store.enqueue(event, url, kind, {"url": url})
        worker = wiring.worker()
        await worker.flush(await wiring.store.claim_due(500))
        left = await wiring.store.claim_due(500)
    limit = wiring.settings.cobot.requests_per_minute // 6
    assert {event.kind for event in left} == {"booking"}
    assert len(left) == len(bookings) - limit
    assert len(daemon.rows("Invoices")) == len(invoices)
    assert single_fetches(daemon, "/api/invoices/") == []


async def test_a_full_batch_waits_for_the_flush_interval_after_the_last_flush(
    tmp_path: Path,
) -> None:
    base = worker_settings(tmp_path)
    sync = dataclasses.replace(base.sync, batch_size=2, flush_interval_seconds=30.0)
    config = dataclasses.replace(base, sync=sync)
    now = [time.time() + 1]
    store = Store.open(config.state_dir)
    sheets = FakeSheets()
    cobot = {config.spaces[0].subdomain: FakeCobot()}
    worker = build_worker(config, store, cobot, sheets, Metrics(), clock=lambda: now[0])  # type: ignore[arg-type]
    stop = asyncio.Event()
    stop.set()  # every wait of _step returns at once: only its decision is observed
    try:
        for n in range(2):
            await store.enqueue(
                "updated_membership_details", MEMBERSHIP.format(n), "membership", {}
            )
        await worker._step(stop)
        assert len(sheets.upserts) == 1  # a full batch, and no flush before: at once
        for n in range(2, 4):
            await store.enqueue(
                "updated_membership_details", MEMBERSHIP.format(n), "membership", {}
            )
        now[0] += 29
        await worker._step(stop)
        assert len(sheets.upserts) == 1  # full again, but within the interval: it waits
        now[0] += 1
        await worker._step(stop)
        assert len(sheets.upserts) == 2
        assert await store.claim_due(10, now[0]) == []
    finally:
        await store.close()


async def test_a_flood_of_webhooks_holds_the_flush_back_for_a_while(tmp_path: Path) -> None:
    base = worker_settings(tmp_path)
    sync = dataclasses.replace(base.sync, batch_size=2, flush_interval_seconds=1.0)
    config = dataclasses.replace(base, sync=sync)
    now = [time.time() + 1]
    store = Store.open(config.state_dir)
    sheets = FakeSheets()
    cobot = {config.spaces[0].subdomain: FakeCobot()}
    worker = build_worker(config, store, cobot, sheets, Metrics(), clock=lambda: now[0])  # type: ignore[arg-type]
    stop = asyncio.Event()
    stop.set()  # every wait of _step returns at once: only its decision is observed

    async def webhooks(first: int) -> None:
        for n in range(first, first + 2):
            await store.enqueue(
                "updated_membership_details", MEMBERSHIP.format(n), "membership", {}
            )
            worker.wake()

    try:
        await webhooks(0)  # a batch within the interval: the receiver is busy
        await worker._step(stop)
        assert sheets.upserts == []
        now[0] += 1.5  # the flood is over: the batch is flushed
        await worker._step(stop)
        assert len(sheets.upserts) == 1
        for _ in range(6):  # a flood that goes on holds it back...
            now[0] += 1
            await webhooks(2)
            await worker._step(stop)
        assert len(sheets.upserts) == 1
        now[0] += 10  # ...but only for ten flush intervals
        await webhooks(4)
        await worker._step(stop)
        assert len(sheets.upserts) == 2
    finally:
        await store.close()
