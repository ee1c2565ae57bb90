"""Several Cobot spaces in the re-sync, `syncd backfill` and the re-render: one Cobot simulator
per space and the Sheets emulator, the engines in process (the backfill also as the command).

The simulators share one seed, so the spaces hold resources with the very same ids (their URLs
differ by host): a row, a member join or a deletion taken from the wrong space shows at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.engine.backfill import run_backfill
from syncd.engine.localcopy import kept_copy
from syncd.engine.rerender import Rerender
from syncd.engine.resync_plan import owns, resync_schedule
from syncd.intake.resources import ResourceRef
from syncd.sandbox.cobot.limits import SlidingWindowLimiter
from syncd.sandbox.cobot.shapes import JSON
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.filelock import sheets_lock_path
from tests.fixtures_cobot import CobotSandbox, MakeCobotSim
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.resync_support import UNTHROTTLED, serve_spaces, settings_of, wired_spaces
from tests.test_e2e_pipeline import by_url

OTHER_TOKEN = "test-cobot-token-other-0123456789"
MEMBERS: dict[str, Any] = {
    "resource": "membership",
    "events": ["created_membership", "updated_membership_details", "deleted_membership"],
    "columns": {"Name": "name", "Email": "email"},
}
BOOKINGS: dict[str, Any] = {
    "resource": "booking",
    "events": ["created_booking", "updated_booking", "deleted_booking"],
    "columns": {
        "Title": "title",
        "Member": {"template": "{{ member.name }}"},
        "Where": {"template": "{{ space }}"},
    },
}
SHEETS: dict[str, Any] = {
    "Members": MEMBERS,
    "Bookings": BOOKINGS,
    "Down members": {**MEMBERS, "spaces": ["co-down"]},
}


def three_spaces(make_cobot_sim: MakeCobotSim, **knobs: Any) -> dict[str, CobotSandbox]:
    """co-up and co-side read with one token (their simulators count it together, as Cobot
    counts per user), co-down with a token of its own."""
    shared = SlidingWindowLimiter()
    return {
        "co-up": make_cobot_sim(shared_limiter=shared, **knobs),
        "co-down": make_cobot_sim(tokens={OTHER_TOKEN: "syncd-test"}, **knobs),
        "co-side": make_cobot_sim(shared_limiter=shared, **knobs),
    }


def spaces_daemon(
    make_daemon: MakeDaemon,
    spaces: dict[str, CobotSandbox],
    sheets: dict[str, Any] = SHEETS,
    **options: Any,
) -> Daemon:
    options.setdefault("cobot_options", UNTHROTTLED)
    daemon = make_daemon(cobot=next(iter(spaces.values())), sheet_config=_copied(sheets), **options)
    serve_spaces(daemon, spaces)
    return daemon


def _copied(sheets: dict[str, Any]) -> dict[str, Any]:
    return {title: {**sheet, "columns": dict(sheet["columns"])} for title, sheet in sheets.items()}


def populate(sandbox: CobotSandbox, space: str, members: int = 3) -> list[JSON]:
    """Members named after their space, and one booking of the first, tomorrow."""
    sim = sandbox.sim
    made = [
        sim.create("membership", emit=False, name=f"{space} member {n}") for n in range(members)
    ]
    start = datetime.combine(sim.today + timedelta(days=1), datetime.min.time(), UTC)
    title = f"{space} booking"
    sim.create("booking", emit=False, member=made[0]["id"], title=title, start=start)
    return made


def member_urls(spaces: dict[str, CobotSandbox], made: dict[str, list[JSON]]) -> dict[str, str]:
    """Each member's URL -> its space."""
    return {
        spaces[name].sim.url_for("membership", member["id"]): name
        for name, members in made.items()
        for member in members
    }


def resync_records(daemon: Daemon) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with Store.open(daemon.state_dir, readonly=True) as store:
            return await store.meta.resync_records()

    return asyncio.run(read())


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.1)


# -- backfill ---------------------------------------------------------------------------------


