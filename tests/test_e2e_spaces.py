"""Several Cobot spaces in one daemon, end to end (`syncd run` against one Cobot simulator per
space and the Sheets emulator).

Every webhook lands in its own space's row with the right `Space`; spaces that share a token
share Cobot's per-user limit (the simulators count it together, as Cobot does); a webhook naming
another space's host on a space's callback is refused and never fetched; a worksheet narrowed
with `spaces:` holds only its space.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from syncd.sandbox.cobot.limits import SlidingWindowLimiter
from tests.fixtures_cobot import CobotSandbox, MakeCobotSim
from tests.fixtures_daemon import Daemon, MakeDaemon, wait_until
from tests.test_e2e_pipeline import by_url, settle

pytestmark = pytest.mark.e2e

OTHER_TOKEN = "test-cobot-token-other-0123456789"
MEMBERS: dict[str, Any] = {
    "resource": "membership",
    "events": ["created_membership", "updated_membership_details", "deleted_membership"],
    "columns": {"Name": "name", "Email": "email", "Where": {"template": "{{ space }}"}},
}
BOOKINGS: dict[str, Any] = {
    "resource": "booking",
    "events": ["created_booking", "updated_booking", "deleted_booking"],
    "columns": {"Title": "title", "Member": {"template": "{{ member.name }}"}},
}


def spaces_daemon(
    make_daemon: MakeDaemon,
    spaces: dict[str, CobotSandbox],
    sheets: dict[str, Any],
    **options: Any,
) -> Daemon:
    """A daemon serving ``spaces`` (subdomain -> its simulator), each with its sim's token."""
    first = next(iter(spaces.values()))
    daemon = make_daemon(cobot=first, sheet_config=sheets, **options)
    # Known to the fixture, so that start() waits for every space's subscriptions.
    daemon.extra_spaces.update(list(spaces.items())[1:])
    daemon.extra["cobot"] = {
        "spaces": [
            {"subdomain": name, "access_token": sandbox.token, "base_url": sandbox.url}
            for name, sandbox in spaces.items()
        ],
        "timeout_seconds": 5,
        **daemon.cobot_options,
    }
    return daemon


def settle_all(daemon: Daemon, spaces: dict[str, CobotSandbox]) -> None:
    for sandbox in spaces.values():
        sandbox.sim.wait_deliveries_idle(60)
    settle(daemon)


def fast_sim(make_cobot_sim: MakeCobotSim, token: str | None = None, seed: int = 1) -> CobotSandbox:
    """A simulator without rate limits; each space gets its own seed, so its own ids."""
    knobs: dict[str, Any] = {"rate_limits": False, "seed": seed}
    if token is not None:
        knobs["tokens"] = {token: "syncd-test"}
    return make_cobot_sim(**knobs)


@pytest.fixture
def two_spaces(make_cobot_sim: MakeCobotSim) -> dict[str, CobotSandbox]:
    """co-up and co-down, each its own simulator with its own token and its own ids."""
    return {
        "co-up": fast_sim(make_cobot_sim),
        "co-down": fast_sim(make_cobot_sim, OTHER_TOKEN, seed=2),
    }


def test_every_webhook_lands_in_its_own_spaces_rows(
    make_daemon: MakeDaemon, two_spaces: dict[str, CobotSandbox]
) -> None:
    spaces = two_spaces
    sheets = {
        "Members": MEMBERS,
        "Bookings": BOOKINGS,
        "Berlin members": {**MEMBERS, "spaces": ["co-up"]},
    }
    daemon = spaces_daemon(
        make_daemon, spaces, sheets, cobot_options={"requests_per_minute": 6000}
    ).start()
    created: dict[str, list[str]] = {}
    for name, sandbox in spaces.items():
        sim = sandbox.sim
        members = [sim.create("membership", name=f"{name} member {n}") for n in range(3)]
        sim.create("booking", member=members[0]["id"], title=f"{name} booking")
        created[name] = [sim.url_for("membership", m["id"]) for m in members]
    settle_all(daemon, spaces)

    members = by_url(daemon.rows("Members"))
    assert set(members) == {url for urls in created.values() for url in urls}
    for name, urls in created.items():
        for url in urls:
            assert members[url]["Space"] == name
            assert members[url]["Where"] == name
            assert members[url]["Name"].startswith(f"{name} member")
    assert set(by_url(daemon.rows("Berlin members"))) == set(created["co-up"])
    assert "Space" in daemon.rows("Berlin members")[0]
    bookings = {row["Title"]: row for row in daemon.rows("Bookings")}
    assert {t: (r["Space"], r["Member"]) for t, r in bookings.items()} == {
        "co-up booking": ("co-up", "co-up member 0"),
        "co-down booking": ("co-down", "co-down member 0"),
    }
    # Each space's resources were read from its own simulator only (singly or listed).
    for name, sandbox in spaces.items():
        others = {url.rsplit("/", 1)[1] for n, urls in created.items() if n != name for url in urls}
        paths = [r.path for r in sandbox.sim.requests() if r.method == "GET"]
        assert paths and not [p for p in paths if p.rsplit("/", 1)[-1] in others], paths
    assert daemon.stop() == 0


