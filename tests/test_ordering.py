"""Ordering: late and out-of-order webhooks never resurrect a deleted row or add a second one.

Cobot delivers webhooks at least once, retries failed deliveries hours later, and sends
nothing that says in which order things happened. The worker therefore trusts Cobot's current
state over the event names: a deleted resource answers 404, and a deletion is final. The
worker-level tests use the real Store with in-memory fakes of Cobot and Sheets; one e2e test
proves the same through the real daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from syncd.cobot.client import Fetched
from syncd.config.loading import load_settings
from syncd.config.settings import Settings, SheetSettings
from syncd.core.budget import RequestBudget
from syncd.core.metrics import Metrics
from syncd.engine.resync import Resync, Seen, SheetSummary
from syncd.engine.worker import Worker
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import Row
from syncd.ops.daemon import build_worker
from syncd.sheets.reports import RequestCount, Upsert, UpsertReport
from syncd.store.database import Store
from tests.fixtures_daemon import MakeDaemon, example_sheets
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

BASE = "https://co-up.cobot.me"
URL = f"{BASE}/api/memberships/m1"


def worker_settings(tmp_path: Path) -> Settings:
    """The example's Members worksheet in a config whose credentials are never used."""
    key_file = tmp_path / "service-account.json"
    key = {
        "client_email": "syncd@example.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nunused\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    key_file.write_text(json.dumps(key))
    config = {
        "cobot": {"subdomain": "co-up", "access_token": "unused-token-0123456789"},
        "webhook": {
            "public_url": "https://sync.example.org/cobot",
            "secret": "unused-secret-0123456789abcdef",
        },
        "google": {"service_account_file": str(key_file), "spreadsheet_id": "sheet-id"},
        "state_dir": str(tmp_path / "state"),
        "sheets": {"Members": example_sheets()["Members"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, environ={})


@dataclass
class FakeCobot:
    """Cobot's current state: a URL it does not hold answers 404, like a deleted resource."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    budget: RequestBudget = field(default_factory=lambda: RequestBudget(60))

    def request_budget(self) -> RequestBudget:
        return self.budget

    async def fetch(self, ref: ResourceRef, urgent: bool = True) -> Fetched:
        self.fetched.append(ref.url)
        data = self.objects.get(ref.url)
        if data is None:
            return Fetched(ref=ref, status="gone", data=None, observed_at=time.time())
        return Fetched(ref=ref, status="found", data=copy.deepcopy(data), observed_at=time.time())


@dataclass
class FakeSheets:
    """A worksheet as URL -> cells, with the writer's upsert semantics."""

    rows: dict[str, Row] = field(default_factory=dict)
    upserts: list[dict[str, Row]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The next upsert waits for it to be set (its rows decided, its lock held).
    gate: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def locked(self, *titles: str) -> AsyncIterator[None]:
        async with self.lock:
            yield

    def request_budgets(self) -> tuple[RequestBudget, ...]:
        return ()

    async def read_ahead(self, wanted: Sequence[tuple[SheetSettings, Collection[str]]]) -> None:
        """Nothing to read: rows are found by URL."""

    async def upsert_many(self, jobs: Sequence[Upsert]) -> list[UpsertReport]:
        return [await self.upsert(j.sheet, j.rows, only_if_missing=j.only_if_missing) for j in jobs]

    async def upsert(
        self,
        sheet: SheetSettings,
        rows: Mapping[str, Row],
        *,
        only_if_missing: Collection[str] = (),
    ) -> UpsertReport:
        gate, self.gate = self.gate, None
        if gate is not None:
            await gate.wait()
        self.upserts.append(dict(rows))
        written = [u for u in rows if u not in self.rows or u not in only_if_missing]
        appended = sum(1 for url in written if url not in self.rows)
        for url in written:
            self.rows.setdefault(url, {}).update(rows[url])
        return UpsertReport(
            sheet.title,
            len(written) - appended,
            appended,
            len(rows) - len(written),
            RequestCount(),
            (),
            0.0,
        )


@dataclass
class Rig:
    store: Store
    cobot: FakeCobot
    sheets: FakeSheets
    worker: Worker

    async def webhook(self, event: str, body: dict[str, Any] | None = None) -> None:
        await self.store.enqueue(event, URL, "membership", body or {"url": URL})

    async def flush(self) -> None:
        """One flush of everything due, as the worker's loop would run it."""
        await self.worker.flush(await self.store.claim_due(100))
        assert await self.store.claim_due(100) == []

    def row(self) -> Row:
        return self.sheets.rows[URL]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = worker_settings(tmp_path)
    store = Store.open(settings.state_dir)
    cobot, sheets = FakeCobot(), FakeSheets()
    worker = build_worker(settings, store, {settings.spaces[0].subdomain: cobot}, sheets, Metrics())  # type: ignore[arg-type]
    yield Rig(store, cobot, sheets, worker)
    await store.close()


def member(name: str) -> dict[str, Any]:
    return {"id": "m1", "name": name, "email": "ada@example.org"}


async def test_update_after_deletion_never_unflags_the_row(rig: Rig) -> None:
    rig.cobot.objects[URL] = member("Ada")
    await rig.webhook("created_membership")
    await rig.flush()
    del rig.cobot.objects[URL]
    await rig.webhook("deleted_membership", {"url": URL, "membership": member("Ada Final")})
    await rig.flush()
    deleted_at = rig.row()["Deleted"]
    assert deleted_at and rig.row()["Name"] == "Ada Final"

    await rig.webhook("updated_membership_details")  # delivered late; Cobot answers 404
    await rig.flush()
    assert rig.cobot.fetched == [URL, URL]
    assert rig.row()["Deleted"] == deleted_at
    assert rig.row()["Name"] == "Ada Final"


async def test_late_created_retry_after_deletion_stays_deleted(rig: Rig) -> None:
    await rig.webhook("deleted_membership", {"url": URL, "membership": member("Ada")})
    await rig.flush()
    deleted_at = rig.row()["Deleted"]
    assert deleted_at

    await rig.webhook("created_membership")  # Cobot's retry of the first delivery
    await rig.webhook("deleted_membership", {"url": URL, "membership": member("Ada")})
    await rig.flush()
    assert rig.row()["Deleted"] == deleted_at, "a repeated deletion keeps the first stamp"
    assert rig.row()["Name"] == "Ada"
    assert list(rig.sheets.rows) == [URL]


async def test_update_after_deletion_in_one_batch_is_not_fetched(rig: Rig) -> None:
    rig.cobot.objects[URL] = member("Ada")  # as if the fetch raced the deletion
    await rig.webhook("deleted_membership", {"url": URL, "membership": member("Ada")})
    await rig.webhook("updated_membership_details")
    await rig.flush()
    assert rig.cobot.fetched == []
    assert rig.row()["Deleted"]


async def test_two_events_in_one_batch_make_one_row_with_the_newer_state(rig: Rig) -> None:
    await rig.webhook("created_membership")
    rig.cobot.objects[URL] = member("Ada Lovelace")  # changed again before the flush
    await rig.webhook("updated_membership_details")
    await rig.flush()
    assert rig.cobot.fetched == [URL]
    assert rig.sheets.upserts == [{URL: rig.row()}]
    assert rig.row()["Name"] == "Ada Lovelace"
    assert rig.row()["Deleted"] == ""


@pytest.mark.e2e
def test_late_webhooks_after_a_deletion_leave_one_flagged_row(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon).start()
    sim = daemon.cobot.sim
    ada = sim.create("membership", name="Ada")
    kept = sim.create("membership", name="Grace")
    url = sim.url_for("membership", ada["id"])
    # One burst: update, deletion, then a late update and a late created retry.
    sim.update("membership", ada["id"], name="Ada Final")
    sim.delete("membership", ada["id"])
    sim.emit("updated_membership_details", url)
    sim.emit("created_membership", url)
    settle(daemon)
    rows = by_url(daemon.rows("Members"))
    deleted_at = rows[url]["Deleted"]
    assert deleted_at and rows[url]["Name"] == "Ada Final"

    # Another round, processed in its own flush, after the deletion was written.
    sim.emit("updated_membership_details", url)
    sim.emit("created_membership", url)
    settle(daemon)
    rows = by_url(daemon.rows("Members"))
    assert set(rows) == {url, sim.url_for("membership", kept["id"])}
    assert rows[url]["Deleted"] == deleted_at
    assert rows[url]["Name"] == "Ada Final"
    assert rows[sim.url_for("membership", kept["id"])]["Deleted"] == ""
    assert daemon.stop() == 0


async def test_a_resync_deciding_before_a_webhook_never_overwrites_it(
    rig: Rig, tmp_path: Path
) -> None:
    """Decide, write and save happen under the worksheet's lock: a webhook flush that starts
    while a re-sync's older rows are on their way waits, then decides from the saved state."""
    rig.cobot.objects[URL] = member("Ada")
    await rig.webhook("created_membership")
    await rig.flush()
    settings = worker_settings(tmp_path)
    resync = Resync(
        settings.resync,
        settings.cobot,
        ZoneInfo("UTC"),
        rig.store,
        rig.cobot,
        rig.sheets,  # type: ignore[arg-type]
    )
    sheet = settings.sheets[0]
    listed = Seen(member("Ada Listed"), time.time())
    rig.cobot.objects[URL] = member("Ada Newer")  # changed after the listing

    gate = rig.sheets.gate = asyncio.Event()
    older = asyncio.create_task(resync._write(sheet, {URL: listed}, SheetSummary("", "", "")))
    await asyncio.sleep(0.05)  # the re-sync decided and waits inside its write
    await rig.webhook("updated_membership_details")
    newer = asyncio.create_task(rig.flush())
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(older, newer)
    assert rig.row()["Name"] == "Ada Newer"
    assert [rows[URL]["Name"] for rows in rig.sheets.upserts[1:]] == ["Ada Listed", "Ada Newer"]
