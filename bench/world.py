"""One benchmark world: the Cobot simulator, the Sheets emulator and a real `syncd run`.

Everything listens on loopback. The emulators run in this process on their own threads (as in
the end-to-end tests); the daemon is its own process, so its event loop and memory are its own
and can be read from /proc. Both emulators enforce the real per-minute quotas unless a
scenario says otherwise, and the Sheets emulator counts every request's bytes and ranges.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.sender import Webhook
from syncd.config.loading import load_settings
from syncd.config.schema import walk
from syncd.config.settings import SheetSettings, SyncSettings
from syncd.sandbox.cobot.server import CobotSimulator
from syncd.sandbox.cobot.traffic import RequestRecord
from syncd.sandbox.sheets.server import SheetsEmulator
from syncd.sheets.a1 import parse_a1
from syncd.store.schema import DB_FILENAME
from tests.fixtures_cobot import CobotSandbox, start_cobot_sandbox
from tests.fixtures_daemon import Daemon, example_sheets
from tests.fixtures_sheets import SheetsSandbox, new_sandbox_key, start_sheets_sandbox

#: Google's real per-user read and write quotas, enforced by the emulator.
SHEETS_QUOTA_PER_MINUTE = 60
#: Typical answer times of the real APIs, for the scenarios that measure latency; each answer
#: takes this times a factor drawn from 1 - LATENCY_SPREAD to 1 + LATENCY_SPREAD.
COBOT_LATENCY_SECONDS = 0.15
GOOGLE_LATENCY_SECONDS = 0.25
LATENCY_SPREAD = 0.5
#: The worksheets of config.example.yaml the scenarios use, and the column each one's marker
#: (``... v<version>``) goes into, so a watcher can tell which state of a resource a row shows.
MARKERS = {"Members": ("membership", "name"), "Invoices": ("invoice", "formatted_invoice_number")}
MARKER_HEADERS = {"Members": "Name", "Invoices": "Number"}
_VERSION = re.compile(r" v(\d+)$")


@dataclass(frozen=True)
class SheetsCall:
    """One Sheets API request as the emulator answered it."""

    at: float
    kind: str  # "read" or "write"
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    #: A1 ranges read (values:batchGet) or written (values:batchUpdate).
    ranges: tuple[str, ...]


class MeteredSheetsEmulator(SheetsEmulator):
    """The Sheets emulator, also recording each API request's size and ranges."""

    def __init__(self, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.calls: list[SheetsCall] = []
        self._calls_lock = threading.Lock()

    def app(self) -> web.Application:
        application = super().app()
        application.on_response_prepare.append(self._meter)
        return application

    async def _meter(self, request: web.Request, response: web.StreamResponse) -> None:
        if "/v4/spreadsheets/" not in request.path:
            return  # token requests do not count against the quotas
        body = await request.read()
        ranges: list[str] = list(request.query.getall("ranges", []))
        if request.path.endswith("values:batchUpdate"):
            ranges = [item["range"] for item in json.loads(body).get("data", [])]
        sent = response.body if isinstance(response, web.Response) else None
        call = SheetsCall(
            at=time.time(),
            kind="read" if request.method == "GET" else "write",
            path=request.path.rsplit("/", 1)[-1],
            status=response.status,
            bytes_in=len(body) + len(request.raw_path),
            bytes_out=len(sent) if isinstance(sent, bytes) else 0,
            ranges=tuple(ranges),
        )
        with self._calls_lock:
            self.calls.append(call)

    def calls_since(self, start: float) -> list[SheetsCall]:
        with self._calls_lock:
            return [call for call in self.calls if call.at >= start]


def default_sync() -> dict[str, Any]:
    """The shipped ``sync:`` defaults: the figures are for an unconfigured daemon."""
    return {name: key.default for name, key in walk(SyncSettings)}


def bench_sheets() -> dict[str, Any]:
    """Members and Invoices from config.example.yaml, subscribed to fewer events.

    The columns (and so the mapping work) are the shipped ones; only the subscriptions are
    trimmed, so that setting them up costs 5 of the first minute's 60 Cobot requests, not 30.
    """
    sheets = example_sheets()
    trimmed = {}
    for title, (kind, _) in MARKERS.items():
        sheet = sheets[title]
        sheet["events"] = [f"created_{kind}", f"updated_{kind}", f"deleted_{kind}"]
        if kind == "membership":
            sheet["events"][1] = "updated_membership_details"
        trimmed[title] = sheet
    return trimmed


def update_event(kind: str) -> str:
    return "updated_membership_details" if kind == "membership" else f"updated_{kind}"


def marker(tag: str, version: int) -> str:
    return f"bench {tag} v{version}"


@dataclass
class World:
    """The three processes of one scenario; build it with :func:`open_world`."""

    workdir: Path
    cobot: CobotSandbox
    sheets: SheetsSandbox
    daemon: Daemon
    members: list[str] = field(default_factory=list)

    @property
    def emulator(self) -> MeteredSheetsEmulator:
        assert isinstance(self.sheets.emulator, MeteredSheetsEmulator)
        return self.sheets.emulator

    @property
    def sim(self) -> CobotSimulator:
        return self.cobot.sim

    def settings_sheets(self) -> dict[str, SheetSettings]:
        settings = load_settings(self.daemon.config_path, {"TEST_COBOT_TOKEN": self.cobot.token})
        return {sheet.title: sheet for sheet in settings.sheets}

    def webhook(self, event: str, resource_url: str) -> Webhook:
        body = json.dumps({"url": resource_url}, separators=(",", ":"))
        return Webhook(f"{self.daemon.callback_base}/{event}", body.encode())

    def new_resource(self, kind: str, tag: str, version: int = 1) -> str:
        """Create a resource in Cobot (no webhook) carrying a marker; returns its URL."""
        field_name = MARKERS[sheet_of(kind)][1]
        fields: dict[str, Any] = {field_name: marker(tag, version)}
        if kind == "invoice":
            if not self.members:
                self.members.append(self.sim.create("membership", emit=False)["id"])
            fields["member"] = self.members[0]
        obj = self.sim.create(kind, emit=False, **fields)
        return str(self.sim.url_for(kind, str(obj["id"])))

    def set_version(self, kind: str, url: str, tag: str, version: int) -> None:
        """Change a resource's marker in Cobot (no webhook)."""
        field_name = MARKERS[sheet_of(kind)][1]
        self.sim.update(
            kind, url.rsplit("/", 1)[-1], emit=False, **{field_name: marker(tag, version)}
        )

    def cobot_calls_since(self, start: float) -> list[RequestRecord]:
        return [r for r in self.sim.requests() if r.time >= start]

    def inbox_count(self) -> int:
        with sqlite3.connect(
            f"{(self.daemon.state_dir / DB_FILENAME).as_uri()}?mode=ro", uri=True
        ) as conn:
            (count,) = conn.execute("SELECT count(*) FROM inbox").fetchone()
        return int(count)


def sheet_of(kind: str) -> str:
    return next(title for title, (k, _) in MARKERS.items() if k == kind)


@contextmanager
def open_world(
    workdir: Path, prepare: Callable[[World], None] | None = None, *, realistic: bool = False
) -> Iterator[World]:
    """Start the emulators, run ``prepare`` (e.g. pre-fill a sheet), start the daemon.

    The emulators enforce the real quotas: Google's 60 reads and 60 writes per minute, Cobot's
    60 requests per minute (and 6 membership listings). ``realistic`` also makes them answer
    as slowly as the real APIs do (``COBOT_LATENCY_SECONDS``, ``GOOGLE_LATENCY_SECONDS``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cobot = start_cobot_sandbox(rate_limits=True)
    emulator = MeteredSheetsEmulator(
        read_quota_per_minute=SHEETS_QUOTA_PER_MINUTE,
        write_quota_per_minute=SHEETS_QUOTA_PER_MINUTE,
    )
    if realistic:
        cobot.sim.latency_seconds = COBOT_LATENCY_SECONDS
        cobot.sim.latency_spread = LATENCY_SPREAD
        emulator.latency_seconds = GOOGLE_LATENCY_SECONDS
        emulator.latency_spread = LATENCY_SPREAD
    sheets = start_sheets_sandbox(new_sandbox_key(), workdir / "service-account.json", emulator)
    daemon = Daemon(
        cobot=cobot,
        sheets=sheets,
        workdir=workdir,
        sheet_config=bench_sheets(),
        sync=default_sync(),
        extra={"resync": {"full_schedule": "off", "recent_schedule": "off"}},
        log_level="info",
    )
    world = World(workdir, cobot, sheets, daemon)
    try:
        if prepare is not None:
            prepare(world)
        daemon.start()
        yield world
    finally:
        if daemon.process is not None:
            daemon.stop()
        sheets.server.stop()
        cobot.server.stop()


# -- observing the sheet -------------------------------------------------------------------


class SheetWatcher:
    """Polls the emulated sheets and notes when each URL's row first showed each version."""

    def __init__(self, world: World) -> None:
        self.world = world
        #: (url, version) -> time.time() of the first poll that showed at least that version.
        self.seen: dict[tuple[str, int], float] = {}
        self._best: dict[str, int] = {}

    def poll(self) -> None:
        now = time.time()
        emulator, spreadsheet = self.world.emulator, self.world.sheets.spreadsheet_id
        titles = emulator.sheet_titles(spreadsheet)
        for title, header in MARKER_HEADERS.items():
            if title in titles:
                self._scan(emulator.values(spreadsheet, title), header, now)

    def _scan(self, grid: list[list[Any]], marker_header: str, now: float) -> None:
        if not grid:
            return
        header = [str(cell) for cell in grid[0]]
        if "URL" not in header or marker_header not in header:
            return
        url_at, marker_at = header.index("URL"), header.index(marker_header)
        for row in grid[1:]:
            if len(row) <= max(url_at, marker_at):
                continue
            match = _VERSION.search(str(row[marker_at] or ""))
            if match is None:
                continue
            url, version = str(row[url_at]), int(match[1])
            for newer in range(self._best.get(url, 0) + 1, version + 1):
                self.seen[(url, newer)] = now
            self._best[url] = max(self._best.get(url, 0), version)

    def shows(self, url: str, version: int) -> bool:
        return (url, version) in self.seen


def written_rows(ranges: tuple[str, ...]) -> set[int]:
    """Row numbers touched by A1 ranges such as ``'Members'!A7:Q7``."""
    rows: set[int] = set()
    for text in ranges:
        rng = parse_a1(text)
        if rng.start_row is not None:
            end = rng.end_row if rng.end_row is not None else rng.start_row + 1
            rows.update(range(rng.start_row + 1, end + 1))
    return rows


# -- the daemon process --------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1])  # type: ignore[index]
    return kib / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
