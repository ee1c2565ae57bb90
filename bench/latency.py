"""Lone changes: how long one change, alone in the pipeline, takes to reach the sheet.

The emulators answer as slowly as the real APIs (Cobot about 150 ms, Google about 250 ms,
each answer drawn from half to one and a half times that), so the figure can be set beside
its floor: one Cobot GET plus one Sheets write, the least any design needs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.report import Figure, percentile, secs
from bench.scenarios import ApiUse, Sizes, keep_watching, wait_drained, warm_up, watch_until
from bench.sender import new_session, post_one
from bench.world import (
    COBOT_LATENCY_SECONDS,
    GOOGLE_LATENCY_SECONDS,
    LATENCY_SPREAD,
    SheetWatcher,
    open_world,
    update_event,
)

#: Pause between one change showing and the next being made: the pipeline is idle again.
QUIET_SECONDS = 1.0
#: Longest one lone change may take to show before the scenario gives up on it.
CHANGE_TIMEOUT = 60.0
#: The 1.5x the floor a lone change may take at the median.
TARGET_RATIO = 1.5


def lone(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(_lone(workdir, sizes))


async def _lone(workdir: Path, sizes: Sizes) -> list[Figure]:
    """Update a membership, then an invoice, ..., each once the one before is in the sheet."""
    section = f"lone changes ({sizes.lone_changes}, realistic latency)"
    with open_world(workdir, realistic=True) as world:
        watcher = SheetWatcher(world)
        await warm_up(world, watcher)
        kinds = ("membership", "invoice")
        urls = [world.new_resource(kind, f"lone {kind}") for kind in kinds]
        latencies: list[float] = []
        start = time.time()
        stop = asyncio.Event()
        watching = asyncio.create_task(keep_watching(watcher, stop))
        async with new_session(2) as session:
            for index in range(sizes.lone_changes):
                kind, url = kinds[index % 2], urls[index % 2]
                version = index // 2 + 1
                if version == 1:
                    event = f"created_{kind}"
                else:
                    event = update_event(kind)
                    world.set_version(kind, url, f"lone {kind}", version)
                ack = await post_one(session, world.webhook(event, url), index)
                if not await watch_until(watcher, [(url, version)], CHANGE_TIMEOUT):
                    raise RuntimeError(f"change {index} never showed; see the daemon log")
                latencies.append(watcher.seen[(url, version)] - ack.acked_at)
                await asyncio.sleep(QUIET_SECONDS)
        stop.set()
        await watching
        await wait_drained(world, sizes.settle_timeout)
        use = ApiUse.between(world, start, time.time())
    floor = COBOT_LATENCY_SECONDS + GOOGLE_LATENCY_SECONDS
    p50 = percentile(latencies, 50)
    ratio = p50 / floor
    spread = f"each answer {1 - LATENCY_SPREAD:g}x to {1 + LATENCY_SPREAD:g}x"
    return [
        Figure(
            section,
            "ack -> value visible p50 / p90 / max",
            " / ".join(secs(v) for v in (p50, percentile(latencies, 90), max(latencies))),
        ),
        Figure(
            section,
            "floor: one Cobot GET + one Sheets write",
            f"{secs(floor)} ({COBOT_LATENCY_SECONDS * 1000:.0f} ms + "
            f"{GOOGLE_LATENCY_SECONDS * 1000:.0f} ms, {spread})",
        ),
        Figure(
            section,
            "p50 / floor",
            f"{ratio:.2f}x",
            f"<= {TARGET_RATIO}x",
            ratio <= TARGET_RATIO,
        ),
        *use.figures(section, len(latencies), len(latencies), burst=False),
    ]
