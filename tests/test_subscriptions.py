"""The reconciler: exactly one active subscription of ours per configured event, nothing else
touched, and a secret rotation that never leaves an event without a working callback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from syncd.cobot.client import CobotClient, Subscription
from syncd.cobot.errors import SubscriptionExists
from syncd.cobot.subscriptions import (
    callback_url,
    delete_ours,
    is_ours,
    list_all,
    mask_callback,
    reconcile,
)
from syncd.commands.subscriptions import delete_all_ours, list_subscriptions, sync_subscriptions
from syncd.config.loading import load_settings
from syncd.config.secret import Secret
from syncd.config.settings import Settings
from syncd.sandbox.cobot import subscriptions as simulated_subscriptions
from tests.fixtures_cobot import CobotSandbox

PUBLIC = "https://sync.example.org/cobot"
SECRET = "current-secret-0123456789"
OLD_SECRET = "previous-secret-0123456789"
MEMBER_EVENTS = ["created_membership", "updated_membership_details"]
BOOKING_EVENTS = ["created_booking", "booking_will_begin"]
ALL_EVENTS = MEMBER_EVENTS + BOOKING_EVENTS


def make_settings(
    tmp_path: Path,
    cobot: CobotSandbox,
    *,
    secret: str = SECRET,
    previous: tuple[str, ...] = (),
    booking_events: list[str] = BOOKING_EVENTS,
) -> Settings:
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps({"client_email": "s@example.org", "private_key": "k", "token_uri": "http://x"})
    )
    sheets: dict[str, Any] = {
        "Members": {"resource": "membership", "events": MEMBER_EVENTS, "columns": {"N": "name"}}
    }
    if booking_events:
        sheets["Bookings"] = {
            "resource": "booking",
            "events": booking_events,
            "filters": {"resource_id": "room-1"}
            | ({"lead_time": 30} if "booking_will_begin" in booking_events else {}),
            "columns": {"Title": "title"},
        }
    config = {
        "cobot": {"subdomain": "co-up", "access_token": cobot.token, "base_url": cobot.url},
        "webhook": {"public_url": PUBLIC, "secret": secret, "previous_secrets": list(previous)},
        "google": {"service_account_file": str(key), "spreadsheet_id": "sheet-1"},
        "state_dir": str(tmp_path),
        "sheets": sheets,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_settings(path, {})


@pytest.fixture
def settings(tmp_path: Path, cobot_sim: CobotSandbox) -> Settings:
    return make_settings(tmp_path, cobot_sim)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[CobotClient]:
    async with CobotClient(settings.cobot, backoff_base=0.001, backoff_cap=0.01) as cobot:
        yield cobot


def ours_in_sim(cobot: CobotSandbox) -> dict[str, list[dict[str, Any]]]:
    """Our app's subscriptions at Cobot, by event."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    for sub in cobot.sim.subscriptions(app="cobot-syncd"):
        by_event.setdefault(sub["event"], []).append(sub)
    return by_event


def url(event: str, secret: str = SECRET) -> str:
    return f"{PUBLIC}/{secret}/{event}"


def assert_in_sync(
    cobot: CobotSandbox, secret: str = SECRET, events: list[str] = ALL_EVENTS
) -> None:
    subs = ours_in_sim(cobot)
    assert sorted(subs) == sorted(events)
    for event, found in subs.items():
        assert [(s["callback_url"], s["active"]) for s in found] == [(url(event, secret), True)]


# -- callback URLs ------------------------------------------------------------------------------


