"""End to end: the daemon keeps Cobot's webhook subscriptions alive across restarts,
deactivations, config changes and a secret rotation, and leaves everyone else's alone."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from syncd.cobot.client import CobotClient
from syncd.config.loading import load_settings
from syncd.ops.daemon import _jobs
from syncd.sandbox.cobot.webhooks import Delivery
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from tests.fixtures_cobot import COBOT_APP, MakeCobotSim
from tests.fixtures_daemon import WEBHOOK_SECRET, Daemon, MakeDaemon, wait_until
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e

NEW_SECRET = "rotated-webhook-secret-fedcba9876543210"
MEMBER_EVENTS = ["created_membership", "updated_membership_details"]
ANOTHER_DEPLOYMENT = "another-deployment-secret-0123456789"


def configured_events(daemon: Daemon) -> set[str]:
    return {event for sheet in daemon.sheet_config.values() for event in sheet["events"]}


def ours(daemon: Daemon) -> dict[str, list[dict[str, Any]]]:
    """Our app's subscriptions under the daemon's public URL, by event."""
    found: dict[str, list[dict[str, Any]]] = {}
    for sub in daemon.cobot.sim.subscriptions(app=COBOT_APP):
        if sub["callback_url"].startswith(f"{daemon.url}/cobot/{daemon.secret}/"):
            found.setdefault(sub["event"], []).append(sub)
    return found


def assert_one_active_per_event(daemon: Daemon) -> dict[str, str]:
    """Exactly one active subscription per configured event at its callback; id by event."""
    subscriptions = ours(daemon)
    assert set(subscriptions) == configured_events(daemon)
    for event, subs in subscriptions.items():
        assert len(subs) == 1, (event, subs)
        assert subs[0]["active"], subs
        assert subs[0]["callback_url"] == f"{daemon.callback_base}/{event}"
    return {event: subs[0]["id"] for event, subs in subscriptions.items()}


def reconciled_in_run(daemon: Daemon, text: str) -> bool:
    """Whether the current run's log shows the start-up reconcile finished with ``text``."""
    return text in daemon.log_path.read_text()


def test_subscriptions_survive_restarts_and_deactivation(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon)
    sim = daemon.cobot.sim
    assert sim.subscriptions() == []
    daemon.start()
    events = configured_events(daemon)
    first = assert_one_active_per_event(daemon)
    assert len(first) == len(events) >= 30

    daemon.stop()
    daemon.start()
    wait_until(
        lambda: reconciled_in_run(daemon, f"0 created, 0 deleted, {len(events)} kept"),
        timeout=20,
        what="the start-up reconcile",
    )
    assert assert_one_active_per_event(daemon) == first

    # Deactivated by Cobot while the daemon runs: `syncd subscriptions sync` is the same
    # reconcile the daemon schedules, and one run brings the event back.
    sim.deactivate(first["created_membership"])
    unseen = sim.create("membership")
    sync = daemon.cli("subscriptions", "sync")
    assert sync.returncode == 0, sync.stderr
    masked = f"{daemon.url}/cobot/***/created_membership"
    assert f"deleted subscription {first['created_membership']} for created_membership" in (
        sync.stdout
    )
    assert "created subscription" in sync.stdout and masked in sync.stdout
    assert sync.stdout.rstrip().endswith(f"1 created, 1 deleted, {len(events) - 1} kept")
    assert WEBHOOK_SECRET not in sync.stdout + sync.stderr
    recreated = assert_one_active_per_event(daemon)
    assert recreated["created_membership"] != first["created_membership"]

    seen = sim.create("membership")
    settle(daemon)
    members = by_url(daemon.rows("Members"))
    assert sim.url_for("membership", seen["id"]) in members
    assert sim.url_for("membership", unseen["id"]) not in members  # sent while deactivated

    # Deactivated while the daemon is down: its start-up run of the job repairs it.
    daemon.stop()
    sim.deactivate(recreated["created_invoice"])
    daemon.start()
    wait_until(
        lambda: reconciled_in_run(daemon, f"1 created, 1 deleted, {len(events) - 1} kept"),
        timeout=20,
        what="the start-up reconcile",
    )
    log = daemon.log_path.read_text()
    assert f"deleted subscription {recreated['created_invoice']} for created_invoice" in log
    assert "(deactivated by Cobot)" in log
    assert assert_one_active_per_event(daemon)["created_invoice"] != recreated["created_invoice"]
    assert daemon.stop() == 0


