"""The webhook sender: Cobot's delivery bodies and retry policy, on the server's event loop.

Cobot POSTs `{"url": ...}` (deletions embed the object too), never follows redirects, retries
a failed delivery with growing intervals, and deactivates the subscription on 410 or after the
last retry. Tests send events from their own thread, so deliveries are handed to the loop with
`call_soon_threadsafe` and counted until they end, which lets a test wait for quiet.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

import aiohttp
from aiohttp import web

from syncd.sandbox.cobot.shapes import JSON, money
from syncd.sandbox.cobot.subscriptions import Subscriptions

# Waits between the 11 attempts (first send + 10 retries): growing, about 20 hours in total.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    30, 60, 120, 300, 600, 1800, 3600, 7200, 18000, 40290,
)  # fmt: skip

DeletedInvoiceForm = Literal["top_level", "nested"]


class DeliveryKnobs(Protocol):
    """The simulator's attributes that shape webhook bodies and retries."""

    deleted_invoice_form: DeletedInvoiceForm
    retry_schedule: tuple[float, ...]
    retry_time_scale: float
    delivery_timeout_seconds: float


@dataclass(frozen=True)
class Delivery:
    """One POST attempt of a webhook (status None when the connection failed or timed out)."""

    event: str
    subscription_id: str
    callback_url: str
    body: JSON
    attempt: int
    status: int | None
    error: str | None
    time: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def webhook_body(event: str, url: str, obj: JSON | None, invoice_form: DeletedInvoiceForm) -> JSON:
    """`{"url"}`, or for deletions the object too, in the shapes Cobot sends."""
    if obj is not None and event == "deleted_booking":
        return {"url": url, "booking": deleted_booking_payload(obj)}
    if obj is not None and event == "deleted_membership":
        return {"url": url, "membership": obj}
    if obj is not None and event == "deleted_invoice":
        invoice = {**obj, "url": url}
        return invoice if invoice_form == "top_level" else {"url": url, "invoice": invoice}
    return {"url": url}


def deleted_booking_payload(booking: Mapping[str, Any]) -> JSON:
    """The `booking` object of a deleted_booking webhook: a subset, with price as a string."""
    keys = ("id", "from", "to", "title", "comments", "resource", "membership", "units")
    payload = {key: booking.get(key) for key in keys}
    payload["price"] = money(Decimal(str(booking.get("price") or 0)))
    payload["currency"] = booking.get("currency")
    payload["tax_rate"] = booking.get("tax_rate")
    return payload


class WebhookSender:
    """Delivers events to the subscriptions that want them and records every attempt.

    `start` and `stop` belong to the aiohttp app's startup and cleanup: deliveries need the
    server's loop and an HTTP session, and stopping cancels the ones still waiting to retry.
    """

    def __init__(self, knobs: DeliveryKnobs, subscriptions: Subscriptions) -> None:
        self._knobs = knobs
        self._subscriptions = subscriptions
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._deliveries: list[Delivery] = []
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, event: str, url: str, obj: JSON | None) -> int:
        """Queue one delivery per matching active subscription; returns how many."""
        body = webhook_body(event, url, obj, self._knobs.deleted_invoice_form)
        targets = self._subscriptions.targets(event, obj)
        with self._lock:
            loop = self._loop
            if targets and loop is None:
                raise RuntimeError("start the server before sending webhooks")
            self._pending += len(targets)
        for sub in targets:
            assert loop is not None
            loop.call_soon_threadsafe(self._start_delivery, sub.id, event, sub.callback_url, body)
        return len(targets)

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def wait_idle(self, timeout: float) -> None:
        """Block until no delivery is queued, in flight or waiting to retry (never on the loop)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"{self._pending} webhook deliveries still pending")

    async def start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession()
        self._loop = asyncio.get_running_loop()

    async def stop(self, app: web.Application) -> None:
        self._loop = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _start_delivery(self, sub_id: str, event: str, callback_url: str, body: JSON) -> None:
        if self._loop is None or self._session is None:
            self._delivery_finished()
            return
        task = self._loop.create_task(self._deliver(sub_id, event, callback_url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, sub_id: str, event: str, callback_url: str, body: JSON) -> None:
        """Cobot's retry policy: 2xx ends it; 410 or the last failure deactivates the hook."""
        try:
            attempts = len(self._knobs.retry_schedule) + 1
            for attempt in range(1, attempts + 1):
                if not self._subscriptions.is_active(sub_id):
                    return
                status, error = await self._post(callback_url, body)
                delivery = Delivery(
                    event, sub_id, callback_url, body, attempt, status, error, time.time()
                )
                with self._lock:
                    self._deliveries.append(delivery)
                if delivery.ok:
                    return
                if status == 410 or attempt == attempts:
                    self._subscriptions.retire(sub_id)
                    return
                wait = self._knobs.retry_schedule[attempt - 1] * self._knobs.retry_time_scale
                await asyncio.sleep(wait)
        finally:
            self._delivery_finished()

    async def _post(self, url: str, body: JSON) -> tuple[int | None, str | None]:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self._knobs.delivery_timeout_seconds)
        try:
            async with self._session.post(
                url, json=body, allow_redirects=False, timeout=timeout
            ) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _delivery_finished(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()
