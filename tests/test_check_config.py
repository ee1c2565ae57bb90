"""`syncd check-config` against the Cobot simulator and the Sheets emulator.

One run must report every problem it can find, the file's own and the online ones together,
one clear line each, and exit 2; a good file prints what the daemon would subscribe and create
and changes nothing at Cobot or Google.
"""

from __future__ import annotations

from pathlib import Path

from syncd.sandbox.cobot.server import AppToken
from tests.fixtures_cli import daemon_config, run_syncd, write_config
from tests.fixtures_cobot import COBOT_APP, COBOT_TOKEN, MakeCobotSim
from tests.fixtures_daemon import WEBHOOK_SECRET, MakeDaemon

UNSHARED_SPREADSHEET = "1NotSharedWithTheServiceAccount0123456789ab"
LIMITED_TOKEN = "limited-scope-token-0123456789"


def problems_by_key(stderr: str, config: Path) -> dict[str, str]:
    """`syncd: error: FILE: KEY: message` lines, by key; fails on any other kind of line."""
    prefix = f"syncd: error: {config}: "
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        if line.startswith("syncd: note: "):
            continue
        assert line.startswith(prefix), line
        key, _, message = line[len(prefix) :].partition(": ")
        assert key not in found, f"two lines for {key}"
        found[key] = message
    return found


def test_file_and_online_problems_come_together_one_line_each(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon = make_daemon()
    emulator = daemon.sheets.emulator
    emulator.create_spreadsheet(UNSHARED_SPREADSHEET, shared_with={"someone@example.org"})
    config = daemon_config(daemon)
    config["google"]["spreadsheet_id"] = UNSHARED_SPREADSHEET
    config["webhook"]["public_url"] = "http://sync.example.org/cobot"
    config["webhook"]["secret"] = "${SYNCD_TEST_UNSET_SECRET}"
    config["webhook"]["listen_port"] = 8080
    path = write_config(tmp_path / "broken.yaml", config)

    result = run_syncd(
        "check-config", "--config", path, env={"TEST_COBOT_TOKEN": "not-the-configured-token"}
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    problems = problems_by_key(result.stderr, path)
    assert set(problems) == {
        "webhook.listen_port",
        "webhook.public_url",
        "webhook.secret",
        "cobot.access_token",
        "google.spreadsheet_id",
    }
    assert "unknown key" in problems["webhook.listen_port"]
    assert "listen" in problems["webhook.listen_port"]  # the key meant
    assert "must be https" in problems["webhook.public_url"]
    assert "SYNCD_TEST_UNSET_SECRET is not set" in problems["webhook.secret"]
    assert "Cobot rejected the access token (401)" in problems["cobot.access_token"]
    email = daemon.sheets.key_info["client_email"]
    assert f"share the spreadsheet with {email} as Editor" in problems["google.spreadsheet_id"]
    assert "syncd: note:" not in result.stderr  # both online checks ran
    # Checking changes nothing: no subscription, no worksheet.
    assert daemon.cobot.sim.subscriptions() == []
    assert emulator.sheet_titles(UNSHARED_SPREADSHEET) == ["Sheet1"]


def test_missing_key_file_and_missing_scope_in_one_run(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim, tmp_path: Path
) -> None:
    cobot = make_cobot_sim(
        tokens={
            COBOT_TOKEN: COBOT_APP,
            LIMITED_TOKEN: AppToken(COBOT_APP, frozenset({"read_memberships", "read_invoices"})),
        }
    )
    daemon = make_daemon(cobot=cobot)
    config = daemon_config(daemon)
    missing_key = tmp_path / "keys" / "service-account.json"
    config["google"]["service_account_file"] = str(missing_key)
    path = write_config(tmp_path / "config.yaml", config)

    result = run_syncd("check-config", "--config", path, env={"TEST_COBOT_TOKEN": LIMITED_TOKEN})

    assert result.returncode == 2, result.stderr
    problems = problems_by_key(result.stderr, path)
    assert set(problems) == {"google.service_account_file", "cobot.access_token"}
    assert f"cannot read {missing_key}" in problems["google.service_account_file"]
    assert "may read it" in problems["google.service_account_file"]
    assert "(403)" in problems["cobot.access_token"]
    assert "lacks the scope read_subscriptions" in problems["cobot.access_token"]
    notes = [line for line in result.stderr.splitlines() if line.startswith("syncd: note: ")]
    assert notes == [
        "syncd: note: Google Sheets access not checked: fix google.service_account_file and "
        "google.spreadsheet_id first"
    ]
    assert daemon.sheets.emulator.request_log == []


def test_good_config_prints_the_plan_and_changes_nothing(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon()
    path = daemon.write_config()

    result = run_syncd("check-config", "--config", path, env={"TEST_COBOT_TOKEN": COBOT_TOKEN})

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{path}: configuration is valid; Cobot and Google Sheets accept the credentials"
    )
    events = dict.fromkeys(e for sheet in daemon.sheet_config.values() for e in sheet["events"])
    assert lines[1] == (
        f"Would subscribe {len(events)} Cobot event(s) with callbacks at "
        f"{daemon.url}/cobot/***/<event>:"
    )
    assert lines[2 : 2 + len(events)] == [f"  - {event}" for event in events]
    assert (
        "  - 'Check-ins' (check_in): headers Member, Membership ID, Valid from, Valid until, "
        "Hours, Time pass, Deleted, URL"
    ) in lines
    assert any(line.startswith("  - 'Members' (membership): headers Name, Email") for line in lines)
    assert WEBHOOK_SECRET not in result.stdout + result.stderr
    assert COBOT_TOKEN not in result.stdout + result.stderr
    assert daemon.cobot.sim.subscriptions() == []
    assert daemon.sheets.emulator.sheet_titles(daemon.sheets.spreadsheet_id) == ["Sheet1"]


def test_offline_reports_the_file_and_contacts_no_one(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon = make_daemon()
    config = daemon_config(daemon)
    config["webhook"]["public_url"] = "http://sync.example.org/cobot"
    path = write_config(tmp_path / "config.yaml", config)

    result = run_syncd(
        "check-config", "--offline", "--config", path, env={"TEST_COBOT_TOKEN": "wrong-token"}
    )

    assert result.returncode == 2
    assert set(problems_by_key(result.stderr, path)) == {"webhook.public_url"}
    assert daemon.cobot.sim.requests() == []
    assert daemon.sheets.emulator.request_log == []
