"""`syncd sandbox cobot|sheets --config FILE` serve what a daemon config expects."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncd.sandbox.servers import free_port
from tests.fixtures_daemon import REPO, wait_until

TOKEN = "sandbox-cli-token-0123456789"


def write_config(tmp_path: Path, cobot_url: str, sheets_url: str) -> Path:
    config = {
        "cobot": {"subdomain": "co-up", "access_token": TOKEN, "base_url": cobot_url},
        "webhook": {
            "listen": f"127.0.0.1:{free_port()}",
            "public_url": "http://127.0.0.1:8080/cobot",
            "secret": "sandbox-cli-secret-0123456789",
        },
        "google": {
            "service_account_file": str(tmp_path / "key.json"),
            "spreadsheet_id": "sandbox-cli-sheet",
            "api_endpoint": sheets_url,
        },
        "state_dir": str(tmp_path / "state"),
        "sheets": {
            "Members": {
                "resource": "membership",
                "events": ["created_membership"],
                "columns": {"Name": "name"},
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def syncd(*args: str) -> list[str]:
    return [sys.executable, "-m", "syncd", *args]


def test_sandboxes_from_a_config_satisfy_check_config(tmp_path: Path) -> None:
    cobot_url = f"http://127.0.0.1:{free_port()}"
    sheets_url = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, cobot_url, sheets_url)
    servers = [
        subprocess.Popen(
            syncd("sandbox", kind, "--config", str(config)),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for kind in ("cobot", "sheets")
    ]
    try:
        key = tmp_path / "key.json"
        wait_until(key.exists, timeout=20, what="the sheets sandbox to write the key")

        def check_config() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                syncd("check-config", "--config", str(config)),
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )

        wait_until(
            lambda: check_config().returncode == 0,
            timeout=20,
            what="check-config to accept both sandboxes",
        )
        result = check_config()
        assert "Cobot and Google Sheets accept the credentials" in result.stdout
        assert TOKEN not in result.stdout + result.stderr
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        codes = [server.wait(20) for server in servers]
    assert codes == [0, 0]


@pytest.mark.parametrize("kind", ["cobot", "sheets"])
def test_a_config_pointing_elsewhere_is_refused(tmp_path: Path, kind: str) -> None:
    config = write_config(tmp_path, "https://co-up.cobot.me", "https://sheets.googleapis.com")
    result = subprocess.run(
        syncd("sandbox", kind, "--config", str(config)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = "cobot.base_url" if kind == "cobot" else "google.api_endpoint"
    assert result.returncode == 2
    assert result.stderr.startswith(f"syncd: error: {key} must point at this machine")
    assert "Traceback" not in result.stderr
