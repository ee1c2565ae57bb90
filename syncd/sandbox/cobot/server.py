"""A local Cobot: the v1 REST API, API 2 lookups, the subscriptions API and the webhook sender.

The daemon may not reach the internet in tests, yet it must be exercised against Cobot's real
behaviour: bearer auth and scopes, the 60/min (6/min for the membership list) rate limits,
bare-array list endpoints filtered by date windows, 404s for deleted objects, and a webhook
sender that retries with growing intervals, never follows redirects, deactivates a
subscription on 410 or after the last retry, and embeds the object in deletion bodies.

Tests drive the simulator from their own thread while its aiohttp app runs on a ServerThread
loop, so every mutation goes through one lock, and webhook deliveries are handed to the loop
with `call_soon_threadsafe`. Stored objects are never changed in place (updates replace them),
which lets handlers serialize shallow views outside the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import math
import random
import re
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from yarl import URL

from syncd.config.settings import inspect_settings
from syncd.sandbox.cobot.data import (
    JSON,
    CobotDataGenerator,
    cobot_date,
    deleted_booking_payload,
)
from syncd.sandbox.servers import ServerThread, listen_address_of

DEFAULT_TOKEN = "sandbox-cobot-token"
DEFAULT_APP = "cobot-syncd"
DEFAULT_SPACE_ID = "8bd91251-70a0-574a-8fc3-cbff2999472e"
API2_CONTENT_TYPE = "application/vnd.api+json"

# Waits between the 11 attempts (first send + 10 retries): growing, about 20 hours in total.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    30, 60, 120, 300, 600, 1800, 3600, 7200, 18000, 40290,
)  # fmt: skip

_MEMBERSHIP_EVENTS = (
    "connected_user", "updated_connected_user", "updated_custom_field", "confirmed_membership",
    "created_membership", "deleted_membership", "canceled_membership", "uncanceled_membership",
    "reactivated_membership", "membership_cancellation_date_reached", "updated_payment_method",
    "changed_membership_plan", "membership_plan_change_date_reached",
    "updated_membership_details", "updated_membership_picture", "membership_added_time_passes",
    "membership_removed_time_passes",
)  # fmt: skip
_BOOKING_EVENTS = (
    "created_booking", "updated_booking", "booking_will_begin", "booking_has_ended",
    "deleted_booking",
)  # fmt: skip
_INVOICE_EVENTS = (
    "created_invoice", "updated_invoice", "wrote_off_invoice", "requested_e_invoice",
    "sent_invoice", "deleted_invoice",
)  # fmt: skip

# Every event in Cobot's webhook docs -> the kind its URL points at. deleted_admin is also sent
# for removed guest accounts (Cobot's docs say so); events about objects this simulator does not
# store map to None and can only be emitted with an explicit URL.
EVENT_KINDS: dict[str, str | None] = {
    **dict.fromkeys(_MEMBERSHIP_EVENTS, "membership"),
    **dict.fromkeys(_BOOKING_EVENTS, "booking"),
    **dict.fromkeys(_INVOICE_EVENTS, "invoice"),
    **dict.fromkeys(("created_admin", "deleted_admin"), "admin"),
    **dict.fromkeys(("created_checkin", "created_checkout"), "check_in"),
    **dict.fromkeys(("created_checkin_token", "deleted_checkin_token"), "check_in_token"),
    "created_drop_in_pass": "drop_in_pass",
    "created_guest_account": "guest_account",
    "changed_space_subscription": "space_subscription",
    "published_event": None,
    "created_event_attendance": None,
}
EVENTS = frozenset(EVENT_KINDS)

DeletedInvoiceForm = Literal["top_level", "nested"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EmitChoice = bool | str | Sequence[str]


@dataclass(frozen=True)
class Kind:
    """One resource type: where it lives, the scope that reads it, its default events."""

    name: str
    route: str
    scope: str
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    api2: bool = False
    carries_url: bool = False

    def path(self, object_id: str) -> str:
        return self.route.replace("{id}", object_id)

    def id_of(self, obj: Mapping[str, Any]) -> str:
        return str(obj["data"]["id"] if self.api2 else obj["id"])

    @property
    def path_pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.escape(self.route).replace(r"\{id\}", "(?P<id>[^/]+)") + "$")


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("membership", "/api/memberships/{id}", "read_memberships",
             ("created_membership",), ("updated_membership_details",), ("deleted_membership",)),
        Kind("invoice", "/api/invoices/{id}", "read_invoices",
             ("created_invoice",), ("updated_invoice",), ("deleted_invoice",), carries_url=True),
        Kind("booking", "/api/bookings/{id}", "read_bookings",
             ("created_booking",), ("updated_booking",), ("deleted_booking",), carries_url=True),
        Kind("check_in", "/api/check_ins/{id}", "read_check_ins",
             ("created_checkin",), ("created_checkout",)),
        Kind("guest_account", "/api/guest_accounts/{id}", "read_guest_accounts",
             ("created_guest_account",), deleted=("deleted_admin",)),
        Kind("admin", "/api/admins/{id}", "read_admins",
             ("created_admin",), deleted=("deleted_admin",)),
        Kind("check_in_token", "/api/check_in_tokens/{id}", "read_check_ins",
             ("created_checkin_token",), deleted=("deleted_checkin_token",)),
        Kind("drop_in_pass", "/drop_in_passes/{id}", "read_drop_in_passes",
             ("created_drop_in_pass",), api2=True),
        Kind("space_subscription", "/spaces/{id}/subscription", "read_spaces",
             updated=("changed_space_subscription",), api2=True),
    )
}  # fmt: skip
_KIND_PATTERNS = [(kind, kind.path_pattern) for kind in KINDS.values()]
_MEMBER_KINDS = frozenset({"invoice", "booking", "check_in", "check_in_token"})

# Membership field changes that Cobot reports with a specific event: (field, event, applies).
_MEMBERSHIP_TRANSITIONS: tuple[tuple[str, str, Callable[[Any, Any], bool]], ...] = (
    ("confirmed_at", "confirmed_membership", lambda old, new: old is None and new is not None),
    ("canceled_to", "canceled_membership", lambda old, new: new is not None),
    ("canceled_to", "uncanceled_membership", lambda old, new: old is not None and new is None),
    ("plan", "changed_membership_plan", lambda old, new: True),
    ("upcoming_plan", "changed_membership_plan", lambda old, new: new is not None),
    ("payment_method", "updated_payment_method", lambda old, new: True),
    ("picture", "updated_membership_picture", lambda old, new: True),
    ("user", "connected_user", lambda old, new: old is None and new is not None),
    ("user", "updated_connected_user", lambda old, new: old is not None and new is not None),
)
_TRANSITION_FIELDS = frozenset(field for field, _, _ in _MEMBERSHIP_TRANSITIONS)


def membership_update_events(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The events Cobot sends for a membership change; plain detail edits give the default."""
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    events = [
        event
        for key, event, applies in _MEMBERSHIP_TRANSITIONS
        if key in changed and applies(before.get(key), after.get(key))
    ]
    if changed - _TRANSITION_FIELDS or not events:
        events += KINDS["membership"].updated
    return list(dict.fromkeys(events))


