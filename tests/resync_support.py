"""Helpers for the in-process re-sync, backfill and fetching tests.

They wire the production pieces (Store, CobotClient, SheetsWriter) to the emulators of a
`Daemon` from tests/fixtures_daemon.py without starting `syncd run`: the daemon object only
supplies the config file pointing at both emulators (and, with ``serve_spaces``, at one
Cobot simulator per space).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from syncd.cobot.client import CobotClient
from syncd.cobot.spaces import cobot_clients
from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.core.metrics import Metrics
from syncd.engine.resync import Resync
from syncd.engine.worker import Worker
from syncd.ops.daemon import build_worker
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import Store
from syncd.store.filelock import sheets_lock_path
from tests.fixtures_cobot import CobotSandbox
from tests.fixtures_daemon import Daemon

#: Cobot settings for tests that count requests, not time: no client-side waiting.
UNTHROTTLED = {"requests_per_minute": 6000}


def settings_of(daemon: Daemon) -> Settings:
    return load_settings(daemon.write_config(), {"TEST_COBOT_TOKEN": daemon.cobot.token})


@dataclass
class Wiring:
    settings: Settings
    store: Store
    cobot: CobotClient
    sheets: SheetsWriter

    def worker(self) -> Worker:
        """The worker as `syncd run` builds it."""
        return build_worker(
            self.settings,
            self.store,
            {self.settings.spaces[0].subdomain: self.cobot},
            self.sheets,
            Metrics(),
        )

    def resync(self) -> Resync:
        """The re-sync engine as `syncd run` and `syncd backfill` build it."""
        settings = self.settings
        tz = ZoneInfo(settings.timezone)
        return Resync(settings.resync, settings.cobot, tz, self.store, self.cobot, self.sheets)


@asynccontextmanager
async def wired(daemon: Daemon) -> AsyncIterator[Wiring]:
    """The store, Cobot client and Sheets writer the daemon would build from its config."""
    settings = settings_of(daemon)
    store = Store.open(settings.state_dir)
    sheets = SheetsWriter(settings.google, lock_path=sheets_lock_path(settings.state_dir))
    try:
        async with CobotClient(settings.cobot) as cobot:
            yield Wiring(settings, store, cobot, sheets)
    finally:
        sheets.close()
        await store.close()


def list_requests(daemon: Daemon, path: str) -> list[Any]:
    """The simulator's record of GET requests to exactly ``path`` (a list endpoint)."""
    return [r for r in daemon.cobot.sim.requests() if r.method == "GET" and r.path == path]


def single_fetches(daemon: Daemon, prefix: str) -> list[Any]:
    """GET requests for single resources under ``prefix`` (e.g. ``/api/invoices/``)."""
    return [
        r for r in daemon.cobot.sim.requests() if r.method == "GET" and r.path.startswith(prefix)
    ]


def serve_spaces(daemon: Daemon, spaces: Mapping[str, CobotSandbox]) -> None:
    """Make the daemon's config list ``spaces`` (subdomain -> its simulator, read with the
    simulator's token), in this order."""
    daemon.extra["cobot"] = {
        "spaces": [
            {"subdomain": name, "access_token": sandbox.token, "base_url": sandbox.url}
            for name, sandbox in spaces.items()
        ],
        "timeout_seconds": 5,
        **daemon.cobot_options,
    }


@dataclass
class SpacesWiring:
    """The pieces `syncd run` builds for several spaces: one client per space."""

    settings: Settings
    store: Store
    clients: dict[str, CobotClient]
    sheets: SheetsWriter

    def resync(self, space: str) -> Resync:
        """The re-sync engine of one space, as `syncd run` and `syncd backfill` build it."""
        settings = self.settings
        cobot = next(s for s in settings.spaces if s.subdomain == space)
        tz = ZoneInfo(settings.timezone)
        return Resync(settings.resync, cobot, tz, self.store, self.clients[space], self.sheets)


@asynccontextmanager
async def wired_spaces(daemon: Daemon) -> AsyncIterator[SpacesWiring]:
    """The store, every space's Cobot client and the Sheets writer, from the daemon's config."""
    settings = settings_of(daemon)
    store = Store.open(settings.state_dir)
    sheets = SheetsWriter(settings.google, lock_path=sheets_lock_path(settings.state_dir))
    try:
        async with cobot_clients(settings.spaces, settings.state_dir) as clients:
            yield SpacesWiring(settings, store, clients, sheets)
    finally:
        sheets.close()
        await store.close()
