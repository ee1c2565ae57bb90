"""A local Cobot: the v1 REST API, API 2 lookups, the subscriptions API and the webhook sender.

The daemon may not reach the internet in tests, yet it must be exercised against Cobot's real
behaviour: bearer auth and scopes, the 60/min (6/min for the membership list) rate limits,
bare-array list endpoints filtered by date windows, 404s for deleted objects, and a webhook
sender that retries with growing intervals, never follows redirects, deactivates a
subscription on 410 or after the last retry, and embeds the object in deletion bodies.

CobotSimulator is what tests hold: the knobs, the test thread's API and the aiohttp app. The
parts it is made of each guard their own state, so the test thread and the server's loop
(a ServerThread) may use them at the same time.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from syncd.sandbox.cobot.api import ResourceApi
from syncd.sandbox.cobot.catalogue import EVENT_KINDS, EVENTS, KINDS, Kind, membership_update_events
from syncd.sandbox.cobot.endpoints import CALLER_APP, ApiError, Handler, Route, error_response
from syncd.sandbox.cobot.generator import CobotDataGenerator
from syncd.sandbox.cobot.limits import Limits, SlidingWindowLimiter
from syncd.sandbox.cobot.shapes import JSON
from syncd.sandbox.cobot.store import ObjectStore
from syncd.sandbox.cobot.subscriptions import Subscriptions
from syncd.sandbox.cobot.traffic import RequestLog, RequestRecord, bearer_token
from syncd.sandbox.cobot.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    DeletedInvoiceForm,
    Delivery,
    WebhookSender,
)

DEFAULT_TOKEN = "sandbox-cobot-token"
DEFAULT_APP = "cobot-syncd"
DEFAULT_SPACE_ID = "8bd91251-70a0-574a-8fc3-cbff2999472e"

EmitChoice = bool | str | Sequence[str]


@dataclass(frozen=True)
class AppToken:
    """What a bearer token stands for: an OAuth app and, when limited, its scopes."""

    app: str
    scopes: frozenset[str] | None = None


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
        latency_spread: float = 0.0,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (500, 502, 503),
        deleted_invoice_form: DeletedInvoiceForm = "top_level",
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        retry_time_scale: float = 1.0,
        delivery_timeout_seconds: float = 10.0,
        shared_limiter: SlidingWindowLimiter | None = None,
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
        self.latency_spread = latency_spread
        self.error_rate = error_rate
        self.error_statuses = tuple(error_statuses)
        self.deleted_invoice_form: DeletedInvoiceForm = deleted_invoice_form
        self.retry_schedule = tuple(retry_schedule)
        self.retry_time_scale = retry_time_scale
        self.delivery_timeout_seconds = delivery_timeout_seconds
        #: ``all=true`` on the membership listing is not in Cobot's documentation; False
        #: plays a Cobot that ignores it (only current memberships are listed).
        self.all_param_honoured = True
        #: Route path -> seconds an answer, once computed, takes to arrive (a slow transfer):
        #: it shows Cobot's state from before the wait.
        self.slow_answers: dict[str, float] = {}
        #: How many answers have started such a wait (a test acts while they travel).
        self.answers_held = 0

        self._store = ObjectStore(self, self.data)
        self._subscriptions = Subscriptions(self)
        self._sender = WebhookSender(self, self._subscriptions)
        #: A limiter shared with the simulators of other spaces counts a token across them.
        self._limits = Limits(self, seed, shared_limiter)
        self._traffic = RequestLog()
        self.create("space_subscription", space_id=space_id, emit=False)
        self.app = self._build_app()

    # == the object store (test-thread API) ================================================

    def url_for(self, kind: str | Kind, object_id: str) -> str:
        return self._store.url_for(kind, object_id)

    def get(self, kind: str, object_id: str) -> JSON | None:
        """The object as the API would serve it, or None when it does not exist."""
        return self._store.get(kind, object_id)

    def objects(self, kind: str) -> list[JSON]:
        return self._store.objects(kind)

    def create(self, kind: str, *, emit: EmitChoice = True, **fields: Any) -> JSON:
        """Add a generated object; `fields` override its generated top-level fields.

        Generator options pass through too: `member` (a membership id or dict) for invoices,
        bookings, check-ins and check-in tokens, `state` for memberships, `hostile` for
        free-text fields. API 2 kinds take `id` plus attribute overrides.
        """
        view = self._store.add(kind, fields)
        self._send_all(_chosen(emit, KINDS[kind].created), kind, view)
        return view

    def update(self, kind: str, object_id: str, *, emit: EmitChoice = True, **changes: Any) -> JSON:
        """Change fields (API 2: attributes). Memberships pick events from what changed."""
        before, view = self._store.change(kind, object_id, changes)
        if kind == "membership":
            defaults: Sequence[str] = membership_update_events(before, view)
        else:
            defaults = KINDS[kind].updated
        self._send_all(_chosen(emit, defaults), kind, view)
        return view

    def delete(self, kind: str, object_id: str, *, emit: EmitChoice = True) -> JSON:
        """Remove an object (its URL answers 404 from now on); deletion bodies embed it."""
        view = self._store.remove(kind, object_id)
        self._send_all(_chosen(emit, KINDS[kind].deleted), kind, view)
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
        return self._store.seed(
            members=members,
            invoices=invoices,
            bookings=bookings,
            check_ins=check_ins,
            years=years,
            seed=seed,
        )

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
            return self._sender.send(event, url_or_resource, self._store.lookup(url_or_resource))
        kind = kind or EVENT_KINDS[event] or ""
        if kind not in KINDS:
            raise ValueError(f"{event} is about no stored kind: pass its URL or kind=")
        spec = KINDS[kind]
        view = self._store.view(spec, copy.deepcopy(dict(url_or_resource)))
        return self._sender.send(event, self.url_for(spec, spec.id_of(view)), view)

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, oldest first."""
        return self._sender.deliveries()

    def wait_deliveries_idle(self, timeout: float = 10.0) -> None:
        """Block until no delivery is queued, in flight or waiting to retry.

        Call it from the test thread, never from the server's loop.
        """
        self._sender.wait_idle(timeout)

    def _send_all(self, events: Iterable[str], kind: str, view: JSON) -> None:
        for event in events:
            self.emit(event, view, kind=kind)

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
        app = app or next(iter(self.tokens.values())).app
        return self._subscriptions.add(app, event, callback_url, filters)

    def deactivate(self, sub_id: str) -> None:
        """What Cobot does after the last failed retry or a 410."""
        self._subscriptions.deactivate(sub_id)

    def subscriptions(self, app: str | None = None) -> list[JSON]:
        """Snapshot of every subscription (or one app's), each with its `app`."""
        return self._subscriptions.snapshot(app)

    # == observation and fault knobs =======================================================

    def requests(self) -> list[RequestRecord]:
        return self._traffic.requests()

    def request_counts(self) -> dict[str, int]:
        """Requests per presented bearer token (valid or not), rejected ones included."""
        return self._traffic.counts()

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next `n` authorized API requests with `status`."""
        self._limits.fail_next(n, status)

    def reset_rate_limits(self) -> None:
        self._limits.reset_rate_limits()

    # == the HTTP side =====================================================================

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._traffic.middleware])
        app.on_startup.append(self._sender.start)
        app.on_cleanup.append(self._sender.stop)
        routes = [*ResourceApi(self, self._store).routes(), *self._subscriptions.routes()]
        for route in routes:
            if route.method == "GET":  # add_get also answers HEAD
                app.router.add_get(route.path, self._gated(route))
            else:
                app.router.add_route(route.method, route.path, self._gated(route))
        return app

    def _gated(self, route: Route) -> Handler:
        """Wrap a handler in Cobot's gatekeeping: auth, rate limit, scope, injected faults."""

        async def gated(request: web.Request) -> web.StreamResponse:
            try:
                token, grant = self._authenticate(request)
                self._limits.admit(token, route.bucket)
                if grant.scopes is not None and route.scope not in grant.scopes:
                    raise ApiError(403, f"The access token lacks the scope {route.scope}")
                await self._limits.inject_faults(route.faultable)
                request[CALLER_APP] = grant.app
                response = await route.handler(request)
                if delay := self.slow_answers.get(route.path, 0.0):
                    self.answers_held += 1
                    await asyncio.sleep(delay)
                return response
            except ApiError as error:
                return error_response(
                    error.status, error.message, api2=route.api2, headers=error.headers
                )

        return gated

    def _authenticate(self, request: web.Request) -> tuple[str, AppToken]:
        token = bearer_token(request)
        grant = self.tokens.get(token) if token else None
        if token is None or grant is None:
            raise ApiError(401, "Invalid or missing access token")
        return token, grant


def _chosen(emit: EmitChoice, defaults: Sequence[str]) -> tuple[str, ...]:
    """`emit=True` sends the action's default events, False none, a name or names those."""
    if isinstance(emit, bool):
        return tuple(defaults) if emit else ()
    return (emit,) if isinstance(emit, str) else tuple(emit)