async def test_the_periodic_job_is_the_reconcile(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, sync={"subscription_check_minutes": 7})
    settings = load_settings(daemon.write_config(), {"TEST_COBOT_TOKEN": daemon.cobot.token})
    sheets = SheetsWriter(settings.google)
    space = settings.spaces[0].subdomain
    async with Store.open(daemon.state_dir) as store, CobotClient(settings.cobot) as cobot:
        jobs = _jobs(settings=settings, store=store, cobot={space: cobot}, sheets=sheets)
        [job] = [j for j in jobs if j.name == "subscriptions"]
        assert job.run_at_start
        assert job.trigger.interval == timedelta(minutes=7)
        await job.run()
        ids = assert_one_active_per_event(daemon)
        daemon.cobot.sim.deactivate(ids["updated_booking"])
        await job.run()
        check = (await store.meta.subscription_checks([space]))[space]
    sheets.close()
    assert check is not None
    assert check.summary == f"subscriptions: 1 created, 1 deleted, {len(ids) - 1} kept"
    again = assert_one_active_per_event(daemon)
    assert again["updated_booking"] != ids["updated_booking"]
    assert {e: i for e, i in again.items() if e != "updated_booking"} == {
        e: i for e, i in ids.items() if e != "updated_booking"
    }


def seed_foreign(daemon: Daemon) -> list[dict[str, Any]]:
    """Subscriptions that are not ours, for events the tests never trigger (no traffic)."""
    sim = daemon.cobot.sim
    return [
        sim.add_subscription("sent_invoice", "http://127.0.0.1:9/other-app/hook", app="other-app"),
        sim.add_subscription(
            "booking_has_ended", f"{daemon.url}/cobot/{ANOTHER_DEPLOYMENT}/booking_has_ended"
        ),
        sim.add_subscription("wrote_off_invoice", "http://127.0.0.1:9/zapier/hooks/123"),
    ]


def assert_untouched(daemon: Daemon, foreign: list[dict[str, Any]]) -> None:
    now = {s["id"]: s for s in daemon.cobot.sim.subscriptions()}
    for sub in foreign:
        assert now[sub["id"]]["callback_url"] == sub["callback_url"]
        assert now[sub["id"]]["active"]


