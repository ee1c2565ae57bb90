"""Several Cobot spaces at the daemon's Cobot-facing edges: the receiver attributes each webhook
to the space whose callback it came to, subscriptions are kept per space, `syncd check-config`
checks each space's token against its space, and `syncd status` shows each space's check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aioresponses import aioresponses

from syncd.cli import main
from syncd.cobot.spaces import cobot_clients
from syncd.cobot.subscriptions import delete_ours, list_all, reconcile
from syncd.commands.subscriptions import list_subscriptions, sync_subscriptions
from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.core.metrics import Metrics
from syncd.intake.receiver import build_receiver_app, web_server_kwargs
from syncd.store.database import Store
from syncd.store.meta import SubscriptionCheck
from syncd.store.schema import DB_FILENAME
from tests.fixtures_cli import run_syncd
from tests.fixtures_cobot import COBOT_APP, COBOT_TOKEN, CobotSandbox, MakeCobotSim
from tests.fixtures_daemon import WEBHOOK_SECRET, MakeDaemon
from tests.test_check_config import problems_by_key

PUBLIC = "https://sync.example.org/cobot"
SECRET = "current-secret-0123456789abcdef"
OLD_SECRET = "previous-secret-0123456789abcdef"
MEMBER_EVENTS = ["created_membership", "updated_membership_details"]
#: A worksheet of co-up's room bookings only: its events and filter are co-up's alone.
ROOM_BOOKINGS: dict[str, Any] = {
    "resource": "booking",
    "events": ["created_booking"],
    "filters": {"resource_id": "room-1"},
    "spaces": ["co-up"],
    "columns": {"Title": "title"},
}
SHEETS: dict[str, Any] = {
    "Members": {"resource": "membership", "events": MEMBER_EVENTS, "columns": {"N": "name"}},
    "Room bookings": ROOM_BOOKINGS,
}


def write_settings(
    tmp_path: Path,
    cobot: dict[str, Any],
    *,
    secret: str = SECRET,
    previous: tuple[str, ...] = (),
) -> Settings:
    """Settings with ``cobot`` as the file's section, and SHEETS."""
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps({"client_email": "s@example.org", "private_key": "k", "token_uri": "http://x"})
    )
    config = {
        "cobot": cobot,
        "webhook": {"public_url": PUBLIC, "secret": secret, "previous_secrets": list(previous)},
        "google": {"service_account_file": str(key), "spreadsheet_id": "sheet-1"},
        "state_dir": str(tmp_path / "state"),
        "sheets": SHEETS,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_settings(path, {})


def listed(spaces: dict[str, str | None], **options: Any) -> dict[str, Any]:
    """The list form of ``cobot``: subdomain -> base_url (None: Cobot's own host)."""
    return {
        "spaces": [
            {"subdomain": name, "access_token": COBOT_TOKEN} | ({"base_url": base} if base else {})
            for name, base in spaces.items()
        ],
        **options,
    }


def our_callback(event: str, space: str | None = None, secret: str = SECRET) -> str:
    return f"{PUBLIC}/{secret}/{space}/{event}" if space else f"{PUBLIC}/{secret}/{event}"


# -- the receiver -------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A receiver as the daemon serves it, and what it stored."""

    port: int
    session: aiohttp.ClientSession
    store: Store
    metrics: Metrics

    async def answer(self, path: str, url: str) -> tuple[int, bytes, str]:
        """Status, body and content type of a POST of ``url`` to ``path``."""
        address = f"http://127.0.0.1:{self.port}{path}"
        async with self.session.post(address, json={"url": url}) as response:
            return response.status, await response.read(), response.content_type

    async def post(self, path: str, url: str) -> int:
        """POST ``url`` to the callback ``/cobot/<path>``; the status."""
        return (await self.answer(f"/cobot/{path}", url))[0]

    async def stored(self) -> list[tuple[str, str, str]]:
        """(space, event, url) of every stored event."""
        return [(e.space, e.event, e.url) for e in await self.store.claim_due(100)]


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Receiver]:
    """The receiver on loopback; on leaving, proves it fetched nothing from anywhere."""
    with aioresponses(passthrough=["http://127.0.0.1"]) as fetches:
        async with Store.open(settings.state_dir) as store, aiohttp.ClientSession() as session:
            metrics = Metrics()
            app = build_receiver_app(
                settings.webhook, settings.cobot, settings.sheets, store, metrics, lambda: None
            )
            runner = web.AppRunner(app, **web_server_kwargs())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            try:
                yield Receiver(runner.addresses[0][1], session, store, metrics)
            finally:
                await runner.cleanup()
        assert fetches.requests == {}


