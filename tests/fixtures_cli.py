"""Run the `syncd` command line as a user does: a separate process, its output captured.

A subprocess keeps the command's logging set-up (which replaces the root logger's handlers)
out of the test process, and proves the console entry point end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from syncd.sandbox.sheets.auth import generate_service_account_key, write_key_file
from tests.fixtures_cobot import COBOT_TOKEN
from tests.fixtures_daemon import EXAMPLE_CONFIG, WEBHOOK_SECRET, Daemon


def run_syncd(
    *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`syncd ARGS...` with ``env`` added to this process's environment; bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def daemon_config(daemon: Daemon) -> dict:
    """The config a daemon between the emulators would run with, to vary in a test."""
    return yaml.safe_load(daemon.write_config().read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def local_example_config(directory: Path) -> tuple[Path, dict[str, str]]:
    """config.example.yaml made runnable here: state_dir under ``directory``, and the secrets
    as files in a CREDENTIALS_DIRECTORY, the way the systemd unit hands them over.

    Returns the config's path and the environment the commands need.
    """
    credentials = directory / "credentials"
    credentials.mkdir(parents=True)
    (credentials / "cobot-token").write_text(COBOT_TOKEN + "\n")
    (credentials / "webhook-secret").write_text(WEBHOOK_SECRET + "\n")
    write_key_file(
        credentials / "service-account.json", generate_service_account_key("http://127.0.0.1:9/")
    )
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    del config["cobot"]["access_token"], config["webhook"]["secret"]
    config["cobot"]["access_token_file"] = "${CREDENTIALS_DIRECTORY}/cobot-token"
    config["webhook"]["secret_file"] = "${CREDENTIALS_DIRECTORY}/webhook-secret"
    config["google"]["service_account_file"] = "${CREDENTIALS_DIRECTORY}/service-account.json"
    config["state_dir"] = str(directory / "state")
    path = write_config(directory / "config.yaml", config)
    return path, {"CREDENTIALS_DIRECTORY": str(credentials)}
