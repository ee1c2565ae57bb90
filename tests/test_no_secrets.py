"""No secret anywhere: a whole day of the daemon's life, every byte it shows a person checked.

The daemon runs with debug JSON logs through accepted and refused webhooks (wrong secrets,
the token pasted as a secret, a secret inside a body), a phase where Cobot refuses the token,
a phase where Google refuses every write, and the operator's commands. Every log line, HTTP
answer and command output is then searched for the Cobot token, the webhook secret and the
service account's private key and key id.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.fixtures_cli import run_syncd
from tests.fixtures_daemon import WEBHOOK_SECRET, Daemon, MakeDaemon, wait_until
from tests.test_e2e_pipeline import fast_daemon, settle
from tests.test_health_metrics import send_rejected_webhooks

pytestmark = pytest.mark.e2e


class Seen:
    """Everything the test was shown, to be searched at the end."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def get(self, url: str) -> requests.Response:
        response = requests.get(url, timeout=5)
        self.texts.append(response.text)
        return response

    def post(self, url: str, **kwargs: object) -> int:
        response = requests.post(url, timeout=5, **kwargs)  # type: ignore[arg-type]
        self.texts.append(response.text)
        return response.status_code

    def syncd(self, daemon: Daemon, *args: str) -> str:
        env = {"TEST_COBOT_TOKEN": daemon.cobot.token}
        result = run_syncd(*args, "--config", daemon.config_path, env=env)
        self.texts += [result.stdout, result.stderr]
        return result.stdout + result.stderr


def secrets_of(daemon: Daemon) -> dict[str, str]:
    key = daemon.sheets.key_info
    body = [line for line in key["private_key"].splitlines() if not line.startswith("-----")]
    return {
        "Cobot token": daemon.cobot.token,
        "webhook secret": WEBHOOK_SECRET,
        "private key": key["private_key"],
        "private key id": key["private_key_id"],
        **{f"private key line {i}": line for i, line in enumerate(body)},
    }


def test_no_secret_in_logs_answers_or_command_output(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(
        make_daemon,
        extra={"logging": {"format": "json"}, "health": {"stuck_after_seconds": 1}},
    ).start()
    sim, emulator, token = daemon.cobot.sim, daemon.sheets.emulator, daemon.cobot.token
    seen = Seen()
    member = sim.create("membership", emit=["created_membership"])
    member_url = sim.url_for("membership", member["id"])
    settle(daemon)

    # Refused webhooks, some carrying secrets where they do not belong.
    send_rejected_webhooks(daemon, wrong_secret=token)
    send_rejected_webhooks(daemon, wrong_secret=WEBHOOK_SECRET + "x")
    hostile = f"{daemon.url}/cobot/{token}/created_membership?access_token={token}"
    assert seen.post(hostile, json={"url": member_url}) == 404
    pasted = {"url": f"https://co-up.cobot.me/{WEBHOOK_SECRET}/{token}"}
    assert seen.post(f"{daemon.callback_base}/created_membership", json=pasted) == 422
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        seen.post(f"{daemon.callback_base}/created_membership", data=b"[", headers=headers) == 400
    )

    # Cobot refuses the token: fetches fail with 401, check-config says so.
    grant = sim.tokens.pop(token)
    sim.update("membership", member["id"], name="Renamed", emit=["updated_membership_details"])
    wait_until(
        lambda: "(401)" in (daemon.health()[1]["last_error"] or ""), timeout=20, what="a 401"
    )
    assert "Cobot rejected the access token (401)" in seen.syncd(daemon, "check-config")
    seen.syncd(daemon, "status")
    sim.tokens[token] = grant
    settle(daemon)

    # Google refuses every write: /healthz goes 503.
    emulator.error_statuses, emulator.error_rate = [403], 1.0
    sim.create("membership", emit=["created_membership"])
    wait_until(lambda: daemon.health()[0] == 503, timeout=20, what="/healthz 503")
    seen.get(f"{daemon.url}/healthz")
    seen.get(f"{daemon.url}/metrics")
    seen.syncd(daemon, "status")
    emulator.error_rate = 0.0
    settle(daemon)

    assert seen.get(f"{daemon.url}/healthz").status_code == 200
    seen.get(f"{daemon.url}/metrics")
    status = json.loads(seen.syncd(daemon, "status", "--json"))
    assert status["inbox"]["pending"] == 0
    seen.syncd(daemon, "replay", "--all")
    assert "accept the credentials" in seen.syncd(daemon, "check-config")
    assert daemon.stop() == 0

    log = daemon.logs()
    lines = [line for line in log.splitlines() if line]
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert any(json.loads(line)["level"] == "debug" for line in lines)
    assert "refused with 404 (bad_secret)" in log and "(401)" in log
    everything = "\n".join([log, *seen.texts])
    leaked = [name for name, secret in secrets_of(daemon).items() if secret in everything]
    assert leaked == []
