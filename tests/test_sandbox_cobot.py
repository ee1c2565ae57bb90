"""The Cobot simulator behaves like Cobot where the daemon depends on it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

import syncd
from syncd.sandbox.cobot.catalogue import EVENTS, membership_update_events
from syncd.sandbox.cobot.generator import CobotDataGenerator
from syncd.sandbox.cobot.samples import HOSTILE_VALUES
from syncd.sandbox.cobot.server import AppToken, CobotSimulator
from syncd.sandbox.cobot.webhooks import DEFAULT_RETRY_SCHEDULE
from syncd.sandbox.servers import ServerThread
from tests.cobot_docs import documented_events
from tests.fixtures_cobot import COBOT_APP, CobotSandbox, MakeCobotSim

TODAY = date(2025, 6, 15)
SAMPLES = Path(syncd.__file__).parent / "samples"


def call(sandbox: CobotSandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {sandbox.token}", **kwargs.pop("headers", {})}
    return requests.request(method, sandbox.url + path, headers=headers, timeout=10, **kwargs)


def subscribe(sandbox: CobotSandbox, event: str, callback_url: str) -> dict[str, Any]:
    response = call(
        sandbox, "POST", "/api/subscriptions", json={"event": event, "callback_url": callback_url}
    )
    assert response.status_code == 201, response.text
    return response.json()


class Receiver:
    """A webhook endpoint on loopback that answers from a script of statuses (then 200)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, Any, float]] = []
        self.statuses: deque[int] = deque()
        self.delay = 0.0
        #: Hold each request until this many are in flight at once (0 = answer at once).
        self.hold_until_in_flight = 0
        self.in_flight = self.peak_in_flight = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = ServerThread(self.app)

    def url(self, path: str = "/hook") -> str:
        return self.server.url + path

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append((request.path, await request.json(), time.monotonic()))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    while self.in_flight < self.hold_until_in_flight:
                        await asyncio.sleep(0.01)
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        status = self.statuses.popleft() if self.statuses else 200
        return web.Response(status=status, headers={"Location": self.url("/redirected")})

    def bodies(self, path: str = "/hook") -> list[Any]:
        return [body for hit_path, body, _ in self.hits if hit_path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    endpoint.server.start()
    yield endpoint
    endpoint.server.stop()


@pytest.fixture
def sandbox(make_cobot_sim: MakeCobotSim) -> CobotSandbox:
    """A simulator with a fixed `today`, so date windows in assertions are stable."""
    return make_cobot_sim(today=TODAY)


# == subscriptions API =====================================================================


def test_create_subscription_answers_201_in_the_documented_shape(sandbox: CobotSandbox) -> None:
    created = subscribe(sandbox, "confirmed_membership", "http://my.server.example/callback")

    assert set(created) == {"id", "event", "url", "active", "callback_url"}
    assert created["url"] == f"{sandbox.url}/api/subscriptions/{created['id']}"
    assert created["active"] is True
    assert created["event"] == "confirmed_membership"
    shown = call(sandbox, "GET", f"/api/subscriptions/{created['id']}")
    assert shown.status_code == 200
    assert shown.json() == created


def test_filters_are_echoed(sandbox: CobotSandbox) -> None:
    body = {
        "event": "created_booking",
        "callback_url": "https://x.example/cb",
        "filters": {"resource_id": "r1"},
    }
    created = call(sandbox, "POST", "/api/subscriptions", json=body).json()
    assert created["filters"] == {"resource_id": "r1"}


def test_duplicate_is_409_until_cobot_deactivates_the_first(sandbox: CobotSandbox) -> None:
    first = subscribe(sandbox, "created_invoice", "http://cb.example/x")
    body = {"event": "created_invoice", "callback_url": "http://cb.example/x"}

    again = call(sandbox, "POST", "/api/subscriptions", json=body)
    assert again.status_code == 409
    assert "errors" in again.json()

    sandbox.sim.deactivate(first["id"])
    renewed = call(sandbox, "POST", "/api/subscriptions", json=body)
    assert renewed.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"event": "made_up_event", "callback_url": "http://cb.example/x"},
        {"event": "created_invoice", "callback_url": "/relative/path"},
        {"event": "created_invoice", "callback_url": "ftp://cb.example/x"},
        {"event": "created_invoice"},
        {"callback_url": "http://cb.example/x"},
        {"event": "created_invoice", "callback_url": "http://cb.example/x", "filters": [1]},
    ],
)
def test_invalid_subscription_is_422(sandbox: CobotSandbox, body: dict[str, Any]) -> None:
    response = call(sandbox, "POST", "/api/subscriptions", json=body)
    assert response.status_code == 422
    assert response.json()["errors"]
    assert sandbox.sim.subscriptions() == []


