"""The measurements: intake, end to end (burst) with API cost, and scale.

Each scenario gets a fresh world (emulators, state directory, daemon), so no backlog or quota
use of one leaks into the next, and returns its rows of the result table.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from bench.report import REPO, Figure, ms, percentile, secs
from bench.sender import Ack, Webhook, new_session, post_all, post_one
from bench.world import (
    MARKER_HEADERS,
    SheetWatcher,
    World,
    cpu_seconds,
    marker,
    open_world,
    peak_rss_mb,
    update_event,
    written_rows,
)
from syncd.sandbox.servers import free_port

#: How often the watcher reads the emulated sheets (the resolution of ack-to-row times).
POLL_SECONDS = 0.05
#: Distinct resources the intake webhooks name (the daemon folds repeats per flush).
INTAKE_RESOURCES = 100
#: Concurrent senders of the burst (Cobot delivers webhooks in parallel too).
BURST_SENDERS = 50
WARM_UP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does; the defaults are the full benchmark."""

    webhooks: int = 10_000
    senders: int = 200
    steady_seconds: int = 60
    burst_events: int = 2_000
    burst_resources: int = 500
    #: Turns the ceiling and the daemon each take at intake; the figures are their medians.
    intake_rounds: int = 3
    #: How long rows may take to show before a scenario reports them as missing.
    settle_timeout: float = 600.0
    scale_rows: int = 100_000
    #: Changes made one at a time, each once the last is in the sheet.
    lone_changes: int = 20
    #: Rows rendered again from the local copy after a column is added.
    rerender_rows: int = 10_000


FULL = Sizes()
QUICK = Sizes(
    webhooks=3_000,
    steady_seconds=15,
    burst_events=400,
    burst_resources=100,
    settle_timeout=240.0,
    scale_rows=20_000,
    lone_changes=8,
    rerender_rows=2_000,
)


# -- intake -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderRun:
    """One sender process's run: the warm-up statuses and the timed acks."""

    warm_up: list[int]
    acks: list[Ack]

    @property
    def ok(self) -> list[Ack]:
        return [a for a in self.acks if 200 <= a.status < 300]

    @property
    def throughput(self) -> float:
        span = max(a.acked_at for a in self.acks) - min(a.sent_at for a in self.acks)
        return len(self.ok) / span if span > 0 else 0.0

    def latency(self, q: float) -> float:
        return percentile([a.latency for a in self.acks], q)