def test_a_url_of_another_spaces_host_is_refused_and_never_fetched(
    make_daemon: MakeDaemon, two_spaces: dict[str, CobotSandbox]
) -> None:
    spaces = two_spaces
    daemon = spaces_daemon(make_daemon, spaces, {"Members": MEMBERS}).start()
    other = spaces["co-down"].sim
    member = other.create("membership", emit=False)
    foreign = other.url_for("membership", member["id"])

    body = json.dumps({"url": foreign}).encode()
    callback = f"{daemon.callback_base}/co-up/updated_membership_details"
    request = urllib.request.Request(callback, body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 422
    # The same URL on its own space's callback is accepted.
    own = f"{daemon.callback_base}/co-down/updated_membership_details"
    with urllib.request.urlopen(urllib.request.Request(own, body), timeout=10) as answer:
        assert answer.status == 202
    settle_all(daemon, spaces)

    fetches = [
        r.path
        for sandbox in spaces.values()
        for r in sandbox.sim.requests()
        if r.path == f"/api/memberships/{member['id']}"
    ]
    assert fetches == [f"/api/memberships/{member['id']}"]  # once: the accepted one
    (row,) = daemon.rows("Members")
    assert (row["URL"], row["Space"]) == (foreign, "co-down")
    assert daemon.stop() == 0


def test_spaces_sharing_a_token_share_cobots_per_user_limit(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    """Two spaces read with one token, their simulators counting that token together (Cobot's
    limit is per user): together they stay within it; a third space has a token of its own."""
    limit = 12
    shared = SlidingWindowLimiter()
    knobs = {"requests_per_window": limit, "rate_window_seconds": 60.0}
    spaces = {
        "co-up": make_cobot_sim(**knobs, shared_limiter=shared),
        "co-down": make_cobot_sim(**knobs, shared_limiter=shared, seed=2),
        "co-side": make_cobot_sim(**knobs, tokens={OTHER_TOKEN: "syncd-test"}, seed=3),
    }
    daemon = spaces_daemon(
        make_daemon,
        spaces,
        {"Bookings": {**BOOKINGS, "columns": {"Title": "title"}}},
        cobot_options={"requests_per_minute": limit},
    ).start()
    # Each space: its subscriptions, then one fetch per booking (bookings are never listed).
    for n in range(8):
        for sandbox in spaces.values():
            sandbox.sim.create("booking", title=f"booking {n}")
    pair = [spaces["co-up"], spaces["co-down"]]
    wait_until(
        lambda: sum(len(s.sim.requests()) for s in pair) >= limit,
        timeout=30,
        what="the shared token's budget to be spent",
    )
    time.sleep(3)  # long enough for two unshared budgets to overspend the token

    statuses = Counter(r.status for s in spaces.values() for r in s.sim.requests())
    assert statuses[429] == 0, statuses
    assert sum(len(s.sim.requests()) for s in pair) == limit
    # Both spaces spent the token: neither had it to itself.
    assert all(s.sim.requests() for s in pair)
    assert spaces["co-side"].sim.requests()  # its own token, its own budget
    daemon.kill()  # its flush waits for the budget; a drain would only wait for it longer


def test_a_revoked_token_pauses_only_its_own_space(
    make_daemon: MakeDaemon, two_spaces: dict[str, CobotSandbox]
) -> None:
    spaces = two_spaces
    daemon = spaces_daemon(make_daemon, spaces, {"Members": MEMBERS}).start()
    down = spaces["co-down"].sim
    grants = dict(down.tokens)
    down.tokens.clear()  # the token was revoked at co-down: Cobot answers 401
    up_urls = [
        spaces["co-up"].sim.url_for("membership", spaces["co-up"].sim.create("membership")["id"])
        for _ in range(3)
    ]
    gone = down.url_for("membership", down.create("membership", emit=False)["id"])
    body = json.dumps({"url": gone}).encode()
    callback = f"{daemon.callback_base}/co-down/created_membership"
    with urllib.request.urlopen(urllib.request.Request(callback, body), timeout=10) as answer:
        assert answer.status == 202

    def paused() -> bool:
        status, body = daemon.health()
        return status == 503 and "Cobot (co-down)" in body.get("paused", {})

    wait_until(paused, timeout=30, what="co-down to be paused", check=daemon._alive)
    wait_until(
        lambda: set(up_urls) <= set(by_url(daemon.rows("Members"))),
        timeout=30,
        what="co-up's rows",
        check=daemon._alive,
    )
    _, health = daemon.health()
    assert list(health["paused"]) == ["Cobot (co-down)"], health
    assert 401 in {r.status for r in down.requests()}
    down.tokens.update(grants)
    daemon.kill()
