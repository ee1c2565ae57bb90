"""Hostile senders against a running daemon: SSRF in `url`, slow-loris, connection floods.

Whoever learns the callback URL can post anything. These tests attack the real `syncd run`
subprocess (configured with the Cobot simulator as its Cobot) and prove that no foreign URL
is ever fetched, that the Cobot token goes nowhere else, and that a slow or flooding client
cannot keep Cobot's own deliveries from being answered. The constant-time secret check is
proven at unit level: a timing test would measure the machine, not the code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from syncd.core.metrics import Metrics
from syncd.intake.receiver import ROUTE_NAME, build_receiver_app
from syncd.sandbox.servers import ServerThread
from syncd.store.database import Store
from syncd.store.schema import DB_FILENAME
from tests.fixtures_daemon import Daemon, MakeDaemon, wait_until
from tests.test_chaos import NO_RESYNC
from tests.test_e2e_pipeline import by_url, fast_daemon, settle
from tests.test_health_metrics import scrape
from tests.test_receiver import PREVIOUS, SECRET, make_settings

#: A connection flood this size must not starve other senders.
FLOOD_CONNECTIONS = 300
#: How long an honest webhook may take to be answered while the attack runs.
ANSWER_WITHIN_SECONDS = 5.0


@dataclass
class Spy:
    """A loopback HTTP server that records every request it ever gets."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        return web.json_response({"id": "spy", "name": "stolen"})


@pytest.fixture
def spy() -> Iterator[tuple[Spy, ServerThread]]:
    recorder = Spy()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    with ServerThread(app) as server:
        yield recorder, server


def ssrf_urls(daemon: Daemon, spy_port: int, path: str, member_id: str) -> list[str]:
    """URLs that name the spy, another host, a non-web scheme or an odd form of Cobot's."""
    cobot_port = daemon.cobot.server.port
    cobot = f"127.0.0.1:{cobot_port}"
    spy = f"127.0.0.1:{spy_port}"
    return [
        f"http://{spy}{path}",
        f"http://localhost:{spy_port}{path}",
        f"http://localhost:{cobot_port}{path}",
        f"http://127.0.0.1:{cobot_port + 1}{path}",
        f"http://127.0.0.1{path}",
        f"http://{cobot}@{spy}{path}",
        f"http://user:password@{cobot}{path}",
        f"http://{spy}\\@{cobot}{path}",
        f"http://{cobot}%2F@{spy}{path}",
        f"http://{cobot}%2F{path}",
        f"http://{cobot}/api/memberships%2F{member_id}",
        f"http://{cobot}/api/memberships/..%2F..%2Fsubscriptions",
        f"http://{cobot}/api/memberships/../subscriptions",
        # The configured host under the other scheme is Cobot itself, accepted and fetched at
        # the configured origin (test_e2e_mirror.py: test_keys_are_compared_as_cobot_resources).
        f"ftp://{cobot}{path}",
        f"gopher://{spy}/_GET%20{path}",
        "file:///etc/passwd",
        f"//{spy}{path}",
        f"http://2130706433:{spy_port}{path}",
        f"http://0x7f.0.0.1:{spy_port}{path}",
        f"http://127.1:{spy_port}{path}",
        f"http://[::1]:{spy_port}{path}",
        f"http://[::ffff:127.0.0.1]:{cobot_port}{path}",
        f"http://0.0.0.0:{spy_port}{path}",
        f"http://127.0.0.1.:{cobot_port}{path}",
        f"http://xn--12-0-0-1-j0a:{cobot_port}{path}",
        f"http://\uff11\uff12\uff17.0.0.1:{cobot_port}{path}",  # full-width digits
        f"http://\uff4cocalhost:{spy_port}{path}",  # full-width l
        f"http://{cobot}{path}?next=http://{spy}/",
        f"http://{cobot}{path}#@{spy}",
        f" http://{cobot}{path}",
        f"http://{cobot}{path}\r\nHost: {spy}",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    ]


def inbox_size(daemon: Daemon) -> int:
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