@dataclass(frozen=True)
class AppToken:
    """What a bearer token stands for: an OAuth app and, when limited, its scopes."""

    app: str
    scopes: frozenset[str] | None = None


@dataclass
class Subscription:
    id: str
    app: str
    event: str
    callback_url: str
    filters: JSON | None = None
    active: bool = True


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


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the server saw it, for assertions about the daemon's traffic."""

    method: str
    path: str
    query: dict[str, str]
    has_auth: bool
    token: str | None
    status: int
    time: float


class ApiError(Exception):
    """An error answer; handlers raise it and the endpoint wrapper renders it as JSON."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, *, api2: bool = False, headers: Mapping[str, str] | None = None
) -> web.Response:
    """v1 answers `{"errors": "..."}`; API 2 answers a JSON:API error list."""
    if api2:
        body: JSON = {"errors": [{"status": str(status), "detail": message}]}
        return web.json_response(
            body, status=status, headers=headers, content_type=API2_CONTENT_TYPE
        )
    return web.json_response({"errors": message}, status=status, headers=headers)


class SlidingWindowLimiter:
    """Counts admitted requests per (token, bucket) over the last `window` seconds."""

    def __init__(self) -> None:
        self._hits: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)

    def admit(self, token: str, limits: Mapping[str, int], window: float) -> int | None:
        """Record the request, or return whole seconds until every bucket has a free slot."""
        now = time.monotonic()
        waits = []
        for bucket, limit in limits.items():
            hits = self._hits[(token, bucket)]
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                waits.append(hits[len(hits) - limit] + window - now)
        if waits:
            return max(1, math.ceil(max(waits)))
        for bucket in limits:
            self._hits[(token, bucket)].append(now)
        return None

    def reset(self) -> None:
        self._hits.clear()


# -- dates in queries and stored objects ---------------------------------------------------

_KEY_FORMAT = "%Y/%m/%d %H:%M:%S"
_UNENCODED_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def parse_moment(text: str) -> tuple[datetime, bool]:
    """A UTC datetime from any form Cobot accepts, and whether it was a bare date.

    Handles `YYYY-MM-DD`, `YYYY/MM/DD`, ISO 8601 and `2012-04-12 12:00 +0000` (also with the
    `+` turned into a space by a client that did not encode it).
    """
    text = text.strip()
    normalized = _UNENCODED_PLUS.sub(r" +\1", text[:10].replace("/", "-") + text[10:])
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC), len(text) == 10


def moment_key(value: str) -> str:
    """A string that sorts like the moment: Cobot's own UTC formats are already such strings."""
    if len(value) == 25 and value[4] == "/" and value.endswith(" +0000"):
        return value[:19]
    if len(value) == 10 and value[4] == "/":
        return value + " 00:00:00"
    return parse_moment(value)[0].strftime(_KEY_FORMAT)