def test_callback_url_ownership_and_masking(settings: Settings) -> None:
    webhook = replace(settings.webhook, previous_secrets=(Secret(OLD_SECRET),))
    assert callback_url(webhook, "created_booking") == url("created_booking")
    assert callback_url(webhook, "x", Secret(OLD_SECRET)) == url("x", OLD_SECRET)
    assert is_ours(webhook, url("created_booking"), "co-up")
    assert is_ours(webhook, url("created_booking", OLD_SECRET), "co-up")
    for foreign in (
        url("created_booking", "someone-elses-secret-1234"),
        f"{PUBLIC}2/{SECRET}/created_booking",
        f"https://other.example.org/cobot/{SECRET}/created_booking",
        f"{PUBLIC}/{SECRET}/created_booking/extra",
        f"{PUBLIC}/{SECRET}/co-down/created_booking",  # another space's
        f"{PUBLIC}/{SECRET}/co-up/created_booking/extra",
        f"{PUBLIC}/{SECRET}//created_booking",
        f"{PUBLIC}/{SECRET}/",
        f"{PUBLIC}/{SECRET}",
    ):
        assert not is_ours(webhook, foreign, "co-up"), foreign
    assert mask_callback(webhook, url("created_booking", OLD_SECRET)) == (
        f"{PUBLIC}/***/created_booking"
    )
    # The list form's callbacks name the space; at that space either form is ours.
    listed = callback_url(webhook, "created_booking", Secret(OLD_SECRET), space="co-up")
    assert listed == f"{PUBLIC}/{OLD_SECRET}/co-up/created_booking"
    assert is_ours(webhook, listed, "co-up") and not is_ours(webhook, listed, "co-down")
    assert mask_callback(webhook, listed) == f"{PUBLIC}/***/co-up/created_booking"
    assert mask_callback(webhook, "https://u:p@hooks.example.org/in/abcdefghijklmnopq/x?t=1") == (
        "https://hooks.example.org/in/***/x?***"
    )


# -- reconcile ----------------------------------------------------------------------------------


