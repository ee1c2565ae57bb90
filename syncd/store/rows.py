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

from syncd.mapping.cells import Row
from syncd.store.connection import Connection

#: Upserts a JSON array of [sheet, url, fingerprint, deleted_at, observed_at, cells] rows,
#: written at ?1. The cells written are merged into those kept: a row written with only some
#: of its cells (a deletion) still holds the others as last written.
_UPSERT_ROW_STATES = """
    INSERT INTO row_states (sheet, url, fingerprint, deleted_at, written_at, observed_at, cells)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?1,
        json_extract(value, '$[4]'), json_extract(value, '$[5]')
    FROM json_each(?2) WHERE true
    ON CONFLICT (sheet, url) DO UPDATE SET
        fingerprint = excluded.fingerprint,
        deleted_at = excluded.deleted_at,
        written_at = excluded.written_at,
        observed_at = excluded.observed_at,
        cells = json_patch(coalesce(row_states.cells, '{}'), excluded.cells)
"""


@dataclass(frozen=True)
class RowState:
    """What the daemon last wrote for one URL in one worksheet."""

    fingerprint: str | None
    deleted_at: str | None
    #: When the Cobot data (or the deletion) this row holds was observed (epoch seconds).
    observed_at: float | None = None
    #: The cells written, header -> value; kept to refill a column a person deleted without
    #: asking Cobot again. Read only by :meth:`RowStates.written_rows`.
    cells: Row | None = None


RowStatesBySheet = Mapping[str, Mapping[str, RowState]]
NO_ROW_STATES: RowStatesBySheet = MappingProxyType({})


def row_state_rows(row_states: RowStatesBySheet) -> list[tuple[Any, ...]]:
    """The states as rows for :func:`upsert_row_states`."""
    return [
        (sheet, url, state.fingerprint, state.deleted_at, state.observed_at, state.cells)
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
            "SELECT url, fingerprint, deleted_at, observed_at FROM row_states"
            f" WHERE sheet = ?{condition}",
            params,
        )
        return {url: RowState(*state) for url, *state in rows}

    async def written_rows(self, sheet: str) -> dict[str, RowState]:
        """Every row state of a worksheet with the cells last written."""
        return await self._call(self._select_written_rows, sheet)

    def _select_written_rows(self, sheet: str) -> dict[str, RowState]:
        rows = self._conn.execute(
            "SELECT url, fingerprint, deleted_at, observed_at, cells FROM row_states"
            " WHERE sheet = ?",
            (sheet,),
        )
        return {
            url: RowState(fingerprint, deleted_at, observed_at, json.loads(cells or "null"))
            for url, fingerprint, deleted_at, observed_at, cells in rows
        }
