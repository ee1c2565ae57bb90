"""``syncd replay``: dead-lettered events back to the queue, for the running daemon to retry."""

from __future__ import annotations

import argparse
import asyncio

from syncd.commands.command import Command, add_config_option
from syncd.core.errors import UsageError
from syncd.core.events import EVENTS
from syncd.ops.status import replay, state_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--id",
        dest="ids",
        type=int,
        nargs="+",
        action="extend",
        metavar="N",
        help="the dead letters with these ids (as `syncd status` lists them)",
    )
    parser.add_argument("--event", metavar="NAME", help="the dead letters of this Cobot event")
    parser.add_argument("--all", action="store_true", help="every dead letter")


def run(args: argparse.Namespace) -> int:
    """Move the selected dead letters back to the queue and say how many moved."""
    if args.all == bool(args.ids or args.event):
        raise UsageError("choose the dead letters to replay: --all, or --id N and/or --event NAME")
    if args.event is not None and args.event not in EVENTS:
        raise UsageError(
            f"unknown event {args.event!r}: use a Cobot event name as `syncd status` shows"
        )
    settings = state_settings(args.config)
    count = asyncio.run(replay(settings, args.ids or None, args.event))
    if count:
        print(
            f"Replayed {count} dead-lettered event(s); the running daemon processes them within "
            "seconds (check with `syncd status`)."
        )
    else:
        print("No dead-lettered event matched; nothing was replayed.")
    return 0


COMMAND = Command(
    "replay",
    "Move dead-lettered events back to the queue; the running daemon retries them.",
    add_arguments,
    run,
)