@pytest.mark.e2e
def test_ssrf_urls_are_refused_and_nothing_foreign_is_ever_fetched(
    make_daemon: MakeDaemon, spy: tuple[Spy, ServerThread]
) -> None:
    recorder, spy_server = spy
    daemon = fast_daemon(make_daemon, extra=NO_RESYNC).start()
    sim = daemon.cobot.sim
    target = sim.create("membership", emit=False)
    path = sim.url_for("membership", target["id"]).removeprefix(daemon.cobot.url)
    hostile = ssrf_urls(daemon, spy_server.port, path, target["id"])

    answers = {}
    for event in ("created_membership", "deleted_membership"):
        for url in hostile:
            body = {"url": url, "membership": {"id": target["id"], "url": url}}
            response = requests.post(f"{daemon.callback_base}/{event}", json=body, timeout=10)
            answers[(event, url)] = response.status_code
    assert {key: code for key, code in answers.items() if code != 422} == {}
    assert inbox_size(daemon) == 0

    # An honest webhook afterwards is fetched and written: the daemon was listening all along.
    honest = sim.create("membership")
    settle(daemon)
    assert set(by_url(daemon.rows("Members"))) == {sim.url_for("membership", honest["id"])}
    assert recorder.requests == []
    paths = [r.path for r in sim.requests()]
    assert f"/api/memberships/{honest['id']}" in paths
    assert [p for p in paths if target["id"] in p] == [], "the target was fetched"
    assert daemon.stop() == 0


async def slow_loris(
    daemon: Daemon, count: int, opened: asyncio.Event, stop: asyncio.Event
) -> None:
    """Open ``count`` connections that pass every check up to the body and then trickle it,
    a byte at a time, until stop; ``opened`` is set once all of them are sending."""
    head = (
        f"POST /cobot/{daemon.secret}/created_membership HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
    )
    writers: list[asyncio.StreamWriter] = []
    for _ in range(count):
        _reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        writer.write(head.encode())
        writers.append(writer)
    opened.set()
    while not stop.is_set():
        for writer in writers:
            if not writer.is_closing():
                writer.write(b" ")  # a body byte; the body never ends
        await asyncio.sleep(0.2)
    for writer in writers:
        writer.close()


async def attack_while_posting(daemon: Daemon, bodies: list[dict[str, Any]]) -> list[int]:
    """Run the attack, post each honest webhook during it; returns their statuses."""
    opened, stop = asyncio.Event(), asyncio.Event()
    attack = asyncio.create_task(slow_loris(daemon, FLOOD_CONNECTIONS, opened, stop))
    await asyncio.wait_for(opened.wait(), timeout=60)
    statuses = []
    try:
        for body in bodies:
            statuses.append(await asyncio.to_thread(post_honest, daemon, body))
    finally:
        stop.set()
        await attack
    return statuses


def body_rejections(daemon: Daemon) -> float:
    """Webhooks refused while their body was read: the sender hung up, or it took too long."""
    metrics = scrape(daemon.url)
    return sum(
        metrics.value("syncd_webhooks_rejected_total", reason=reason)
        for reason in ("bad_body", "timeout")
    )


def post_honest(daemon: Daemon, body: dict[str, Any]) -> int:
    url = f"{daemon.callback_base}/created_membership"
    return requests.post(url, json=body, timeout=ANSWER_WITHIN_SECONDS).status_code


@pytest.mark.e2e
def test_slow_loris_and_a_connection_flood_do_not_starve_cobot(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    members = [sim.create("membership", emit=False) for _ in range(5)]
    urls = [sim.url_for("membership", m["id"]) for m in members]

    statuses = asyncio.run(attack_while_posting(daemon, [{"url": url} for url in urls]))

    assert statuses == [202] * len(urls)
    # Every attacking connection got past the secret and held a body reader until it hung up
    # (or the read timed out): none was turned away early.
    wait_until(
        lambda: body_rejections(daemon) == FLOOD_CONNECTIONS,
        timeout=60,
        what=f"{FLOOD_CONNECTIONS} body rejections",
    )
    assert scrape(daemon.url).value("syncd_webhooks_rejected_total", reason="bad_secret") == 0
    settle(daemon)
    assert set(by_url(daemon.rows("Members"))) == set(urls)
    assert daemon.health()[0] == 200
    assert daemon.stop() == 0


def test_secret_check_compares_every_known_secret_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    store = Store.open(settings.state_dir)
    app = build_receiver_app(
        settings.webhook, settings.cobot, settings.sheets, store, Metrics(), on_stored=lambda: None
    )
    handler = next(r.handler for r in app.router.routes() if r.name == ROUTE_NAME)
    receiver = handler.__self__  # type: ignore[attr-defined]
    known = {hashlib.sha256(s.encode()).digest() for s in (SECRET, PREVIOUS)}
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for given, expected in (
        (SECRET, True),
        (PREVIOUS, True),
        ("wrong", False),
        (SECRET[:-1], False),
        ("", False),
        (SECRET + "x" * 1000, False),
    ):
        calls.clear()
        assert receiver._secret_matches(given) is expected
        # No short cut after a match, and every comparison is of two fixed-length digests.
        assert {b for _, b in calls} == known and len(calls) == len(known), given
        assert {a for a, _ in calls} == {hashlib.sha256(given.encode()).digest()}
    asyncio.run(store.close())
