"""The parser is built from ``COMMANDS``, one module of ``syncd/commands`` each.

A command module left out of that list would be missing from ``syncd --help`` and from the
README's command table without any other test noticing; these tests catch that, and pin how
a command group without its action and a ``SyncdError`` are answered.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from syncd import cli, commands
from syncd.commands.command import CommandGroup
from syncd.commands.docsgen import cli_commands
from syncd.commands.parser import COMMANDS, build_parser

COMMANDS_DIR = Path(commands.__file__).parent
#: Modules of syncd/commands that are not commands themselves.
NOT_COMMANDS = {"__init__", "command", "docsgen", "parser", "preview_table"}


def subparser(parser: argparse.ArgumentParser, names: list[str]) -> argparse.ArgumentParser:
    """The parser of ``syncd NAME [ACTION]``."""
    for name in names:
        [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[name]
    return parser


def command_modules() -> list[str]:
    names = {path.stem for path in COMMANDS_DIR.glob("*.py")} - NOT_COMMANDS
    return sorted(f"syncd.commands.{name}" for name in names)


@pytest.mark.parametrize("name", command_modules())
def test_every_command_module_is_in_the_parser(name: str) -> None:
    command = importlib.import_module(name).COMMAND
    assert command in COMMANDS


def test_every_command_and_action_is_runnable_from_the_parser() -> None:
    expected = []
    for command in COMMANDS:
        if isinstance(command, CommandGroup):
            expected += [f"{command.name} {action.name}" for action in command.actions]
        else:
            expected.append(command.name)
    parser = build_parser()
    assert [name for name, _ in cli_commands(parser)] == expected
    for name in expected:
        assert callable(subparser(parser, name.split()).get_default("handler")), name


def test_a_group_without_its_action_prints_the_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["subscriptions"]) == 2
    assert capsys.readouterr().err.startswith("usage: syncd ")


def test_a_syncd_error_is_its_lines_on_stderr_and_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.yaml"
    assert cli.main(["status", "--config", str(absent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"syncd: error: {absent}")
    assert "Traceback" not in err
