"""The ``syncd`` command line.

Exit codes (the contract): 0 ok, 2 bad usage or invalid config, 1 anything else. Every error a
user can cause is printed as one clear message per problem, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from syncd import __version__
from syncd.config.settings import Settings, load_settings
from syncd.core.errors import SyncdError
from syncd.ops.logs import configure_logging

log = logging.getLogger("syncd")

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except SyncdError as exc:
        for line in exc.lines():
            print(f"syncd: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps Google Sheets in step with Cobot through webhooks.",
    )
    parser.add_argument("--version", action="version", version=f"cobot-syncd {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = _command(commands, "run", "Run the daemon in the foreground until SIGTERM/SIGINT.", _run)
    _logging_options(run)

    check = _command(
        commands,
        "check-config",
        "Validate the config; unless --offline, also check Cobot and Google access.",
        _check_config,
    )
    check.add_argument(
        "--offline",
        action="store_true",
        help="only validate the file; contact neither Cobot nor Google",
    )

    status = _command(
        commands,
        "status",
        "Show the inbox, dead letters, last writes and checks; read-only, safe while running.",
        _status,
    )
    status.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
    replay = _command(
        commands,
        "replay",
        "Move dead-lettered events back to the queue; the running daemon retries them.",
        _replay,
    )
    replay.add_argument(
        "--id",
        dest="ids",
        type=int,
        nargs="+",
        action="extend",
        metavar="N",
        help="the dead letters with these ids (as `syncd status` lists them)",
    )
    replay.add_argument("--event", metavar="NAME", help="the dead letters of this Cobot event")
    replay.add_argument("--all", action="store_true", help="every dead letter")

    backfill = _command(
        commands,
        "backfill",
        "Fill the worksheets from Cobot's list endpoints; safe while the daemon runs, "
        "continues where an interrupted run stopped.",
        _backfill,
    )
    backfill.add_argument(
        "--sheet",
        dest="sheets",
        action="append",
        metavar="NAME",
        help="only this worksheet (repeatable; default: all)",
    )
    for option, default in (
        ("--since", "resync.history_days ago"),
        ("--until", "today; bookings a year ahead"),
    ):
        backfill.add_argument(
            option,
            type=_day,
            metavar="YYYY-MM-DD",
            help=f"span of invoices, bookings and check-ins (default: {default})",
        )
    _logging_options(backfill)

    subscriptions = commands.add_parser(
        "subscriptions",
        help="List, repair or remove the Cobot webhook subscriptions.",
        description="List, repair or remove the Cobot webhook subscriptions.",
    )
    actions = subscriptions.add_subparsers(title="actions", metavar="ACTION")
    _command(
        actions,
        "list",
        "Show every subscription of this token, ours marked.",
        _subscriptions("list"),
    )
    _command(
        actions,
        "sync",
        "Reconcile once: create, repair and remove ours; print changes.",
        _subscriptions("sync"),
    )
    delete = _command(actions, "delete", "Delete subscriptions.", _subscriptions("delete"))
    delete.add_argument(
        "--all-ours",
        action="store_true",
        required=True,
        help="delete every subscription whose callback URL is ours",
    )

    for name, module, summary in (
        (
            "demo",
            "syncd.sandbox.demo.command",
            "Watch a simulated coworking day sync into an emulated spreadsheet: no accounts, "
            "no network.",
        ),
        (
            "preview",
            "syncd.commands.preview",
            "Show the row the mapping makes from a sample or a Cobot URL; no sheet is touched.",
        ),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        _sandbox_arguments(command, module)

    sandbox = commands.add_parser(
        "sandbox",
        help="Serve a local Cobot simulator or Google Sheets emulator.",
        description="Serve a local stand-in for Cobot or Google Sheets on loopback, for "
        "trying the daemon without real accounts.",
    )
    emulators = sandbox.add_subparsers(title="servers", metavar="SERVER")
    for name, module, summary in (
        (
            "cobot",
            "syncd.sandbox.cobot.server",
            "The Cobot API simulator (API, subscriptions, webhook sender).",
        ),
        (
            "sheets",
            "syncd.sandbox.sheets.server",
            "The Google Sheets API v4 emulator with its OAuth2 token endpoint.",
        ),
    ):
        server = emulators.add_parser(name, help=summary, description=summary)
        _sandbox_arguments(server, module)
    return parser


def _command(
    commands: argparse._SubParsersAction, name: str, summary: str, handler: Handler
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=summary, description=summary)
    command.add_argument(
        "--config",
        "-c",
        required=True,
        type=Path,
        metavar="FILE",
        help="the YAML config file (see config.example.yaml)",
    )
    command.set_defaults(handler=handler)
    return command


def _logging_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="overrides logging.level of the config",
    )
    command.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="overrides logging.format of the config (json for journald)",
    )


def _load(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    configure_logging(
        getattr(args, "log_level", None) or settings.logging.level,
        getattr(args, "log_format", None) or settings.logging.format,
        secrets=settings.secret_values(),
    )
    return settings


def _run(args: argparse.Namespace) -> int:
    from syncd.ops.daemon import run_daemon

    settings = _load(args)
    asyncio.run(run_daemon(settings))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from syncd.commands.check_config import (
        describe_plan,
        offline_problems,
        online_problems,
        skipped_checks,
    )
    from syncd.config.settings import inspect_settings

    settings, problems = inspect_settings(args.config)
    problems += offline_problems(settings)
    if not args.offline:
        configure_logging("error", "text", secrets=settings.secret_values())
        problems += asyncio.run(online_problems(settings))
    for problem in problems:
        print(f"syncd: error: {problem.render(str(args.config))}", file=sys.stderr)
    for note in [] if args.offline else skipped_checks(settings):
        print(f"syncd: note: {note}", file=sys.stderr)
    if problems:
        return 2
    print(
        f"{args.config}: configuration is valid"
        + ("" if args.offline else "; Cobot and Google Sheets accept the credentials")
    )
    for line in describe_plan(settings):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    from syncd.ops.status import print_status

    return print_status(args.config, as_json=args.json)


def _replay(args: argparse.Namespace) -> int:
    from syncd.ops.status import run_replay

    return run_replay(args.config, ids=args.ids, event=args.event, everything=args.all)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {text!r}") from None


def _backfill(args: argparse.Namespace) -> int:
    from syncd.engine.backfill import cli_backfill

    # Progress and the summary tell the story; --log-level info shows every step.
    args.log_level = args.log_level or "warning"
    settings = _load(args)
    return cli_backfill(settings, args.sheets, args.since, args.until)


def _subscriptions(action: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from syncd.cobot import subscriptions

        settings = _load(args)
        run = {
            "list": subscriptions.cli_list,
            "sync": subscriptions.cli_sync,
            "delete": subscriptions.cli_delete_all_ours,
        }[action]
        return asyncio.run(run(settings))

    return handler


def _sandbox_arguments(parser: argparse.ArgumentParser, module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    module.add_cli_arguments(parser)
    parser.set_defaults(handler=module.run_cli)
