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

Stage = Literal["fetch", "map", "write", "flush"]
#: What a failed fetch holds up, as a pause names it (a failed write: its worksheet's title).
COBOT = "Cobot"
#: Longest text of an unforeseen exception kept as an event's error.
UNEXPECTED_CHARS = 300


@dataclass
class UrlWork:
    """Everything one flush knows about one resource URL."""

    ref: ResourceRef
    events: list[InboxEvent]
    sheets: list[SheetSettings]
    #: The subdomain of the space the resource belongs to (whose subscription delivered it).
    space: str = ""
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


class UnexpectedError(SyncdError):
    """An exception no stage foresaw (a bug, data no rule covers), around the events it held up.

    Treated like a refusal: the events it concerns spend their attempts and are then
    dead-lettered, so one such event can never hold the queue up for good.
    """

    action = Action.DEAD_LETTER

    def __init__(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        super().__init__(f"unexpected {type(exc).__name__}: {text[:UNEXPECTED_CHARS]}".rstrip(": "))


@dataclass(frozen=True)
class Failure:
    """The events one failed fetch or worksheet write held up, and the error that did it."""

    stage: Stage
    error: SyncdError
    events: list[InboxEvent]
    #: What failed, as a pause names it: Cobot for a fetch, the worksheet for a write.
    where: str = COBOT

    @property
    def message(self) -> str:
        return str(self.error)


def failure_action(event: InboxEvent, error: SyncdError, max_attempts: int) -> Action:
    """What becomes of one event whose work failed with ``error``.

    A temporary failure is retried for as long as it lasts and never dead-letters: an outage
    of Google or Cobot only delays events. A pause holds the events without spending an
    attempt. A failure tied to the event itself is retried like a temporary one until its
    ``max_attempts``-th attempt, which dead-letters it.
    """
    if error.action is Action.DEAD_LETTER and event.attempts + 1 < max_attempts:
        return Action.RETRY
    return error.action