UP_MEMBER = "https://co-up.cobot.me/api/memberships/m1"
DOWN_MEMBER = "http://127.0.0.1:9002/api/memberships/m2"


@pytest.fixture
def two_spaces(tmp_path: Path) -> Settings:
    return write_settings(tmp_path, listed({"co-up": None, "co-down": "http://127.0.0.1:9002"}))


async def test_each_webhook_is_stored_for_the_space_whose_callback_it_came_to(
    two_spaces: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd.receiver")
    async with serving(two_spaces) as receiver:
        assert await receiver.post(f"{SECRET}/co-up/created_membership", UP_MEMBER) == 202
        assert await receiver.post(f"{SECRET}/co-down/created_membership", DOWN_MEMBER) == 202
        assert await receiver.stored() == [
            ("co-up", "created_membership", UP_MEMBER),
            ("co-down", "created_membership", DOWN_MEMBER),
        ]
    assert "webhook created_membership membership m2 at co-down stored as event 2" in caplog.text
    assert SECRET not in caplog.text and COBOT_TOKEN not in caplog.text


async def test_a_url_of_another_space_on_a_spaces_callback_is_refused(
    two_spaces: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd.receiver")
    async with serving(two_spaces) as receiver:
        assert await receiver.post(f"{SECRET}/co-up/created_membership", DOWN_MEMBER) == 422
        assert await receiver.post(f"{SECRET}/co-down/created_membership", UP_MEMBER) == 422
        assert await receiver.stored() == []
        assert receiver.metrics.webhooks_rejected.value(reason="bad_url") == 2
    assert "webhook created_membership at co-up refused with 422 (bad_url)" in caplog.text


@pytest.mark.parametrize(
    "path",
    [
        f"{SECRET}/co-side/created_membership",  # a space not configured
        f"{SECRET}/created_membership",  # the single form's path: not served in the list form
        f"{SECRET}/co-up/co-down/created_membership",
    ],
)
async def test_an_unknown_space_answers_like_an_unknown_path(
    two_spaces: Settings, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(two_spaces) as receiver:
        answer = await receiver.answer(f"/cobot/{path}", UP_MEMBER)
        assert answer == await receiver.answer("/no/such/path", UP_MEMBER)
        assert answer[0] == 404
        assert await receiver.stored() == []
    assert "co-side" not in caplog.text and SECRET not in caplog.text


async def test_unknown_space_is_counted(two_spaces: Settings) -> None:
    async with serving(two_spaces) as receiver:
        assert await receiver.post(f"{SECRET}/co-side/created_membership", UP_MEMBER) == 404
        assert receiver.metrics.webhooks_rejected.value(reason="unknown_space") == 1


async def test_an_event_only_another_spaces_worksheets_take_is_gone(two_spaces: Settings) -> None:
    booking = "http://127.0.0.1:9002/api/bookings/b1"
    async with serving(two_spaces) as receiver:
        assert await receiver.post(f"{SECRET}/co-down/created_booking", booking) == 410
        assert await receiver.post(f"{SECRET}/co-up/created_booking", booking) == 422
        up_booking = "https://co-up.cobot.me/api/bookings/b1"
        assert await receiver.post(f"{SECRET}/co-up/created_booking", up_booking) == 202
        assert [space for space, _, _ in await receiver.stored()] == ["co-up"]


async def test_the_single_form_keeps_its_callbacks(tmp_path: Path) -> None:
    single = {"subdomain": "co-up", "access_token": COBOT_TOKEN}
    async with serving(write_settings(tmp_path, single)) as receiver:
        assert await receiver.post(f"{SECRET}/co-up/created_membership", UP_MEMBER) == 404
        assert await receiver.post(f"{SECRET}/created_membership", DOWN_MEMBER) == 422
        assert await receiver.post(f"{SECRET}/created_membership", UP_MEMBER) == 202
        assert await receiver.stored() == [("co-up", "created_membership", UP_MEMBER)]


# -- subscriptions, per space ----------------------------------------------------------------------


@pytest.fixture
def sims(make_cobot_sim: MakeCobotSim) -> dict[str, CobotSandbox]:
    return {"co-up": make_cobot_sim(), "co-down": make_cobot_sim()}


def sim_settings(
    tmp_path: Path, sims: dict[str, CobotSandbox], **options: Any
) -> tuple[Settings, dict[str, Any]]:
    settings = write_settings(tmp_path, listed({n: s.url for n, s in sims.items()}), **options)
    return settings, {space.subdomain: space for space in settings.spaces}


def ours_at(sandbox: CobotSandbox) -> list[tuple[str, str, bool, Any]]:
    """Our app's subscriptions at one space: (event, callback, active, filters), sorted."""
    return sorted(
        (s["event"], s["callback_url"], s["active"], s.get("filters"))
        for s in sandbox.sim.subscriptions(app=COBOT_APP)
    )


def wanted_at(space: str) -> list[tuple[str, str, bool, Any]]:
    """What the two-space SHEETS want at ``space``: co-up also takes its room's bookings."""
    wanted: list[tuple[str, str, bool, Any]] = [
        (e, our_callback(e, space), True, None) for e in MEMBER_EVENTS
    ]
    if space == "co-up":
        wanted.append(
            (
                "created_booking",
                our_callback("created_booking", "co-up"),
                True,
                {"resource_id": "room-1"},
            )
        )
    return sorted(wanted)


async def test_each_space_gets_its_own_callbacks_for_its_own_worksheets_events(
    tmp_path: Path, sims: dict[str, CobotSandbox]
) -> None:
    settings, spaces = sim_settings(tmp_path, sims)
    async with cobot_clients(settings.spaces) as clients:
        for name in sims:
            report = await reconcile(settings, spaces[name], clients[name])
            assert not report.errors and report.changed
        for name in sims:
            again = await reconcile(settings, spaces[name], clients[name])
            assert not again.changed
    for name, sandbox in sims.items():
        assert ours_at(sandbox) == wanted_at(name)


async def test_a_space_leaves_other_spaces_and_other_apps_alone(
    tmp_path: Path, sims: dict[str, CobotSandbox]
) -> None:
    settings, spaces = sim_settings(tmp_path, sims)
    down = sims["co-down"].sim
    # co-up's callback listed at co-down (as a listing shared between spaces would show it),
    # another app's at our very callback, and a callback of ours naming a space not served.
    foreign = [
        down.add_subscription("created_membership", our_callback("created_membership", "co-up")),
        down.add_subscription(
            "created_membership", our_callback("created_membership", "co-down"), app="other-app"
        ),
        down.add_subscription("created_invoice", our_callback("created_invoice", "co-side")),
    ]
    async with cobot_clients(settings.spaces) as clients:
        await reconcile(settings, spaces["co-down"], clients["co-down"])
        flags = {
            s.id: ours
            for s, ours in await list_all(settings, spaces["co-down"], clients["co-down"])
        }
        assert [flags.get(s["id"]) for s in foreign] == [False, None, False]
        deleted = await delete_ours(settings, spaces["co-down"], clients["co-down"])
    assert len(deleted) == len(MEMBER_EVENTS)
    left = {s["id"]: s["callback_url"] for s in down.subscriptions()}
    assert left == {s["id"]: s["callback_url"] for s in foreign}


async def test_moving_to_the_list_form_replaces_the_single_forms_callbacks(
    tmp_path: Path, sims: dict[str, CobotSandbox]
) -> None:
    """The single form's callbacks are ours at every space, and go even at start-up, when a
    rotated-out secret's stay (the list form's receiver no longer serves their path)."""
    up = sims["co-up"].sim
    single = up.add_subscription("created_membership", our_callback("created_membership"))
    settings, spaces = sim_settings(tmp_path, sims, secret=SECRET, previous=(OLD_SECRET,))
    rotated = up.add_subscription(
        "updated_membership_details",
        our_callback("updated_membership_details", "co-up", OLD_SECRET),
    )
    async with cobot_clients(settings.spaces) as clients:
        report = await reconcile(settings, spaces["co-up"], clients["co-up"], retire_previous=False)
        assert [s.id for s in report.deleted] == [single["id"]]
        assert rotated["id"] in {s.id for s in report.kept}
        report = await reconcile(settings, spaces["co-up"], clients["co-up"])
        assert [s.id for s in report.deleted] == [rotated["id"]]
    assert ours_at(sims["co-up"]) == wanted_at("co-up")


async def test_and_back_to_the_single_form(tmp_path: Path, sims: dict[str, CobotSandbox]) -> None:
    up = sims["co-up"].sim
    listed_before = up.add_subscription(
        "created_membership", our_callback("created_membership", "co-up")
    )
    settings = write_settings(
        tmp_path, {"subdomain": "co-up", "access_token": COBOT_TOKEN, "base_url": sims["co-up"].url}
    )
    async with cobot_clients(settings.spaces) as clients:
        report = await reconcile(settings, settings.spaces[0], clients["co-up"])
    assert [s.id for s in report.deleted] == [listed_before["id"]]
    assert {callback for _, callback, _, _ in ours_at(sims["co-up"])} == {
        our_callback(event) for event in (*MEMBER_EVENTS, "created_booking")
    }


async def test_the_cli_covers_every_space_and_goes_on_past_a_failing_one(
    tmp_path: Path, sims: dict[str, CobotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = sim_settings(tmp_path, sims)
    sims["co-up"].sim.tokens.clear()  # Cobot no longer knows the token at co-up

    assert await sync_subscriptions(settings) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: co-up: Cobot rejected the access token (401)")
    assert out.splitlines()[:2] == ["Space co-up:", ""] and "Space co-down:" in out
    assert out.rstrip().endswith("subscriptions: 2 created, 0 deleted, 0 kept")
    assert ours_at(sims["co-down"]) == wanted_at("co-down")

    assert await list_subscriptions(settings) == 1
    out, err = capsys.readouterr()
    down = out.split("Space co-down:\n")[1].splitlines()
    assert down[0].split() == ["ID", "EVENT", "ACTIVE", "OURS", "CALLBACK", "URL"]
    assert all(f"{PUBLIC}/***/co-down/" in row for row in down[1:])
    assert "not subscribed" not in out and SECRET not in out + err


# -- check-config --------------------------------------------------------------------------------


def test_check_config_checks_each_spaces_token_against_its_space(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    down = make_cobot_sim()
    daemon = make_daemon(
        extra_spaces={"co-down": down},
        sheet_config={"Members": SHEETS["Members"], "Room bookings": ROOM_BOOKINGS},
    )
    path = daemon.write_config()

    good = run_syncd("check-config", "--config", path, env=daemon.env)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.splitlines()

    def plan(space: str, events: int) -> str:
        callbacks = f"{daemon.url}/cobot/***/{space}/<event>"
        return f"Would subscribe {events} Cobot event(s) at {space} with callbacks at {callbacks}:"

    assert lines[1:6] == [
        plan("co-up", 3),
        *(f"  - {event}" for event in (*MEMBER_EVENTS, "created_booking")),
        plan("co-down", 2),
    ]
    assert WEBHOOK_SECRET not in good.stdout + good.stderr
    # One request per space, each to its own simulator.
    for sandbox in (daemon.cobot, down):
        assert [r.path for r in sandbox.sim.requests()] == ["/api/subscriptions"]

    revoked = {**daemon.env, "TEST_COBOT_TOKEN_1": "revoked-token-0123456789"}
    bad = run_syncd("check-config", "--config", path, env=revoked)
    assert bad.returncode == 2
    [problem] = problems_by_key(bad.stderr, path).items()
    assert problem[0] == "cobot.spaces[1].access_token"
    assert problem[1].startswith("Cobot rejected the access token (401)")
    assert "revoked-token" not in bad.stderr
    assert [r.path for r in daemon.cobot.sim.requests()] == ["/api/subscriptions"] * 2


# -- status ---------------------------------------------------------------------------------------


def test_status_shows_each_spaces_subscription_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(tmp_path, listed({"co-up": None, "co-down": None, "co-side": None}))
    now = time.time()

    async def populate() -> None:
        async with Store.open(settings.state_dir) as store:
            await store.meta.record_subscription_check(
                "co-down", SubscriptionCheck(now - 60, None, [f"Cobot refused {SECRET} (401)"])
            )
            await store.meta.record_subscription_check(
                "co-side",
                SubscriptionCheck(now - 120, "subscriptions: 0 created, 0 deleted, 2 kept", []),
            )

    asyncio.run(populate())
    # What a single-space version left: shown for the first space, until it has its own.
    old = {"time": now - 600, "summary": "old", "errors": []}
    with contextlib.closing(sqlite3.connect(settings.state_dir / DB_FILENAME)) as db, db:
        db.execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, 0)",
            ("subscriptions.last_check", json.dumps(old)),
        )
    assert main(["status", "--config", str(settings.source)]) == 0
    out = capsys.readouterr().out
    shown = out.split("Subscriptions, per space:\n")[1].splitlines()[:4]
    assert shown[0].startswith("  co-up: checked ") and shown[0].endswith("ago): old")
    assert shown[1].startswith("  co-down: checked ") and shown[1].endswith(
        "ago): the check failed"
    )
    assert shown[2] == "    error: Cobot refused *** (401)"
    assert shown[3].endswith("(2m 0s ago): subscriptions: 0 created, 0 deleted, 2 kept")
    assert SECRET not in out

    assert main(["status", "--json", "--config", str(settings.source)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert "subscriptions" not in status
    checks = {space: shown["subscriptions"] for space, shown in status["spaces"].items()}
    assert list(checks) == ["co-up", "co-down", "co-side"]
    assert (checks["co-up"]["summary"], checks["co-down"]["summary"]) == ("old", None)
