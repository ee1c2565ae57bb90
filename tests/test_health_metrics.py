"""/healthz and /metrics of the running daemon, between the Cobot simulator and Sheets emulator.

/metrics is read with Prometheus' own text parser, so a format slip fails here before it fails
a real scrape; the counters are compared before and after known traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from syncd.sandbox.servers import free_port
from tests.fixtures_daemon import Daemon, MakeDaemon, wait_until
from tests.test_e2e_pipeline import fast_daemon, settle

pytestmark = pytest.mark.e2e


@dataclass
class Scrape:
    """One /metrics answer as Prometheus parses it."""

    text: str
    types: dict[str, str]
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(base_url: str) -> Scrape:
    response = requests.get(f"{base_url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return Scrape(response.text, {f.name: f.type for f in families}, samples)


def post(url: str, **kwargs: Any) -> int:
    return requests.post(url, timeout=5, **kwargs).status_code


def send_rejected_webhooks(daemon: Daemon, wrong_secret: str = "wrong-secret-0123456789") -> None:
    """One webhook refused for each reason a sender can cause."""
    member_url = daemon.cobot.sim.url_for("membership", "m1")
    assert (
        post(f"{daemon.url}/cobot/{wrong_secret}/created_membership", json={"url": member_url})
        == 404
    )
    assert post(f"{daemon.callback_base}/created_admin", json={"url": member_url}) == 410
    assert post(f"{daemon.callback_base}/created_membership", data=b"{not json") == 400
    foreign = {"url": "https://evil.example.org/api/memberships/1"}
    assert post(f"{daemon.callback_base}/created_membership", json=foreign) == 422


def test_metrics_parse_and_count_the_traffic(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    before = scrape(daemon.url)
    assert before.types == {
        "syncd_webhooks_received": "counter",
        "syncd_webhooks_rejected": "counter",
        "syncd_events_processed": "counter",
        "syncd_events_failed": "counter",
        "syncd_events_dead_lettered": "counter",
        "syncd_cobot_requests": "counter",
        "syncd_sheets_requests": "counter",
        "syncd_rows_written": "counter",
        "syncd_sheet_write_seconds": "histogram",
        "syncd_inbox_pending": "gauge",
        "syncd_inbox_dead_letters": "gauge",
        "syncd_oldest_pending_age_seconds": "gauge",
        "syncd_paused": "gauge",
    }

    members = [sim.create("membership", emit=["created_membership"]) for _ in range(3)]
    settle(daemon)
    sim.fail_next(1, status=500)  # the next fetch fails once, then succeeds on retry
    sim.update("membership", members[0]["id"], name="Renamed", emit=["updated_membership_details"])
    settle(daemon)
    send_rejected_webhooks(daemon)
    after = scrape(daemon.url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("syncd_webhooks_received_total", event="created_membership") == 3
    assert delta("syncd_webhooks_received_total", event="updated_membership_details") == 1
    for reason in ("bad_secret", "gone_event", "bad_body", "bad_url"):
        assert delta("syncd_webhooks_rejected_total", reason=reason) == 1, reason
    assert delta("syncd_events_processed_total", sheet="Members") == 4
    assert delta("syncd_rows_written_total", sheet="Members") == 4
    assert delta("syncd_cobot_requests_total", status="500") == 1
    assert delta("syncd_cobot_requests_total", status="200") >= 2  # lists may fetch several
    assert delta("syncd_sheets_requests_total", kind="values.batchUpdate", status="200") >= 2
    assert delta("syncd_sheets_requests_total", kind="batchGet", status="200") >= 2
    flushes = delta("syncd_sheet_write_seconds_count")
    assert flushes >= 2
    assert after.value("syncd_sheet_write_seconds_bucket", le="+Inf") == after.value(
        "syncd_sheet_write_seconds_count"
    )
    assert after.value("syncd_sheet_write_seconds_sum") > 0
    assert after.value("syncd_inbox_pending") == 0
    assert after.value("syncd_inbox_dead_letters") == 0
    assert after.value("syncd_oldest_pending_age_seconds") == 0
    assert after.value("syncd_paused") == 0
    for member in members:
        assert member["name"] not in after.text and member["email"] not in after.text
    assert daemon.stop() == 0


def test_healthz_turns_503_while_sheets_fail_and_recovers(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, extra={"health": {"stuck_after_seconds": 1}}).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    sim.create("membership", emit=["created_membership"])
    settle(daemon)
    status, body = daemon.health()
    assert (status, body["status"]) == (200, "ok")

    emulator.error_statuses, emulator.error_rate = [503], 1.0
    member = sim.create("membership", emit=["created_membership"])

    def stuck_with_an_error() -> bool:  # once the writer's own retries of a flush gave up
        code, body = daemon.health()
        return code == 503 and body["last_error"] is not None

    wait_until(stuck_with_an_error, timeout=30, what="/healthz 503")
    status, body = daemon.health()
    assert (body["status"], body["paused"]) == ("stuck", {})
    assert body["inbox"]["pending"] == 1
    assert body["inbox"]["oldest_pending_age_seconds"] >= 1
    assert "Google Sheets failed" in body["last_error"]
    stuck = scrape(daemon.url)
    assert stuck.value("syncd_inbox_pending") == 1
    assert stuck.value("syncd_oldest_pending_age_seconds") >= 1
    assert stuck.value("syncd_sheets_requests_total", kind="batchGet", status="503") >= 1
    assert stuck.value("syncd_events_failed_total", stage="write") >= 1

    emulator.error_rate = 0.0
    wait_until(lambda: daemon.health()[0] == 200, timeout=20, what="/healthz 200 again")
    assert member["name"] in {row["Name"] for row in daemon.rows("Members")}
    recovered = requests.get(f"{daemon.url}/healthz", timeout=5).text + scrape(daemon.url).text
    assert scrape(daemon.url).value("syncd_inbox_pending") == 0
    for text in (recovered, stuck.text, str(body)):
        assert member["name"] not in text and member["email"] not in text
    assert daemon.stop() == 0


def test_separate_health_listen_serves_health_and_metrics_only_there(
    make_daemon: MakeDaemon,
) -> None:
    port = free_port()
    health_url = f"http://127.0.0.1:{port}"
    daemon = fast_daemon(
        make_daemon, extra={"health": {"listen": f"127.0.0.1:{port}", "stuck_after_seconds": 30}}
    )

    def healthy() -> bool:
        try:
            return requests.get(f"{health_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    daemon._healthy = healthy  # type: ignore[method-assign]  # the fixture probes the webhook port
    daemon.start()
    assert requests.get(f"{health_url}/healthz", timeout=5).json()["status"] == "ok"
    assert scrape(health_url).types["syncd_inbox_pending"] == "gauge"
    for path in ("/healthz", "/metrics"):
        assert requests.get(f"{daemon.url}{path}", timeout=5).status_code == 404
    member = daemon.cobot.sim.create("membership", emit=["created_membership"])
    settle(daemon)
    assert member["name"] in {row["Name"] for row in daemon.rows("Members")}
    assert (
        scrape(health_url).value("syncd_webhooks_received_total", event="created_membership") == 1
    )
    assert requests.get(f"{health_url}/cobot/x/created_membership", timeout=5).status_code == 404
    assert daemon.stop() == 0
