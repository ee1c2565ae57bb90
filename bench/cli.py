"""Command line of the benchmark (``python bench/run.py --help``)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.latency import lone
from bench.report import REPO, Figure, load_average, machine, results_markdown, text_table
from bench.rerender import rerender
from bench.scenarios import FULL, QUICK, burst, intake, scale
from bench.steady import steady, steady3, steady_members

SCENARIOS = {
    "intake": intake,
    "lone": lone,
    "steady": steady,
    "steady3": steady3,
    "steady-members": steady_members,
    "burst": burst,
    "scale": scale,
    "rerender": lambda workdir, sizes: rerender(workdir, sizes.rerender_rows, sizes.settle_timeout),
}

RESULTS = REPO / "bench" / "RESULTS.md"
NOTES = (
    "Everything on loopback, one fresh world per scenario: the daemon is a `syncd run` "
    "subprocess with the shipped `sync:` defaults, the Members and Invoices worksheets of "
    "config.example.yaml and scheduled re-syncs off; before measuring, it syncs one row per "
    "worksheet (so the worksheets exist and its API clients are connected).",
    "Real time, no scaling: the Sheets emulator enforces 60 reads and 60 writes per minute, "
    "the Cobot simulator 60 requests per minute (6 for the membership listing).",
    "Intake: the senders run in their own process (aiohttp, keep-alive, closed loop); each "
    "first opens its connection with one untimed webhook (stored and counted as well); the "
    "ceiling is a bare aiohttp server (reads the body, answers 200) in its own process with "
    "the daemon's accept backlog; 'durable' counts the inbox rows after the run.",
    "End to end: each webhook is sent after its resource changed in the simulator; a row "
    "counts as visible once the emulated sheet shows that change (sheets polled every 50 ms).",
    "Realistic latency (lone changes, steady, burst): the Cobot simulator answers in 150 ms "
    "and the Sheets emulator in 250 ms, each answer drawn from 0.5x to 1.5x that; the floor "
    "of a lone change is one Cobot GET plus one Sheets write.",
    "API use is counted in the emulators' request logs, from the first webhook until every "
    "event is settled (the inbox is drained); 429s over the whole scenario.",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark cobot-syncd: intake, end-to-end latency, API use and scale.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes: about half a minute instead of about two",
    )
    parser.add_argument(
        "--write-results",
        nargs="?",
        const=RESULTS,
        type=Path,
        metavar="PATH",
        help=f"also write the table as Markdown (default {RESULTS.relative_to(REPO)})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep each scenario's config, state and daemon log here (default: a temporary "
        "directory, removed afterwards)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    sizes = parser.add_argument_group("sizes (override --quick or the full defaults)")
    for name, value in dataclasses.asdict(FULL).items():
        sizes.add_argument(
            f"--{name.replace('_', '-')}", type=type(value), metavar="N", help=f"full: {value}"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = QUICK if args.quick else FULL
    overrides = {
        name: getattr(args, name)
        for name in dataclasses.asdict(base)
        if getattr(args, name) is not None
    }
    sizes = dataclasses.replace(base, **overrides)
    started = datetime.now(UTC)
    print(f"machine: {machine()}", flush=True)
    load_before = load_average()
    figures: list[Figure] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        root = args.workdir / f"run-{started:%Y%m%d-%H%M%S}" if args.workdir else Path(tmp)
        for name in args.only or list(SCENARIOS):
            began = time.monotonic()
            print(f"running {name} ...", flush=True)
            try:
                figures += SCENARIOS[name](root / name, sizes)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                figures.append(Figure(name, "scenario failed", f"{type(exc).__name__}: {exc}"))
                _print_daemon_log(root / name)
            print(f"  {name} took {time.monotonic() - began:.0f} s", flush=True)
    notes = [*NOTES, f"Load average (1 min) before / after: {load_before} / {load_average()}."]
    print()
    print(text_table(figures), end="\n\n")
    print(*(f"- {note}" for note in notes), sep="\n")
    missed = [f for f in figures if f.met is False]
    print(f"\n{len(missed)} target(s) missed" if missed else "\nevery target met")
    if args.write_results:
        command = "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        args.write_results.write_text(results_markdown(command.strip(), figures, notes, started))
        print(f"written to {args.write_results}")
    return 1 if failed else 0


def _print_daemon_log(workdir: Path, lines: int = 40) -> None:
    for log in sorted(workdir.glob("daemon-*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last {len(tail)} lines of {log.name}", *tail, sep="\n", file=sys.stderr)
