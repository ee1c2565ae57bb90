"""`syncd backfill` as a command: its options, mistakes as one clear line, progress output."""

from __future__ import annotations

import io
from datetime import date

import pytest

from syncd.commands.backfill import ProgressDisplay, summary_lines
from syncd.commands.parser import build_parser
from syncd.engine.resync import SheetSummary
from syncd.engine.resync_plan import Progress, Window
from tests.fixtures_cobot import MakeCobotSim
from tests.fixtures_daemon import MakeDaemon
from tests.resync_support import serve_spaces, settings_of


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_options_parse_and_a_bad_date_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = "backfill -c x.yaml --sheet Members --sheet Invoices --since 2024-01-01"
    args = build_parser().parse_args([*argv.split(), "--until", "2024-06-30"])
    assert (args.sheets, args.since, args.until) == (
        ["Members", "Invoices"],
        date(2024, 1, 1),
        date(2024, 6, 30),
    )
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["backfill", "-c", "x.yaml", "--since", "2024-13-01"])
    assert exited.value.code == 2
    assert "expected a date like 2024-01-31, got '2024-13-01'" in capsys.readouterr().err


def test_unknown_worksheet_and_reversed_span_exit_2_with_one_line(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon()
    unknown = daemon.cli("backfill", "--sheet", "Memebers")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"syncd: error: no worksheet named 'Memebers' in {daemon.config_path} "
        "(configured: Bookings, Check-ins, Invoices, Members)"
    ]
    reversed_span = daemon.cli("backfill", "--since", "2025-02-01", "--until", "2025-01-01")
    assert reversed_span.returncode == 2
    assert "--since 2025-02-01 is after --until 2025-01-01" in reversed_span.stderr
    assert daemon.cobot.sim.requests() == []  # nothing was read before the check


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    window = Window(date(2024, 1, 1), date(2024, 7, 2))
    steps = [Progress("Invoices", 1, 2, 300, window), Progress("Invoices", 2, 2, 610)]
    plain, terminal = io.StringIO(), Terminal()
    for step in steps:
        ProgressDisplay(plain).update(step)
        ProgressDisplay(terminal).update(step)
    assert plain.getvalue().splitlines() == [
        "Invoices: 1/2, 300 listed (2024-01-01 to 2024-07-01)",
        "Invoices: 2/2, 610 listed",
    ]
    drawn = terminal.getvalue()
    assert drawn.count("\r") == 2 and drawn.endswith("\n") and drawn.count("\n") == 1
    assert "[" + "#" * 12 + "-" * 12 + "]" in drawn and "[" + "#" * 24 + "]" in drawn


def test_summary_table_totals_and_notes(make_daemon: MakeDaemon) -> None:
    settings = settings_of(make_daemon())
    members = SheetSummary("Members", "membership", "backfill", added=3, cobot_requests=1)
    members.safety_stop = "Cobot's complete listing lacks 9 of the 10 known rows"
    invoices = SheetSummary("Invoices", "invoice", "backfill", updated=2, unchanged=5)
    invoices.resumed_from = "2024-07-01"
    admins = SheetSummary("Admins", "admin", "backfill", skipped="no list endpoint")
    lines = summary_lines([members, invoices, admins], settings)
    assert lines[0].split() == [
        "Worksheet",
        "Added",
        "Updated",
        "Unchanged",
        "Deleted",
        "Cobot",
        "Sheets",
        "r/w",
        "Time",
    ]
    assert lines[3].split()[:6] == ["Total", "3", "2", "5", "0", "1"]
    assert "Admins: skipped: no list endpoint" in lines
    assert "Invoices: continued an interrupted backfill from 2024-07-01" in lines
    assert any(line.startswith("Members: safety stop: Cobot's complete listing") for line in lines)
    assert lines[-1].startswith("Limits: Cobot 60 requests/min (membership list 6/min)")


def test_summary_has_a_row_per_space_and_worksheet(
    make_daemon: MakeDaemon, make_cobot_sim: MakeCobotSim
) -> None:
    spaces = {
        "co-up": make_cobot_sim(),
        "co-down": make_cobot_sim(tokens={"test-cobot-token-other-0123456789": "syncd-test"}),
    }
    daemon = make_daemon(cobot=spaces["co-up"])
    serve_spaces(daemon, spaces)
    settings = settings_of(daemon)
    summaries = []
    for space in spaces:
        summaries += [
            SheetSummary("Members", "membership", "backfill", space, added=2),
            SheetSummary("Admins", "admin", "backfill", space, skipped="no list endpoint"),
        ]
    summaries[2].safety_stop = "Cobot's co-down's complete listing lacks 2 of the 2 known rows"
    lines = summary_lines(summaries, settings)
    assert [line.split("  ")[0] for line in lines[1:4]] == [
        "Members (co-up)",
        "Members (co-down)",
        "Total",
    ]
    assert lines.count("Admins: skipped: no list endpoint") == 1  # said once, not per space
    assert any(line.startswith("Members (co-down): safety stop: ") for line in lines)
    assert lines[-1].startswith("Limits: Cobot 60 requests/min per token (2 for 2 spaces)")
