"""The Cobot client: token only to Cobot, retries that respect Cobot, errors a person can act on."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from yarl import URL

from syncd.cobot.client import MAX_LIST_URL_LENGTH, CobotClient, Subscription
from syncd.cobot.errors import (
    CobotAuthError,
    CobotForbidden,
    CobotMisdirected,
    CobotRefused,
    CobotRequestError,
    CobotSpaceSuspended,
    CobotUnavailable,
    SubscriptionExists,
    SubscriptionRejected,
)
from syncd.config.secret import Secret
from syncd.config.settings import CobotSettings
from syncd.core.budget import RequestBudget
from syncd.core.errors import Action
from syncd.core.metrics import Metrics
from syncd.intake.resources import ResourceRef, parse_resource_url

TOKEN = "tok-SuperSecret-0123456789"
BASE = "https://co-up.cobot.me"
API2 = "https://api.cobot.me"
SETTINGS = CobotSettings(
    subdomain="co-up",
    access_token=Secret(TOKEN),
    base_url=BASE,
    api2_url=API2,
    requests_per_minute=1000,
    timeout_seconds=5,
)
MEMBERSHIP = parse_resource_url(f"{BASE}/api/memberships/m1", SETTINGS)
DROP_IN = parse_resource_url(f"{API2}/drop_in_passes/d-1", SETTINGS)


class SpyBudget(RequestBudget):
    """A real budget that remembers how it was used."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.pauses: list[float] = []
        self.acquired: list[bool] = []

    async def acquire(self, urgent: bool = True) -> None:
        self.acquired.append(urgent)
        await super().acquire(urgent)

    def pause_for(self, seconds: float) -> None:
        self.pauses.append(seconds)
        super().pause_for(seconds)


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.14 requires
    (pnuckowski/aioresponses#289); a finished request's writer only reports its output size."""

    def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
        writer = stream_writer or SimpleNamespace(output_size=0)
        super().__init__(*args, stream_writer=writer, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m


@pytest.fixture
def budget() -> SpyBudget:
    return SpyBudget()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(budget: SpyBudget, metrics: Metrics) -> AsyncIterator[CobotClient]:
    async with CobotClient(
        SETTINGS, budget, metrics, max_attempts=3, backoff_base=0.001, backoff_cap=0.01
    ) as cobot:
        yield cobot


def calls(m: aioresponses) -> list[tuple[str, URL, dict[str, Any]]]:
    return [(method, url, c.kwargs) for (method, url), cs in m.requests.items() for c in cs]


def assert_token_free(exc: BaseException) -> None:
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)


# -- requests ------------------------------------------------------------------------------


async def test_fetch_sends_bearer_json_accept_and_no_redirect_following(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1", "name": "Ada"})
    fetched = await client.fetch(MEMBERSHIP)
    assert (fetched.status, fetched.data) == ("found", {"id": "m1", "name": "Ada"})
    [(_, _, kwargs)] = calls(mocked)
    assert kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert kwargs["headers"]["Accept"] == "application/json"
    assert kwargs["allow_redirects"] is False
    assert kwargs["timeout"].total == 5


async def test_redirect_is_an_error_and_never_followed(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(
        f"{BASE}/api/memberships/m1", status=302, headers={"Location": "https://evil.example/x"}
    )
    mocked.get("https://evil.example/x", payload={})
    with pytest.raises(CobotMisdirected, match="redirect") as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.action is Action.PAUSE
    assert [url.host for _, url, _ in calls(mocked)] == ["co-up.cobot.me"]


@pytest.mark.parametrize("status", [404, 410])
async def test_missing_resource_is_gone(
    client: CobotClient, mocked: aioresponses, status: int
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=status)
    assert (await client.fetch(MEMBERSHIP)).status == "gone"


async def test_api2_document_is_flattened_and_asked_for_as_json_api(
    client: CobotClient, mocked: aioresponses
) -> None:
    document = {
        "data": {
            "id": "d-1",
            "type": "dropInPasses",
            "attributes": {"name": "Day pass", "price": {"gross": "12.0", "currency": "EUR"}},
        }
    }
    mocked.get(f"{API2}/drop_in_passes/d-1", payload=document)
    fetched = await client.fetch(DROP_IN)
    assert fetched.data == {
        "id": "d-1",
        "type": "dropInPasses",
        "name": "Day pass",
        "price": {"gross": "12.0", "currency": "EUR"},
    }
    [(_, _, kwargs)] = calls(mocked)
    assert kwargs["headers"]["Accept"] == "application/vnd.api+json"


async def test_token_never_goes_to_a_foreign_host_even_if_asked(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    forged = ResourceRef(kind="membership", id="m1", url="https://evil.example/api/memberships/m1")
    await client.fetch(forged)
    assert [url.host for _, url, _ in calls(mocked)] == ["co-up.cobot.me"]

    with pytest.raises(CobotMisdirected, match="refusing to send the Cobot token"):
        await client._request("GET", "https://evil.example/api/memberships/m1", ok=(200,))
    with pytest.raises(CobotMisdirected, match="refusing"):
        await client._request("GET", "https://co-up.cobot.me.evil.example/api/x", ok=(200,))
    with pytest.raises(ValueError, match="not a valid membership id"):
        await client.fetch(ResourceRef(kind="membership", id="1?x=1", url=""))
    assert len(calls(mocked)) == 1


async def test_debug_log_has_path_status_and_no_token_or_query_values(
    client: CobotClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(re.compile(rf"^{BASE}/api/invoices\?.*"), payload=[{"id": "i1"}])
    with caplog.at_level(logging.DEBUG, logger="syncd.cobot"):
        await client.list_invoices(date_from=date(2024, 1, 1), date_to=date(2024, 1, 31))
    [record] = [r for r in caplog.records if r.name == "syncd.cobot"]
    line = record.getMessage()
    assert re.fullmatch(r"GET /api/invoices\?from&to -> 200 in \d+\.\d{3} s", line)
    assert TOKEN not in caplog.text
    assert "2024" not in caplog.text


# -- retries ---------------------------------------------------------------------------------


async def test_429_honours_retry_after_and_pauses_the_shared_budget(
    client: CobotClient,
    mocked: aioresponses,
    budget: SpyBudget,
    metrics: Metrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=429, headers={"Retry-After": "0.05"})
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, *args: Any) -> Any:
        slept.append(seconds)
        return await real_sleep(seconds, *args)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    fetched = await client.fetch(MEMBERSHIP)
    assert fetched.status == "found"
    # The retry waited as long as Cobot asked, and every other caller was held back as long.
    assert 0.05 in slept
    assert budget.pauses == [0.05]
    assert metrics.cobot_requests.value(status="429") == 1
    assert metrics.cobot_requests.value(status="200") == 1


async def test_429_asking_for_too_long_a_wait_gives_up_with_retry_after(
    budget: SpyBudget, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=429, headers={"Retry-After": "600"})
    async with CobotClient(SETTINGS, budget, max_retry_after=60) as cobot:
        with pytest.raises(CobotUnavailable) as caught:
            await cobot.fetch(MEMBERSHIP)
    assert caught.value.action is Action.RETRY and caught.value.retry_after == 600
    assert budget.pauses == [600]


async def test_5xx_is_retried_then_cobot_unavailable(
    client: CobotClient, mocked: aioresponses, metrics: Metrics
) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/api/memberships/m1", status=503, body="down")
    with pytest.raises(CobotUnavailable, match="3 attempts") as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.action is Action.RETRY and caught.value.status == 503
    assert len(calls(mocked)) == 3
    assert metrics.cobot_requests.value(status="503") == 3
    assert_token_free(caught.value)


async def test_5xx_then_success_returns_the_resource(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=502)
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    assert (await client.fetch(MEMBERSHIP)).data == {"id": "m1"}


async def test_connection_errors_and_timeouts_are_retried(
    client: CobotClient, mocked: aioresponses, metrics: Metrics
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", exception=aiohttp.ClientConnectionError("reset"))
    mocked.get(f"{BASE}/api/memberships/m1", exception=TimeoutError())
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    assert (await client.fetch(MEMBERSHIP)).status == "found"
    assert metrics.cobot_requests.value(status="error") == 1
    assert metrics.cobot_requests.value(status="timeout") == 1


async def test_background_lists_yield_to_webhook_fetches(
    client: CobotClient, mocked: aioresponses, budget: SpyBudget
) -> None:
    mocked.get(f"{BASE}/api/memberships?all=true", payload=[])
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    await client.list_memberships()
    await client.fetch(MEMBERSHIP)
    assert budget.acquired == [False, True]


# -- errors a person must fix ------------------------------------------------------------


async def test_401_says_the_token_is_wrong_and_how_to_fix_it(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=401, body=f"bad token {TOKEN}")
    with pytest.raises(CobotAuthError) as caught:
        await client.fetch(MEMBERSHIP)
    message = str(caught.value)
    assert "wrong, expired or was revoked" in message
    assert "cobot.access_token" in message
    assert caught.value.action is Action.PAUSE
    assert_token_free(caught.value)
    assert len(calls(mocked)) == 1


async def test_403_names_the_missing_scope(client: CobotClient, mocked: aioresponses) -> None:
    mocked.get(
        f"{BASE}/api/memberships/m1",
        status=403,
        payload={"error": "insufficient_scope", "scope": "read_memberships"},
    )
    with pytest.raises(CobotForbidden) as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.missing_scope == "read_memberships"
    assert "lacks the scope read_memberships" in str(caught.value)
    assert "write_subscriptions" in str(caught.value)
    assert caught.value.action is Action.PAUSE
    assert_token_free(caught.value)


async def test_403_without_scope_explains_the_likely_causes(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=403, body="Forbidden")
    with pytest.raises(CobotForbidden, match="no longer an admin") as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.missing_scope is None


async def test_402_means_the_space_is_suspended(client: CobotClient, mocked: aioresponses) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=402)
    with pytest.raises(CobotSpaceSuspended, match="'co-up' is suspended"):
        await client.fetch(MEMBERSHIP)


async def test_other_4xx_carries_status_and_cobots_words_without_the_token(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", status=400, payload={"errors": f"no {TOKEN}"})
    with pytest.raises(CobotRefused) as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.status == 400 and caught.value.action is Action.DEAD_LETTER
    assert "answered 400 to GET /api/memberships/m1: no ***" in str(caught.value)
    assert_token_free(caught.value)


async def test_a_2xx_that_is_not_json_is_transient(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", body="<html>maintenance</html>")
    with pytest.raises(CobotUnavailable, match="not a JSON object"):
        await client.fetch(MEMBERSHIP)


@pytest.mark.parametrize(
    ("status", "error", "action"),
    [
        (302, CobotMisdirected, Action.PAUSE),
        (400, CobotRefused, Action.DEAD_LETTER),
        (401, CobotAuthError, Action.PAUSE),
        (402, CobotSpaceSuspended, Action.PAUSE),
        (403, CobotForbidden, Action.PAUSE),
        (422, CobotRefused, Action.DEAD_LETTER),
        (429, CobotUnavailable, Action.RETRY),
        (500, CobotUnavailable, Action.RETRY),
        (503, CobotUnavailable, Action.RETRY),
    ],
)
async def test_each_status_raises_the_error_that_says_what_to_do(
    client: CobotClient,
    mocked: aioresponses,
    status: int,
    error: type[CobotRequestError],
    action: Action,
) -> None:
    headers = {"Retry-After": "0"} if status == 429 else None
    mocked.get(f"{BASE}/api/memberships/m1", status=status, headers=headers, repeat=True)
    with pytest.raises(CobotRequestError) as caught:
        await client.fetch(MEMBERSHIP)
    assert type(caught.value) is error
    assert caught.value.action is action


@pytest.mark.parametrize("failure", [aiohttp.ClientConnectionError("reset"), TimeoutError()])
async def test_unreachable_cobot_is_retried_later(
    client: CobotClient, mocked: aioresponses, failure: Exception
) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", exception=failure, repeat=True)
    with pytest.raises(CobotUnavailable) as caught:
        await client.fetch(MEMBERSHIP)
    assert caught.value.action is Action.RETRY


# -- list endpoints ---------------------------------------------------------------------------


async def test_list_endpoints_send_windows_in_cobots_formats(
    client: CobotClient, mocked: aioresponses
) -> None:
    any_query = r"\?.*$"
    for path in ("invoices", "bookings", "work_sessions"):
        mocked.get(re.compile(rf"^{BASE}/api/{path}{any_query}"), payload=[{"id": path}])
    start = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    end = datetime(2024, 3, 2)  # naive: taken as UTC
    assert await client.list_invoices(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31)) == [
        {"id": "invoices"}
    ]
    assert await client.list_bookings(start=start, end=end) == [{"id": "bookings"}]
    assert await client.list_work_sessions(start=start, end=end) == [{"id": "work_sessions"}]
    queries = {url.path: dict(url.query) for _, url, _ in calls(mocked)}
    assert queries["/api/invoices"] == {"from": "2024-03-01", "to": "2024-03-31"}
    window = {"from": "2024-03-01 12:30:00 +0000", "to": "2024-03-02 00:00:00 +0000"}
    assert queries["/api/bookings"] == window
    assert queries["/api/work_sessions"] == window


async def test_invoices_by_ids_are_chunked_to_keep_urls_short(
    client: CobotClient, mocked: aioresponses
) -> None:
    ids = [f"invoice-{n:04d}-{'x' * 20}" for n in range(300)]
    mocked.get(re.compile(rf"^{BASE}/api/invoices\?ids=.*"), payload=[{"id": "x"}], repeat=True)
    invoices = await client.list_invoices_by_ids(ids)
    urls = [url for _, url, _ in calls(mocked)]
    sent = [i for url in urls for i in url.query["ids"].split(",")]
    assert sent == ids
    assert len(urls) > 1 and len(invoices) == len(urls)
    assert all(len(str(url)) < MAX_LIST_URL_LENGTH for url in urls)
    assert await client.list_invoices_by_ids([]) == []


async def test_list_that_is_not_an_array_is_refused(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/memberships", payload={"memberships": []})
    with pytest.raises(CobotUnavailable, match="JSON array"):
        await client.list_memberships(all=False)


# -- subscriptions ----------------------------------------------------------------------------

SUB = {
    "id": "12345",
    "event": "confirmed_membership",
    "url": f"{BASE}/api/subscriptions/12345",
    "active": True,
    "callback_url": "https://sync.example.org/cobot/s3cr3t-s3cr3t-s3cr3t/confirmed_membership",
}


async def test_subscriptions_are_listed_created_shown_and_deleted(
    client: CobotClient, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/api/subscriptions", payload=[SUB])
    mocked.post(f"{BASE}/api/subscriptions", status=201, payload=SUB)
    mocked.get(f"{BASE}/api/subscriptions/12345", payload={**SUB, "active": False})
    mocked.delete(f"{BASE}/api/subscriptions/12345", status=204)
    mocked.delete(f"{BASE}/api/subscriptions/12345", status=404)

    [listed] = await client.list_subscriptions()
    assert listed == Subscription(
        id="12345",
        event="confirmed_membership",
        url=SUB["url"],
        active=True,
        callback_url=SUB["callback_url"],
        filters=None,
    )
    assert "s3cr3t" not in repr(listed)
    created = await client.create_subscription(
        "confirmed_membership", SUB["callback_url"], {"lead_time": 60}
    )
    assert created == listed
    shown = await client.get_subscription("12345")
    assert shown is not None and not shown.active
    assert await client.delete_subscription(listed) is True
    assert await client.delete_subscription("12345") is False

    posts = [kw["json"] for method, _, kw in calls(mocked) if method == "POST"]
    assert posts == [
        {
            "event": "confirmed_membership",
            "callback_url": SUB["callback_url"],
            "filters": {"lead_time": 60},
        }
    ]


async def test_create_subscription_409_and_422(client: CobotClient, mocked: aioresponses) -> None:
    mocked.post(f"{BASE}/api/subscriptions", status=409, payload={"errors": "duplicate"})
    mocked.post(
        f"{BASE}/api/subscriptions",
        status=422,
        payload={"errors": {"event": ["is not included in the list"]}},
    )
    with pytest.raises(SubscriptionExists) as exists:
        await client.create_subscription("created_booking", "https://x.example/cb")
    assert exists.value.action is Action.DEAD_LETTER
    with pytest.raises(SubscriptionRejected) as caught:
        await client.create_subscription("created_booking", "https://x.example/cb")
    assert str(caught.value) == (
        "Cobot refused the subscription for created_booking: event is not included in the list"
    )
    assert caught.value.action is Action.DEAD_LETTER


async def test_missing_subscription_is_none(client: CobotClient, mocked: aioresponses) -> None:
    mocked.get(f"{BASE}/api/subscriptions/9", status=404)
    assert await client.get_subscription("9") is None


async def test_a_session_passed_in_is_used_and_left_open(mocked: aioresponses) -> None:
    mocked.get(f"{BASE}/api/memberships/m1", payload={"id": "m1"})
    async with aiohttp.ClientSession() as session:
        async with CobotClient(SETTINGS, session=session) as cobot:
            await cobot.fetch(MEMBERSHIP)
        assert not session.closed