def test_non_json_subscription_body_is_422(sandbox: CobotSandbox) -> None:
    response = call(sandbox, "POST", "/api/subscriptions", data=b"event=created_invoice")
    assert response.status_code == 422


def test_every_documented_event_is_known() -> None:
    assert documented_events() == EVENTS


def test_delete_subscription_is_204_then_404(sandbox: CobotSandbox) -> None:
    created = subscribe(sandbox, "created_booking", "http://cb.example/x")

    assert call(sandbox, "DELETE", f"/api/subscriptions/{created['id']}").status_code == 204
    assert call(sandbox, "DELETE", f"/api/subscriptions/{created['id']}").status_code == 404
    assert call(sandbox, "GET", f"/api/subscriptions/{created['id']}").status_code == 404


def test_listing_shows_only_the_apps_own_subscriptions(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(tokens={"token-a": "app-a", "token-b": "app-b"})
    sim = sandbox.sim
    own = sim.add_subscription("created_membership", "http://a.example/cb", app="app-a")
    stale = sim.add_subscription("deleted_membership", "http://a.example/cb", app="app-a")
    other = sim.add_subscription("created_membership", "http://b.example/cb", app="app-b")
    sim.deactivate(stale["id"])

    listed = call(sandbox, "GET", "/api/subscriptions").json()

    assert [(sub["id"], sub["active"]) for sub in listed] == [
        (own["id"], True),
        (stale["id"], False),
    ]
    assert call(sandbox, "GET", f"/api/subscriptions/{other['id']}").status_code == 404
    assert call(sandbox, "DELETE", f"/api/subscriptions/{other['id']}").status_code == 404
    assert {sub["app"] for sub in sim.subscriptions()} == {"app-a", "app-b"}


# == webhook sender ========================================================================


def test_event_delivers_the_resource_url(sandbox: CobotSandbox, receiver: Receiver) -> None:
    subscribe(sandbox, "created_membership", receiver.url())

    member = sandbox.sim.create("membership")
    sandbox.sim.wait_deliveries_idle(5)

    assert receiver.bodies() == [{"url": f"{sandbox.url}/api/memberships/{member['id']}"}]
    [delivery] = sandbox.sim.deliveries()
    assert (delivery.event, delivery.attempt, delivery.status, delivery.ok) == (
        "created_membership",
        1,
        200,
        True,
    )
    fetched = call(sandbox, "GET", f"/api/memberships/{member['id']}")
    assert fetched.json() == member


def test_deleted_booking_embeds_the_booking(sandbox: CobotSandbox, receiver: Receiver) -> None:
    subscribe(sandbox, "deleted_booking", receiver.url())
    booking = sandbox.sim.create("booking", emit=False)

    sandbox.sim.delete("booking", booking["id"])
    sandbox.sim.wait_deliveries_idle(5)

    [body] = receiver.bodies()
    assert body["url"] == booking["url"] == f"{sandbox.url}/api/bookings/{booking['id']}"
    assert body["booking"]["id"] == booking["id"]
    assert body["booking"]["resource"] == booking["resource"]
    assert Decimal(body["booking"]["price"]) == Decimal(str(booking["price"]))
    sample = json.loads((SAMPLES / "deleted_booking.json").read_text())
    assert set(body["booking"]) == set(sample["booking"])
    assert call(sandbox, "GET", f"/api/bookings/{booking['id']}").status_code == 404


def test_deleted_membership_embeds_the_full_membership(
    sandbox: CobotSandbox, receiver: Receiver
) -> None:
    subscribe(sandbox, "deleted_membership", receiver.url())
    member = sandbox.sim.create("membership", emit=False)

    sandbox.sim.delete("membership", member["id"])
    sandbox.sim.wait_deliveries_idle(5)

    assert receiver.bodies() == [
        {"url": f"{sandbox.url}/api/memberships/{member['id']}", "membership": member}
    ]


@pytest.mark.parametrize("form", ["top_level", "nested"])
def test_deleted_invoice_body_forms(
    make_cobot_sim: MakeCobotSim, receiver: Receiver, form: str
) -> None:
    sandbox = make_cobot_sim(deleted_invoice_form=form)
    subscribe(sandbox, "deleted_invoice", receiver.url())
    invoice = sandbox.sim.create("invoice", emit=False)

    sandbox.sim.delete("invoice", invoice["id"])
    sandbox.sim.wait_deliveries_idle(5)

    [body] = receiver.bodies()
    if form == "top_level":
        assert body == invoice
        assert body["url"] == f"{sandbox.url}/api/invoices/{invoice['id']}"
    else:
        assert body == {"url": invoice["url"], "invoice": invoice}


def test_failures_are_retried_with_growing_intervals_then_deactivate(
    make_cobot_sim: MakeCobotSim, receiver: Receiver
) -> None:
    sandbox = make_cobot_sim(retry_schedule=(0.02, 0.05, 0.1), retry_time_scale=1.0)
    sub = subscribe(sandbox, "created_invoice", receiver.url())
    receiver.statuses.extend([500] * 10)

    sandbox.sim.create("invoice")
    sandbox.sim.wait_deliveries_idle(5)

    times = [moment for _, _, moment in receiver.hits]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 4
    assert all(gap >= wanted * 0.9 for gap, wanted in zip(gaps, (0.02, 0.05, 0.1), strict=True))
    assert gaps[0] < gaps[1] < gaps[2]
    assert [d.attempt for d in sandbox.sim.deliveries()] == [1, 2, 3, 4]
    assert call(sandbox, "GET", f"/api/subscriptions/{sub['id']}").json()["active"] is False
    assert sandbox.sim.emit("created_invoice", "http://anything.example/x") == 0


def test_default_schedule_is_ten_growing_retries_over_about_20_hours(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    assert len(DEFAULT_RETRY_SCHEDULE) == 10
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(set(DEFAULT_RETRY_SCHEDULE))
    assert sum(DEFAULT_RETRY_SCHEDULE) == pytest.approx(20 * 3600, rel=0.05)
    sub = subscribe(cobot_sim, "created_booking", receiver.url())
    receiver.statuses.extend([503] * 20)

    cobot_sim.sim.create("booking")
    cobot_sim.sim.wait_deliveries_idle(5)

    assert len(receiver.hits) == 11
    assert [s["active"] for s in cobot_sim.sim.subscriptions() if s["id"] == sub["id"]] == [False]


def test_recovery_before_the_last_retry_keeps_the_subscription(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    subscribe(cobot_sim, "created_booking", receiver.url())
    receiver.statuses.extend([500, 502])

    cobot_sim.sim.create("booking")
    cobot_sim.sim.wait_deliveries_idle(5)

    assert [d.status for d in cobot_sim.sim.deliveries()] == [500, 502, 200]
    assert cobot_sim.sim.subscriptions()[0]["active"] is True


def test_410_deactivates_at_once(cobot_sim: CobotSandbox, receiver: Receiver) -> None:
    sub = subscribe(cobot_sim, "created_booking", receiver.url())
    receiver.statuses.append(410)

    cobot_sim.sim.create("booking")
    cobot_sim.sim.wait_deliveries_idle(5)

    assert len(receiver.hits) == 1
    assert call(cobot_sim, "GET", f"/api/subscriptions/{sub['id']}").json()["active"] is False


def test_redirects_are_failures_and_never_followed(
    make_cobot_sim: MakeCobotSim, receiver: Receiver
) -> None:
    sandbox = make_cobot_sim(retry_schedule=(0.01,))
    subscribe(sandbox, "created_booking", receiver.url())
    receiver.statuses.extend([302, 302])

    sandbox.sim.create("booking")
    sandbox.sim.wait_deliveries_idle(5)

    assert receiver.bodies("/redirected") == []
    assert [d.status for d in sandbox.sim.deliveries()] == [302, 302]
    assert sandbox.sim.subscriptions()[0]["active"] is False


def test_timeouts_and_refused_connections_are_failures(
    make_cobot_sim: MakeCobotSim, receiver: Receiver
) -> None:
    sandbox = make_cobot_sim(retry_schedule=(0.01,), delivery_timeout_seconds=0.1)
    receiver.delay = 0.3
    subscribe(sandbox, "created_booking", receiver.url())
    subscribe(sandbox, "created_booking", "http://127.0.0.1:9/closed")

    sandbox.sim.create("booking")
    sandbox.sim.wait_deliveries_idle(5)

    deliveries = sandbox.sim.deliveries()
    assert len(deliveries) == 4
    assert all(d.status is None and d.error for d in deliveries)
    assert any("Timeout" in (d.error or "") for d in deliveries)


def test_sends_to_several_subscriptions_concurrently(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    # Each delivery is held until all three are in flight: sent one after another, the first
    # would wait alone until the barrier gives up.
    receiver.hold_until_in_flight = 3
    for n in range(3):
        subscribe(cobot_sim, "created_checkin", receiver.url(f"/hook{n}"))

    cobot_sim.sim.create("check_in")
    cobot_sim.sim.wait_deliveries_idle(30)

    assert len(receiver.hits) == 3
    assert receiver.peak_in_flight == 3


def test_resource_id_filter_limits_booking_events(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    body = {
        "event": "created_booking",
        "callback_url": receiver.url(),
        "filters": {"resource_id": "r0000000000000000000000000000002"},
    }
    assert call(cobot_sim, "POST", "/api/subscriptions", json=body).status_code == 201

    hall = {"id": "r0000000000000000000000000000002", "name": "Event Hall"}
    room = {"id": "r0000000000000000000000000000001", "name": "Meeting Room A"}
    in_hall = cobot_sim.sim.create("booking", resource=hall)
    cobot_sim.sim.create("booking", resource=room)
    cobot_sim.sim.wait_deliveries_idle(5)

    assert receiver.bodies() == [{"url": in_hall["url"]}]


def test_emit_by_hand_sends_any_url(cobot_sim: CobotSandbox, receiver: Receiver) -> None:
    subscribe(cobot_sim, "created_membership", receiver.url())
    cobot_sim.sim.add_subscription("created_membership", receiver.url("/other"), app="other")

    queued = cobot_sim.sim.emit("created_membership", "https://evil.example/api/memberships/1")
    cobot_sim.sim.wait_deliveries_idle(5)

    assert queued == 2
    assert (
        receiver.bodies()
        == receiver.bodies("/other")
        == [{"url": "https://evil.example/api/memberships/1"}]
    )


def test_deleted_guest_account_is_announced_as_deleted_admin(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    subscribe(cobot_sim, "created_guest_account", receiver.url("/created"))
    subscribe(cobot_sim, "deleted_admin", receiver.url("/deleted"))

    account = cobot_sim.sim.create("guest_account")
    cobot_sim.sim.delete("guest_account", account["id"])
    cobot_sim.sim.wait_deliveries_idle(5)

    url = f"{cobot_sim.url}/api/guest_accounts/{account['id']}"
    assert receiver.bodies("/created") == receiver.bodies("/deleted") == [{"url": url}]


def test_drop_in_pass_event_points_at_api2(cobot_sim: CobotSandbox, receiver: Receiver) -> None:
    subscribe(cobot_sim, "created_drop_in_pass", receiver.url())

    document = cobot_sim.sim.create("drop_in_pass", name="Eve Visitor")
    cobot_sim.sim.wait_deliveries_idle(5)

    pass_id = document["data"]["id"]
    assert receiver.bodies() == [{"url": f"{cobot_sim.url}/drop_in_passes/{pass_id}"}]
    fetched = call(cobot_sim, "GET", f"/drop_in_passes/{pass_id}")
    assert fetched.headers["Content-Type"].startswith("application/vnd.api+json")
    assert fetched.json()["data"]["attributes"]["name"] == "Eve Visitor"
    assert set(fetched.json()["data"]["attributes"]["price"]) >= {"net", "gross", "currency"}


@pytest.mark.parametrize(
    ("changes", "events"),
    [
        ({"canceled_to": "2025/07/31"}, ["canceled_membership"]),
        ({"name": "New Name", "phone": "+49 1"}, ["updated_membership_details"]),
        ({"confirmed_at": "2025/06/15 10:00:00 +0000"}, ["confirmed_membership"]),
        ({"payment_method": {"name": "Cash", "automated": False}}, ["updated_payment_method"]),
        (
            {"plan": {"name": "Hot Desk"}, "email": "new@example.org"},
            ["changed_membership_plan", "updated_membership_details"],
        ),
    ],
)
def test_membership_changes_pick_cobots_events(changes: dict[str, Any], events: list[str]) -> None:
    before = CobotDataGenerator(3, today=TODAY).membership(state="unconfirmed")
    assert membership_update_events(before, {**before, **changes}) == events


def test_update_sends_the_event_for_what_changed(
    cobot_sim: CobotSandbox, receiver: Receiver
) -> None:
    subscribe(cobot_sim, "uncanceled_membership", receiver.url())
    member = cobot_sim.sim.create("membership", state="canceled", emit=False)

    updated = cobot_sim.sim.update("membership", member["id"], canceled_to=None)
    cobot_sim.sim.wait_deliveries_idle(5)

    assert updated["canceled_to"] is None
    assert receiver.bodies() == [{"url": f"{cobot_sim.url}/api/memberships/{member['id']}"}]


# == auth, rate limits, faults =============================================================


def test_missing_or_wrong_token_is_401(cobot_sim: CobotSandbox) -> None:
    missing = requests.get(cobot_sim.url + "/api/subscriptions", timeout=5)
    wrong = call(cobot_sim, "GET", "/api/subscriptions", headers={"Authorization": "Bearer no"})

    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["errors"]
    assert [(r.has_auth, r.status) for r in cobot_sim.sim.requests()] == [(False, 401), (True, 401)]


def test_missing_scope_is_403(make_cobot_sim: MakeCobotSim) -> None:
    grant = AppToken(COBOT_APP, frozenset({"read_memberships"}))
    sandbox = make_cobot_sim(tokens={"narrow": grant})

    assert call(sandbox, "GET", "/api/memberships").status_code == 200
    assert call(sandbox, "GET", "/api/subscriptions").status_code == 403


def test_61st_request_in_a_minute_is_429_with_retry_after(cobot_sim: CobotSandbox) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {cobot_sim.token}"
        statuses = [
            session.get(cobot_sim.url + "/api/guest_accounts").status_code for _ in range(60)
        ]
        limited = session.get(cobot_sim.url + "/api/subscriptions")

    assert statuses == [200] * 60
    assert limited.status_code == 429
    assert limited.json()["errors"]
    assert 55 <= int(limited.headers["Retry-After"]) <= 60
    assert cobot_sim.sim.request_counts() == {cobot_sim.token: 61}


def test_limits_are_per_token(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(tokens={"a": "app", "b": "app"}, requests_per_window=2)
    for _ in range(2):
        call(sandbox, "GET", "/api/guest_accounts")

    assert call(sandbox, "GET", "/api/guest_accounts").status_code == 429
    other = call(sandbox, "GET", "/api/guest_accounts", headers={"Authorization": "Bearer b"})
    assert other.status_code == 200


def test_membership_listing_allows_six_per_minute(cobot_sim: CobotSandbox) -> None:
    statuses = [call(cobot_sim, "GET", "/api/memberships").status_code for _ in range(7)]

    assert statuses == [200] * 6 + [429]
    assert (
        call(
            cobot_sim, "GET", "/api/memberships/cancellations?from=2025-01-01&to=2025-02-01"
        ).status_code
        == 200
    )
    assert call(cobot_sim, "GET", "/api/guest_accounts").status_code == 200


def test_window_knob_frees_slots_after_the_window(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(requests_per_window=3, rate_window_seconds=0.3)
    assert [call(sandbox, "GET", "/api/check_ins").status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    time.sleep(0.35)
    assert call(sandbox, "GET", "/api/check_ins").status_code == 200


def test_rate_limits_can_be_switched_off(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(rate_limits=False, memberships_list_per_window=1)
    assert {call(sandbox, "GET", "/api/memberships").status_code for _ in range(5)} == {200}


def test_fail_next_and_error_rate(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim()
    booking = sandbox.sim.create("booking")
    path = f"/api/bookings/{booking['id']}"
    sandbox.sim.fail_next(2, 503)

    assert [call(sandbox, "GET", path).status_code for _ in range(3)] == [503, 503, 200]
    sandbox.sim.error_rate, sandbox.sim.error_statuses = 1.0, (502,)
    assert call(sandbox, "GET", path).status_code == 502
    assert call(sandbox, "GET", "/api/subscriptions").status_code == 200


def test_latency_knob_delays_answers(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(latency_seconds=3.0)
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    # Answered at once, the request would not time out.
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{sandbox.url}/api/guest_accounts", headers=headers, timeout=(5, 0.5))
    sandbox.sim.latency_seconds = 0.0
    assert call(sandbox, "GET", "/api/guest_accounts").status_code == 200


# == lookups and list endpoints ============================================================


def test_unknown_and_deleted_objects_are_404_json(cobot_sim: CobotSandbox) -> None:
    check_in = cobot_sim.sim.create("check_in", emit=False)
    cobot_sim.sim.delete("check_in", check_in["id"])

    for path in (f"/api/check_ins/{check_in['id']}", "/api/invoices/nope", "/api/nothing"):
        response = call(cobot_sim, "GET", path)
        assert response.status_code == 404
        assert response.json()["errors"]


def test_invoices_by_ids_and_by_creation_window(sandbox: CobotSandbox) -> None:
    sim = sandbox.sim
    may = sim.create("invoice", created=date(2025, 5, 31), emit=False)
    june = sim.create("invoice", created=date(2025, 6, 1), emit=False)
    late_june = sim.create("invoice", created=date(2025, 6, 30), emit=False)

    by_ids = call(sandbox, "GET", f"/api/invoices?ids={late_june['id']},missing,{may['id']}")
    in_june = call(sandbox, "GET", "/api/invoices?from=2025-06-01&to=2025-06-30")

    assert [i["id"] for i in by_ids.json()] == [late_june["id"], may["id"]]
    assert [i["id"] for i in in_june.json()] == [june["id"], late_june["id"]]
    assert in_june.json()[0]["url"] == f"{sandbox.url}/api/invoices/{june['id']}"
    assert call(sandbox, "GET", "/api/invoices").status_code == 422


def book(sim: CobotSimulator, start: str, end: str) -> dict[str, Any]:
    return sim.create("booking", emit=False, **{"from": start, "to": end})


@pytest.mark.parametrize(
    "query",
    [
        "from=2025-06-10&to=2025-06-10",
        "from=2025-06-10T00:00:00Z&to=2025-06-11T00:00:00%2B00:00",
        "from=2025-06-10 00:00 %2B0000&to=2025-06-10 23:59 %2B0000",
        "from=2025/06/10&to=2025/06/10",
    ],
)
def test_bookings_overlapping_the_window(sandbox: CobotSandbox, query: str) -> None:
    spanning = book(sandbox.sim, "2025/06/09 22:00:00 +0000", "2025/06/10 01:00:00 +0000")
    inside = book(sandbox.sim, "2025/06/10 09:00:00 +0000", "2025/06/10 10:00:00 +0000")
    book(sandbox.sim, "2025/06/09 08:00:00 +0000", "2025/06/09 10:00:00 +0000")
    book(sandbox.sim, "2025/06/11 00:00:00 +0000", "2025/06/11 02:00:00 +0000")

    found = call(sandbox, "GET", f"/api/bookings?{query}")

    assert found.status_code == 200, found.text
    assert [b["id"] for b in found.json()] == [spanning["id"], inside["id"]]


@pytest.mark.parametrize(
    "query",
    ["", "from=2025-06-01", "from=yesterday&to=2025-06-02", "from=2025-06-05&to=2025-06-01"],
)
def test_bookings_need_a_valid_window(sandbox: CobotSandbox, query: str) -> None:
    assert call(sandbox, "GET", f"/api/bookings?{query}").status_code == 422


def test_max_window_days_rejects_larger_windows(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(max_window_days=31)
    ok = call(sandbox, "GET", "/api/work_sessions?from=2025-05-01&to=2025-05-31")
    too_big = call(sandbox, "GET", "/api/invoices?from=2025-05-01&to=2025-06-01")
    assert (ok.status_code, too_big.status_code) == (200, 422)
    assert "31" in too_big.json()["errors"]


def test_membership_listings(sandbox: CobotSandbox) -> None:
    sim = sandbox.sim
    current = sim.create("membership", emit=False)
    pending = sim.create("membership", state="unconfirmed", emit=False)
    ended = sim.create("membership", canceled_to="2025/06/01", emit=False)
    leaving = sim.create("membership", canceled_to="2025/07/31", emit=False)

    default = call(sandbox, "GET", "/api/memberships").json()
    everyone = call(sandbox, "GET", "/api/memberships?all=true&attributes=id,name").json()
    canceled = call(sandbox, "GET", "/api/memberships/cancellations?from=2025-06-01&to=2025-06-30")

    assert [m["id"] for m in default] == [current["id"], leaving["id"]]
    assert everyone == [
        {"id": m["id"], "name": m["name"]} for m in (current, pending, ended, leaving)
    ]
    assert [m["id"] for m in canceled.json()] == [ended["id"]]


def test_check_in_listings(sandbox: CobotSandbox) -> None:
    sim = sandbox.sim
    today = sim.create("check_in", emit=False)
    earlier = sim.create("check_in", day=date(2025, 6, 2), emit=False)

    todays = call(sandbox, "GET", "/api/check_ins").json()
    june = call(sandbox, "GET", "/api/work_sessions?from=2025-06-01&to=2025-06-14").json()

    assert [c["id"] for c in todays] == [today["id"]]
    assert [c["id"] for c in june] == [earlier["id"]]


def test_guest_accounts_list(cobot_sim: CobotSandbox) -> None:
    accounts = [cobot_sim.sim.create("guest_account", emit=False) for _ in range(2)]
    assert call(cobot_sim, "GET", "/api/guest_accounts").json() == accounts
    assert set(accounts[0]) == {"id", "login", "expires_after"}


# == generated data ========================================================================


def test_seed_space_is_deterministic_and_listable(make_cobot_sim: MakeCobotSim) -> None:
    sandbox = make_cobot_sim(today=TODAY, rate_limits=False)
    counts = sandbox.sim.seed_space()

    assert counts == {"membership": 500, "invoice": 3000, "booking": 2000, "check_in": 1000}
    everything = call(sandbox, "GET", "/api/invoices?from=2023-01-01&to=2025-12-31").json()
    assert len(everything) == 3000
    numbers = [invoice["invoice_number"] for invoice in everything]
    assert numbers == sorted(numbers)
    states = call(sandbox, "GET", "/api/memberships?all=true").json()
    assert any(m["confirmed_at"] is None for m in states)
    assert any(m["canceled_to"] for m in states)
    assert any(m["user"] is None for m in states)


def test_generated_space_depends_only_on_seed_and_today() -> None:
    def space(seed: int) -> dict[str, list[dict[str, Any]]]:
        generator = CobotDataGenerator(seed, today=TODAY)
        return generator.space(members=20, invoices=30, bookings=20, check_ins=10).objects

    assert space(1) == space(1)
    assert space(1)["invoice"][0]["id"] != space(2)["invoice"][0]["id"]


def _assert_same_shape(sample: Any, generated: Any, where: str = "") -> None:
    """Every sample field exists with the same JSON type, recursively (null matches anything)."""
    if sample is None or generated is None:
        return
    if isinstance(sample, dict):
        assert isinstance(generated, dict), where
        assert set(sample) <= set(generated), f"{where}: missing {set(sample) - set(generated)}"
        for key, item in sample.items():
            _assert_same_shape(item, generated[key], f"{where}.{key}")
    elif isinstance(sample, list):
        if sample and generated:
            _assert_same_shape(sample[0], generated[0], where + "[]")
    else:
        assert type(sample) is type(generated), where


@pytest.mark.parametrize(
    ("sample", "build"),
    [
        ("membership", lambda gen: gen.membership()),
        ("invoice", lambda gen: gen.invoice()),
        ("booking", lambda gen: gen.booking()),
        # `time_pass` is there only when a time pass was used, as Cobot documents it.
        (
            "check_in",
            lambda gen: next(c for c in (gen.check_in() for _ in range(50)) if "time_pass" in c),
        ),
        ("guest_account", lambda gen: gen.guest_account()),
        ("admin", lambda gen: gen.admin()),
        ("check_in_token", lambda gen: gen.check_in_token()),
        ("drop_in_pass", lambda gen: gen.drop_in_pass()),
    ],
)
def test_generated_objects_have_the_shipped_sample_shapes(sample: str, build: Any) -> None:
    shipped = json.loads((SAMPLES / f"{sample}.json").read_text())
    for seed in range(5):
        _assert_same_shape(shipped, build(CobotDataGenerator(seed, today=TODAY)), sample)


def test_all_shipped_samples_parse() -> None:
    names = {path.stem for path in SAMPLES.glob("*.json")}
    assert names == {
        "membership",
        "canceled_membership",
        "invoice",
        "booking",
        "check_in",
        "guest_account",
        "admin",
        "check_in_token",
        "drop_in_pass",
        "deleted_booking",
        "deleted_membership",
        "deleted_invoice",
    }
    deleted_invoice = json.loads((SAMPLES / "deleted_invoice.json").read_text())
    assert deleted_invoice["url"].endswith(deleted_invoice["id"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_invoice_totals_add_up(seed: int) -> None:
    invoice = CobotDataGenerator(seed, today=TODAY).invoice()
    net = sum(Decimal(item["total_amount"]) for item in invoice["items"])
    tax = sum(Decimal(item["total_tax_amount"]) for item in invoice["items"])
    assert Decimal(invoice["total_amount_without_taxes"]) == net
    assert Decimal(invoice["total_amount"]) == net + tax
    assert Decimal(invoice["taxes"][0]["amount"]) == tax
    assert invoice["paid"] == (invoice["paid_status"] == "paid")


def test_hostile_values_only_on_request() -> None:
    calm = CobotDataGenerator(1, today=TODAY)
    assert not any(calm.membership()["name"] in HOSTILE_VALUES for _ in range(50))

    member = CobotDataGenerator(1, today=TODAY).membership(hostile=True)
    assert member["name"] in HOSTILE_VALUES
    assert member["phone"] == "+1 555"
    assert CobotDataGenerator(1, today=TODAY, hostile_rate=1.0).booking()["title"] in (
        HOSTILE_VALUES
    )


# == command line ==========================================================================

CLI_SCRIPT = """
import argparse, sys
from syncd.sandbox.cobot.cli import add_arguments, run
parser = argparse.ArgumentParser()
add_arguments(parser)
sys.exit(run(parser.parse_args(sys.argv[1:])))
"""


def test_cli_serves_seeded_data_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI_SCRIPT,
            "--token",
            "cli-token",
            "--seed-members",
            "5",
            "--seed-invoices",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=Path(syncd.__file__).parents[1],
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = re.search(r"http://\S+", first_line)
        assert url, first_line
        headers = {"Authorization": "Bearer cli-token"}
        listed = requests.get(url[0] + "/api/memberships?all=true", headers=headers, timeout=5)
        assert len(listed.json()) == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_emitting_before_the_server_runs_is_an_error() -> None:
    sim = CobotSimulator()
    sim.add_subscription("created_admin", "http://cb.example/x")
    with pytest.raises(RuntimeError):
        sim.create("admin")
    sim.wait_deliveries_idle(0)
