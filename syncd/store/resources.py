"""The local copy: the last Cobot state of every synced resource.

Kept so that what a row shows can be computed again without Cobot: a column added to the
config, a changed template or ``where:`` is re-rendered at start from here, and a row's
``member`` (the membership it belongs to) is joined from here instead of costing a request per
row. Like a row, a copy never goes back in time: an observation older than the one kept is
ignored, and a deletion keeps the last body known (what the deletion's row shows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncd.store.connection import Connection, json_param, write_transaction

#: Upserts a JSON array of [url, kind, ident, space, member_id, body, observed_at, deleted_at]:
#: only a newer (or equally new) observation replaces the one kept, and one without a body (a
#: deletion that embeds nothing, a 404) keeps the body and member last known.
_KEEP = """
    INSERT INTO resources (url, kind, ident, space, member_id, body, observed_at, deleted_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), json_extract(value, '$[3]'),
        json_extract(value, '$[4]'), json_extract(value, '$[5]'),
        json_extract(value, '$[6]'), json_extract(value, '$[7]')
    FROM json_each(?1) WHERE true
    ON CONFLICT (url) DO UPDATE SET
        member_id = coalesce(excluded.member_id, resources.member_id),
        body = coalesce(excluded.body, resources.body),
        observed_at = excluded.observed_at,
        deleted_at = CASE WHEN excluded.deleted_at IS NULL THEN NULL
            ELSE coalesce(resources.deleted_at, excluded.deleted_at) END
    WHERE excluded.observed_at >= resources.observed_at
"""
_COLUMNS = "url, kind, ident, space, member_id, body, observed_at, deleted_at"


@dataclass(frozen=True)
class Kept:
    """One resource as last observed at Cobot."""

    url: str
    kind: str
    ident: str
    #: The resource's JSON, or None when it was only ever seen gone.
    body: dict[str, Any] | None
    observed_at: float
    #: The deletion stamp once a deletion was observed, else None.
    deleted_at: str | None = None
    #: The id of the membership the resource belongs to, when it has one.
    member_id: str | None = None
    space: str = ""

    def row(self) -> list[Any]:
        body = None if self.body is None else json.dumps(self.body, separators=(",", ":"))
        return [
            self.url,
            self.kind,
            self.ident,
            self.space,
            self.member_id,
            body,
            self.observed_at,
            self.deleted_at,
        ]


def _kept(row: tuple[Any, ...]) -> Kept:
    url, kind, ident, space, member_id, body, observed_at, deleted_at = row
    return Kept(
        url,
        kind,
        ident,
        None if body is None else json.loads(body),
        observed_at,
        deleted_at,
        member_id,
        space,
    )


class Resources(Connection):
    """Reading and keeping the local copy."""

    async def keep(self, copies: Iterable[Kept]) -> None:
        """Keep these observations, each only if it is not older than the one kept."""
        rows = [copy.row() for copy in copies]
        if rows:
            await self._call(self._keep, json_param(rows))

    def _keep(self, rows_param: str) -> None:
        with write_transaction(self._conn) as conn:
            conn.execute(_KEEP, (rows_param,))

    async def kept(self, urls: Iterable[str]) -> dict[str, Kept]:
        """The copies of these URLs (URLs never kept are left out)."""
        return await self._call(
            self._select_kept,
            "url IN (SELECT value FROM json_each(?))",
            (json.dumps(list(urls)),),
        )

    async def kept_urls(self, kind: str) -> dict[str, tuple[str, bool]]:
        """URL -> (space, whether a body is kept) of every copy of one kind: what a caller
        needs to choose copies before reading their bodies, a chunk at a time."""
        return await self._call(self._select_urls, kind)

    def _select_urls(self, kind: str) -> dict[str, tuple[str, bool]]:
        rows = self._conn.execute(
            "SELECT url, space, body IS NOT NULL FROM resources WHERE kind = ?", (kind,)
        )
        return {url: (space, bool(has_body)) for url, space, has_body in rows}

    async def memberships(self, idents: Iterable[str], space: str = "") -> dict[str, Kept]:
        """The kept memberships with these ids, by id (a membership seen gone included)."""
        copies = await self._call(
            self._select_kept,
            "kind = 'membership' AND space = ? AND ident IN (SELECT value FROM json_each(?))",
            (space, json.dumps(sorted(set(idents)))),
        )
        return {copy.ident: copy for copy in copies.values()}

    async def kept_of_members(
        self, kind: str, space: str, member_ids: Iterable[str]
    ) -> dict[str, Kept]:
        """The kept resources of one kind that belong to these memberships of one space."""
        return await self._call(
            self._select_kept,
            "kind = ? AND space = ? AND member_id IN (SELECT value FROM json_each(?))",
            (kind, space, json.dumps(sorted(set(member_ids)))),
        )

    async def adopt_unattributed(self, space: str) -> None:
        """Give copies kept before spaces were recorded (space "") to ``space``, the space a
        daemon of one space served then."""
        await self._call(self._adopt, space)

    def _adopt(self, space: str) -> None:
        with write_transaction(self._conn) as conn:
            conn.execute("UPDATE resources SET space = ? WHERE space = ''", (space,))

    def _select_kept(self, condition: str, params: tuple[Any, ...]) -> dict[str, Kept]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM resources WHERE {condition}", params)
        return {row[0]: _kept(row) for row in rows}
