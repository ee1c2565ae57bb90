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
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from syncd.config.settings import Column, Settings, SheetSettings
from syncd.core.errors import SyncdError
from syncd.mapping.cells import Row, map_row
from syncd.ops.logs import RedactingFilter
from syncd.sheets.writer import SheetsWriter
from syncd.store.database import InboxEvent

if TYPE_CHECKING:
    from syncd.engine.worker import UrlWork

log = logging.getLogger("syncd.eventlog")

WRITTEN = "written"
DELETED = "deleted"
NOT_MAPPED = "not mapped"
RETRYING = "retrying"
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


def event_log_sheet(title: str) -> SheetSettings:
    """The worksheet as the Sheets writer sees it: keyed by event id.

    The writer owns one column besides the key, the one data sheets use for ``Deleted``;
    here it holds the outcome.
    """
    return SheetSettings(
        title=title,
        resource="",
        events=(),
        columns=_COLUMNS,
        key_column=KEY_HEADER,
        deleted_column=OUTCOME_HEADER,
        filters={},
    )


def _usable_sheet(settings: Settings) -> SheetSettings | None:
    """The event log worksheet, or None when off or when its title is a synced worksheet's.

    Google matches titles case-insensitively, and writing event rows into a data worksheet
    would add the log's columns and rows to it, so that is refused with one line.
    """
    title = settings.event_log_sheet
    if not title:
        return None
    if title.casefold() in {sheet.title.casefold() for sheet in settings.sheets}:
        log.error(
            "event_log_sheet %r is also a synced worksheet: give the event log its own title; "
            "the event log is off until then",
            title,
        )
        return None
    return event_log_sheet(title)


def is_last_attempt(event: InboxEvent, max_attempts: int) -> bool:
    """Whether a failure of this attempt dead-letters the event instead of retrying it."""
    return event.attempts + 1 >= max_attempts


def flush_outcomes(
    unmapped: Iterable[InboxEvent],
    ready: Iterable[UrlWork],
    done_ids: Iterable[int],
    failures: Iterable[tuple[str, Sequence[InboxEvent]]],
    max_attempts: int,
) -> list[tuple[InboxEvent, str]]:
    """The outcome of every event one flush settled, as the event log shows it.

    ``failures`` are (error, events) for fetches and writes that failed; events of URLs the
    flush put off (over its fetch budget) are in none of the inputs and get no row yet.
    """
    done = set(done_ids)
    outcomes = [(event, NOT_MAPPED) for event in unmapped]
    for work in ready:
        gone = work.deletion is not None or (
            work.fetched is not None and work.fetched.status == "gone"
        )
        outcomes += [(e, DELETED if gone else WRITTEN) for e in work.events if e.id in done]
    for error, events in failures:
        retrying = f"{RETRYING}: {_short(error)}"
        outcomes += [
            (e, DEAD_LETTERED if is_last_attempt(e, max_attempts) else retrying) for e in events
        ]
    return outcomes


def _short(error: str) -> str:
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


class EventLog:
    """Writes a flush's outcomes to the event log worksheet, when one is configured."""

    def __init__(self, settings: Settings, sheets: SheetsWriter) -> None:
        self.sheet = _usable_sheet(settings)
        self.sheets = sheets
        self.tz = ZoneInfo(settings.timezone)
        self.max_attempts = settings.sync.max_attempts
        self._redactor = RedactingFilter(settings.secret_values())

    async def record(
        self,
        unmapped: Iterable[InboxEvent],
        ready: Iterable[UrlWork],
        done_ids: Iterable[int],
        failures: Iterable[tuple[str, Sequence[InboxEvent]]],
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
        row[OUTCOME_HEADER] = self._redactor.redact(outcome)
        return row