def run_sender(webhooks: list[Webhook], concurrency: int) -> SenderRun:
    """Post the webhooks from a separate process (its own interpreter and event loop); the
    first ``concurrency`` of them only open the connections and are not timed."""
    lines = "".join(json.dumps([w.url, w.body.decode()]) + "\n" for w in webhooks)
    result = subprocess.run(
        [sys.executable, "-m", "bench.sender", "--concurrency", str(concurrency)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=True,
    )
    output = json.loads(result.stdout)
    acks = [Ack(i, sent, acked, status) for i, (sent, acked, status) in enumerate(output["acks"])]
    return SenderRun(output["warm_up"], acks)


@contextmanager
def ceiling_server() -> Iterator[str]:
    """The bare aiohttp server in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", str(port)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare aiohttp server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class IntakeRound:
    """The ceiling and then the daemon taking the same webhooks, and the daemon's CPU time."""

    ceiling: SenderRun
    daemon: SenderRun
    cpu_seconds: float

    @property
    def ratio(self) -> float:
        return self.daemon.throughput / self.ceiling.throughput if self.ceiling.throughput else 0

    @property
    def p99_ratio(self) -> float:
        """The daemon's p99 ack latency over the ceiling's, both measured in this round."""
        ceiling = self.ceiling.latency(99)
        return self.daemon.latency(99) / ceiling if ceiling else math.inf


def intake(workdir: Path, sizes: Sizes) -> list[Figure]:
    """Webhooks per second and ack latency, the daemon against a bare aiohttp server.

    The two take turns, ``intake_rounds`` times, and each figure is the median of its rounds:
    a noisy neighbour then skews one round rather than the result. The daemon's worker goes
    on with the earlier rounds' events meanwhile, as it would under sustained load.
    """
    section = (
        f"intake ({sizes.webhooks:,} webhooks, {sizes.senders} senders, "
        f"median of {sizes.intake_rounds} rounds)"
    )
    per_round = sizes.senders + sizes.webhooks  # the warm-up webhooks are stored too
    rounds: list[IntakeRound] = []
    with open_world(workdir) as world:
        # As in the other scenarios, the one-time set-up (worksheets, API clients) is done.
        asyncio.run(warm_up(world, SheetWatcher(world)))
        urls = [
            world.new_resource("membership", f"intake {i}")
            for i in range(min(INTAKE_RESOURCES, sizes.webhooks))
        ]
        event = update_event("membership")
        webhooks = [world.webhook(event, urls[i % len(urls)]) for i in range(per_round)]
        pid = world.daemon.process.pid  # type: ignore[union-attr]
        stored_before = world.inbox_count()
        with ceiling_server() as base:
            bare = [Webhook(f"{base}/cobot/x/{event}", w.body) for w in webhooks]
            for _ in range(sizes.intake_rounds):
                ceiling = run_sender(bare, sizes.senders)
                cpu_before = cpu_seconds(pid)
                daemon = run_sender(webhooks, sizes.senders)
                rounds.append(IntakeRound(ceiling, daemon, cpu_seconds(pid) - cpu_before))
        stored = world.inbox_count() - stored_before
    total = per_round * len(rounds)
    acked = sum(
        len(r.daemon.ok) + sum(1 for status in r.daemon.warm_up if 200 <= status < 300)
        for r in rounds
    )
    ratio = median(r.ratio for r in rounds)
    # Latency against the ceiling of the same round, not in milliseconds: on a shared machine
    # both move with the CPU left over, and only the daemon's own cost should count.
    p99_ratio = median(r.p99_ratio for r in rounds)
    each_p99_ratio = " / ".join(f"{r.p99_ratio:.2f}" for r in rounds)
    return [
        Figure(section, "throughput, daemon", _median_of([r.daemon.throughput for r in rounds])),
        Figure(
            section,
            "throughput, bare aiohttp (ceiling)",
            _median_of([r.ceiling.throughput for r in rounds]),
        ),
        Figure(section, "daemon / ceiling", f"{ratio:.0%}", ">= 50%", ratio >= 0.5),
        Figure(
            section, "ack latency p50 / p95 / p99, daemon", _latencies([r.daemon for r in rounds])
        ),
        Figure(
            section, "ack latency p50 / p95 / p99, ceiling", _latencies([r.ceiling for r in rounds])
        ),
        Figure(
            section,
            "ack latency p99, daemon / ceiling",
            f"{p99_ratio:.2f}x (rounds: {each_p99_ratio})",
            "<= 2x",
            p99_ratio <= 2.0,
        ),
        Figure(
            section,
            "acks durable (inbox rows after the run)",
            f"{stored:,} stored for {acked:,} acks; {total - acked} not acked",
            "all acked, all stored",
            acked == stored == total,
        ),
        Figure(
            section,
            "daemon CPU per webhook",
            f"{median(r.cpu_seconds for r in rounds) / per_round * 1e6:.0f} us",
        ),
    ]


def _median_of(throughputs: list[float]) -> str:
    each = " / ".join(f"{t:,.0f}" for t in throughputs)
    return f"{median(throughputs):,.0f} req/s (rounds: {each})"


def _latencies(runs: list[SenderRun]) -> str:
    """Median p50 / p95 / p99 over the rounds, and each round's p99."""
    medians = " / ".join(ms(median(run.latency(q) for run in runs)) for q in (50, 95, 99))
    each = " / ".join(f"{run.latency(99) * 1000:.0f}" for run in runs)
    return f"{medians} (p99 per round: {each} ms)"


# -- end to end ------------------------------------------------------------------------------


async def watch_until(watcher: SheetWatcher, wanted: list[tuple[str, int]], timeout: float) -> bool:
    """Poll the sheets until every (url, version) showed; False when time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        watcher.poll()
        if all(watcher.shows(url, version) for url, version in wanted):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)


async def keep_watching(watcher: SheetWatcher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        watcher.poll()
        await asyncio.sleep(POLL_SECONDS)


async def warm_up(world: World, watcher: SheetWatcher) -> None:
    """One resource per worksheet through the daemon, so both worksheets exist and their
    layout is known before anything is measured (that set-up is a one-time cost)."""
    async with new_session(4) as session:
        wanted = []
        for kind in ("membership", "invoice"):
            url = world.new_resource(kind, f"warm-up {kind}")
            await post_one(session, world.webhook(f"created_{kind}", url), 0)
            wanted.append((url, 1))
    if not await watch_until(watcher, wanted, WARM_UP_TIMEOUT):
        raise RuntimeError("the warm-up rows did not appear; see the daemon log")


@dataclass(frozen=True)
class ApiUse:
    """Requests both APIs received in a time window, and the 429s of the whole scenario."""

    sheets_reads: int
    sheets_writes: int
    cobot: int
    sheets_429: int
    cobot_429: int
    #: Which requests got a 429, e.g. "GET /api/memberships" (a hint where budgets drift).
    refused: tuple[str, ...] = ()

    @classmethod
    def between(cls, world: World, start: float, end: float) -> ApiUse:
        calls = [c for c in world.emulator.calls_since(start) if c.at <= end]
        cobot = [r for r in world.cobot_calls_since(start) if r.time <= end]
        sheets_429 = [c for c in world.emulator.calls_since(0) if c.status == 429]
        cobot_429 = [_route(r.path) for r in world.sim.requests() if r.status == 429]
        return cls(
            sheets_reads=sum(1 for c in calls if c.kind == "read"),
            sheets_writes=sum(1 for c in calls if c.kind == "write"),
            cobot=len(cobot),
            sheets_429=len(sheets_429),
            cobot_429=len(cobot_429),
            refused=tuple(
                sorted({f"Sheets {c.path}" for c in sheets_429} | {f"Cobot {p}" for p in cobot_429})
            ),
        )

    def figures(self, section: str, events: int, resources: int, burst: bool) -> list[Figure]:
        writes = self.sheets_writes / events
        per_resource = self.cobot / resources
        no_429 = self.sheets_429 == 0 and self.cobot_429 == 0
        return [
            Figure(section, "Sheets reads per event", f"{self.sheets_reads / events:.3f}"),
            Figure(
                section,
                "Sheets writes per event",
                f"{writes:.3f} ({self.sheets_writes} writes)",
                "<= 0.02" if burst else "",
                writes <= 0.02 if burst else None,
            ),
            Figure(
                section,
                "Cobot requests per distinct resource" if burst else "Cobot requests per event",
                f"{per_resource:.2f} ({self.cobot} requests)",
                "<= 1" if burst else "",
                per_resource <= 1 if burst else None,
            ),
            Figure(
                section,
                "HTTP 429 from Sheets / Cobot",
                f"{self.sheets_429} / {self.cobot_429}"
                + (f" ({', '.join(self.refused)})" if self.refused else ""),
                "0 / 0",
                no_429,
            ),
        ]


def _route(path: str) -> str:
    """A Cobot path without its id: /api/memberships/abc -> /api/memberships/{id}."""
    parts = path.split("/")
    return "/".join(parts[:3]) + ("/{id}" if len(parts) > 3 else "")


def burst(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(_burst(workdir, sizes))


async def _burst(workdir: Path, sizes: Sizes) -> list[Figure]:
    """Every resource changes ``rounds`` times, each change announced by one webhook."""
    resources, rounds = sizes.burst_resources, max(1, sizes.burst_events // sizes.burst_resources)
    events = resources * rounds
    section = f"burst ({events:,} events for {resources} resources, realistic latency)"
    with open_world(workdir, realistic=True) as world:
        watcher = SheetWatcher(world)
        await warm_up(world, watcher)
        kinds = [("membership", "invoice")[i % 2] for i in range(resources)]
        urls = [world.new_resource(kind, f"burst {i}", 0) for i, kind in enumerate(kinds)]
        webhooks = [
            world.webhook(update_event(kinds[i % resources]), urls[i % resources])
            for i in range(events)
        ]

        def change(index: int) -> None:
            """Cobot changes the resource, then tells the daemon: the row must catch up."""
            i = index % resources
            world.set_version(kinds[i], urls[i], f"burst {i}", index // resources + 1)

        start = time.time()
        stop = asyncio.Event()
        watching = asyncio.create_task(keep_watching(watcher, stop))
        acks = await post_all(webhooks, BURST_SENDERS, before_send=change)
        stop.set()
        await watching
        final = [(url, rounds) for url in urls]
        shown = await watch_until(watcher, final, sizes.settle_timeout)
        end = max((watcher.seen.get(key, time.time()) for key in final), default=start)
        await wait_drained(world, sizes.settle_timeout)
        use = ApiUse.between(world, start, time.time())
    latencies = []
    for ack in acks:
        key = (urls[ack.index % resources], ack.index // resources + 1)
        if key in watcher.seen:
            latencies.append(watcher.seen[key] - ack.acked_at)
    visible = sum(1 for key in final if key in watcher.seen)
    all_after = end - start
    figures = [
        Figure(
            section,
            "ack -> row visible p50 / p99",
            f"{secs(percentile(latencies, 50))} / {secs(percentile(latencies, 99))}",
        ),
        Figure(
            section,
            "all rows visible after (from the first webhook)",
            secs(all_after) if shown else f"not after {secs(all_after)}: {visible} of {resources}",
            "<= 120 s",
            shown and all_after <= 120,
        ),
    ]
    return figures + use.figures(section, events, resources, burst=True)


# -- scale ------------------------------------------------------------------------------------


_FLUSH_SECONDS = re.compile(r"syncd\.worker: flush: .*\((\d+\.\d+) s\)$", re.M)
#: Rows of the big worksheet changed in the measured flush (as fractions of its length), and
#: new resources appended by it.
SCALE_UPDATED = (0.0, 0.25, 0.5, 0.75, 1.0)
SCALE_ADDED = 5


def scale(workdir: Path, sizes: Sizes) -> list[Figure]:
    return asyncio.run(_scale(workdir, sizes))


async def _scale(workdir: Path, sizes: Sizes) -> list[Figure]:
    """One flush into a worksheet that already holds ``scale_rows`` rows."""
    rows = sizes.scale_rows
    section = f"scale (worksheet of {rows:,} rows)"
    picked = sorted({min(rows - 1, int(rows * f)) for f in SCALE_UPDATED})
    existing: dict[int, str] = {}

    def prefill(world: World) -> None:
        for index in picked:
            existing[index] = world.new_resource("membership", f"scale {index}")
        world.daemon.write_config()
        prefill_members(world, rows, existing)

    with open_world(workdir, prepare=prefill) as world:
        pid = world.daemon.process.pid  # type: ignore[union-attr]
        async with new_session(4) as session:
            # A first flush learns the spreadsheet's metadata and the sheet's layout.
            first = existing[picked[0]]
            world.set_version("membership", first, f"scale {picked[0]}", 2)
            await post_one(session, world.webhook(update_event("membership"), first), 0)
            await wait_drained(world)
            start = time.time()
            changed = []
            for index in picked[1:]:
                world.set_version("membership", existing[index], f"scale {index}", 2)
                changed.append(existing[index])
            changed += [
                world.new_resource("membership", f"scale new {i}") for i in range(SCALE_ADDED)
            ]
            for url in changed:
                await post_one(session, world.webhook(update_event("membership"), url), 0)
            await wait_drained(world)
        calls = world.emulator.calls_since(start)
        watcher = SheetWatcher(world)
        watcher.poll()
        landed = all(watcher.shows(url, 2 if url in existing.values() else 1) for url in changed)
        flush_seconds = [float(m) for m in _FLUSH_SECONDS.findall(world.daemon.logs())]
        rss = peak_rss_mb(pid)
    reads = [c for c in calls if c.kind == "read"]
    writes = [c for c in calls if c.kind == "write"]
    touched = set().union(*(written_rows(c.ranges) for c in writes))
    read_ranges = ", ".join(r.split("!", 1)[-1] for c in reads for r in c.ranges)
    # A lone first webhook is flushed at once: the changes may take two flushes, each of
    # which reads the worksheet's layout once and writes it once.
    layout_only = len(reads) == len(writes) and all(_layout_read(c.ranges) for c in reads)
    return [
        Figure(
            section,
            "reads in one flush (ranges)",
            f"{len(reads)} in {len(writes)} flush(es) ({read_ranges})",
            "1 read: row 1, key column, rows below it",
            layout_only,
        ),
        Figure(
            section,
            "rows written in one flush",
            f"{len(touched)} rows in {len(writes)} write(s) for {len(changed)} changed"
            + ("" if landed else "; NOT all changes visible"),
            "only the changed rows",
            landed and len(touched) == len(changed),
        ),
        Figure(
            section,
            "bytes of that flush (to / from Google)",
            f"{_size(sum(c.bytes_in for c in calls))} / {_size(sum(c.bytes_out for c in calls))}",
        ),
        Figure(
            section, "duration of that flush", secs(flush_seconds[-1]) if flush_seconds else "?"
        ),
        Figure(section, "daemon peak RSS (VmHWM)", f"{rss:.0f} MiB", "< 200 MiB", rss < 200),
    ]


def _layout_read(ranges: tuple[str, ...]) -> bool:
    """Whether one read holds only a flush's layout: row 1, the key column (a whole column)
    and, when known, the rows below the key column's last value (which must stay empty for
    new rows; empty, they cost nothing to read)."""
    parts = [text.split("!", 1)[-1] for text in ranges]
    if parts[:1] != ["1:1"] or len(parts) not in (2, 3):
        return False
    first, _, last = parts[1].partition(":")
    below = len(parts) == 2 or re.fullmatch(r"A\d+:[A-Z]+", parts[2]) is not None
    return first == last and first.isalpha() and below


def prefill_members(world: World, rows: int, existing: dict[int, str]) -> None:
    """Write the Members worksheet straight into the emulator: header plus ``rows`` rows."""
    sheet = world.settings_sheets()["Members"]
    headers = list(sheet.headers)
    grid: list[list[Any]] = [headers]
    base = world.sim.url_for("membership", "")
    for index in range(rows):
        cells: dict[str, Any] = {c.header: f"{c.header} {index}" for c in sheet.columns}
        cells[MARKER_HEADERS["Members"]] = marker(f"scale {index}", 1)
        cells[sheet.key_column] = existing.get(index, f"{base}{index:032x}")
        cells[sheet.deleted_column] = ""
        grid.append([cells[h] for h in headers])
    emulator, spreadsheet = world.emulator, world.sheets.spreadsheet_id
    emulator.add_sheet(spreadsheet, "Members", rows=rows + 1000, cols=len(headers))
    emulator.set_values(spreadsheet, "Members", grid)


async def wait_drained(world: World, timeout: float = 120.0) -> None:
    """Until the daemon's inbox holds nothing pending (every event settled, API use over)."""
    deadline = time.monotonic() + timeout
    while not world.daemon.inbox_empty():
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not drain its inbox in time")
        await asyncio.sleep(POLL_SECONDS)


def _size(count: int) -> str:
    for unit, factor in (("MB", 1e6), ("kB", 1e3)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} B"
