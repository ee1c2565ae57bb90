"""The ``syncd`` parser, built from the explicit, ordered list of every command.

It lives beside the commands rather than in ``syncd.cli`` so that the README generator
(``syncd.commands.docsgen``) can walk the same parser without importing the entry point.
"""

from __future__ import annotations

import argparse

from syncd import __version__
from syncd.commands import (
    backfill,
    check_config,
    demo,
    preview,
    replay,
    run,
    sandbox,
    status,
    subscriptions,
)
from syncd.commands.command import Command, CommandGroup

#: Every command, in the order ``syncd --help`` and the README list them.
COMMANDS: tuple[Command | CommandGroup, ...] = (
    run.COMMAND,
    check_config.COMMAND,
    status.COMMAND,
    replay.COMMAND,
    backfill.COMMAND,
    subscriptions.COMMAND,
    demo.COMMAND,
    preview.COMMAND,
    sandbox.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; a runnable command leaves its ``run`` in ``args.handler``."""
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps Google Sheets in step with Cobot through webhooks.",
    )
    parser.add_argument("--version", action="version", version=f"cobot-syncd {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        _add(commands, command)
    return parser


def _add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Command | CommandGroup,
) -> None:
    """One command's parser; a group's actions under it, each runnable on its own."""
    if isinstance(command, Command):
        parser = commands.add_parser(
            command.name, help=command.summary, description=command.summary
        )
        command.add_arguments(parser)
        parser.set_defaults(handler=command.run)
        return
    parser = commands.add_parser(
        command.name, help=command.summary, description=command.description or command.summary
    )
    actions = parser.add_subparsers(title=command.title, metavar=command.metavar)
    for action in command.actions:
        _add(actions, action)
