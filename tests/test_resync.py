"""The re-sync engine in process, against both emulators: change detection, deletion by
absence and its safety stop, refused windows, checkpoints, the catch-up of missed runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from syncd.cobot.errors import CobotForbidden
from syncd.config.cron import cron_trigger
from syncd.config.loading import load_settings
from syncd.core.errors import ConfigError
from syncd.engine import resync
from syncd.engine.resync import Resync, SheetSummary
from syncd.engine.resync_plan import BOOKING_HORIZON_DAYS, Mode, Span, default_span
from syncd.store.database import Store
from syncd.store.meta import ResyncRun
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.resync_support import UNTHROTTLED, Wiring, list_requests, settings_of, wired
from tests.test_e2e_pipeline import by_url

TITLES = {"membership": "Members", "invoice": "Invoices", "booking": "Bookings"}
TITLES["check_in"] = "Check-ins"


def quick_daemon(make_daemon: MakeDaemon, **resync_options: object) -> Daemon:
    return make_daemon(
        cobot_knobs={"rate_limits": False},
        cobot_options=UNTHROTTLED,
        extra={"resync": {"window_days": 183, **resync_options}},
    )


async def resync_all(wiring: Wiring, mode: Mode = "full") -> dict[str, SheetSummary]:
    engine = wiring.resync()
    return {s.sheet: s for s in await engine.run(wiring.settings.sheets, mode)}


def sheets_writes(daemon: Daemon) -> int:
    return daemon.sheets.emulator.writes


# -- plans ----------------------------------------------------------------------------------


def test_windows_cover_the_span_without_gaps_or_overlaps() -> None:
    span = Span(date(2024, 1, 1), date(2024, 12, 31))
    windows = span.windows(100)
    assert [w.days for w in windows] == [100, 100, 100, 66]
    assert windows[0].start == span.since and windows[-1].last_day == span.until
    assert all(a.end == b.start for a, b in pairwise(windows))
    first, second = windows[0].halves()
    assert (first.start, first.end, second.end) == (windows[0].start, second.start, windows[0].end)
    assert span.windows(100, start=date(2024, 10, 1))[0].start == date(2024, 10, 1)


def test_spans_reach_back_and_bookings_ahead(make_daemon: MakeDaemon) -> None:
    settings = settings_of(quick_daemon(make_daemon, history_days=730, recent_days=14))
    today = date(2025, 6, 15)
    invoices = default_span(settings.resync, "invoice", "full", today)
    assert (invoices.since, invoices.until) == (today - timedelta(730), today + timedelta(1))
    bookings = default_span(settings.resync, "booking", "backfill", today)
    assert bookings.until == today + timedelta(BOOKING_HORIZON_DAYS)
    recent = default_span(settings.resync, "booking", "recent", today)
    assert (recent.since, recent.until) == (today - timedelta(14), today + timedelta(14))
    given = default_span(settings.resync, "check_in", "backfill", today, date(2025, 1, 1), today)
    assert (given.since, given.until) == (date(2025, 1, 1), today)


# -- change detection and parity with the webhook path -------------------------------------


async def test_rows_match_the_webhook_path_so_nothing_is_rewritten(
    make_daemon: MakeDaemon,
) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    sim.seed_space(members=20, invoices=60, bookings=40, check_ins=30, years=1)
    async with wired(daemon) as wiring:
        first = await resync_all(wiring, "backfill")
        assert sum(s.added for s in first.values()) == 150
        writes = sheets_writes(daemon)
        again = await resync_all(wiring)
        # Webhooks about every resource: the worker builds the very same rows.
        for kind, event in (
            ("membership", "updated_membership_details"),
            ("invoice", "updated_invoice"),
            ("booking", "updated_booking"),
            ("check_in", "created_checkout"),
        ):
            for obj in sim.objects(kind):
                url = sim.url_for(kind, obj["id"])
                await wiring.store.enqueue(event, url, kind, {"url": url})
        worker = wiring.worker()
        await worker.flush(await wiring.store.claim_due(1000))
    assert sheets_writes(daemon) == writes
    assert all(s.added == s.updated == 0 and s.unchanged > 0 for s in again.values())
    for kind, title in TITLES.items():
        assert set(by_url(daemon.rows(title))) == {
            sim.url_for(kind, o["id"]) for o in sim.objects(kind)
        }


async def test_a_changed_resource_updates_its_row_only(make_daemon: MakeDaemon) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    sim.seed_space(members=10, invoices=30, bookings=0, check_ins=0, years=1)
    invoice = sim.objects("invoice")[0]
    async with wired(daemon) as wiring:
        await resync_all(wiring, "backfill")
        sim.update("invoice", invoice["id"], paid_status="written off", emit=False)
        summaries = await resync_all(wiring)
    assert (summaries["Invoices"].updated, summaries["Invoices"].unchanged) == (1, 29)
    row = by_url(daemon.rows("Invoices"))[sim.url_for("invoice", invoice["id"])]
    assert row["Paid status"] == "written off"


# -- deletion by absence --------------------------------------------------------------------


async def test_membership_missing_from_the_listing_is_flagged_deleted(
    make_daemon: MakeDaemon,
) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    members = [sim.create("membership", emit=False) for _ in range(10)]
    async with wired(daemon) as wiring:
        await resync_all(wiring, "backfill")
        sim.delete("membership", members[0]["id"], emit=False)
        summary = (await resync_all(wiring))["Members"]
        writes = sheets_writes(daemon)
        repeated = (await resync_all(wiring))["Members"]
    assert (summary.deleted, summary.safety_stop) == (1, None)
    rows = by_url(daemon.rows("Members"))
    gone = rows[sim.url_for("membership", members[0]["id"])]
    assert datetime.fromisoformat(gone["Deleted"]) <= datetime.now(UTC)
    assert gone["Name"] == members[0]["name"]  # the row keeps its last data
    assert all(rows[sim.url_for("membership", m["id"])]["Deleted"] == "" for m in members[1:])
    assert (repeated.deleted, sheets_writes(daemon)) == (0, writes)


async def test_safety_stop_on_an_empty_membership_listing_flags_nothing(
    make_daemon: MakeDaemon,
) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    members = [sim.create("membership", emit=False) for _ in range(10)]
    async with wired(daemon) as wiring:
        await resync_all(wiring, "backfill")
        for member in members:
            sim.delete("membership", member["id"], emit=False)
        writes = sheets_writes(daemon)
        summary = (await resync_all(wiring))["Members"]
        stop = await wiring.store.meta.safety_stop("Members")
    assert summary.deleted == 0 and summary.safety_stop is not None
    assert "max_deleted_share" in summary.safety_stop
    assert sheets_writes(daemon) == writes
    assert all(row["Deleted"] == "" for row in daemon.rows("Members"))
    assert stop is not None and (stop.absent, stop.rows) == (10, 10)
    assert stop.message == summary.safety_stop


# -- windows Cobot refuses ------------------------------------------------------------------


async def test_a_refused_window_is_listed_in_halves(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(
        cobot_knobs={"rate_limits": False, "max_window_days": 60},
        cobot_options=UNTHROTTLED,
        extra={"resync": {"window_days": 183}},
    )
    sim = daemon.cobot.sim
    sim.seed_space(members=10, invoices=200, bookings=0, check_ins=0, years=2)
    async with wired(daemon) as wiring:
        summaries = await resync_all(wiring, "backfill")
    requests = list_requests(daemon, "/api/invoices")
    refused = [r for r in requests if r.status == 422]
    # 183 -> 92 -> 46 days: two refusals, then every window is cut to the accepted size.
    assert len(refused) == 2
    # The memberships for the Member email column were listed by the Members worksheet.
    assert summaries["Invoices"].cobot_requests == len(requests)
    assert set(by_url(daemon.rows("Invoices"))) == {
        sim.url_for("invoice", i["id"]) for i in sim.objects("invoice")
    }


# -- checkpoints ----------------------------------------------------------------------------


async def test_an_interrupted_run_continues_from_its_checkpoint(
    make_daemon: MakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = quick_daemon(make_daemon, window_days=30)
    sim = daemon.cobot.sim
    sim.seed_space(members=10, invoices=240, bookings=0, check_ins=0, years=2)
    monkeypatch.setattr(resync, "CHUNK_ROWS", 20)
    invoices = next(s for s in settings_of(daemon).sheets if s.title == "Invoices")
    async with wired(daemon) as wiring:
        engine = wiring.resync()
        listing = wiring.cobot.list_invoices
        calls = 0

        async def failing_listing(**window: date) -> list[dict[str, object]]:
            nonlocal calls
            calls += 1
            if calls == 10:
                raise CobotForbidden("Cobot denied GET /api/invoices (403)")
            return await listing(**window)

        monkeypatch.setattr(wiring.cobot, "list_invoices", failing_listing)
        with pytest.raises(CobotForbidden):
            await engine.run_sheet(invoices, "backfill")
        saved = await wiring.store.meta.resync_checkpoint("backfill", "Invoices")
        monkeypatch.setattr(wiring.cobot, "list_invoices", listing)
        before = len(list_requests(daemon, "/api/invoices"))
        resumed = await engine.run_sheet(invoices, "backfill")
        after = await wiring.store.meta.resync_checkpoint("backfill", "Invoices")
    assert saved is not None
    since, until, resumed_at = saved.since, saved.until, saved.next
    assert resumed.resumed_from == resumed_at.isoformat()
    # The checkpoint stands after the last window whose rows were written (not at the
    # failure), and only the windows from there on were listed again.
    done = len(Span(since, resumed_at - timedelta(days=1)).windows(30))
    assert 0 < done < calls
    again = len(list_requests(daemon, "/api/invoices")) - before
    assert again == len(Span(resumed_at, until).windows(30))
    assert after is None
    assert set(by_url(daemon.rows("Invoices"))) == {
        sim.url_for("invoice", i["id"]) for i in sim.objects("invoice")
    }


# -- the schedule ---------------------------------------------------------------------------


async def test_a_run_missed_while_down_is_due_once(make_daemon: MakeDaemon) -> None:
    settings = settings_of(quick_daemon(make_daemon))
    members = settings.sheets[0]
    now = [datetime(2025, 6, 15, 12, 0, tzinfo=UTC).timestamp()]
    trigger = cron_trigger("30 3 * * *", "UTC")
    async with Store.open(settings.state_dir) as store:
        engine = Resync(
            settings.resync,
            settings.cobot,
            ZoneInfo(settings.timezone),
            store,
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            clock=lambda: now[0],
        )
        assert not await engine.missed_run(members, "full", trigger)  # first start: baseline
        now[0] += 3600
        assert not await engine.missed_run(members, "full", trigger)  # no 03:30 passed yet
        now[0] += 24 * 3600
        assert await engine.missed_run(members, "full", trigger)  # 03:30 passed while down
        await store.meta.record_resync_run("full", members.title, ResyncRun(now[0], {}))
        assert not await engine.missed_run(members, "full", trigger)


def test_six_field_cron_is_accepted_and_bad_ones_are_named(make_daemon: MakeDaemon) -> None:
    daemon = quick_daemon(make_daemon, full_schedule="*/5 * * * * *")
    assert settings_of(daemon).resync.full_schedule == "*/5 * * * * *"
    daemon.extra = {"resync": {"full_schedule": "* * * *"}}
    with pytest.raises(ConfigError) as caught:
        load_settings(daemon.write_config(), {"TEST_COBOT_TOKEN": daemon.cobot.token})
    assert any(
        "resync.full_schedule" in line and "sixth field" in line for line in caught.value.lines()
    )