def test_cli_lists_and_deletes_ours_only_with_secrets_masked(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon)
    foreign = seed_foreign(daemon)
    daemon.start()
    daemon.stop()
    daemon.start()
    ids = assert_one_active_per_event(daemon)
    assert_untouched(daemon, foreign)

    listing = daemon.cli("subscriptions", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["ID", "EVENT", "ACTIVE", "OURS", "CALLBACK", "URL"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    for event, sub_id in ids.items():
        assert rows[sub_id] == [sub_id, event, "yes", "yes", f"{daemon.url}/cobot/***/{event}"]
    assert rows[foreign[1]["id"]][1:] == [
        "booking_has_ended",
        "yes",
        "no",
        f"{daemon.url}/cobot/***/booking_has_ended",
    ]
    assert rows[foreign[2]["id"]][3:] == ["no", "http://127.0.0.1:9/zapier/hooks/123"]
    assert foreign[0]["id"] not in rows  # Cobot lists only this app's subscriptions
    assert len(rows) == len(ids) + 2
    assert "not subscribed" not in listing.stdout
    for secret in (WEBHOOK_SECRET, ANOTHER_DEPLOYMENT, daemon.cobot.token):
        assert secret not in listing.stdout + listing.stderr

    assert daemon.stop() == 0
    deletion = daemon.cli("subscriptions", "delete", "--all-ours")
    assert deletion.returncode == 0, deletion.stderr
    deleted = [line for line in deletion.stdout.splitlines() if line.startswith("deleted ")]
    assert len(deleted) == len(ids)
    assert deletion.stdout.rstrip().endswith(f"subscriptions: {len(ids)} deleted")
    assert WEBHOOK_SECRET not in deletion.stdout
    assert ours(daemon) == {}
    assert_untouched(daemon, foreign)
    assert len(daemon.cobot.sim.subscriptions()) == len(foreign)

    listing = daemon.cli("subscriptions", "list")
    assert "not subscribed (active, current secret) yet: created_membership" in listing.stdout


def test_event_removed_from_config_is_unsubscribed_and_answered_410(
    make_daemon: MakeDaemon,
) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    booking = sim.create("booking")
    settle(daemon)
    removed = assert_one_active_per_event(daemon)["updated_booking"]

    daemon.stop()
    bookings = daemon.sheet_config["Bookings"]
    bookings["events"] = [e for e in bookings["events"] if e != "updated_booking"]
    daemon.start()
    wait_until(lambda: "updated_booking" not in ours(daemon), timeout=20, what="unsubscribe")
    log = daemon.log_path.read_text()
    assert f"deleted subscription {removed} for updated_booking" in log
    assert "(event no longer configured)" in log
    assert_one_active_per_event(daemon)

    # Cobot may still hold one until the next check (or deliver a retry): it gets 410,
    # and Cobot deactivates a subscription whose callback answers 410.
    stale = sim.add_subscription("updated_booking", f"{daemon.callback_base}/updated_booking")
    sim.update("booking", booking["id"], title="Renamed after the config change")
    sim.wait_deliveries_idle(10)
    [delivery] = [d for d in sim.deliveries() if d.subscription_id == stale["id"]]
    assert delivery.status == 410
    assert not next(s for s in sim.subscriptions() if s["id"] == stale["id"])["active"]
    row = by_url(daemon.rows("Bookings"))[sim.url_for("booking", booking["id"])]
    assert row["Title"] == booking["title"]

    sync = daemon.cli("subscriptions", "sync")
    assert f"deleted subscription {stale['id']} for updated_booking" in sync.stdout
    assert "updated_booking" not in ours(daemon)


class Traffic:
    """Cobot activity from a background thread: members and bookings created and renamed."""

    def __init__(self, daemon: Daemon, limit: int = 400) -> None:
        self.sim = daemon.cobot.sim
        self.limit = limit
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            members: list[str] = []
            for step in range(self.limit):
                if self.stopped.wait(0.02):
                    return
                members.append(self.sim.create("membership")["id"])
                self.sim.create("booking", member=members[-1])
                if step % 3 == 0:
                    self.sim.update("membership", members[step // 2], name=f"Renamed {step}")
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(10)
        assert self.error is None, self.error


def acknowledged(deliveries: list[Delivery], secret: str | None = None) -> set[str]:
    return {
        d.body["url"]
        for d in deliveries
        if d.ok and (secret is None or f"/cobot/{secret}/" in d.callback_url)
    }


def test_secret_rotation_loses_no_webhook(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    # Cobot's retries, faster than life but slow enough to outlast the restart.
    sim.retry_time_scale = 1e-3
    with Traffic(daemon):
        wait_until(lambda: len(acknowledged(sim.deliveries())) >= 10, timeout=20, what="traffic")
        daemon.stop()
        daemon.secret, daemon.previous_secrets = NEW_SECRET, [WEBHOOK_SECRET]
        daemon.start()
        wait_until(
            lambda: len(acknowledged(sim.deliveries(), NEW_SECRET)) >= 10,
            timeout=20,
            what="deliveries to the new callback URLs",
        )
    settle(daemon)

    deliveries = sim.deliveries()
    assert [d for d in deliveries if d.status == 404] == []
    assert acknowledged(deliveries, WEBHOOK_SECRET) and acknowledged(deliveries, NEW_SECRET)
    # Deliveries that failed while the daemon restarted were retried on the old secret's
    # subscriptions, which the start-up check keeps: every change reached the sheet.
    rows = {**by_url(daemon.rows("Members")), **by_url(daemon.rows("Bookings"))}
    for kind in ("membership", "booking"):
        for obj in sim.objects(kind):
            assert sim.url_for(kind, obj["id"]) in rows, (kind, obj["id"])
    renamed = [m for m in sim.objects("membership") if m["name"].startswith("Renamed")]
    for member in renamed:
        assert rows[sim.url_for("membership", member["id"])]["Name"] == member["name"]
    old = [s for s in sim.subscriptions() if f"/cobot/{WEBHOOK_SECRET}/" in s["callback_url"]]
    assert old and all(s["active"] for s in old)

    # The next periodic check (the same reconcile as `subscriptions sync`) retires them.
    assert daemon.cli("subscriptions", "sync").returncode == 0
    assert_one_active_per_event(daemon)
    callbacks = [s["callback_url"] for s in sim.subscriptions()]
    assert all(url.startswith(f"{daemon.url}/cobot/{NEW_SECRET}/") for url in callbacks)
    logs = daemon.logs()
    assert WEBHOOK_SECRET not in logs and NEW_SECRET not in logs
    assert daemon.stop() == 0


def test_moving_to_several_spaces_takes_the_subscriptions_along(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    """The single form's callbacks give way to ones naming the space, a space added gets its
    own, each space's webhooks land as that space's rows, and the commands cover both."""
    members = {"resource": "membership", "events": MEMBER_EVENTS, "columns": {"Name": "name"}}
    daemon = fast_daemon(make_daemon, sheet_config={"Members": members}).start()
    assert set(assert_one_active_per_event(daemon)) == set(MEMBER_EVENTS)
    daemon.stop()
    daemon.extra_spaces["co-down"] = make_cobot_sim(rate_limits=False)
    daemon.start()

    def subscribed() -> dict[str, list[tuple[str, str, bool]]]:
        return {
            name: sorted(
                (s["event"], s["callback_url"], s["active"])
                for s in sandbox.sim.subscriptions(app=COBOT_APP)
            )
            for name, sandbox in daemon.spaces.items()
        }

    wanted = {
        name: sorted((e, f"{daemon.callback_base}/{name}/{e}", True) for e in MEMBER_EVENTS)
        for name in daemon.spaces
    }
    wait_until(lambda: subscribed() == wanted, timeout=20, what="each space's own callbacks")
    created = {
        name: sandbox.sim.url_for("membership", sandbox.sim.create("membership")["id"])
        for name, sandbox in daemon.spaces.items()
    }
    for sandbox in daemon.spaces.values():
        sandbox.sim.wait_deliveries_idle(30)
    settle(daemon)
    rows = by_url(daemon.rows("Members"))
    assert {name: rows[url]["Space"] for name, url in created.items()} == {
        "co-up": "co-up",
        "co-down": "co-down",
    }

    listing = daemon.cli("subscriptions", "list")
    assert listing.returncode == 0, listing.stderr
    up, down = listing.stdout.split("\n\nSpace co-down:\n")
    assert up.startswith("Space co-up:\n")
    assert f"{daemon.url}/cobot/***/co-up/created_membership" in up
    assert f"{daemon.url}/cobot/***/co-down/created_membership" in down
    assert "not subscribed" not in listing.stdout

    def summaries() -> dict[str, str | None]:
        status = json.loads(daemon.cli("status", "--json").stdout)
        return {
            n: (shown["subscriptions"] or {}).get("summary")
            for n, shown in status["spaces"].items()
        }

    wait_until(
        lambda: (
            summaries()
            == {
                "co-up": "subscriptions: 2 created, 2 deleted, 0 kept",
                "co-down": "subscriptions: 2 created, 0 deleted, 0 kept",
            }
        ),
        timeout=20,
        what="each space's check in `syncd status`",
    )
    assert daemon.stop() == 0
