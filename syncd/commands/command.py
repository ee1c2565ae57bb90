"""The shape every ``syncd`` command has, and the options several commands share.

A command module exposes ``COMMAND``: its name, the one-line summary ``--help`` and the README
show, a function adding its options and the function that runs it. A command with sub-actions
(``syncd subscriptions list``) is a ``CommandGroup`` of such commands, so the parser is built
the same way at every level.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.ops.logs import configure_logging

CONFIG_HELP = "the YAML config file (see config.example.yaml)"


@dataclass(frozen=True)
class Command:
    """One runnable command: ``run`` gets the parsed options and returns the exit code."""

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class CommandGroup:
    """A command that only names one of its ``actions``, each a command of its own."""

    name: str
    summary: str
    actions: tuple[Command, ...]
    #: The heading and placeholder of the actions in ``--help``.
    title: str = "actions"
    metavar: str = "ACTION"
    #: The ``--help`` text when it says more than the summary.
    description: str | None = None


def add_config_option(parser: argparse.ArgumentParser, help_text: str = CONFIG_HELP) -> None:
    """``--config FILE`` / ``-c FILE``, which every command that reads a config requires."""
    parser.add_argument("--config", "-c", required=True, type=Path, metavar="FILE", help=help_text)


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``, which override the config's ``logging:``."""
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="overrides logging.level of the config",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="overrides logging.format of the config (json for journald)",
    )


def configured_settings(args: argparse.Namespace) -> Settings:
    """The config of ``--config``, with logging set up as it and the logging options say.

    Logging is set up before any work so that every secret of the config is masked in logs.
    """
    settings = load_settings(args.config)
    configure_logging(
        getattr(args, "log_level", None) or settings.logging.level,
        getattr(args, "log_format", None) or settings.logging.format,
        secrets=settings.secret_values(),
    )
    return settings
