"""The webhook receiver: what is refused (and never stored), what is stored, and when."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.core.metrics import Metrics
from syncd.intake import receiver
from syncd.intake.receiver import (
    MAX_BODY_BYTES,
    build_receiver_app,
    web_server_kwargs,
    web_site_kwargs,
)
from syncd.store.database import Store
from syncd.store.schema import DB_FILENAME

SECRET = "current-secret-0123456789abcdef"
PREVIOUS = "previous-secret-0123456789abcdef"
MEMBER_URL = "https://co-up.cobot.me/api/memberships/93207605"

CONFIG = """
cobot:
  subdomain: co-up
  access_token: token-not-a-secret-here
  base_url: {base_url}
webhook:
  listen: 127.0.0.1:8080
  public_url: https://sync.example.org/cobot
  secret: {secret}
  previous_secrets: [{previous}]
google:
  service_account_file: {service_account}
  spreadsheet_id: sheet-id
state_dir: {state_dir}
sheets:
  Members:
    resource: membership
    events: [created_membership, deleted_membership]
    columns: {{Name: name}}
  Bookings:
    resource: booking
    events: [deleted_booking]
    columns: {{Title: title}}
  Admins:
    resource: admin
    events: [deleted_admin]
    columns: {{Name: name}}
"""


def make_settings(tmp_path: Path, base_url: str = "https://co-up.cobot.me") -> Settings:
    service_account = tmp_path / "service-account.json"
    service_account.write_text(
        json.dumps(
            {
                "client_email": "syncd@example.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nfake\n-----END PRIVATE KEY-----\n",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.format(
            base_url=base_url,
            secret=SECRET,
            previous=PREVIOUS,
            service_account=service_account,
            state_dir=tmp_path / "state",
        )
    )
    return load_settings(config, environ={})


class Harness:
    """A receiver served exactly as the daemon serves it, plus what it touched."""

    def __init__(
        self, port: int, session: aiohttp.ClientSession, store: Store, metrics: Metrics
    ) -> None:
        self.port = port
        self.session = session
        self.store = store
        self.metrics = metrics
        self.wakeups = 0

    def wake(self) -> None:
        self.wakeups += 1

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, f"http://127.0.0.1:{self.port}{path}", **kwargs)

    async def post(
        self, body: Any, event: str = "created_membership", secret: str = SECRET
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        async with self.request("POST", f"/cobot/{secret}/{event}", data=data) as resp:
            return resp.status, await resp.read()

    async def stored(self) -> int:
        stats = await self.store.stats()
        return stats.pending + stats.done + stats.dead

    def rejected(self, reason: str) -> float:
        return self.metrics.webhooks_rejected.value(reason=reason)


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Start receivers; on teardown prove that none of them ever fetched anything."""
    async with contextlib.AsyncExitStack() as stack:
        fetches = stack.enter_context(aioresponses(passthrough=["http://127.0.0.1"]))
        session = aiohttp.ClientSession()
        servers = contextlib.AsyncExitStack()

        async def factory(settings: Settings | None = None, store: Store | None = None) -> Harness:
            settings = settings or make_settings(tmp_path)
            if store is None:
                store = Store.open(settings.state_dir, busy_timeout=0.1)
                stack.push_async_callback(store.close)
            metrics = Metrics()
            harness: Harness
            app = build_receiver_app(
                settings.webhook,
                settings.cobot,
                settings.sheets,
                store,
                metrics,
                lambda: harness.wake(),
            )
            runner = web.AppRunner(app, **web_server_kwargs())
            await runner.setup()
            servers.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, "127.0.0.1", 0, **web_site_kwargs()).start()
            harness = Harness(runner.addresses[0][1], session, store, metrics)
            return harness

        yield factory
        await session.close()
        await servers.aclose()
        assert fetches.requests == {}


@pytest.fixture
async def harness(start: HarnessFactory) -> Harness:
    return await start()


async def assert_refused(harness: Harness, status: int, result: tuple[int, bytes]) -> None:
    assert result[0] == status, result
    assert await harness.stored() == 0
    assert harness.wakeups == 0


# -- accepted ----------------------------------------------------------------------------------


