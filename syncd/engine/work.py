"""One flush's unit of work, and what becomes of the events whose work failed.

The worker builds and settles these; the event log only reports them. Both read the same
rule for a failed event, so the log never says "retrying" about an event the worker gave up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncd.cobot.client import Fetched
from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.intake.resources import ResourceRef
from syncd.store.inbox import InboxEvent

Stage = Literal["fetch", "write"]


@dataclass
class UrlWork:
    """Everything one flush knows about one resource URL."""

    ref: ResourceRef
    events: list[InboxEvent]
    sheets: list[SheetSettings]
    #: The newest deletion event among them, if any: it wins over every update.
    deletion: InboxEvent | None = None
    fetched: Fetched | None = None
    error: SyncdError | None = None

    @property
    def ids(self) -> list[int]:
        return [event.id for event in self.events]

    @property
    def gone(self) -> bool:
        """Whether the row is flagged deleted: a deletion event, or Cobot answered 404."""
        return self.deletion is not None or (
            self.fetched is not None and self.fetched.status == "gone"
        )


@dataclass(frozen=True)
class Failure:
    """The events one failed fetch or worksheet write held up, and the error that did it."""

    stage: Stage
    error: SyncdError
    events: list[InboxEvent]

    @property
    def message(self) -> str:
        return str(self.error)


def failure_action(event: InboxEvent, error: SyncdError, max_attempts: int) -> Action:
    """What becomes of one event whose work failed with ``error``.

    The error decides; a retry due on the event's last attempt dead-letters it instead. A
    pause spends no attempt, so an event waiting for a person is never dead-lettered.
    """
    if error.action is Action.RETRY and event.attempts + 1 >= max_attempts:
        return Action.DEAD_LETTER
    return error.action
