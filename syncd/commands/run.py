"""``syncd run``: the daemon in the foreground, as systemd starts it."""

from __future__ import annotations

import argparse
import asyncio

from syncd.commands.command import (
    Command,
    add_config_option,
    add_logging_options,
    configured_settings,
)
from syncd.ops.daemon import run_daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    add_logging_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; errors that stop the daemon surface as a SyncdError."""
    asyncio.run(run_daemon(configured_settings(args)))
    return 0


COMMAND = Command(
    "run", "Run the daemon in the foreground until SIGTERM/SIGINT.", add_arguments, run
)