async def test_stores_then_answers_202(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    status, body = await harness.post({"url": MEMBER_URL})
    assert status == 202
    reply = json.loads(body)
    (event,) = await harness.store.claim_due(10)
    assert reply == {"status": "accepted", "id": event.id}
    assert (event.event, event.kind, event.url) == ("created_membership", "membership", MEMBER_URL)
    assert event.space == "co-up"  # the only space's, though the callback names none
    assert harness.wakeups == 1
    assert harness.metrics.webhooks_received.value(event="created_membership") == 1
    assert "created_membership membership 93207605 stored" in caplog.text


async def test_previous_secret_is_accepted(harness: Harness) -> None:
    assert (await harness.post({"url": MEMBER_URL}, secret=PREVIOUS))[0] == 202
    assert await harness.stored() == 1


async def test_deletion_body_is_stored_whole(harness: Harness) -> None:
    body = {
        "url": "https://co-up.cobot.me/api/bookings/12345",
        "booking": {"title": "test booking", "price": 10.0, "resource": {"name": "Room"}},
    }
    assert (await harness.post(body, event="deleted_booking"))[0] == 202
    (event,) = await harness.store.claim_due(10)
    assert event.body == body
    assert event.kind == "booking"


async def test_unmapped_kind_is_stored_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = "https://co-up.cobot.me/api/guest_accounts/12345"
    assert (await harness.post({"url": url}, event="deleted_admin"))[0] == 202
    (event,) = await harness.store.claim_due(10)
    assert event.kind == "guest_account"
    assert "no configured sheet takes this kind" in caplog.text


async def test_body_of_exactly_the_limit_is_accepted(harness: Harness) -> None:
    body = {"url": MEMBER_URL, "padding": ""}
    body["padding"] = "x" * (MAX_BODY_BYTES - len(json.dumps(body)))
    assert len(json.dumps(body)) == MAX_BODY_BYTES
    assert (await harness.post(body))[0] == 202


async def test_either_scheme_names_the_configured_host_and_nothing_else(
    start: HarnessFactory, tmp_path: Path
) -> None:
    harness = await start(make_settings(tmp_path, base_url="http://127.0.0.1:9001"))
    for url in (
        "http://127.0.0.1:9001/api/memberships/1",
        "https://127.0.0.1:9001/api/memberships/2",
    ):
        assert (await harness.post({"url": url}))[0] == 202
    for url in ("http://127.0.0.1:9002/api/memberships/3", MEMBER_URL):
        assert (await harness.post({"url": url}))[0] == 422
    assert await harness.stored() == 2


async def test_worker_wake_failure_still_acknowledges(harness: Harness) -> None:
    def broken() -> None:
        raise RuntimeError("worker gone")

    harness.wake = broken  # type: ignore[method-assign]
    assert (await harness.post({"url": MEMBER_URL}))[0] == 202
    assert await harness.stored() == 1


# -- secret, event, method -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/cobot/wrong-secret-0123456789abcdef/created_membership",
        f"/cobot/{SECRET[:-1]}/created_membership",
        f"/cobot/{SECRET}x/created_membership",
        f"/cobot/{SECRET.upper()}/created_membership",
        "/cobot/created_membership",
        "/cobot//created_membership",
        f"/cobot/{SECRET}/created_membership/extra",
        f"/{SECRET}/created_membership",
    ],
)
async def test_wrong_or_missing_secret_is_404_like_any_unknown_path(
    harness: Harness, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with harness.request("POST", path, json={"url": MEMBER_URL}) as resp:
        result = resp.status, await resp.read(), resp.content_type
    async with harness.request("POST", "/no/such/path", json={"url": MEMBER_URL}) as resp:
        unknown = resp.status, await resp.read(), resp.content_type
    assert result == unknown
    await assert_refused(harness, 404, result[:2])
    assert SECRET not in caplog.text


async def test_bad_secret_is_counted(harness: Harness) -> None:
    result = await harness.post({"url": MEMBER_URL}, secret="x" * 40)
    await assert_refused(harness, 404, result)
    assert harness.rejected("bad_secret") == 1


@pytest.mark.parametrize("event", ["created_invoice", "no_such_event", "Created_Membership"])
async def test_unconfigured_event_is_gone(harness: Harness, event: str) -> None:
    await assert_refused(harness, 410, await harness.post({"url": MEMBER_URL}, event=event))
    assert harness.rejected("gone_event") == 1


async def test_wrong_secret_wins_over_unconfigured_event(harness: Harness) -> None:
    result = await harness.post({"url": MEMBER_URL}, event="created_invoice", secret="y" * 32)
    await assert_refused(harness, 404, result)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405(harness: Harness, method: str) -> None:
    async with harness.request(method, f"/cobot/{SECRET}/created_membership") as resp:
        assert resp.headers["Allow"] == "POST"
        result = resp.status, await resp.read()
    await assert_refused(harness, 405, result)
    assert harness.rejected("method") == 1


# -- body --------------------------------------------------------------------------------------


async def test_declared_oversized_body_is_413(harness: Harness) -> None:
    result = await harness.post(b"{" + b" " * MAX_BODY_BYTES + b"}")
    await assert_refused(harness, 413, result)
    assert harness.rejected("too_large") == 1


async def send_raw(harness: Harness, head: str, parts: list[bytes], pause: float = 0.0) -> int:
    """Speak HTTP on a plain socket: the client library would buffer a streamed body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        with contextlib.suppress(ConnectionError):
            for part in parts:
                await asyncio.sleep(pause)
                writer.write(part)
                await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_chunked_oversized_body_is_413(harness: Harness) -> None:
    head = (
        f"POST /cobot/{SECRET}/created_membership HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
    )
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    status = await send_raw(harness, head, [b"1\r\n{\r\n", *[chunk] * 200, b"0\r\n\r\n"])
    await assert_refused(harness, 413, (status, b""))
    assert harness.rejected("too_large") == 1


async def test_trickling_body_times_out(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver, "BODY_READ_TIMEOUT", 0.2)
    head = f"POST /cobot/{SECRET}/created_membership HTTP/1.1\nHost: x\nContent-Length: 80\n"
    status = await send_raw(harness, head, [b'{"url": '])
    await assert_refused(harness, 408, (status, b""))
    assert harness.rejected("timeout") == 1


async def test_framing_broken_mid_body_cannot_hold_the_handler(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver, "BODY_READ_TIMEOUT", 0.2)
    head = (
        f"POST /cobot/{SECRET}/created_membership HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
    )
    status = await send_raw(harness, head, [b'5\r\n{"url\r\n', b"zz\r\n"], pause=0.05)
    await assert_refused(harness, 408, (status, b""))


async def test_malformed_http_is_refused_by_the_server(harness: Harness) -> None:
    head = (
        f"POST /cobot/{SECRET}/created_membership HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
    )
    status = await send_raw(harness, head, [b"zz\r\n"])
    await assert_refused(harness, 400, (status, b""))


async def test_sender_hanging_up_stores_nothing(harness: Harness) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(
        f"POST /cobot/{SECRET}/created_membership HTTP/1.1\r\nHost: x\r\n"
        f'Content-Length: 80\r\n\r\n{{"url": "{MEMBER_URL}"'.encode()
    )
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.1)
    assert await harness.stored() == 0
    assert harness.rejected("bad_body") == 1
    assert harness.wakeups == 0
    assert (await harness.post({"url": MEMBER_URL}))[0] == 202


def nested(depth: int) -> bytes:
    return b'{"url": "' + MEMBER_URL.encode() + b'", "x": ' + b"[" * depth + b"]" * depth + b"}"


BAD_BODIES = {
    "empty": b"",
    "not json": b"url=" + MEMBER_URL.encode(),
    "invalid utf-8": b'{"url": "' + MEMBER_URL.encode() + b'", "name": "\xff"}',
    "utf-8 bom": b'\xef\xbb\xbf{"url": "' + MEMBER_URL.encode() + b'"}',
    "utf-16": json.dumps({"url": MEMBER_URL}).encode("utf-16"),
    "array": json.dumps([{"url": MEMBER_URL}]).encode(),
    "string": json.dumps(MEMBER_URL).encode(),
    "number": b"1",
    "null": b"null",
    "no url": b'{"href": "' + MEMBER_URL.encode() + b'"}',
    "url null": b'{"url": null}',
    "url number": b'{"url": 93207605}',
    "url list": json.dumps({"url": [MEMBER_URL]}).encode(),
    "url object": json.dumps({"url": {"href": MEMBER_URL}}).encode(),
    "duplicate url": b'{"url": "' + MEMBER_URL.encode() + b'", "url": "https://evil.example/"}',
    "duplicate nested": b'{"url": "' + MEMBER_URL.encode() + b'", "m": {"a": 1, "a": 2}}',
    "NaN": b'{"url": "' + MEMBER_URL.encode() + b'", "price": NaN}',
    "Infinity": b'{"url": "' + MEMBER_URL.encode() + b'", "price": Infinity}',
    "-Infinity": b'{"url": "' + MEMBER_URL.encode() + b'", "price": -Infinity}',
    "float overflow": b'{"url": "' + MEMBER_URL.encode() + b'", "price": 1e999}',
    "huge int": b'{"url": "' + MEMBER_URL.encode() + b'", "n": ' + b"9" * 4000 + b"}",
    "nesting": nested(40),
    "deep nesting": nested(20_000),
    "lone surrogate": b'{"url": "' + MEMBER_URL.encode() + b'", "name": "\\ud800"}',
    "surrogate key": b'{"url": "' + MEMBER_URL.encode() + b'", "\\udfff": 1}',
    "trailing data": b'{"url": "' + MEMBER_URL.encode() + b'"} {}',
    "single quotes": b"{'url': '" + MEMBER_URL.encode() + b"'}",
}


@pytest.mark.parametrize("raw", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_malformed_body_is_400(harness: Harness, raw: bytes) -> None:
    await assert_refused(harness, 400, await harness.post(raw))
    assert harness.rejected("bad_body") == 1


# -- url ---------------------------------------------------------------------------------------

BAD_URLS = {
    "userinfo host trick": "https://co-up.cobot.me@evil.example/api/memberships/1",
    "userinfo": "https://user:pw@co-up.cobot.me/api/memberships/1",
    "other host": "https://evil.example/api/memberships/1",
    "suffix host": "https://co-up.cobot.me.evil.example/api/memberships/1",
    "other space": "https://other.cobot.me/api/memberships/1",
    "other port": "http://co-up.cobot.me:8080/api/memberships/1",
    "ipv4 literal": "https://127.0.0.1/api/memberships/1",
    "ipv6 literal": "https://[::1]/api/memberships/1",
    "metadata ip": "https://169.254.169.254/api/memberships/1",
    "port": "https://co-up.cobot.me:8443/api/memberships/1",
    "bad port": "https://co-up.cobot.me:99999/api/memberships/1",
    "backslash": "https://co-up.cobot.me\\@evil.example/api/memberships/1",
    "encoded slash": "https://co-up.cobot.me/api%2Fmemberships/1",
    "encoded host": "https://co-up%2Ecobot.me/api/memberships/1",
    "idn look-alike": "https://co-up.cob\u043et.me/api/memberships/1",
    "punycode": "https://xn--co-up-2ve.cobot.me/api/memberships/1",
    "unknown resource": "https://co-up.cobot.me/api/users/1",
    "path traversal": "https://co-up.cobot.me/api/memberships/../admins/1",
    "query": "https://co-up.cobot.me/api/memberships/1?redirect=https://evil.example",
    "fragment": "https://co-up.cobot.me/api/memberships/1#x",
    "scheme relative": "//co-up.cobot.me/api/memberships/1",
    "other scheme": "file:///etc/passwd",
    "whitespace": " https://co-up.cobot.me/api/memberships/1",
    "newline": "https://co-up.cobot.me/api/memberships/1\n",
    "empty": "",
    "too long": "https://co-up.cobot.me/api/memberships/" + "1" * 5000,
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
async def test_foreign_or_odd_url_is_422_and_never_fetched(
    harness: Harness, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(harness, 422, await harness.post({"url": url}))
    assert harness.rejected("bad_url") == 1
    assert "bad_url" in caplog.text
    if len(url) > 200:
        assert url not in caplog.text
        assert url[:200] in caplog.text


# -- storage failures and ordering --------------------------------------------------------------


async def test_answers_only_after_commit(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    commits: list[str] = []
    original = harness.store._insert_events

    def slow_commit(rows: list[tuple[Any, ...]]) -> list[int]:
        gate.wait(timeout=5)
        ids = original(rows)
        commits.append("committed")
        return ids

    monkeypatch.setattr(harness.store, "_insert_events", slow_commit)
    request = asyncio.create_task(harness.post({"url": MEMBER_URL}))
    await asyncio.sleep(0.3)
    assert not request.done()
    assert harness.wakeups == 0
    with sqlite3.connect(harness.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    gate.set()
    assert (await request)[0] == 202
    assert commits == ["committed"]
    assert harness.wakeups == 1


async def assert_unavailable(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    async with harness.request(
        "POST", f"/cobot/{SECRET}/created_membership", json={"url": MEMBER_URL}
    ) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
    assert harness.rejected("store_unavailable") == 1
    assert harness.wakeups == 0
    assert any(r.levelno == logging.ERROR and "503" in r.getMessage() for r in caplog.records)


async def test_readonly_store_is_503(
    start: HarnessFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    await Store.open(settings.state_dir).close()
    async with Store.open(settings.state_dir, readonly=True) as readonly:
        harness = await start(settings, readonly)
        await assert_unavailable(harness, caplog)
        assert await harness.stored() == 0


async def test_locked_database_is_503(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    locker = sqlite3.connect(harness.store.path.parent / DB_FILENAME, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        await assert_unavailable(harness, caplog)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert await harness.stored() == 0
    assert "database is locked" in caplog.text


async def test_full_disk_is_503(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    store = harness.store

    def cap_size() -> None:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")

    await store._call(cap_size)
    body = {"url": MEMBER_URL, "padding": "x" * 60_000}
    async with harness.request("POST", f"/cobot/{SECRET}/created_membership", json=body) as resp:
        assert resp.status == 503
    assert await harness.stored() == 0
    assert "full" in caplog.text


async def test_concurrent_webhooks_are_group_committed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    original = harness.store._insert_events

    def counting(rows: list[tuple[Any, ...]]) -> list[int]:
        batches.append(len(rows))
        return original(rows)

    monkeypatch.setattr(harness.store, "_insert_events", counting)
    urls = [f"https://co-up.cobot.me/api/memberships/{n}" for n in range(200)]
    results = await asyncio.gather(*(harness.post({"url": url}) for url in urls))
    assert {status for status, _ in results} == {202}
    assert len({json.loads(body)["id"] for _, body in results}) == 200
    assert sum(batches) == 200
    assert len(batches) < 100
    assert await harness.stored() == 200


# -- logging -------------------------------------------------------------------------------------


async def test_logs_never_show_secret_or_callback_path(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.post({"url": MEMBER_URL})
    await harness.post({"url": MEMBER_URL}, secret=PREVIOUS)
    await harness.post({"url": "https://evil.example/api/memberships/1"})
    await harness.post(b"nope")
    await harness.post({"url": MEMBER_URL}, event="created_invoice")
    async with harness.request("GET", f"/cobot/{SECRET}/created_membership/x"):
        pass
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 6
    assert "/cobot/{secret}/{event}" in caplog.text
    for secret in (SECRET, PREVIOUS, "token-not-a-secret-here"):
        assert secret not in caplog.text
    receiver_lines = [r for r in caplog.records if r.name == "syncd.receiver"]
    assert len(receiver_lines) == 5


# -- fuzzing -------------------------------------------------------------------------------------

CALLBACK_PATHS = st.builds(
    "/cobot/{}/{}".format,
    st.sampled_from([SECRET, PREVIOUS]),
    st.sampled_from(["created_membership", "deleted_booking", "deleted_admin", "created_invoice"]),
)
ODD_SEGMENTS = st.one_of(
    st.sampled_from([SECRET, PREVIOUS, "cobot", "created_membership", ".."]),
    st.text(max_size=20).map(lambda text: quote(text, safe="")),
)
PATHS = st.one_of(
    CALLBACK_PATHS,
    st.lists(ODD_SEGMENTS, max_size=4).map(lambda parts: "/" + "/".join(parts).lstrip("/")),
)
URLS = st.one_of(
    st.builds(
        "https://co-up.cobot.me/api/{}/{}".format,
        st.sampled_from(["memberships", "bookings", "admins", "guest_accounts", "users"]),
        st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    ),
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
        st.sampled_from(["co-up.cobot.me", "evil.example", "127.0.0.1", "co-up.cobot.me:443", ""]),
        st.sampled_from(["/api/memberships/", "/api/bookings/", "/api/users/", "/", ""]),
        st.text(max_size=12),
    ),
    st.text(max_size=40),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
WEBHOOK_BODIES = st.builds(
    lambda extra, url: json.dumps({**extra, "url": url}).encode(),
    st.dictionaries(st.text(max_size=8), JSON, max_size=3),
    URLS,
)
BODIES = st.one_of(
    WEBHOOK_BODIES,
    st.builds(
        lambda body, at, junk: body[:at] + junk + body[at:],
        WEBHOOK_BODIES,
        st.integers(0, 200),
        st.binary(min_size=1, max_size=4),
    ),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)
METHODS = st.sampled_from(["POST", "POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD"])


FUZZ_SETTINGS = hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def assert_stored_only_if_accepted(
    harness: Harness, method: str, path: str, body: bytes
) -> None:
    """No request makes the server fail, and only a 202 stores anything."""
    before = await harness.stored()
    async with harness.request(method, path, data=body) as resp:
        status = resp.status
        await resp.read()
    assert status < 500
    assert await harness.stored() == before + (status == 202)


@FUZZ_SETTINGS
@given(method=METHODS, path=PATHS, body=WEBHOOK_BODIES)
async def test_fuzzed_paths_and_methods(
    harness: Harness, method: str, path: str, body: bytes
) -> None:
    await assert_stored_only_if_accepted(harness, method, path, body)


@FUZZ_SETTINGS
@given(path=CALLBACK_PATHS, body=BODIES)
async def test_fuzzed_bodies(harness: Harness, path: str, body: bytes) -> None:
    await assert_stored_only_if_accepted(harness, "POST", path, body)
