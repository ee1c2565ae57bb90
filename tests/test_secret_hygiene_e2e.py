"""Secret hygiene of a real daemon run: no token, secret or key material anywhere it writes,
and nothing it creates is readable by other users.

The run includes what tends to leak: a sender quoting the Cobot token in a refused URL, the
webhook secret pasted into the event segment of a wrong callback path, failing Cobot and
Sheets requests (their errors reach logs, /healthz and the event log sheet).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import requests

from tests.fixtures_daemon import WEBHOOK_SECRET, Daemon, MakeDaemon
from tests.test_e2e_pipeline import fast_daemon, settle

pytestmark = pytest.mark.e2e

EVENT_LOG = "Event log"


def secrets_of(daemon: Daemon) -> dict[str, str]:
    """Every credential of this run, by name; the key as its PEM marker and body lines."""
    key = daemon.sheets.key_info
    body_lines = [line for line in key["private_key"].splitlines() if "-----" not in line]
    return {
        "the Cobot token": daemon.cobot.token,
        "the webhook secret": WEBHOOK_SECRET,
        "the private key's id": key["private_key_id"],
        "private key material": "PRIVATE KEY-----",
        **{f"private key line {n}": line for n, line in enumerate(body_lines) if len(line) > 20},
    }


def leaks(where: str, data: bytes | str, secrets: dict[str, str]) -> list[str]:
    raw = data if isinstance(data, bytes) else data.encode()
    return [f"{name} in {where}" for name, secret in secrets.items() if secret.encode() in raw]


def state_files(daemon: Daemon) -> list[Path]:
    return sorted(p for p in daemon.state_dir.rglob("*") if p.is_file())


def assert_private(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o700
    files = state_files(daemon)
    assert any(p.name.endswith("-wal") for p in files), files
    exposed = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert {name: mode for name, mode in exposed.items() if int(mode, 8) & 0o077} == {}


def test_no_secret_reaches_logs_state_metrics_or_sheets(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, extra={"event_log_sheet": EVENT_LOG}).start()
    sim, secrets = daemon.cobot.sim, secrets_of(daemon)
    base = daemon.callback_base.rsplit("/", 1)[0]
    stranger = {"url": f"https://evil.example/steal?token={daemon.cobot.token}"}
    assert requests.post(f"{daemon.callback_base}/created_membership", json=stranger).ok is False
    pasted = requests.post(f"{base}/wrong-secret-0123456789abcdef/{WEBHOOK_SECRET}", json={})
    assert pasted.status_code == 404
    sim.fail_next(2, status=500)
    daemon.sheets.emulator.fail_next(2, status=503)
    members = [sim.create("membership") for _ in range(3)]
    sim.update("membership", members[0]["id"], name="Renamed")
    sim.delete("membership", members[1]["id"])
    settle(daemon)
    assert_private(daemon)

    found: list[str] = []
    for path in state_files(daemon):
        found += leaks(f"state file {path.name}", path.read_bytes(), secrets)
    for endpoint in ("/metrics", "/healthz"):
        found += leaks(endpoint, requests.get(daemon.url + endpoint, timeout=5).content, secrets)
    for title, grid in daemon.sheets.emulator.dump(daemon.sheets.spreadsheet_id).items():
        found += leaks(f"worksheet {title!r}", repr(grid), secrets)
    assert EVENT_LOG in daemon.sheets.emulator.sheet_titles(daemon.sheets.spreadsheet_id)
    assert daemon.stop() == 0
    found += leaks("the daemon's log", daemon.logs(), secrets)
    for path in state_files(daemon):
        found += leaks(f"state file {path.name} after stop", path.read_bytes(), secrets)
    assert found == []
    assert "evil.example" in daemon.logs(), "the refused URL is logged, without the token"
