"""Fetching many resources in few Cobot requests, for the worker's bursts.

Cobot limits requests, not resources (60 per minute per user). So when many events of one
kind wait, they are fetched together:

- invoices: ``GET /api/invoices?ids=a,b,c`` answers a whole chunk in one request (chunks keep
  the URL short; see ``CobotClient.list_invoices_by_ids``);
- memberships: one ``GET /api/memberships?all=true`` answers any number of them, but that
  listing has its own limit of 6 per minute and a large answer, so it is used only for
  ``MEMBERSHIP_LISTING_MIN`` or more memberships and only while a listing slot is free;
- everything else, and any URL a listing did not return, is fetched alone: a single fetch's
  404 is what says the resource is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.cobot.client import CobotClient, Fetched
from syncd.core.errors import SyncdError
from syncd.intake.resources import ResourceRef

#: From this many memberships on, one listing is worth its large answer and listing slot.
MEMBERSHIP_LISTING_MIN = 3

FetchResult = Fetched | SyncdError
Listing = Callable[[], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class FetchPlan:
    """Which resources come from a listing (by kind) and which are fetched one by one."""

    listed: dict[str, list[ResourceRef]]
    singles: list[ResourceRef]


def plan_fetches(cobot: CobotClient, refs: Iterable[ResourceRef]) -> FetchPlan:
    """How to fetch these resources in the fewest requests Cobot's limits allow now."""
    by_kind: dict[str, list[ResourceRef]] = defaultdict(list)
    for ref in {ref.url: ref for ref in refs}.values():
        by_kind[ref.kind].append(ref)
    listed: dict[str, list[ResourceRef]] = {}
    if len(by_kind["invoice"]) > 1:
        listed["invoice"] = by_kind.pop("invoice")
    members = by_kind["membership"]
    if len(members) >= MEMBERSHIP_LISTING_MIN and cobot.membership_listing_budget.delay() == 0:
        listed["membership"] = by_kind.pop("membership")
    return FetchPlan(listed, [ref for group in by_kind.values() for ref in group])


async def fetch_many(
    cobot: CobotClient,
    refs: Iterable[ResourceRef],
    *,
    concurrency: int = 4,
    urgent: bool = True,
) -> dict[str, FetchResult]:
    """Each resource by URL, or the error that kept it from being fetched."""
    plan = plan_fetches(cobot, refs)
    listings: dict[str, Listing] = {
        "invoice": lambda: cobot.list_invoices_by_ids(
            [ref.id for ref in plan.listed["invoice"]], urgent=urgent
        ),
        "membership": lambda: cobot.list_memberships(all=True, urgent=urgent),
    }
    results: dict[str, FetchResult] = {}
    leftovers = await asyncio.gather(
        *(_from_listing(results, group, listings[kind]) for kind, group in plan.listed.items())
    )
    singles = [*plan.singles, *(ref for group in leftovers for ref in group)]
    await _fetch_each(cobot, singles, results, concurrency, urgent)
    return results


async def _from_listing(
    results: dict[str, FetchResult], refs: list[ResourceRef], listing: Listing
) -> list[ResourceRef]:
    """Fill ``results`` from one listing; return the refs it did not contain.

    The items count as observed when the listing was asked for: no later than Cobot answered.
    """
    observed_at = time.time()
    try:
        items = await listing()
    except SyncdError as exc:
        results.update((ref.url, exc) for ref in refs)
        return []
    by_id = {str(item.get("id")): item for item in items}
    missing = []
    for ref in refs:
        item = by_id.get(ref.id)
        if item is None:
            missing.append(ref)
        else:
            results[ref.url] = Fetched(ref=ref, status="found", data=item, observed_at=observed_at)
    return missing


async def _fetch_each(
    cobot: CobotClient,
    refs: Sequence[ResourceRef],
    results: dict[str, FetchResult],
    concurrency: int,
    urgent: bool,
) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def fetch(ref: ResourceRef) -> None:
        async with semaphore:
            try:
                results[ref.url] = await cobot.fetch(ref, urgent=urgent)
            except SyncdError as exc:
                results[ref.url] = exc

    await asyncio.gather(*(fetch(ref) for ref in refs))
