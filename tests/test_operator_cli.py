"""The command line as an operator meets it: every problem once, on one line, with the exit code
the contract gives, and no traceback.

Each case runs the real `syncd` console command in a subprocess, on config.example.yaml made
runnable here (secrets in a CREDENTIALS_DIRECTORY, as the systemd unit hands them over).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.sandbox.cobot.samples import RESOURCES
from syncd.sandbox.servers import free_port
from tests.fixtures_cli import local_example_config, run_syncd, write_config
from tests.fixtures_daemon import MakeDaemon, example_sheets

EditConfig = Callable[[dict[str, Any]], None]


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return local_example_config(tmp_path)


def check_config(
    example: tuple[Path, dict[str, str]], edit: EditConfig, *options: str
) -> subprocess.CompletedProcess[str]:
    """`syncd check-config` on the example config as ``edit`` changes it."""
    path, env = example
    config = yaml.safe_load(path.read_text())
    edit(config)
    write_config(path, config)
    return run_syncd("check-config", *options, "--config", path, env=env)


def lines(text: str) -> list[str]:
    return text.splitlines()


# -- point by point: what check-config says ------------------------------------------------


def test_a_path_typo_is_a_warning_with_a_suggestion(example: tuple[Path, dict[str, str]]) -> None:
    def typo(config: dict[str, Any]) -> None:
        config["sheets"]["Members"]["columns"]["Company"] = "adress.company"

    result = check_config(example, typo, "--offline")
    assert result.returncode == 0, result.stderr
    assert lines(result.stderr) == [
        f'syncd: warning: {example[0]}: sheets.Members.columns: Members: column "Company" '
        "(path adress.company) matches nothing in this membership; its cell stays empty; "
        "did you mean address.company?"
    ]


def test_the_shipped_example_matches_its_samples(example: tuple[Path, dict[str, str]]) -> None:
    result = check_config(example, lambda config: None, "--offline")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"{example[0]}: configuration is valid")


def test_an_event_of_another_kind_is_one_line(example: tuple[Path, dict[str, str]]) -> None:
    def invoice_event(config: dict[str, Any]) -> None:
        config["sheets"]["Members"]["events"].append("created_invoice")

    result = check_config(example, invoice_event, "--offline")
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"syncd: error: {example[0]}: sheets.Members.events: created_invoice is about a "
        "invoice, but this sheet holds membership rows"
    ]


def test_a_pasted_spreadsheet_address_is_taken_for_its_id(
    example: tuple[Path, dict[str, str]],
) -> None:
    sheet_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde"

    def pasted(config: dict[str, Any]) -> None:
        config["google"]["spreadsheet_id"] = (
            f"https://docs.google.com/spreadsheets/d/{sheet_id}/edit#gid=0"
        )

    result = check_config(example, pasted, "--offline")
    assert (result.returncode, result.stderr) == (0, "")
    assert f"in spreadsheet {sheet_id}, creating" in result.stdout


def test_an_address_that_is_no_spreadsheet_is_explained(
    example: tuple[Path, dict[str, str]],
) -> None:
    def wrong(config: dict[str, Any]) -> None:
        config["google"]["spreadsheet_id"] = "https://drive.google.com/drive/folders/abc"

    result = check_config(example, wrong, "--offline")
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"syncd: error: {example[0]}: google.spreadsheet_id: is not a spreadsheet id nor a "
        "Google Sheets address: copy the part between /d/ and /edit from the spreadsheet's "
        "address"
    ]


def test_an_unset_credentials_directory_is_named_once_per_key(
    example: tuple[Path, dict[str, str]],
) -> None:
    path, _ = example
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    errors = [line for line in lines(result.stderr) if line.startswith("syncd: error:")]
    assert errors == [
        f"syncd: error: {path}: {key}: environment variable CREDENTIALS_DIRECTORY is not set"
        for key in ("cobot.access_token_file", "webhook.secret_file", "google.service_account_file")
    ]


def test_headers_with_spaces_around_them_are_refused(
    example: tuple[Path, dict[str, str]],
) -> None:
    def spaced(config: dict[str, Any]) -> None:
        columns = config["sheets"]["Members"]["columns"]
        columns["Name "] = columns.pop("Name")

    result = check_config(example, spaced, "--offline")
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"syncd: error: {example[0]}: sheets.Members.columns: header 'Name ' has spaces around "
        "it: write it as 'Name' (headers are matched exactly, and the spaces are easy to miss "
        "in the sheet)"
    ]


def test_filters_that_cannot_hold_for_every_sheet_of_an_event_are_refused(
    example: tuple[Path, dict[str, str]],
) -> None:
    """README's example: an all-rooms sheet beside one room's sheet on the same events."""

    def studio(config: dict[str, Any]) -> None:
        config["sheets"]["Podcast studio"] = {
            **config["sheets"]["Bookings"],
            "filters": {"resource_id": "r0000000000000000000000000000001"},
        }

    result = check_config(example, studio, "--offline")
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"syncd: error: {example[0]}: sheets.Podcast studio.filters: created_booking is also "
        "listed by sheet 'Bookings' with other filters; Cobot keeps one subscription per event, "
        "so its filters would hold for both: give every sheet that lists an event the same "
        "filters"
    ]


def test_an_unreachable_cobot_is_named_not_blamed_on_a_setting(
    example: tuple[Path, dict[str, str]],
) -> None:
    def unreachable(config: dict[str, Any]) -> None:
        config["cobot"]["base_url"] = "http://co-up.invalid"

    result = check_config(example, unreachable)
    assert result.returncode == 2
    cobot = [line for line in lines(result.stderr) if "co-up" in line]
    assert cobot == [
        f"syncd: error: {example[0]}: cannot reach co-up.invalid: DNS lookup failed; "
        "check the network"
    ]


def test_a_refused_connection_is_named(example: tuple[Path, dict[str, str]]) -> None:
    port = free_port()

    def refused(config: dict[str, Any]) -> None:
        config["cobot"]["base_url"] = f"http://127.0.0.1:{port}"

    result = check_config(example, refused)
    assert result.returncode == 2
    assert (
        f"syncd: error: {example[0]}: cannot reach 127.0.0.1: connection refused; check the network"
    ) in lines(result.stderr)


# -- the command line itself ---------------------------------------------------------------


def test_a_config_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("cobot:\n  subdomain: café\n".encode("latin-1"))
    result = run_syncd("check-config", "--config", path)
    assert result.returncode == 2
    assert lines(result.stderr) == [
        f"syncd: error: {path}: line 2: byte 0xe9 is not UTF-8; save the file as UTF-8"
    ]


def test_a_closed_pipe_ends_quietly(example: tuple[Path, dict[str, str]]) -> None:
    """`syncd check-config ... | head -1`, with the reader gone before syncd writes a line."""
    path, env = example
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "check-config", "--offline", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone
    stderr = process.stderr.read().decode()
    assert process.wait(60) == 0
    assert stderr == ""


def test_status_json_on_a_fresh_state_dir_is_an_empty_state(
    example: tuple[Path, dict[str, str]],
) -> None:
    path, env = example
    result = run_syncd("status", "--json", "--config", path, env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["created"] is False
    assert status["inbox"] == {
        "pending": 0,
        "due": 0,
        "dead": 0,
        "done": 0,
        "oldest_pending_age_seconds": None,
    }
    shown = run_syncd("status", "--config", path, env=env)
    assert shown.returncode == 0
    assert "(not created yet: the daemon has not run)" in shown.stdout


@pytest.mark.e2e
def test_a_one_room_sheet_is_backfilled_with_that_room_only(make_daemon: MakeDaemon) -> None:
    """Cobot filters the webhooks; the backfill lists every booking and must filter the same."""
    studio, hall = RESOURCES[3], RESOURCES[1]
    sheet = {**example_sheets()["Bookings"], "filters": {"resource_id": studio.id}}
    daemon = make_daemon(sheet_config={"Podcast studio": sheet})
    sim = daemon.cobot.sim
    member = sim.create("membership", emit=False)
    booked = {
        room.id: [
            sim.create(
                "booking",
                member=member["id"],
                resource={"id": room.id, "name": room.name},
                emit=False,
            )
            for _ in range(3)
        ]
        for room in (studio, hall)
    }
    result = daemon.cli("backfill", "--since", (date.today() - timedelta(days=30)).isoformat())
    assert result.returncode == 0, result.stderr
    rows = {row["URL"] for row in daemon.rows("Podcast studio")}
    assert rows == {sim.url_for("booking", b["id"]) for b in booked[studio.id]}
