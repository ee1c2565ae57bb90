"""Cobot's webhook subscriptions: the registry and the API an OAuth app manages its own with.

Each app sees only its own subscriptions (another app's answer 404), may not subscribe the
same event and callback URL twice while the first is active, and may filter booking events
by resource (Cobot's one documented filter). The webhook sender reads the same registry and
deactivates a subscription when Cobot would.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from aiohttp import web
from yarl import URL

from syncd.sandbox.cobot.catalogue import EVENT_KINDS, EVENTS
from syncd.sandbox.cobot.endpoints import CALLER_APP, ApiError, Route, json_response
from syncd.sandbox.cobot.shapes import JSON

SUBSCRIPTIONS_PATH = "/api/subscriptions"


class SubscriptionKnobs(Protocol):
    """The simulator's attribute that subscription URLs are built from."""

    base_url: str


@dataclass
class Subscription:
    id: str
    app: str
    event: str
    callback_url: str
    filters: JSON | None = None
    active: bool = True


class Subscriptions:
    """Every app's subscriptions, behind one lock: tests, handlers and deliveries share them."""

    def __init__(self, knobs: SubscriptionKnobs) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._ids = iter(range(12345, 10**9))

    # -- the test thread's API ----------------------------------------------------------------

    def add(self, app: str, event: str, callback_url: str, filters: JSON | None) -> JSON:
        """A new subscription, duplicates allowed (unlike the API), as the API shows it."""
        if event not in EVENTS:
            raise ValueError(f"unknown Cobot event {event!r}")
        with self._lock:
            return self._view(self._new(app, event, callback_url, filters))

    def deactivate(self, sub_id: str) -> None:
        with self._lock:
            self._subscriptions[sub_id].active = False

    def snapshot(self, app: str | None = None) -> list[JSON]:
        """Every subscription (or one app's), each with its `app`."""
        with self._lock:
            return [
                {**self._view(sub), "app": sub.app}
                for sub in self._subscriptions.values()
                if app is None or sub.app == app
            ]

    # -- the webhook sender's API ----------------------------------------------------------------

    def targets(self, event: str, obj: JSON | None) -> list[Subscription]:
        """The active subscriptions an event about `obj` goes to."""
        with self._lock:
            return [
                sub
                for sub in self._subscriptions.values()
                if sub.active and sub.event == event and _passes_filters(sub.filters, event, obj)
            ]

    def is_active(self, sub_id: str) -> bool:
        with self._lock:
            sub = self._subscriptions.get(sub_id)
            return sub is not None and sub.active

    def retire(self, sub_id: str) -> None:
        """Deactivate, unless the subscription was deleted while its delivery was under way."""
        with self._lock:
            sub = self._subscriptions.get(sub_id)
            if sub is not None:
                sub.active = False

    # -- the HTTP API --------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        one = SUBSCRIPTIONS_PATH + "/{id}"
        return [
            Route("POST", SUBSCRIPTIONS_PATH, self._create, "write_subscriptions"),
            Route("GET", SUBSCRIPTIONS_PATH, self._list, "read_subscriptions"),
            Route("GET", one, self._show, "read_subscriptions"),
            Route("DELETE", one, self._delete, "write_subscriptions"),
        ]

    async def _create(self, request: web.Request) -> web.Response:
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
        app = request[CALLER_APP]
        with self._lock:
            if any(
                sub.active and (sub.app, sub.event, sub.callback_url) == (app, event, callback_url)
                for sub in self._subscriptions.values()
            ):
                raise ApiError(409, "A subscription for this event and URL already exists")
            view = self._view(self._new(app, event, callback_url, filters))
        return json_response(view, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        app = request[CALLER_APP]
        with self._lock:
            views = [self._view(sub) for sub in self._subscriptions.values() if sub.app == app]
        return json_response(views)

    async def _show(self, request: web.Request) -> web.Response:
        with self._lock:
            return json_response(self._view(self._own(request)))

    async def _delete(self, request: web.Request) -> web.Response:
        with self._lock:
            del self._subscriptions[self._own(request).id]
        return web.Response(status=204)

    # -- under the lock ------------------------------------------------------------------------

    def _own(self, request: web.Request) -> Subscription:
        """The app's subscription named in the path; other apps' are invisible (404)."""
        sub = self._subscriptions.get(request.match_info["id"])
        if sub is None or sub.app != request[CALLER_APP]:
            raise ApiError(404, "Subscription not found")
        return sub

    def _new(self, app: str, event: str, callback_url: str, filters: JSON | None) -> Subscription:
        sub = Subscription(str(next(self._ids)), app, event, callback_url, copy.deepcopy(filters))
        self._subscriptions[sub.id] = sub
        return sub

    def _view(self, sub: Subscription) -> JSON:
        view: JSON = {
            "id": sub.id,
            "event": sub.event,
            "url": f"{self._knobs.base_url}{SUBSCRIPTIONS_PATH}/{sub.id}",
            "active": sub.active,
            "callback_url": sub.callback_url,
        }
        if sub.filters is not None:
            view["filters"] = copy.deepcopy(sub.filters)
        return view


def _passes_filters(filters: JSON | None, event: str, obj: JSON | None) -> bool:
    """Cobot's documented `resource_id` filter for booking events; other filters pass."""
    wanted = (filters or {}).get("resource_id")
    if wanted is None or EVENT_KINDS.get(event) != "booking" or obj is None:
        return True
    return str((obj.get("resource") or {}).get("id")) == str(wanted)


def _is_absolute_http_url(value: Any) -> TypeGuard[str]:
    if not isinstance(value, str):
        return False
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.is_absolute() and url.scheme in ("http", "https") and bool(url.host)
