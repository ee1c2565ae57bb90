"""A closed-loop webhook sender: C concurrent senders post N webhooks and time every ack.

Run as its own process (``python -m bench.sender``) for the intake figures, so the sender
never shares an event loop, or the GIL, with the server it measures; it prints one JSON object.
The same coroutine serves the in-process senders of the end-to-end scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

#: Called just before a webhook is posted (e.g. to change the resource it names in Cobot).
BeforeSend = Callable[[int], None]


@dataclass(frozen=True)
class Webhook:
    """One POST: the callback URL (secret and event in its path) and the JSON body."""

    url: str
    body: bytes


@dataclass(frozen=True)
class Ack:
    """When one webhook was sent and answered (time.time() clock), and the status."""

    index: int
    sent_at: float
    acked_at: float
    status: int

    @property
    def latency(self) -> float:
        return self.acked_at - self.sent_at


async def post_all(
    webhooks: Sequence[Webhook],
    concurrency: int,
    before_send: BeforeSend | None = None,
    session: aiohttp.ClientSession | None = None,
) -> list[Ack]:
    """Post every webhook in order with ``concurrency`` senders; returns the acks by index.

    Each sender posts its next webhook as soon as its previous one is answered (a closed
    loop), over keep-alive connections, as a retrying Cobot does under load.
    """
    owned = session is None
    session = session or new_session(concurrency)
    acks: list[Ack | None] = [None] * len(webhooks)
    cursor = iter(range(len(webhooks)))

    async def sender() -> None:
        for index in cursor:
            if before_send is not None:
                before_send(index)
            acks[index] = await post_one(session, webhooks[index], index)

    try:
        await asyncio.gather(*(sender() for _ in range(min(concurrency, len(webhooks)))))
    finally:
        if owned:
            await session.close()
    return [ack for ack in acks if ack is not None]


async def post_one(session: aiohttp.ClientSession, webhook: Webhook, index: int) -> Ack:
    """One POST; a refused connection or timeout counts as status 0."""
    sent = time.time()
    status = 0
    try:
        async with session.post(
            webhook.url, data=webhook.body, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        pass
    return Ack(index, sent, time.time(), status)


def new_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, force_close=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=["Accept-Encoding"],
    )


async def paced(count: int, interval: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call ``send(i)`` every ``interval`` seconds, on schedule even if a send is slow."""
    start = time.monotonic()
    tasks = []
    for index in range(count):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index)))
    await asyncio.gather(*tasks)


async def warmed_up(webhooks: Sequence[Webhook], concurrency: int) -> tuple[list[int], list[Ack]]:
    """Open every sender's connection with one untimed webhook, then time the rest.

    So the timed acks measure the receiver, not the kernel accepting a storm of connections
    (the same for the daemon and the ceiling). Returns the warm-up statuses and the acks.
    """
    async with new_session(concurrency) as session:
        first = webhooks[:concurrency]
        warm = await asyncio.gather(*(post_one(session, w, -1) for w in first))
        acks = await post_all(webhooks[concurrency:], concurrency, session=session)
    return [ack.status for ack in warm], acks


def main(argv: Sequence[str] | None = None) -> int:
    """Read webhooks as JSON lines ``[url, body]`` on stdin, post them, print the acks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    webhooks = [Webhook(url, body.encode()) for url, body in map(json.loads, sys.stdin)]
    warm, acks = asyncio.run(warmed_up(webhooks, args.concurrency))
    output = {"warm_up": warm, "acks": [[a.sent_at, a.acked_at, a.status] for a in acks]}
    json.dump(output, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