@dataclass(frozen=True)
class Window:
    """A half-open [start, end) query window as sortable keys."""

    start: str
    end: str

    def holds(self, value: str | None) -> bool:
        return value is not None and self.start <= moment_key(value) < self.end

    def overlaps(self, first: str, last: str) -> bool:
        return moment_key(first) < self.end and moment_key(last) > self.start


class CobotSimulator:
    """All of the simulated space's state and the aiohttp app that serves it.

    Set `base_url` to the server's URL before it starts: object URLs, subscription URLs and
    webhook bodies are built from it. Knobs are plain attributes, read on every request, so a
    test may change them while the server runs.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str | AppToken] | None = None,
        space_id: str = DEFAULT_SPACE_ID,
        seed: int = 1,
        today: date | None = None,
        hostile_rate: float = 0.0,
        rate_limits: bool = True,
        requests_per_window: int = 60,
        memberships_list_per_window: int = 6,
        rate_window_seconds: float = 60.0,
        max_window_days: int | None = None,
        latency_seconds: float = 0.0,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (500, 502, 503),
        deleted_invoice_form: DeletedInvoiceForm = "top_level",
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        retry_time_scale: float = 1.0,
        delivery_timeout_seconds: float = 10.0,
    ) -> None:
        self.tokens = {
            token: grant if isinstance(grant, AppToken) else AppToken(grant)
            for token, grant in (tokens or {DEFAULT_TOKEN: DEFAULT_APP}).items()
        }
        self.base_url = ""
        self.space_id = space_id
        self.today = today or datetime.now(UTC).date()
        self.data = CobotDataGenerator(seed, today=self.today, hostile_rate=hostile_rate)
        self.rate_limits = rate_limits
        self.requests_per_window = requests_per_window
        self.memberships_list_per_window = memberships_list_per_window
        self.rate_window_seconds = rate_window_seconds
        self.max_window_days = max_window_days
        self.latency_seconds = latency_seconds
        self.error_rate = error_rate
        self.error_statuses = tuple(error_statuses)
        self.deleted_invoice_form: DeletedInvoiceForm = deleted_invoice_form
        self.retry_schedule = tuple(retry_schedule)
        self.retry_time_scale = retry_time_scale
        self.delivery_timeout_seconds = delivery_timeout_seconds

        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._store: dict[str, dict[str, JSON]] = {name: {} for name in KINDS}
        self._graveyard: dict[tuple[str, str], JSON] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._subscription_ids = iter(range(12345, 10**9))
        self._deliveries: list[Delivery] = []
        self._pending = 0
        self._requests: list[RequestRecord] = []
        self._request_counts: defaultdict[str, int] = defaultdict(int)
        self._fail_next: deque[int] = deque()
        self._fault_rng = random.Random(seed)
        self._limiter = SlidingWindowLimiter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.create("space_subscription", space_id=space_id, emit=False)
        self.app = self._build_app()

    # == the object store (test-thread API) ================================================

    def url_for(self, kind: str | Kind, object_id: str) -> str:
        kind = KINDS[kind] if isinstance(kind, str) else kind
        return self.base_url + kind.path(object_id)

    def get(self, kind: str, object_id: str) -> JSON | None:
        """The object as the API would serve it, or None when it does not exist."""
        spec = KINDS[kind]
        with self._lock:
            obj = self._store[kind].get(object_id)
            return None if obj is None else copy.deepcopy(self._view(spec, obj))

    def objects(self, kind: str) -> list[JSON]:
        with self._lock:
            spec = KINDS[kind]
            return [copy.deepcopy(self._view(spec, obj)) for obj in self._store[kind].values()]

    def create(self, kind: str, *, emit: EmitChoice = True, **fields: Any) -> JSON:
        """Add a generated object; `fields` override its generated top-level fields.

        Generator options pass through too: `member` (a membership id or dict) for invoices,
        bookings, check-ins and check-in tokens, `state` for memberships, `hostile` for
        free-text fields. API 2 kinds take `id` plus attribute overrides.
        """
        spec = KINDS[kind]
        with self._lock:
            if "member" in fields:
                fields["member"] = self._resolve_member(fields["member"])
            obj = copy.deepcopy(getattr(self.data, kind)(**fields))
            object_id = spec.id_of(obj)
            if object_id in self._store[kind]:
                raise ValueError(f"{kind} {object_id} already exists")
            self._store[kind][object_id] = obj
            view = copy.deepcopy(self._view(spec, obj))
        self._send_all(_chosen(emit, spec.created), spec, view)
        return view

    def update(self, kind: str, object_id: str, *, emit: EmitChoice = True, **changes: Any) -> JSON:
        """Change fields (API 2: attributes). Memberships pick events from what changed."""
        spec = KINDS[kind]
        with self._lock:
            before = self._existing(kind, object_id)
            after = _changed(spec, before, copy.deepcopy(changes))
            self._store[kind][object_id] = after
            view = copy.deepcopy(self._view(spec, after))
        defaults = membership_update_events(before, after) if kind == "membership" else spec.updated
        self._send_all(_chosen(emit, defaults), spec, view)
        return view

    def delete(self, kind: str, object_id: str, *, emit: EmitChoice = True) -> JSON:
        """Remove an object (its URL answers 404 from now on); deletion bodies embed it."""
        spec = KINDS[kind]
        with self._lock:
            obj = self._existing(kind, object_id)
            del self._store[kind][object_id]
            self._graveyard[(kind, object_id)] = obj
            view = copy.deepcopy(self._view(spec, obj))
        self._send_all(_chosen(emit, spec.deleted), spec, view)
        return view

    def seed_space(
        self,
        members: int = 500,
        invoices: int = 3000,
        bookings: int = 2000,
        check_ins: int = 1000,
        years: float = 2,
        seed: int = 1,
    ) -> dict[str, int]:
        """Fill the store with `years` of history; sends no webhooks (it predates the daemon)."""
        with self._lock:
            self.data.reseed(seed)
            space = self.data.space(
                members=members,
                invoices=invoices,
                bookings=bookings,
                check_ins=check_ins,
                years=years,
            )
            for kind, objects in space.objects.items():
                table = self._store[kind]
                table.update((obj["id"], obj) for obj in objects)
        return space.counts()

    def _existing(self, kind: str, object_id: str) -> JSON:
        try:
            return self._store[kind][object_id]
        except KeyError:
            raise KeyError(f"no {kind} {object_id!r}") from None

    def _resolve_member(self, member: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return self._existing("membership", member) if isinstance(member, str) else member

    def _view(self, kind: Kind, obj: JSON) -> JSON:
        """The object as served: v1 objects that carry a `url` get this server's URL."""
        if kind.carries_url:
            return {**obj, "url": self.url_for(kind, kind.id_of(obj))}
        return obj

    def _locate(self, url: str) -> tuple[Kind, str] | None:
        if not self.base_url or not url.startswith(self.base_url):
            return None
        path = url[len(self.base_url) :]
        for kind, pattern in _KIND_PATTERNS:
            match = pattern.match(path)
            if match:
                return kind, match["id"]
        return None

    # == webhooks ==========================================================================

    def emit(self, event: str, url_or_resource: str | Mapping[str, Any], *, kind: str = "") -> int:
        """Send `event` about a URL (any URL, even a foreign one) or an object by hand.

        An object's kind comes from the event unless `kind` is given (e.g. "guest_account" for
        deleted_admin). A deletion event about a URL of a stored or deleted object embeds that
        object. Returns the number of subscriptions the event was queued for.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown Cobot event {event!r}")
        if isinstance(url_or_resource, str):
            return self._send(event, url_or_resource, self._lookup(url_or_resource))
        kind = kind or EVENT_KINDS[event] or ""
        if kind not in KINDS:
            raise ValueError(f"{event} is about no stored kind: pass its URL or kind=")
        spec = KINDS[kind]
        obj = copy.deepcopy(dict(url_or_resource))
        return self._send(event, self.url_for(spec, spec.id_of(obj)), self._view(spec, obj))

    def _lookup(self, url: str) -> JSON | None:
        located = self._locate(url)
        if located is None:
            return None
        kind, object_id = located
        with self._lock:
            obj = self._store[kind.name].get(object_id)
            obj = obj if obj is not None else self._graveyard.get((kind.name, object_id))
            return None if obj is None else copy.deepcopy(self._view(kind, obj))

    def _send_all(self, events: Iterable[str], kind: Kind, view: JSON) -> None:
        for event in events:
            self.emit(event, view, kind=kind.name)

    def _send(self, event: str, url: str, obj: JSON | None) -> int:
        """Queue one delivery task per matching active subscription (on the server's loop)."""
        body = self._webhook_body(event, url, obj)
        with self._lock:
            targets = [
                sub
                for sub in self._subscriptions.values()
                if sub.active and sub.event == event and _passes_filters(sub.filters, event, obj)
            ]
            loop = self._loop
            if targets and loop is None:
                raise RuntimeError("start the server before sending webhooks")
            self._pending += len(targets)
        for sub in targets:
            assert loop is not None
            loop.call_soon_threadsafe(self._start_delivery, sub.id, event, sub.callback_url, body)
        return len(targets)

    def _webhook_body(self, event: str, url: str, obj: JSON | None) -> JSON:
        """`{"url"}`, or for deletions the object too, in the shapes Cobot sends."""
        if obj is not None and event == "deleted_booking":
            return {"url": url, "booking": deleted_booking_payload(obj)}
        if obj is not None and event == "deleted_membership":
            return {"url": url, "membership": obj}
        if obj is not None and event == "deleted_invoice":
            invoice = {**obj, "url": url}
            return (
                invoice
                if self.deleted_invoice_form == "top_level"
                else {"url": url, "invoice": invoice}
            )
        return {"url": url}

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
            attempts = len(self.retry_schedule) + 1
            for attempt in range(1, attempts + 1):
                if not self._is_active(sub_id):
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
                    self._retire(sub_id)
                    return
                await asyncio.sleep(self.retry_schedule[attempt - 1] * self.retry_time_scale)
        finally:
            self._delivery_finished()

    async def _post(self, url: str, body: JSON) -> tuple[int | None, str | None]:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout_seconds)
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

    def _retire(self, sub_id: str) -> None:
        """Deactivate, unless the subscription was deleted while its delivery was under way."""
        with self._lock:
            sub = self._subscriptions.get(sub_id)
            if sub is not None:
                sub.active = False

    def _is_active(self, sub_id: str) -> bool:
        with self._lock:
            sub = self._subscriptions.get(sub_id)
            return sub is not None and sub.active

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def wait_deliveries_idle(self, timeout: float = 10.0) -> None:
        """Block until no delivery is queued, in flight or waiting to retry.

        Call it from the test thread, never from the server's loop.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"{self._pending} webhook deliveries still pending")

    # == subscriptions (test-thread API) ===================================================

    def add_subscription(
        self,
        event: str,
        callback_url: str,
        *,
        app: str | None = None,
        filters: JSON | None = None,
    ) -> JSON:
        """Seed a subscription as if `app` (default: the first token's app) had made it.

        Unlike the API it accepts duplicates, so tests can set up what a daemon must clean up.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown Cobot event {event!r}")
        app = app or next(iter(self.tokens.values())).app
        with self._lock:
            return self._subscription_view(
                self._new_subscription(app, event, callback_url, filters)
            )

    def deactivate(self, sub_id: str) -> None:
        """What Cobot does after the last failed retry or a 410."""
        with self._lock:
            self._subscriptions[sub_id].active = False

    def subscriptions(self, app: str | None = None) -> list[JSON]:
        """Snapshot of every subscription (or one app's), each with its `app`."""
        with self._lock:
            return [
                {**self._subscription_view(sub), "app": sub.app}
                for sub in self._subscriptions.values()
                if app is None or sub.app == app
            ]

    def _new_subscription(
        self, app: str, event: str, callback_url: str, filters: JSON | None
    ) -> Subscription:
        sub = Subscription(
            str(next(self._subscription_ids)), app, event, callback_url, copy.deepcopy(filters)
        )
        self._subscriptions[sub.id] = sub
        return sub

    def _subscription_view(self, sub: Subscription) -> JSON:
        view: JSON = {
            "id": sub.id,
            "event": sub.event,
            "url": f"{self.base_url}/api/subscriptions/{sub.id}",
            "active": sub.active,
            "callback_url": sub.callback_url,
        }
        if sub.filters is not None:
            view["filters"] = copy.deepcopy(sub.filters)
        return view

    # == observation and fault knobs =======================================================

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def request_counts(self) -> dict[str, int]:
        """Requests per presented bearer token (valid or not), rejected ones included."""
        with self._lock:
            return dict(self._request_counts)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next `n` authorized API requests with `status`."""
        with self._lock:
            self._fail_next.extend([status] * n)

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._limiter.reset()

    # == the HTTP side =====================================================================

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._recording_middleware])
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        lists: list[tuple[str, Handler, str]] = [
            ("/api/memberships", self._list_memberships, "read_memberships"),
            ("/api/memberships/cancellations", self._list_cancellations, "read_memberships"),
            ("/api/invoices", self._list_invoices, "read_invoices"),
            ("/api/bookings", self._list_bookings, "read_bookings"),
            ("/api/work_sessions", self._list_work_sessions, "read_check_ins"),
            ("/api/check_ins", self._list_todays_check_ins, "read_check_ins"),
            ("/api/guest_accounts", self._list_guest_accounts, "read_guest_accounts"),
        ]
        for path, handler, scope in lists:
            bucket = "memberships_list" if path == "/api/memberships" else None
            app.router.add_get(path, self._endpoint(handler, scope, faultable=True, bucket=bucket))
        for kind in KINDS.values():
            show = self._endpoint(
                self._show_handler(kind), kind.scope, api2=kind.api2, faultable=True
            )
            app.router.add_get(kind.route, show)
        subs = "/api/subscriptions"
        app.router.add_post(subs, self._endpoint(self._create_sub, "write_subscriptions"))
        app.router.add_get(subs, self._endpoint(self._list_subs, "read_subscriptions"))
        app.router.add_get(subs + "/{id}", self._endpoint(self._show_sub, "read_subscriptions"))
        app.router.add_delete(
            subs + "/{id}", self._endpoint(self._delete_sub, "write_subscriptions")
        )
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession()
        self._loop = asyncio.get_running_loop()

    async def _on_cleanup(self, app: web.Application) -> None:
        self._loop = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @web.middleware
    async def _recording_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            return error_response(exc.status, exc.reason)
        finally:
            self._record_request(request, status)

    def _record_request(self, request: web.Request, status: int) -> None:
        token = _bearer(request)
        record = RequestRecord(
            request.method,
            request.path,
            dict(request.query),
            "Authorization" in request.headers,
            token,
            status,
            time.time(),
        )
        with self._lock:
            self._requests.append(record)
            if token is not None:
                self._request_counts[token] += 1

    def _endpoint(
        self,
        handler: Handler,
        scope: str,
        *,
        api2: bool = False,
        faultable: bool = False,
        bucket: str | None = None,
    ) -> Handler:
        """Wrap a handler in Cobot's gatekeeping: auth, rate limit, scope, injected faults."""

        async def gated(request: web.Request) -> web.StreamResponse:
            try:
                token, grant = self._authenticate(request)
                self._admit(token, bucket)
                if grant.scopes is not None and scope not in grant.scopes:
                    raise ApiError(403, f"The access token lacks the scope {scope}")
                await self._inject_faults(faultable)
                return await handler(request)
            except ApiError as error:
                return error_response(error.status, error.message, api2=api2, headers=error.headers)

        return gated

    def _authenticate(self, request: web.Request) -> tuple[str, AppToken]:
        token = _bearer(request)
        grant = self.tokens.get(token) if token else None
        if token is None or grant is None:
            raise ApiError(401, "Invalid or missing access token")
        return token, grant

    def _caller_app(self, request: web.Request) -> str:
        """The OAuth app behind an already authenticated request."""
        return self._authenticate(request)[1].app

    def _admit(self, token: str, bucket: str | None) -> None:
        if not self.rate_limits:
            return
        limits = {"all": self.requests_per_window}
        if bucket == "memberships_list":
            limits[bucket] = self.memberships_list_per_window
        with self._lock:
            wait = self._limiter.admit(token, limits, self.rate_window_seconds)
        if wait is not None:
            raise ApiError(429, "Rate limit exceeded, retry later", {"Retry-After": str(wait)})

    async def _inject_faults(self, faultable: bool) -> None:
        """fail_next hits any API call; error_rate only resource and list reads."""
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        with self._lock:
            forced = self._fail_next.popleft() if self._fail_next else None
            if forced is None and faultable and self._fault_rng.random() < self.error_rate:
                forced = self._fault_rng.choice(self.error_statuses)
        if forced is not None:
            raise ApiError(forced, "Simulated failure")

    def _json(self, payload: Any, *, status: int = 200, api2: bool = False) -> web.Response:
        content_type = API2_CONTENT_TYPE if api2 else "application/json"
        return web.json_response(payload, status=status, content_type=content_type)

    def _show_handler(self, kind: Kind) -> Handler:
        async def show(request: web.Request) -> web.Response:
            with self._lock:
                obj = self._store[kind.name].get(request.match_info["id"])
            if obj is None:
                raise ApiError(404, f"{kind.name} not found")
            return self._json(self._view(kind, obj), api2=kind.api2)

        return show

    def _listing(self, kind: str, keep: Callable[[JSON], bool] = lambda obj: True) -> web.Response:
        spec = KINDS[kind]
        with self._lock:
            stored = list(self._store[kind].values())
        return self._json([self._view(spec, obj) for obj in stored if keep(obj)])

    def _window(self, request: web.Request) -> Window:
        """The required from/to window; a bare-date `to` includes that whole day."""
        try:
            start, _ = parse_moment(request.query["from"])
            end, date_only = parse_moment(request.query["to"])
        except KeyError:
            raise ApiError(422, "from and to are required") from None
        except ValueError as exc:
            raise ApiError(422, f"Invalid from/to: {exc}") from None
        end += timedelta(days=1) if date_only else timedelta()
        if end < start:
            raise ApiError(422, "to must not be before from")
        if self.max_window_days is not None and end - start > timedelta(days=self.max_window_days):
            raise ApiError(422, f"The window may span at most {self.max_window_days} days")
        return Window(start.strftime(_KEY_FORMAT), end.strftime(_KEY_FORMAT))

    async def _list_memberships(self, request: web.Request) -> web.Response:
        """Current members; `all=true` adds unconfirmed and ended ones; `attributes` trims."""
        include_all = request.query.get("all") == "true"
        today = moment_key(cobot_date(self.today))
        with self._lock:
            members = [
                m
                for m in self._store["membership"].values()
                if include_all or _is_current(m, today)
            ]
        fields = [name for name in request.query.get("attributes", "").split(",") if name]
        if fields:
            members = [{key: m[key] for key in fields if key in m} for m in members]
        return self._json(members)

    async def _list_cancellations(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing("membership", lambda m: window.holds(m.get("canceled_to")))

    async def _list_invoices(self, request: web.Request) -> web.Response:
        """By `ids=a,b,c` (unknown ids skipped) or by creation date within from/to."""
        if "ids" in request.query:
            spec, wanted = KINDS["invoice"], request.query["ids"].split(",")
            with self._lock:
                found = [self._store["invoice"].get(invoice_id) for invoice_id in wanted]
            return self._json([self._view(spec, obj) for obj in found if obj is not None])
        window = self._window(request)
        return self._listing("invoice", lambda invoice: window.holds(invoice["created_at"]))

    async def _list_bookings(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing(
            "booking", lambda booking: window.overlaps(booking["from"], booking["to"])
        )

    async def _list_work_sessions(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing("check_in", lambda check_in: window.holds(check_in["valid_from"]))

    async def _list_todays_check_ins(self, request: web.Request) -> web.Response:
        today = cobot_date(self.today)
        return self._listing("check_in", lambda c: moment_key(c["valid_from"])[:10] == today)

    async def _list_guest_accounts(self, request: web.Request) -> web.Response:
        return self._listing("guest_account")

    # -- subscriptions API -----------------------------------------------------------------

    async def _create_sub(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            raise ApiError(422, "The body must be JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(422, "The body must be a JSON object")
        event, callback_url = payload.get("event"), payload.get("callback_url")
        filters = payload.get("filters")
        if event not in EVENTS:
            raise ApiError(422, f"Event {event!r} is not a known event")
        if not _is_absolute_http_url(callback_url):
            raise ApiError(422, "Callback url must be an absolute http(s) URL")
        if filters is not None and not isinstance(filters, dict):
            raise ApiError(422, "Filters must be an object")
        app = self._caller_app(request)
        with self._lock:
            if any(
                sub.active and (sub.app, sub.event, sub.callback_url) == (app, event, callback_url)
                for sub in self._subscriptions.values()
            ):
                raise ApiError(409, "A subscription for this event and URL already exists")
            view = self._subscription_view(
                self._new_subscription(app, event, callback_url, filters)
            )
        return self._json(view, status=201)

    async def _list_subs(self, request: web.Request) -> web.Response:
        app = self._caller_app(request)
        with self._lock:
            views = [
                self._subscription_view(sub)
                for sub in self._subscriptions.values()
                if sub.app == app
            ]
        return self._json(views)

    def _own_subscription(self, request: web.Request) -> Subscription:
        """The app's subscription named in the path; other apps' are invisible (404)."""
        sub = self._subscriptions.get(request.match_info["id"])
        if sub is None or sub.app != self._caller_app(request):
            raise ApiError(404, "Subscription not found")
        return sub

    async def _show_sub(self, request: web.Request) -> web.Response:
        with self._lock:
            return self._json(self._subscription_view(self._own_subscription(request)))

    async def _delete_sub(self, request: web.Request) -> web.Response:
        with self._lock:
            del self._subscriptions[self._own_subscription(request).id]
        return web.Response(status=204)


def _chosen(emit: EmitChoice, defaults: Sequence[str]) -> tuple[str, ...]:
    """`emit=True` sends the action's default events, False none, a name or names those."""
    if isinstance(emit, bool):
        return tuple(defaults) if emit else ()
    return (emit,) if isinstance(emit, str) else tuple(emit)


def _changed(kind: Kind, obj: JSON, changes: JSON) -> JSON:
    """A new object with `changes` applied (to the attributes of API 2 documents)."""
    if kind.api2:
        data = obj["data"]
        return {**obj, "data": {**data, "attributes": {**data["attributes"], **changes}}}
    return {**obj, **changes}


def _passes_filters(filters: JSON | None, event: str, obj: JSON | None) -> bool:
    """Cobot's documented `resource_id` filter for booking events; other filters pass."""
    wanted = (filters or {}).get("resource_id")
    if wanted is None or EVENT_KINDS.get(event) != "booking" or obj is None:
        return True
    return str((obj.get("resource") or {}).get("id")) == str(wanted)


def _is_current(membership: JSON, today_key: str) -> bool:
    """Confirmed, started, and not past its cancellation date."""
    if membership.get("confirmed_at") is None:
        return False
    starts, ends = membership.get("starts_at"), membership.get("canceled_to")
    started = starts is None or moment_key(starts) <= today_key
    return started and (ends is None or moment_key(ends) >= today_key)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _is_absolute_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.is_absolute() and url.scheme in ("http", "https") and bool(url.host)


# -- command line ---------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sandbox cobot`."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="serve what this daemon config expects: listen on cobot.base_url and accept "
        "cobot.access_token (instead of --host, --port and --token)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    parser.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help=f"accepted bearer token, repeatable (default: {DEFAULT_TOKEN})",
    )
    parser.add_argument("--app-name", default=DEFAULT_APP, help="OAuth app the tokens belong to")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--seed-members", type=int, default=0, metavar="N")
    parser.add_argument("--seed-invoices", type=int, default=0, metavar="N")
    parser.add_argument("--seed-bookings", type=int, default=0, metavar="N")
    parser.add_argument("--seed-check-ins", type=int, default=0, metavar="N")
    parser.add_argument("--years", type=float, default=2, help="history span of seeded data")
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=0.0,
        help="share of seeded objects with formula-like text (0..1)",
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="switch rate limits off")
    parser.add_argument(
        "--retry-time-scale",
        type=float,
        default=1.0,
        help="factor on the webhook retry intervals (1 = about 20 hours)",
    )
    parser.add_argument(
        "--deleted-invoice-form",
        choices=("top_level", "nested"),
        default="top_level",
        help="body shape of deleted_invoice webhooks",
    )


def run_cli(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then shut the server down cleanly."""
    if args.config is not None:
        settings, _ = inspect_settings(args.config)
        args.host, args.port = listen_address_of(settings.cobot.base_url, "cobot.base_url")
        args.token = [settings.cobot.access_token.reveal()]
    tokens = args.token or [DEFAULT_TOKEN]
    sim = CobotSimulator(
        tokens=dict.fromkeys(tokens, args.app_name),
        seed=args.seed,
        hostile_rate=args.hostile_rate,
        rate_limits=not args.no_rate_limit,
        retry_time_scale=args.retry_time_scale,
        deleted_invoice_form=args.deleted_invoice_form,
    )
    server = ServerThread(sim.app, args.host, args.port)
    sim.base_url = server.url
    seeds = (args.seed_members, args.seed_invoices, args.seed_bookings, args.seed_check_ins)
    counts = sim.seed_space(*seeds, years=args.years, seed=args.seed) if any(seeds) else {}
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    server.start()
    try:
        print(f"Cobot simulator listening on {server.url}", flush=True)
        print(f"tokens: {', '.join(tokens)} (app {args.app_name})", flush=True)
        if counts:
            print("seeded: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
