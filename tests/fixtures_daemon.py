"""Run the real daemon (`syncd run`) as a subprocess between the two emulators.

End-to-end tests drive it the way production does: the Cobot simulator creates, changes and
deletes resources and delivers Cobot's webhooks over HTTP to the daemon, which fetches from
the simulator and writes to the Sheets emulator through gspread and google-auth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from syncd.sandbox.servers import free_port
from tests.fixtures_cobot import CobotSandbox, MakeCobotSim
from tests.fixtures_sheets import MakeSheetsEmulator, SheetsSandbox

REPO = Path(__file__).resolve().parents[1]
#: Holds the ``sitecustomize`` that gives `syncd run` its crash points (SYNCD_TEST_CRASH_AT).
CRASHPOINTS = Path(__file__).resolve().parent / "crashpoints"
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789abcdef"
#: The subdomain of the daemon's (first) space.
FIRST_SPACE = "co-up"
EXAMPLE_CONFIG = REPO / "config.example.yaml"


def example_sheets() -> dict[str, Any]:
    """The worksheets of config.example.yaml: the e2e tests prove the shipped mapping works."""
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())["sheets"]


@dataclass
class Daemon:
    """One daemon configuration and, while started, its process."""

    cobot: CobotSandbox
    sheets: SheetsSandbox
    workdir: Path
    sheet_config: dict[str, Any]
    #: More Cobot spaces by subdomain, beside ``cobot`` (then the first space, ``co-up``): with
    #: any, the config lists ``cobot.spaces``, each token in an environment variable of its own
    #: (spaces whose simulators know the same token share it).
    extra_spaces: dict[str, CobotSandbox] = field(default_factory=dict)
    sync: dict[str, Any] = field(default_factory=dict)
    cobot_options: dict[str, Any] = field(default_factory=dict)
    resync: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    secret: str = WEBHOOK_SECRET
    previous_secrets: list[str] = field(default_factory=list)
    log_level: str = "debug"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_base(self) -> str:
        return f"{self.url}/cobot/{self.secret}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"daemon-{self.runs}.log"

    @property
    def spaces(self) -> dict[str, CobotSandbox]:
        """Every space's simulator by subdomain, the first one's first."""
        return {FIRST_SPACE: self.cobot, **self.extra_spaces}

    def config(self) -> dict[str, Any]:
        space: dict[str, Any] = {
            "subdomain": FIRST_SPACE,
            "access_token": "${TEST_COBOT_TOKEN}",
            "base_url": self.cobot.url,
        }
        if self.extra_spaces:
            space = {
                "spaces": [
                    {
                        "subdomain": name,
                        "access_token": f"${{{_token_variable(index)}}}",
                        "base_url": sandbox.url,
                    }
                    for index, (name, sandbox) in enumerate(self.spaces.items())
                ]
            }
        return {
            "cobot": {**space, "timeout_seconds": 5, **self.cobot_options},
            "webhook": {
                "listen": f"127.0.0.1:{self.port}",
                "public_url": f"{self.url}/cobot",
                "secret": self.secret,
                "previous_secrets": self.previous_secrets,
            },
            "google": {
                "service_account_file": str(self.sheets.key_file),
                "spreadsheet_id": self.sheets.spreadsheet_id,
                "api_endpoint": self.sheets.url,
                "timeout_seconds": 5,
            },
            "state_dir": str(self.state_dir),
            "sync": {"flush_interval_seconds": 0.3, "retry_max_seconds": 2, **self.sync},
            # Scheduled re-syncs list Cobot at fixed times; tests that want one ask for it.
            "resync": {"full_schedule": "off", "recent_schedule": "off", **self.resync},
            "health": {"stuck_after_seconds": 30},
            "sheets": self.sheet_config,
            **self.extra,
        }

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    def start(self, wait_subscriptions: bool = True) -> Daemon:
        self.write_config()
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "syncd",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    self.log_level,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        wait_until(self._healthy, timeout=20, what="daemon /healthz", check=self._alive)
        if wait_subscriptions:
            for name, sandbox in self._known_spaces().items():
                self._wait_subscribed(name, sandbox)
        return self

    def _known_spaces(self) -> dict[str, CobotSandbox]:
        """The configured spaces whose simulator the fixture knows, by subdomain (a test may
        list the spaces in ``extra`` itself; the first one's simulator is ``cobot``)."""
        cobot = self.config()["cobot"]
        names = [space["subdomain"] for space in cobot.get("spaces", [])] or [cobot["subdomain"]]
        known = {names[0]: self.cobot, **self.extra_spaces}
        return {name: known[name] for name in names if name in known}

    def _wait_subscribed(self, name: str, sandbox: CobotSandbox) -> None:
        """Until the space holds a subscription for each event of the worksheets holding it."""
        events = {
            event
            for sheet in self.sheet_config.values()
            if name in sheet.get("spaces", [name])
            for event in sheet["events"]
        }
        wait_until(
            lambda: self.subscribed_events(sandbox) >= events,
            timeout=20,
            what=f"subscriptions at {name}",
            check=self._alive,
        )

    @property
    def env(self) -> dict[str, str]:
        paths = [str(CRASHPOINTS), *filter(None, [os.environ.get("PYTHONPATH")])]
        tokens = {_token_variable(i): s.token for i, s in enumerate(self.spaces.values())}
        return {
            **os.environ,
            **tokens,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(paths),
        }

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run another `syncd` command with this daemon's config (written if not yet)."""
        self.write_config()
        return subprocess.run(
            [sys.executable, "-m", "syncd", *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=timeout,
        )

    def subscribed_events(self, space: CobotSandbox | None = None) -> set[str]:
        """The events with an active subscription of ours at ``space`` (the first one's)."""
        return {
            s["event"]
            for s in (space or self.cobot).sim.subscriptions()
            if s["active"] and s["callback_url"].startswith(self.callback_base + "/")
        }

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.logs()}")

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    def health(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{self.url}/healthz", timeout=5)
        return response.status_code, response.json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("daemon-*.log"))
        )

    def rows(self, title: str) -> list[dict[str, Any]]:
        """The worksheet as dicts by header (raw typed values), header row excluded."""
        if title not in self.sheets.emulator.sheet_titles(self.sheets.spreadsheet_id):
            return []
        grid = self.sheets.emulator.values(self.sheets.spreadsheet_id, title)
        if not grid:
            return []
        headers = [str(h) for h in grid[0]]
        rows = []
        for raw in grid[1:]:
            cells = ["" if cell is None else cell for cell in raw]
            if any(cell != "" for cell in cells):
                rows.append(
                    dict(zip(headers, cells + [""] * (len(headers) - len(cells)), strict=False))
                )
        return rows

    def inbox_empty(self) -> bool:
        import sqlite3

        from syncd.store.schema import DB_FILENAME

        with sqlite3.connect(self.state_dir / DB_FILENAME) as conn:
            (pending,) = conn.execute(
                "SELECT COUNT(*) FROM inbox WHERE status = 'pending'"
            ).fetchone()
        return pending == 0


MakeDaemon = Callable[..., Daemon]


def _token_variable(index: int) -> str:
    """The environment variable of the token of the space at ``index`` in the config."""
    return "TEST_COBOT_TOKEN" if index == 0 else f"TEST_COBOT_TOKEN_{index}"


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    check: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            check()
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def make_daemon(
    tmp_path: Path, make_cobot_sim: MakeCobotSim, make_sheets_emulator: MakeSheetsEmulator
) -> Iterator[MakeDaemon]:
    """Daemons wired to fresh emulators (or the ones given); all are stopped after the test."""
    daemons: list[Daemon] = []

    def make(
        cobot: CobotSandbox | None = None,
        sheets: SheetsSandbox | None = None,
        sheet_config: dict[str, Any] | None = None,
        cobot_knobs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Daemon:
        workdir = tmp_path / f"daemon{len(daemons)}"
        workdir.mkdir()
        daemon = Daemon(
            cobot=cobot or make_cobot_sim(**(cobot_knobs or {})),
            sheets=sheets or make_sheets_emulator(),
            workdir=workdir,
            sheet_config=sheet_config or example_sheets(),
            **options,
        )
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        if daemon.process is not None:
            daemon.process.kill()
            daemon.process.wait(10)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
