"""Steady streams: webhooks at a constant rate, and how long each change takes to show.

What a stream costs Cobot depends on what it is made of, because Cobot limits requests, not
resources (60 a minute per user): invoices are fetched many per request (``ids=``), but every
other resource one request each, memberships included (their listing is allowed 6 times a
minute). The rates a space sustains for long come from invoicing: an invoice run creates an
invoice per member, and payments mark them paid. So the steady streams are an invoice run
with a member change every tenth event; a third stream, half of it new memberships, shows
where Cobot's quota itself is the bound (bench/NOTES.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Figure, percentile, secs
from bench.scenarios import ApiUse, Sizes, keep_watching, wait_drained, warm_up, watch_until
from bench.sender import Ack, new_session, paced, post_one
from bench.world import SheetWatcher, World, open_world, update_event

#: The longest an event may take from acknowledgement to its row, at the 99th percentile.
TARGET_P99_SECONDS = 3.0


@dataclass
class Change:
    """One change made in Cobot: the event to send, and the version of the row it shows."""

    event: str
    url: str
    version: int


@dataclass
class InvoiceRun:
    """Every tenth event a new membership; of the others, one in three marks an invoice
    created a few events earlier as paid, the rest are new invoices."""

    world: World
    unpaid: deque[str] = field(default_factory=deque)

    def change(self, index: int) -> Change:
        if index % 10 == 9:
            return _created(self.world, "membership", index)
        if index % 3 == 2 and len(self.unpaid) >= 3:
            url = self.unpaid.popleft()
            self.world.set_version("invoice", url, f"steady {url}", 2)
            return Change(update_event("invoice"), url, 2)
        change = _created(self.world, "invoice", index)
        self.unpaid.append(change.url)
        return change


@dataclass
class NewMembersAndInvoices:
    """Alternately a new membership and a new invoice."""

    world: World

    def change(self, index: int) -> Change:
        return _created(self.world, ("membership", "invoice")[index % 2], index)


def _created(world: World, kind: str, index: int) -> Change:
    return Change(f"created_{kind}", world.new_resource(kind, f"steady {index}"), 1)


Mix = Callable[[World], InvoiceRun | NewMembersAndInvoices]


def steady(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(_steady(workdir, sizes, 1, InvoiceRun, "an invoice run"))


def steady3(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(_steady(workdir, sizes, 3, InvoiceRun, "an invoice run"))


def steady_members(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(
        _steady(workdir, sizes, 1, NewMembersAndInvoices, "half new memberships", target=False)
    )


async def _steady(
    workdir: Path, sizes: Sizes, rate: int, mix: Mix, what: str, target: bool = True
) -> list[Figure]:
    """``rate`` changes per second, made of ``mix``, with the emulators answering as slowly as
    the real APIs; ``target``: whether the p99 target applies (a stream Cobot's quota can
    carry)."""
    section = f"steady {rate}/s, {what} ({sizes.steady_seconds} s, realistic latency)"
    with open_world(workdir, realistic=True) as world:
        watcher = SheetWatcher(world)
        await warm_up(world, watcher)
        stream = mix(world)
        acks: dict[tuple[str, int], Ack] = {}
        start = time.time()
        async with new_session(8) as session:

            async def send(index: int) -> None:
                change = stream.change(index)
                webhook = world.webhook(change.event, change.url)
                acks[change.url, change.version] = await post_one(session, webhook, index)

            stop = asyncio.Event()
            watching = asyncio.create_task(keep_watching(watcher, stop))
            await paced(sizes.steady_seconds * rate, 1 / rate, send)
            stop.set()
            await watching
        shown = await watch_until(watcher, list(acks), sizes.settle_timeout)
        await wait_drained(world, sizes.settle_timeout)
        use = ApiUse.between(world, start, time.time())
    latencies = [
        watcher.seen[key] - ack.acked_at for key, ack in acks.items() if key in watcher.seen
    ]
    p99 = percentile(latencies, 99)
    figures = [
        Figure(
            section,
            "ack -> row visible p50 / p99",
            f"{secs(percentile(latencies, 50))} / {secs(p99)}"
            + ("" if shown else f" ({len(acks) - len(latencies)} rows never shown)"),
            f"p99 <= {TARGET_P99_SECONDS:.0f} s" if target else "bound by Cobot's quota",
            shown and p99 <= TARGET_P99_SECONDS if target else None,
        )
    ]
    return figures + use.figures(section, len(acks), len(acks), burst=False)
