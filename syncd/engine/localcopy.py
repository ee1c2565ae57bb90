"""Keeping the local copy of what Cobot showed, and joining each row's member from it.

Every writer of rows (the worker, the re-sync, the re-render at start) keeps what it observed
here and builds each row's ``RowContext`` here, so that a template's ``member`` is the same
whichever of them wrote the row. A member not kept yet is fetched once, on the caller's Cobot
budget, and kept (a 404 is kept too, so a missing member is not asked for again); the
re-render passes no client and asks Cobot nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncd.cobot.client import CobotClient, Fetched
from syncd.cobot.fetching import fetch_many
from syncd.config.settings import SheetSettings
from syncd.intake.resources import ResourceRef
from syncd.mapping.cells import deletion_stamp
from syncd.mapping.computed import RowContext, member_id, uses_member
from syncd.store.database import Store
from syncd.store.resources import Kept

log = logging.getLogger("syncd.localcopy")

MEMBERSHIP = "membership"


def kept_copy(
    ref: ResourceRef,
    body: Mapping[str, Any] | None,
    observed_at: float,
    deleted_at: str | None = None,
    space: str = "",
) -> Kept:
    """What the local copy keeps of one observation of ``ref``."""
    return Kept(
        url=ref.url,
        kind=ref.kind,
        ident=ref.id,
        body=None if body is None else dict(body),
        observed_at=observed_at,
        deleted_at=deleted_at,
        member_id=member_id(ref.kind, body),
        space=space,
    )


def fetched_copy(fetched: Fetched, space: str = "") -> Kept:
    """The copy of a fetch: the body found, or the deletion Cobot's 404 said."""
    observed_at = fetched.observed_at
    stamp = stamp_at(observed_at) if fetched.status == "gone" else None
    return kept_copy(fetched.ref, fetched.data, observed_at, stamp, space)


def stamp_at(observed_at: float) -> str:
    """The Deleted stamp of a deletion observed at ``observed_at`` (epoch seconds)."""
    return deletion_stamp(datetime.fromtimestamp(observed_at, UTC))


@dataclass(frozen=True)
class Subject:
    """A resource a row is built for: its kind and its JSON (None when nothing is known)."""

    kind: str
    body: Mapping[str, Any] | None


class MemberJoin:
    """Builds each row's context: its space and, for worksheets that use it, its member."""

    def __init__(
        self,
        store: Store,
        cobot: CobotClient | None,
        *,
        space: str = "",
        concurrency: int = 4,
        urgent: bool = True,
    ) -> None:
        self.store = store
        self.cobot = cobot
        self.space = space
        self.concurrency = concurrency
        self.urgent = urgent

    async def contexts(
        self, sheets: Sequence[SheetSettings], subjects: Mapping[str, Subject]
    ) -> dict[str, RowContext]:
        """Each URL's context; only kinds some worksheet joins with ``member`` look members up."""
        joined = {s.resource for s in sheets if uses_member(s) and s.resource != MEMBERSHIP}
        wanted = {
            url: ident
            for url, subject in subjects.items()
            if subject.kind in joined
            and (ident := member_id(subject.kind, subject.body)) is not None
        }
        members = await self.members(wanted.values()) if wanted else {}
        plain = RowContext(space=self.space)
        return {
            url: RowContext(member=members.get(wanted[url]), space=self.space)
            if url in wanted
            else plain
            for url in subjects
        }

    async def members(self, idents: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """The memberships with these ids, by id: from the local copy, the rest fetched."""
        wanted = set(idents)
        kept = await self.store.memberships(wanted, self.space)
        missing = sorted(wanted - kept.keys())
        if missing and self.cobot is not None:
            kept.update(await self._fetch(missing))
        elif missing:
            log.info(
                "%d member(s) are not in the local copy yet; their cells stay empty", len(missing)
            )
        return {ident: copy.body for ident, copy in kept.items() if copy.body is not None}

    async def _fetch(self, idents: Sequence[str]) -> dict[str, Kept]:
        """Fetch members the local copy lacks, once each, and keep what Cobot answered."""
        assert self.cobot is not None
        refs = [self.cobot.ref_of(MEMBERSHIP, ident) for ident in idents]
        results = await fetch_many(
            self.cobot, refs, concurrency=self.concurrency, urgent=self.urgent
        )
        copies: dict[str, Kept] = {}
        for ref in refs:
            result = results.get(ref.url)
            if isinstance(result, Fetched):
                copies[ref.id] = fetched_copy(result, self.space)
            elif result is not None:
                log.warning("member %s could not be fetched: %s", ref.url, result)
        await self.store.keep(copies.values())
        return copies
