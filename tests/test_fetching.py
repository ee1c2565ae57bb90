"""Smart fetching: a burst of one kind costs as few Cobot requests as the API allows, counted
in the simulator's request log; a URL a listing lacks is still fetched alone (404 = gone)."""

from __future__ import annotations

import math

from syncd.cobot.client import MAX_LIST_URL_LENGTH, MEMBERSHIP_LISTS_PER_MINUTE, Fetched
from syncd.cobot.fetching import fetch_many
from syncd.intake.resources import ResourceRef
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.resync_support import UNTHROTTLED, Wiring, list_requests, single_fetches, wired
from tests.test_e2e_pipeline import by_url

INVOICE_BURST = 120


def quick_daemon(make_daemon: MakeDaemon) -> Daemon:
    return make_daemon(cobot_knobs={"rate_limits": False}, cobot_options=UNTHROTTLED)


async def flush_webhooks(wiring: Wiring, event: str, kind: str, urls: list[str]) -> None:
    """Store one webhook per URL and let the worker process them in one flush."""
    for url in urls:
        await wiring.store.enqueue(event, url, kind, {"url": url})
    await wiring.worker().flush(await wiring.store.claim_due(1000))


async def test_invoice_burst_costs_one_request_per_chunk_of_ids(make_daemon: MakeDaemon) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    invoices = [sim.create("invoice", member=member["id"], emit=False) for _ in range(120)]
    gone = sim.delete("invoice", invoices.pop()["id"], emit=False)
    urls = [sim.url_for("invoice", i["id"]) for i in [*invoices, gone]]

    async with wired(daemon) as wiring:
        await flush_webhooks(wiring, "updated_invoice", "invoice", urls)

    prefix = f"{daemon.cobot.url}/api/invoices?ids="
    per_request = (MAX_LIST_URL_LENGTH - len(prefix)) // (len(gone["id"]) + len("%2C"))
    by_ids = list_requests(daemon, "/api/invoices")
    assert all("ids" in request.query for request in by_ids)
    # Chunked (one URL would be far too long), and never more than one request per chunk.
    assert 1 < len(by_ids) <= math.ceil(INVOICE_BURST / per_request)
    # Only the invoice the listing lacked is fetched alone, and its 404 flags it deleted.
    assert [r.path for r in single_fetches(daemon, "/api/invoices/")] == [
        f"/api/invoices/{gone['id']}"
    ]
    rows = by_url(daemon.rows("Invoices"))
    assert set(rows) == set(urls)
    for invoice in invoices:
        row = rows[sim.url_for("invoice", invoice["id"])]
        assert row["Number"] == invoice["formatted_invoice_number"]
        assert row["Deleted"] == ""
    assert rows[sim.url_for("invoice", gone["id"])]["Deleted"] != ""


async def test_membership_burst_is_one_listing_plus_a_fetch_for_the_missing(
    make_daemon: MakeDaemon,
) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    members = [sim.create("membership", emit=False) for _ in range(6)]
    renamed = sim.update("membership", members[0]["id"], name="Renamed Member", emit=False)
    gone = sim.delete("membership", members[-1]["id"], emit=False)
    urls = [sim.url_for("membership", m["id"]) for m in members]

    async with wired(daemon) as wiring:
        await flush_webhooks(wiring, "updated_membership_details", "membership", urls)

    listings = list_requests(daemon, "/api/memberships")
    assert [r.query for r in listings] == [{"all": "true"}]
    assert [r.path for r in single_fetches(daemon, "/api/memberships/")] == [
        f"/api/memberships/{gone['id']}"
    ]
    rows = by_url(daemon.rows("Members"))
    assert rows[urls[0]]["Name"] == renamed["name"]
    for url, member in zip(urls[1:-1], members[1:-1], strict=True):
        assert (rows[url]["Name"], rows[url]["Deleted"]) == (member["name"], "")
    assert rows[urls[-1]]["Deleted"] != ""


async def test_memberships_are_fetched_singly_when_few_or_when_listings_run_out(
    make_daemon: MakeDaemon,
) -> None:
    daemon = quick_daemon(make_daemon)
    sim = daemon.cobot.sim
    refs = [
        ResourceRef("membership", m["id"], sim.url_for("membership", m["id"]))
        for m in (sim.create("membership", emit=False) for _ in range(3))
    ]
    async with wired(daemon) as wiring:
        two = await fetch_many(wiring.cobot, refs[:2])
        assert list_requests(daemon, "/api/memberships") == []
        assert len(single_fetches(daemon, "/api/memberships/")) == 2
        for _ in range(MEMBERSHIP_LISTS_PER_MINUTE + 1):
            results = await fetch_many(wiring.cobot, refs)
    # Cobot allows 6 listings a minute: the seventh burst falls back to single fetches.
    assert len(list_requests(daemon, "/api/memberships")) == MEMBERSHIP_LISTS_PER_MINUTE
    assert len(single_fetches(daemon, "/api/memberships/")) == 2 + len(refs)
    for found in (two, results):
        assert all(isinstance(r, Fetched) and r.status == "found" for r in found.values())
