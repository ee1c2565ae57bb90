"""The Cobot API client: the only code in the daemon that holds the access token.

Every request goes through ``CobotClient._send``, which refuses any URL outside the configured
Cobot origins, so the bearer token can never travel to a host named by a webhook body, a
subscription or a redirect (redirects are never followed). Requests draw from a
``RequestBudget`` shared with every other Cobot caller, so webhook fetches, re-syncs and
backfills together stay within Cobot's per-user rate limit; webhook fetches go first.

Failures are raised as the classes of ``syncd.cobot.errors``, whose ``action`` tells the
worker whether to retry later (Cobot down, rate limited), to pause until a person fixes
something (token revoked, scope missing) or to give up on the one event. No message or repr
ever contains the token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp

from syncd import __version__
from syncd.cobot.errors import (
    CobotMisdirected,
    CobotUnavailable,
    SubscriptionExists,
    SubscriptionRejected,
)
from syncd.cobot.replies import (
    JSONObject,
    Reply,
    error_text,
    expect_list,
    expect_object,
    flatten_json_api,
    parse_json,
    refusal,
    unexpected,
)
from syncd.config.settings import CobotSettings
from syncd.core.budget import RequestBudget
from syncd.core.events import JSON_API_MEDIA_TYPE, resource_kind_of_path
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff, parse_retry_after
from syncd.intake.resources import ResourceRef, resource_url

log = logging.getLogger("syncd.cobot")

#: Longest list URL sent; proxies and servers commonly refuse longer request lines.
MAX_LIST_URL_LENGTH = 2000
_JSON = "application/json"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """One resource as Cobot returned it, or ``gone`` when Cobot says it was deleted."""

    ref: ResourceRef
    status: Literal["found", "gone"]
    data: dict[str, Any] | None
    #: When Cobot was asked (epoch seconds); what the row keeps to order observations.
    observed_at: float = field(compare=False)


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription as Cobot lists it.

    ``callback_url`` carries the webhook secret, so it stays out of the repr. ``filters`` is
    None when Cobot's answer does not say which filters the subscription has.
    """

    id: str
    event: str
    url: str
    active: bool
    callback_url: str = field(repr=False)
    filters: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


#: Cobot's own limit of the membership listing, below its general 60 per minute.
MEMBERSHIP_LISTS_PER_MINUTE = 6