async def test_first_run_creates_one_per_event_and_second_run_changes_nothing(
    settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    report = await reconcile(settings, settings.spaces[0], client)
    assert sorted(s.event for s in report.created) == sorted(ALL_EVENTS)
    assert report.changed and not report.deleted and not report.errors
    assert_in_sync(cobot_sim)
    filters = {e: s.get("filters") for e, [s] in ours_in_sim(cobot_sim).items()}
    assert filters == {
        "created_membership": None,
        "updated_membership_details": None,
        "created_booking": {"resource_id": "room-1"},
        "booking_will_begin": {"lead_time": 30},
    }

    again = await reconcile(settings, settings.spaces[0], client)
    assert not again.changed and not again.errors
    assert sorted(s.event for s in again.kept) == sorted(ALL_EVENTS)
    assert again.summary() == "subscriptions: 0 created, 0 deleted, 4 kept"
    assert_in_sync(cobot_sim)


async def test_deactivated_subscription_is_recreated_in_one_run(
    settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    await reconcile(settings, settings.spaces[0], client)
    [dead] = ours_in_sim(cobot_sim)["created_booking"]
    cobot_sim.sim.deactivate(dead["id"])

    report = await reconcile(settings, settings.spaces[0], client)
    assert [s.id for s in report.deleted] == [dead["id"]]
    assert [s.event for s in report.created] == ["created_booking"]
    assert_in_sync(cobot_sim)


async def test_duplicates_of_ours_are_deleted(
    settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    for _ in range(3):
        cobot_sim.sim.add_subscription("created_membership", url("created_membership"))
    report = await reconcile(settings, settings.spaces[0], client)
    assert len(report.deleted) == 2
    assert_in_sync(cobot_sim)


async def test_other_apps_and_foreign_callbacks_are_never_touched(
    settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    sim = cobot_sim.sim
    foreign = [
        sim.add_subscription("created_membership", url("created_membership"), app="other-app"),
        sim.add_subscription("created_membership", "https://zapier.example/hooks/123"),
        sim.add_subscription("created_booking", f"https://other.example.org/cobot/{SECRET}/x"),
        sim.add_subscription("created_invoice", url("created_invoice", "not-our-secret-12345")),
        sim.add_subscription("created_invoice", f"{PUBLIC}2/{SECRET}/created_invoice"),
    ]
    sim.deactivate(foreign[1]["id"])

    report = await reconcile(settings, settings.spaces[0], client)
    await reconcile(settings, settings.spaces[0], client)

    assert not report.deleted
    remaining = {s["id"]: s for s in sim.subscriptions()}
    for sub in foreign:
        assert remaining[sub["id"]]["callback_url"] == sub["callback_url"]
    assert not remaining[foreign[1]["id"]]["active"]


async def test_event_removed_from_config_loses_its_subscription(
    tmp_path: Path, settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    await reconcile(settings, settings.spaces[0], client)
    fewer = make_settings(tmp_path, cobot_sim, booking_events=["created_booking"])

    report = await reconcile(fewer, fewer.spaces[0], client)
    assert [s.event for s in report.deleted] == ["booking_will_begin"]
    assert not report.created
    assert_in_sync(cobot_sim, events=[*MEMBER_EVENTS, "created_booking"])


async def test_secret_rotation_subscribes_the_new_url_before_dropping_the_old(
    tmp_path: Path, settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    await reconcile(settings, settings.spaces[0], client)
    old_ids = {e: s["id"] for e, [s] in ours_in_sim(cobot_sim).items()}
    # A subscription under the old secret for an event no longer configured is ours too.
    stale = cobot_sim.sim.add_subscription("created_invoice", url("created_invoice", SECRET))
    rotated = make_settings(
        tmp_path, cobot_sim, secret="rotated-secret-0123456789", previous=(SECRET,)
    )
    log_start = len(cobot_sim.sim.requests())

    report = await reconcile(rotated, rotated.spaces[0], client)

    assert_in_sync(cobot_sim, "rotated-secret-0123456789")
    assert {s.id for s in report.deleted} == {*old_ids.values(), stale["id"]}
    requests = [(r.method, r.path) for r in cobot_sim.sim.requests()[log_start:]]
    posts = [i for i, (method, _) in enumerate(requests) if method == "POST"]
    for created, post_index in zip(report.created, posts, strict=True):
        delete = ("DELETE", f"/api/subscriptions/{old_ids[created.event]}")
        assert post_index < requests.index(delete), (created.event, requests)


async def test_rejected_event_is_reported_by_name_and_others_are_created(
    settings: Settings,
    client: CobotClient,
    cobot_sim: CobotSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        simulated_subscriptions, "EVENTS", simulated_subscriptions.EVENTS - {"created_booking"}
    )

    report = await reconcile(settings, settings.spaces[0], client)

    [error] = report.errors
    assert error.startswith("Cobot refused the subscription for created_booking: ")
    assert "not a known event" in error
    assert sorted(s.event for s in report.created) == sorted(set(ALL_EVENTS) - {"created_booking"})
    assert report.summary().endswith("1 error(s)")


async def test_changes_are_logged_without_the_secret(
    settings: Settings,
    client: CobotClient,
    cobot_sim: CobotSandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="syncd.subscriptions"):
        report = await reconcile(settings, settings.spaces[0], client)
    assert SECRET not in caplog.text
    created = report.created[0]
    assert (
        f"created subscription {created.id} for {created.event} -> "
        f"{PUBLIC}/***/{created.event}" in caplog.messages
    )


# -- Cobot answers 409: a subscription exists that the list did not show -------------------------


class LaggingSubscriptions:
    """Cobot's subscription endpoints in memory: 409 on any event+URL duplicate, and a first
    listing that misses what another run of the daemon just created."""

    def __init__(self, existing: Subscription) -> None:
        self.subs = {existing.id: existing}
        self.listings = 0
        self.calls: list[str] = []

    async def list_subscriptions(self) -> list[Subscription]:
        self.listings += 1
        return list(self.subs.values()) if self.listings > 1 else []

    async def create_subscription(
        self, event: str, callback_url: str, filters: Any = None
    ) -> Subscription:
        self.calls.append(f"create {event}")
        if any((s.event, s.callback_url) == (event, callback_url) for s in self.subs.values()):
            raise SubscriptionExists(f"exists: {event}", status=409)
        sub = Subscription(str(len(self.subs) + 100), event, "", True, callback_url, None)
        self.subs[sub.id] = sub
        return sub

    async def delete_subscription(self, sub: Subscription) -> bool:
        self.calls.append(f"delete {sub.id}")
        return self.subs.pop(sub.id, None) is not None


@pytest.mark.parametrize("active", [True, False])
async def test_409_adopts_the_existing_subscription_or_replaces_it_if_inactive(
    tmp_path: Path, cobot_sim: CobotSandbox, active: bool
) -> None:
    event = "created_membership"
    members = make_settings(tmp_path, cobot_sim, booking_events=[])
    settings = replace(members, sheets=(replace(members.sheets[0], events=(event,)),))
    fake = LaggingSubscriptions(Subscription("7", event, "", active, url(event), None))

    report = await reconcile(settings, settings.spaces[0], cast(CobotClient, fake))

    assert not report.errors
    if active:
        assert [s.id for s in report.kept] == ["7"] and fake.calls == [f"create {event}"]
    else:
        assert fake.calls == [f"create {event}", "delete 7", f"create {event}"]
        assert [s.id for s in report.deleted] == ["7"] and len(report.created) == 1
    assert [s.active for s in fake.subs.values()] == [True]


# -- list_all, delete_ours and the CLI -------------------------------------------------------------


async def test_list_all_flags_ours_and_delete_ours_spares_the_rest(
    settings: Settings, client: CobotClient, cobot_sim: CobotSandbox
) -> None:
    await reconcile(settings, settings.spaces[0], client)
    zap = cobot_sim.sim.add_subscription("created_membership", "https://zapier.example/h/1")

    flags = {s.id: ours for s, ours in await list_all(settings, settings.spaces[0], client)}
    assert flags[zap["id"]] is False
    assert sum(flags.values()) == len(ALL_EVENTS)

    deleted = await delete_ours(settings, settings.spaces[0], client)
    assert len(deleted) == len(ALL_EVENTS)
    assert [s["id"] for s in cobot_sim.sim.subscriptions(app="cobot-syncd")] == [zap["id"]]


async def test_cli_sync_list_and_delete_print_masked_lines(
    settings: Settings, cobot_sim: CobotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    cobot_sim.sim.add_subscription("created_membership", f"https://zapier.example/h/{SECRET}")

    assert await sync_subscriptions(settings) == 0
    out = capsys.readouterr().out
    assert f"for created_booking -> {PUBLIC}/***/created_booking" in out
    assert out.rstrip().endswith("subscriptions: 4 created, 0 deleted, 0 kept")

    assert await list_subscriptions(settings) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "EVENT", "ACTIVE", "OURS", "CALLBACK", "URL"]
    assert len(rows) == 5
    assert any("https://zapier.example/h/***" in r and " no " in r for r in rows)

    assert await delete_all_ours(settings) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("subscriptions: 4 deleted")
    assert SECRET not in out


async def test_cli_list_names_unsubscribed_events(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await list_subscriptions(settings) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "not subscribed (active, current secret) yet: " + ", ".join(ALL_EVENTS)
    )


async def test_cli_reports_cobot_errors_as_one_line_and_exit_1(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    revoked = replace(settings.spaces[0], access_token=Secret("revoked-token-0123456789"))
    bad_token = replace(settings.cobot, spaces=(revoked,))
    assert await sync_subscriptions(replace(settings, cobot=bad_token)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cobot rejected the access token (401)")
    assert "revoked-token" not in err
    assert len(err.splitlines()) == 1


async def test_cli_sync_exits_1_when_an_event_was_rejected(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        simulated_subscriptions, "EVENTS", simulated_subscriptions.EVENTS - {"created_booking"}
    )
    assert await sync_subscriptions(settings) == 1
    assert "Cobot refused the subscription for created_booking" in capsys.readouterr().err