def test_backfill_fills_every_space_with_its_own_rows(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = three_spaces(make_cobot_sim, rate_limits=False)
    daemon = spaces_daemon(make_daemon, spaces)
    made = {name: populate(sandbox, name) for name, sandbox in spaces.items()}
    assert len({tuple(m["id"] for m in members) for members in made.values()}) == 1

    result = daemon.cli("backfill")
    assert result.returncode == 0, result.stderr

    members = by_url(daemon.rows("Members"))
    assert {url: row["Space"] for url, row in members.items()} == member_urls(spaces, made)
    assert all(row["Name"].startswith(f"{row['Space']} member") for row in members.values())
    bookings = {row["Title"]: row for row in daemon.rows("Bookings")}
    assert {
        title: (row["Space"], row["Where"], row["Member"]) for title, row in bookings.items()
    } == {f"{name} booking": (name, name, f"{name} member 0") for name in spaces}
    # The worksheet narrowed to co-down holds co-down's members only.
    down = by_url(daemon.rows("Down members"))
    assert {url: row["Space"] for url, row in down.items()} == {
        url: space for url, space in member_urls(spaces, made).items() if space == "co-down"
    }
    # The summary: a row per space and worksheet, and one Cobot budget per token.
    labels = {line.split("  ")[0] for line in result.stdout.splitlines()}
    for name in spaces:
        assert {f"Members ({name})", f"Bookings ({name})"} <= labels
    assert "Down members (co-down)" in labels and "Down members (co-up)" not in labels
    assert "requests/min per token (2 for 3 spaces)" in result.stdout
    # Each space keeps its own records.
    records = resync_records(daemon)
    for name in spaces:
        assert f"resync.last_run.backfill.{name}/Members" in records
    assert "resync.last_run.backfill.Members" not in records


async def test_spaces_sharing_a_token_stay_within_one_budget(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    """co-up and co-side share a token: together they get its requests per minute, while
    co-down, with a token of its own, is not held up by them."""
    limit = 12
    spaces = three_spaces(make_cobot_sim, requests_per_window=limit)
    sheets = {"Members": MEMBERS, "Bookings": BOOKINGS}
    daemon = spaces_daemon(
        make_daemon,
        spaces,
        sheets,
        cobot_options={"requests_per_minute": limit},
        resync={"window_days": 1},
    )
    for name, sandbox in spaces.items():
        populate(sandbox, name)
    settings = settings_of(daemon)
    today = datetime.now(UTC).date()
    # Per space: one membership listing (the Members worksheet's, which Bookings' member
    # join reuses) and 7 one-day booking windows, 8 requests: co-up's fit its token's 12,
    # co-side's do not fit the 4 left.
    since, until = today - timedelta(days=3), today + timedelta(days=3)
    backfill = asyncio.create_task(run_backfill(settings, settings.sheets, since, until))
    pair = [spaces["co-up"].sim, spaces["co-side"].sim]
    try:
        await wait_for(
            lambda: sum(len(sim.requests()) for sim in pair) >= limit,
            timeout=30,
            what="the shared token's budget to be spent",
        )
        await asyncio.sleep(2)  # long enough for a budget of co-side's own to overspend it
        assert not backfill.done()
    finally:
        backfill.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await backfill

    statuses = Counter(r.status for s in spaces.values() for r in s.sim.requests())
    assert statuses[429] == 0, statuses
    assert [len(sim.requests()) for sim in pair] == [8, limit - 8]
    assert len(spaces["co-down"].sim.requests()) == 8  # done before co-side began
    assert {row["Space"] for row in daemon.rows("Bookings")} == {"co-up", "co-down"}


# -- deletion by absence ----------------------------------------------------------------------


async def test_deletion_by_absence_in_one_space_leaves_the_others_rows_alone(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = three_spaces(make_cobot_sim, rate_limits=False)
    daemon = spaces_daemon(make_daemon, spaces, {"Members": MEMBERS})
    made = {
        name: [
            sandbox.sim.create("membership", emit=False, name=f"{name} member {n}")
            for n in range(10)
        ]
        for name, sandbox in spaces.items()
    }
    settings = settings_of(daemon)
    await run_backfill(settings, settings.sheets)
    up, down = spaces["co-up"].sim, spaces["co-down"].sim
    gone = made["co-up"][0]
    up.delete("membership", gone["id"], emit=False)  # one member left co-up
    for member in made["co-down"]:  # co-down's listing comes back empty
        down.delete("membership", member["id"], emit=False)
    before = {name: len(sandbox.sim.requests()) for name, sandbox in spaces.items()}

    summaries = {s.label: s for s in await run_backfill(settings, settings.sheets)}

    assert (summaries["Members (co-up)"].deleted, summaries["Members (co-up)"].safety_stop) == (
        1,
        None,
    )
    stopped = summaries["Members (co-down)"]
    assert stopped.deleted == 0 and stopped.safety_stop is not None
    assert "co-down's complete listing lacks 10 of the 10 known rows" in stopped.safety_stop
    side = summaries["Members (co-side)"]
    assert (side.deleted, side.safety_stop) == (0, None)
    rows = by_url(daemon.rows("Members"))
    assert {url for url, row in rows.items() if row["Deleted"]} == {
        up.url_for("membership", gone["id"])
    }
    # Only the absent co-up member was asked for on its own, and only at co-up.
    singles = {
        name: [
            r.path
            for r in sandbox.sim.requests()[before[name] :]
            if r.path.startswith("/api/memberships/")
        ]
        for name, sandbox in spaces.items()
    }
    assert singles == {"co-up": [f"/api/memberships/{gone['id']}"], "co-down": [], "co-side": []}
    async with Store.open(daemon.state_dir) as store:
        stop = await store.meta.safety_stop("co-down/Members")
        assert stop is not None and (stop.absent, stop.rows) == (10, 10)
        assert await store.meta.safety_stop("co-up/Members") is None
        assert await store.meta.safety_stop("Members") is None


def test_a_rows_space_is_its_copys_else_the_host_its_url_is_on(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = {"co-up": make_cobot_sim(), "co-down": make_cobot_sim()}
    settings = settings_of(spaces_daemon(make_daemon, spaces))
    up, down = settings.spaces
    url = spaces["co-up"].sim.url_for("membership", "m1")
    ref = ResourceRef("membership", "m1", url)
    # Kept before spaces were recorded, or never kept: the host decides.
    for copy in (None, kept_copy(ref, {"id": "m1"}, 1.0)):
        assert (owns(up, url, copy), owns(down, url, copy)) == (True, False)
    # The local copy's space decides over the host.
    recorded = kept_copy(ref, {"id": "m1"}, 1.0, space="co-down")
    assert (owns(up, url, recorded), owns(down, url, recorded)) == (False, True)


# -- worksheets narrowed with spaces: --------------------------------------------------------


async def test_a_worksheet_of_another_space_is_left_alone(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = {
        "co-up": make_cobot_sim(rate_limits=False),
        "co-down": make_cobot_sim(rate_limits=False),
    }
    daemon = spaces_daemon(
        make_daemon, spaces, {"Members": MEMBERS, "Down members": SHEETS["Down members"]}
    )
    populate(spaces["co-up"], "co-up")
    async with wired_spaces(daemon) as wiring:
        engine = wiring.resync("co-up")
        narrowed = next(s for s in wiring.settings.sheets if s.title == "Down members")
        skipped = await engine.run_sheet(narrowed, "full")
        assert spaces["co-up"].sim.requests() == []
        ran = await engine.run(wiring.settings.sheets, "full")
    assert skipped.skipped == "it holds only co-down (spaces:)"
    assert [s.label for s in ran] == ["Members (co-up)"]
    assert daemon.rows("Down members") == []
    assert {row["Space"] for row in daemon.rows("Members")} == {"co-up"}


def test_scheduled_resyncs_are_planned_per_space(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = {"co-up": make_cobot_sim(), "co-down": make_cobot_sim()}
    daemon = spaces_daemon(
        make_daemon,
        spaces,
        resync={"full_schedule": "30 3 * * *", "recent_schedule": "*/30 * * * *"},
    )
    settings = settings_of(daemon)
    planned = resync_schedule(settings.sheets, settings.resync, list(spaces))
    assert sorted(p.name for p in planned) == sorted(
        [
            *(
                f"resync-full:{name}/{title}"
                for name in spaces
                for title in ("Members", "Bookings")
            ),
            *(f"resync-recent:{name}/Bookings" for name in spaces),
            "resync-full:co-down/Down members",
        ]
    )
    assert {(p.space, p.sheet.title) for p in planned if p.mode == "recent"} == {
        ("co-up", "Bookings"),
        ("co-down", "Bookings"),
    }


# -- the re-render at start -------------------------------------------------------------------


async def test_rerender_renders_each_copy_in_its_own_space(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = {
        "co-up": make_cobot_sim(rate_limits=False),
        "co-down": make_cobot_sim(rate_limits=False),
    }
    sheets = _copied(SHEETS)
    sheets["Bookings"]["columns"] = {"Title": "title"}
    daemon = spaces_daemon(make_daemon, spaces, sheets)
    made = {name: populate(sandbox, name) for name, sandbox in spaces.items()}
    settings = settings_of(daemon)
    await run_backfill(settings, settings.sheets)
    up = spaces["co-up"].sim
    # A member the local copy kept before it recorded spaces: the first space's.
    legacy = up.create("membership", emit=False, name="co-up legacy member")
    legacy_url = up.url_for("membership", legacy["id"])
    # The mapping changes: every worksheet gains columns that read the space and the member.
    where = {"template": "{{ space }}"}
    for title in ("Members", "Down members"):
        daemon.sheet_config[title]["columns"]["Where"] = where
    daemon.sheet_config["Bookings"]["columns"].update(BOOKINGS["columns"])
    settings = settings_of(daemon)
    asked = sum(len(s.sim.requests()) for s in spaces.values())
    writer = SheetsWriter(settings.google, lock_path=sheets_lock_path(settings.state_dir))
    try:
        async with Store.open(settings.state_dir) as store:
            ref = ResourceRef("membership", legacy["id"], legacy_url)
            await store.keep([kept_copy(ref, legacy, time.time())])
            rerender = Rerender(
                settings.sheets, settings.timezone, store, writer, default_space="co-up"
            )
            await rerender.run()
    finally:
        writer.close()

    assert sum(len(s.sim.requests()) for s in spaces.values()) == asked  # no Cobot request
    members = by_url(daemon.rows("Members"))
    assert {url: row["Space"] for url, row in members.items()} == {
        **member_urls(spaces, made),
        legacy_url: "co-up",
    }
    assert all(row["Where"] == row["Space"] for row in members.values())
    bookings = {
        row["Title"]: (row["Space"], row["Where"], row["Member"]) for row in daemon.rows("Bookings")
    }
    assert bookings == {f"{name} booking": (name, name, f"{name} member 0") for name in spaces}
    down = daemon.rows("Down members")
    assert len(down) == 3 and {(row["Space"], row["Where"]) for row in down} == {
        ("co-down", "co-down")
    }
