"""``syncd status``: the daemon's inbox, dead letters, last writes and checks, read-only."""

from __future__ import annotations

import argparse
import asyncio
import json

from syncd.commands.command import Command, add_config_option
from syncd.ops.status import read_status, render_status, state_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object, for scripts")


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 0 whenever it could be read, dead letters or not.

    Status reports, it does not alert: /healthz and the ``syncd_inbox_dead_letters`` metric
    do that, and scripts read ``inbox.dead`` from ``--json``.
    """
    settings = state_settings(args.config)
    status = asyncio.run(read_status(settings))
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print("\n".join(render_status(status, settings.timezone)))
    return 0


COMMAND = Command(
    "status",
    "Show the inbox, dead letters, last writes and checks; read-only, safe while running.",
    add_arguments,
    run,
)