class CobotClient:
    """Talks to Cobot's v1 API (and API 2 for the few kinds only it serves).

    Use it as an async context manager; a session passed in stays the caller's to close.
    Without budgets given it has its own; ``cobot.spaces.cobot_clients`` gives each space's
    client the budgets of its token, shared with every process on ``state_dir``.
    """

    def __init__(
        self,
        settings: CobotSettings,
        budget: RequestBudget | None = None,
        metrics: Metrics | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        membership_budget: RequestBudget | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._settings = settings
        self._budget = budget or RequestBudget(settings.requests_per_minute)
        #: Cobot limits the membership listing on its own, below the general limit.
        self.membership_listing_budget = membership_budget or RequestBudget(
            MEMBERSHIP_LISTS_PER_MINUTE
        )
        self._metrics = metrics
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._max_attempts = max_attempts
        #: Full jitter: Cobot's limit is per user, so spreading retries matters more than speed.
        self._backoff = Backoff(
            backoff_base, backoff_cap, jitter=1.0, max_retry_after_seconds=max_retry_after
        )
        self._max_retry_after = max_retry_after
        bases = (settings.base_url, settings.api2_url)
        self._origins = tuple(dict.fromkeys(f"{base}/" for base in bases))

    def request_budget(self) -> RequestBudget:
        """The request budget, by which the worker paces its flushes."""
        return self._budget

    async def __aenter__(self) -> CobotClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- resources ------------------------------------------------------------------------

    async def fetch(self, ref: ResourceRef, urgent: bool = True) -> Fetched:
        """Load one resource; 404 and 410 mean Cobot deleted it."""
        url = self._resource_url(ref)
        accept = JSON_API_MEDIA_TYPE if ref.is_api2 else _JSON
        reply = await self._request("GET", url, ok=(200, 404, 410), accept=accept, urgent=urgent)
        if reply.status != 200:
            return Fetched(ref=ref, status="gone", data=None, observed_at=reply.sent_at)
        document = expect_object(reply, _label("GET", url))
        data = flatten_json_api(document, _label("GET", url)) if ref.is_api2 else document
        return Fetched(ref=ref, status="found", data=data, observed_at=reply.sent_at)

    async def list_memberships(self, all: bool = True, urgent: bool = False) -> list[JSONObject]:
        """Every membership; ``all`` includes unconfirmed and past ones, not only current."""
        await self.membership_listing_budget.acquire(urgent=urgent)
        params = {"all": "true"} if all else None
        return await self._list("/api/memberships", params, urgent)

    async def list_invoices(
        self, *, date_from: date, date_to: date, urgent: bool = False
    ) -> list[JSONObject]:
        """Invoices issued between the two dates (inclusive)."""
        params = {"from": date_from.isoformat(), "to": date_to.isoformat()}
        return await self._list("/api/invoices", params, urgent)

    async def list_invoices_by_ids(
        self, ids: Sequence[str], urgent: bool = False
    ) -> list[JSONObject]:
        """Invoices by id, in as few requests as keep each URL under MAX_LIST_URL_LENGTH."""
        prefix = len(f"{self._settings.base_url}/api/invoices?ids=")
        invoices: list[JSONObject] = []
        for chunk in _chunk_ids(ids, MAX_LIST_URL_LENGTH - prefix):
            invoices += await self._list("/api/invoices", {"ids": ",".join(chunk)}, urgent)
        return invoices

    async def list_bookings(
        self, *, start: datetime, end: datetime, urgent: bool = False
    ) -> list[JSONObject]:
        """Bookings overlapping the window (naive datetimes are taken as UTC)."""
        params = {"from": _cobot_datetime(start), "to": _cobot_datetime(end)}
        return await self._list("/api/bookings", params, urgent)

    async def list_work_sessions(
        self, *, start: datetime, end: datetime, urgent: bool = False
    ) -> list[JSONObject]:
        """Check-ins (work sessions) in the window (naive datetimes are taken as UTC)."""
        params = {"from": _cobot_datetime(start), "to": _cobot_datetime(end)}
        return await self._list("/api/work_sessions", params, urgent)

    # -- subscriptions --------------------------------------------------------------------

    async def list_subscriptions(self) -> list[Subscription]:
        """The subscriptions Cobot holds for this token's user and app."""
        url = self._v1_url("/api/subscriptions")
        reply = await self._request("GET", url, ok=(200,))
        label = _label("GET", url)
        return [_subscription(item, label) for item in expect_list(reply, label)]

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """One subscription, or None when Cobot no longer has it."""
        url = self._subscription_url(subscription_id)
        reply = await self._request("GET", url, ok=(200, 404))
        if reply.status == 404:
            return None
        label = _label("GET", url)
        return _subscription(expect_object(reply, label), label)

    async def create_subscription(
        self, event: str, callback_url: str, filters: Mapping[str, Any] | None = None
    ) -> Subscription:
        """Subscribe ``callback_url`` to ``event``; raise SubscriptionExists on a duplicate."""
        url = self._v1_url("/api/subscriptions")
        body: dict[str, Any] = {"event": event, "callback_url": callback_url}
        if filters:
            body["filters"] = dict(filters)
        reply = await self._request("POST", url, ok=(200, 201, 409, 422), body=body)
        if reply.status == 409:
            raise SubscriptionExists(
                f"Cobot already holds a subscription for {event} with this callback URL",
                status=409,
            )
        if reply.status == 422:
            raise SubscriptionRejected(
                f"Cobot refused the subscription for {event}: {error_text(reply, self._settings)}",
                status=422,
            )
        label = _label("POST", url)
        return _subscription(expect_object(reply, label), label)

    async def delete_subscription(self, subscription: Subscription | str) -> bool:
        """Delete a subscription; False when Cobot had already deleted it."""
        subscription_id = (
            subscription.id if isinstance(subscription, Subscription) else subscription
        )
        url = self._subscription_url(subscription_id)
        reply = await self._request("DELETE", url, ok=(200, 204, 404))
        return reply.status != 404

    # -- URLs -----------------------------------------------------------------------------

    def ref_of(self, kind: str, ident: str) -> ResourceRef:
        """The reference of a resource known by kind and id, at this space's origin."""
        return ResourceRef(kind=kind, id=ident, url=resource_url(kind, ident, self._settings))

    def _v1_url(self, path: str) -> str:
        return f"{self._settings.base_url}{path}"

    def _subscription_url(self, subscription_id: str) -> str:
        return self._v1_url(f"/api/subscriptions/{quote(str(subscription_id), safe='')}")

    def _resource_url(self, ref: ResourceRef) -> str:
        """Rebuild the URL from kind and id: ``ref.url`` may name any host, this cannot."""
        url = resource_url(ref.kind, ref.id, self._settings)
        if resource_kind_of_path(urlsplit(url).path) != (ref.kind, ref.id):
            raise ValueError(f"not a valid {ref.kind} id: {ref.id!r}")
        return url

    # -- requests -------------------------------------------------------------------------

    async def _list(
        self, path: str, params: Mapping[str, str] | None, urgent: bool
    ) -> list[JSONObject]:
        url = self._v1_url(path)
        reply = await self._request("GET", url, ok=(200,), params=params, urgent=urgent)
        return expect_list(reply, _label("GET", url, params))

    async def _request(
        self,
        method: str,
        url: str,
        *,
        ok: Collection[int],
        params: Mapping[str, str] | None = None,
        body: Any = None,
        accept: str = _JSON,
        urgent: bool = True,
    ) -> Reply:
        """Send with retries; return replies whose status is in ``ok``, raise for the rest."""
        label = _label(method, url, params)
        last_failure = last_reason = ""
        last_status: int | None = None
        for attempt in range(1, self._max_attempts + 1):
            await self._budget.acquire(urgent=urgent)
            try:
                reply = await self._send(method, url, params=params, body=body, accept=accept)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_reason = _unreachable(exc)
                last_failure = "timed out" if isinstance(exc, TimeoutError) else "unreachable"
                last_failure += f" ({last_reason})"
                last_status, wait = None, self._backoff.delay(attempt)
            else:
                if reply.status in ok:
                    return reply
                if reply.status != 429 and reply.status < 500:
                    raise refusal(label, reply, self._settings)
                last_failure, last_status = f"answered {reply.status}", reply.status
                last_reason = last_failure
                if reply.status == 429:
                    wait = self._rate_limited_wait(label, reply, attempt)
                else:
                    wait = self._backoff.delay(attempt)
            if attempt < self._max_attempts:
                await asyncio.sleep(wait)
        raise CobotUnavailable(
            f"Cobot {last_failure} on {label} ({self._max_attempts} attempts); will retry later",
            status=last_status,
            host=urlsplit(url).hostname,
            reason=last_reason,
        )

    def _rate_limited_wait(self, label: str, reply: Reply, attempt: int) -> float:
        """Hold back every Cobot caller as long as Cobot asked; give up if that is too long."""
        asked = reply.retry_after
        if asked is not None and asked > self._max_retry_after:
            self._budget.pause_for(asked)
            raise CobotUnavailable(
                f"Cobot rate-limited {label} for {asked:.0f} s; will retry later",
                status=429,
                retry_after=asked,
            )
        wait = self._backoff.delay(attempt, asked)
        self._budget.pause_for(wait)
        return wait

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        accept: str,
    ) -> Reply:
        """The one place that attaches the token: only ever to the configured Cobot origins."""
        if not url.startswith(self._origins):
            raise CobotMisdirected(
                f"refusing to send the Cobot token to {urlsplit(url).netloc or url!r}: "
                f"only {' and '.join(o.rstrip('/') for o in self._origins)} are Cobot"
            )
        headers = {
            "Authorization": f"Bearer {self._settings.access_token.reveal()}",
            "Accept": accept,
            "User-Agent": f"cobot-syncd/{__version__}",
        }
        label = _label(method, url, params)
        started = time.monotonic()
        sent_at = time.time()
        outcome = "error"
        try:
            async with self._client_session().request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                outcome = str(response.status)
                text = await response.text(errors="replace")
                reply = Reply(
                    status=response.status,
                    data=parse_json(text),
                    text=text,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    sent_at=sent_at,
                )
        except TimeoutError:
            outcome = "timeout"
            raise
        finally:
            elapsed = time.monotonic() - started
            log.debug("%s -> %s in %.3f s", label, outcome, elapsed)
            if self._metrics is not None:
                self._metrics.cobot_requests.inc(status=outcome)
        return reply

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _label(method: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """``GET /api/invoices?from&to``: the request without host or query values, safe to log."""
    query = f"?{'&'.join(params)}" if params else ""
    return f"{method} {urlsplit(url).path}{query}"


def _subscription(data: JSONObject, label: str) -> Subscription:
    try:
        filters = data.get("filters")
        return Subscription(
            id=str(data["id"]),
            event=str(data["event"]),
            url=str(data.get("url") or ""),
            active=bool(data.get("active", True)),
            callback_url=str(data["callback_url"]),
            filters=dict(filters) if isinstance(filters, dict) else None,
        )
    except KeyError as exc:
        raise unexpected(label, f"a subscription with {exc.args[0]}") from None


def _chunk_ids(ids: Sequence[str], max_length: int) -> list[list[str]]:
    """Split ids into comma-joined groups no longer than max_length once URL-encoded."""
    chunks: list[list[str]] = []
    current: list[str] = []
    length = 0
    for item in ids:
        # Counted as if fully percent-encoded, each separating comma as %2C.
        size = len(quote(item, safe=""))
        if current and length + 3 + size > max_length:
            chunks.append(current)
            current, length = [], 0
        length += size + (3 if current else 0)
        current.append(item)
    if current:
        chunks.append(current)
    return chunks


def _cobot_datetime(value: datetime) -> str:
    """Cobot v1's datetime format, in UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def _unreachable(exc: BaseException) -> str:
    """Why a request got no answer, in the words one checks a network with."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return "connection refused" if refused else f"cannot connect ({exc.os_error.strerror})"
    return f"connection failed ({type(exc).__name__})"
