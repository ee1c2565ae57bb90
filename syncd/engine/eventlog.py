"""The optional event log worksheet: one row per received webhook and what became of it.

It answers the question people ask first ("did Cobot tell us about X, and what happened?")
without access to the server. Rows are written by the flush that handles the events, before
the events are marked done, and keyed by the inbox event id in their own ``Event ID`` column:
a crash in between makes the retry overwrite the same row, never add a second one, and a
later attempt updates the row's outcome (``retrying: ...`` becomes ``written``).

It costs one read and one write per flush, and nothing when ``event_log_sheet`` is unset. Only
event names, canonical Cobot URLs and short error texts reach it, with every configured secret
masked in case an error quoted one. A failed event-log write is logged and never holds back
the events themselves: the log is a view, the data sheets are what must be right.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.core.errors import Action, SyncdError
from syncd.core.redaction import Redactor
from syncd.engine.work import Failure, UrlWork, failure_action
from syncd.mapping.cells import Row, map_row
from syncd.sheets.writer import SheetsWriter
from syncd.store.inbox import InboxEvent

log = logging.getLogger("syncd.eventlog")

WRITTEN = "written"
DELETED = "deleted"
NOT_MAPPED = "not mapped"
RETRYING = "retrying"
PAUSED = "paused"
DEAD_LETTERED = "dead-lettered"
#: Longest error text shown after ``retrying:``; `syncd status` has the whole error.
MAX_ERROR_CHARS = 120

KEY_HEADER = "Event ID"
OUTCOME_HEADER = "Outcome"
_COLUMNS = (
    Column("Received at", "received_at", "datetime"),
    Column("Event", "event"),
    Column("URL", "url"),
)


def event_log_worksheet(title: str | None, synced: Sequence[SheetSettings]) -> SheetSettings | None:
    """The event log worksheet as the Sheets writer sees it, keyed by event id; None when off.

    The writer owns one column besides the key, the one data sheets use for ``Deleted``;
    here it holds the outcome. Google matches titles case-insensitively, and writing event
    rows into a data worksheet would add the log's columns and rows to it, so a title of a
    synced worksheet turns the log off with one line.
    """
    if not title:
        return None
    if title.casefold() in {sheet.title.casefold() for sheet in synced}:
        log.error(
            "event_log_sheet %r is also a synced worksheet: give the event log its own title; "
            "the event log is off until then",
            title,
        )
        return None
    return SheetSettings(
        title=title,
        resource="",
        events=(),
        columns=_COLUMNS,
        key_column=KEY_HEADER,
        deleted_column=OUTCOME_HEADER,
        filters={},
    )


def flush_outcomes(
    unmapped: Iterable[InboxEvent],
    ready: Iterable[UrlWork],
    done_ids: Iterable[int],
    failures: Iterable[Failure],
    max_attempts: int,
) -> list[tuple[InboxEvent, str]]:
    """The outcome of every event one flush settled, as the event log shows it.

    ``failures`` are the fetches and writes that failed; events of URLs the flush put off
    (over its fetch budget) are in none of the inputs and get no row yet.
    """
    done = set(done_ids)
    outcomes = [(event, NOT_MAPPED) for event in unmapped]
    for work in ready:
        outcome = DELETED if work.gone else WRITTEN
        outcomes += [(e, outcome) for e in work.events if e.id in done]
    for failure in failures:
        shown = {
            Action.RETRY: f"{RETRYING}: {_short(failure.message)}",
            Action.PAUSE: f"{PAUSED}: {_short(failure.message)}",
            Action.DEAD_LETTER: DEAD_LETTERED,
        }
        outcomes += [
            (e, shown[failure_action(e, failure.error, max_attempts)]) for e in failure.events
        ]
    return outcomes


def _short(error: str) -> str:
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


class EventLog:
    """Writes a flush's outcomes to the event log worksheet, when one is configured."""

    def __init__(
        self,
        sheet: SheetSettings | None,
        sheets: SheetsWriter,
        tz: ZoneInfo,
        max_attempts: int,
        redactor: Redactor,
    ) -> None:
        self.sheet = sheet
        self.sheets = sheets
        self.tz = tz
        self.max_attempts = max_attempts
        self.redactor = redactor

    async def record(
        self,
        unmapped: Iterable[InboxEvent],
        ready: Iterable[UrlWork],
        done_ids: Iterable[int],
        failures: Iterable[Failure],
    ) -> None:
        """Upsert one row per settled event (one read and one write); never raises."""
        if self.sheet is None:
            return
        outcomes = flush_outcomes(unmapped, ready, done_ids, failures, self.max_attempts)
        if not outcomes:
            return
        rows = {str(event.id): self.row(event, outcome) for event, outcome in outcomes}
        try:
            await self.sheets.upsert(self.sheet, rows)
        except SyncdError as exc:
            log.warning(
                "event log %r not updated for %d event(s): %s (the events themselves are "
                "unaffected)",
                self.sheet.title,
                len(rows),
                exc,
            )

    def row(self, event: InboxEvent, outcome: str) -> Row:
        """The cells of one event's row; the received time is a datetime serial."""
        assert self.sheet is not None
        received = datetime.fromtimestamp(event.received_at, UTC).isoformat()
        entry = {"received_at": received, "event": event.event, "url": event.url}
        row = map_row(entry, self.sheet, self.tz)
        row[OUTCOME_HEADER] = self.redactor.redact(outcome)
        return row
