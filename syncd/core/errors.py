"""Exceptions that carry what the user needs to know and how the CLI should exit.

Every failure a user can cause ends as one of these, so the CLI can print a clear line and
exit with the contract's code instead of a traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


class Action(enum.Enum):
    """What the pipeline does with work an error held up: the error decides, not its text."""

    #: Temporary (a timeout, a 5xx, a quota): try again later, with backoff.
    RETRY = "retry"
    #: Needs a person (a revoked token, a spreadsheet not shared): hold the work, report why,
    #: spend no attempts, and resume by itself once the cause is fixed.
    PAUSE = "pause"
    #: Permanent for this one event (its data is refused): retrying cannot help it.
    DEAD_LETTER = "dead-letter"


class SyncdError(Exception):
    """Base of every error the CLI reports as a message rather than a traceback."""

    exit_code = 1
    #: What the worker does with the events this error held up.
    action: ClassVar[Action] = Action.RETRY

    def lines(self) -> list[str]:
        """The message as the lines the CLI prints (one problem per line)."""
        return [str(self)]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in the config file, located by its dotted key path."""

    key: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.key}" if self.key else source
        return f"{where}: {self.message}"


class ConfigError(SyncdError):
    """All the problems of one config file at once, so a user fixes them in one pass."""

    exit_code = 2

    def __init__(self, source: str, problems: Iterable[ConfigProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [problem.render(self.source) for problem in self.problems]


class UsageError(SyncdError):
    """The command line itself was wrong."""

    exit_code = 2


class CobotError(SyncdError):
    """Cobot answered in a way that retrying will not fix (bad token, missing scope...)."""


class SheetsError(SyncdError):
    """Google Sheets refused in a way that retrying will not fix (not shared, bad key...)."""


class StateStoreError(SyncdError):
    """The state database cannot be used (corrupt, from a newer version, unwritable)."""
