"""Row states: what the daemon last wrote for each URL in each worksheet.

The worker and the re-sync engine compare a row's fingerprint with the stored one to write
only rows that changed, and keep a deletion time so a deleted row stays flagged. States are
saved only together with the events they were written for (see Inbox.complete).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from syncd.store.connection import Connection

#: Upserts a JSON array of [sheet, url, fingerprint, deleted_at] rows, written at ?1.
_UPSERT_ROW_STATES = """
    INSERT INTO row_states (sheet, url, fingerprint, deleted_at, written_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?1
    FROM json_each(?2) WHERE true
    ON CONFLICT (sheet, url) DO UPDATE SET
        fingerprint = excluded.fingerprint,
        deleted_at = excluded.deleted_at,
        written_at = excluded.written_at
"""


@dataclass(frozen=True)
class RowState:
    """What the daemon last wrote for one URL in one worksheet."""

    fingerprint: str | None
    deleted_at: str | None


RowStatesBySheet = Mapping[str, Mapping[str, RowState]]
NO_ROW_STATES: RowStatesBySheet = MappingProxyType({})


def row_state_rows(row_states: RowStatesBySheet) -> list[tuple[Any, ...]]:
    """The states as [sheet, url, fingerprint, deleted_at] rows for :func:`upsert_row_states`."""
    return [
        (sheet, url, state.fingerprint, state.deleted_at)
        for sheet, by_url in row_states.items()
        for url, state in by_url.items()
    ]


def upsert_row_states(conn: sqlite3.Connection, rows_param: str, now: float) -> None:
    """Save the rows of a JSON parameter (see row_state_rows) as written at ``now``, in the
    caller's transaction."""
    conn.execute(_UPSERT_ROW_STATES, (now, rows_param))


class RowStates(Connection):
    """Reading the row states of a worksheet."""

    async def row_states(self, sheet: str, urls: Iterable[str]) -> dict[str, RowState]:
        """The known state of the given URLs in one worksheet (unknown URLs are left out)."""
        return await self._call(
            self._select_row_states,
            " AND url IN (SELECT value FROM json_each(?))",
            (sheet, json.dumps(list(urls))),
        )

    async def all_row_states(self, sheet: str) -> dict[str, RowState]:
        return await self._call(self._select_row_states, "", (sheet,))

    def _select_row_states(self, condition: str, params: tuple[Any, ...]) -> dict[str, RowState]:
        rows = self._conn.execute(
            f"SELECT url, fingerprint, deleted_at FROM row_states WHERE sheet = ?{condition}",
            params,
        )
        return {url: RowState(fingerprint, deleted_at) for url, fingerprint, deleted_at in rows}
