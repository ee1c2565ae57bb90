"""Rows that show a member, rendered again when that member changes.

An invoice or booking row may show its member (a ``member.*`` template). No webhook comes for
the invoice when its member is renamed, so the worker, having kept the member's new state,
renders the rows of that member's other resources again from the local copy, in the same
flush: no Cobot request, and only rows whose cells changed are written, in the flush's own
request. They are decided under the worksheet's lock like every row (the ordering rule of
mapping/rows.py), so a newer observation another writer saved meanwhile is never overwritten.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from syncd.config.settings import SheetSettings
from syncd.engine.localcopy import MEMBERSHIP, Subject
from syncd.engine.rowplan import SheetBatch
from syncd.engine.spaces import Spaces
from syncd.engine.work import UrlWork
from syncd.mapping.computed import RowContext, uses_member
from syncd.mapping.rows import Observation, Outcome
from syncd.store.database import Store
from syncd.store.resources import Kept

log = logging.getLogger("syncd.worker")


@dataclass(frozen=True)
class MemberRow:
    """One resource whose row shows a member this flush saw change."""

    copy: Kept
    context: RowContext


def shows_members(sheet: SheetSettings) -> bool:
    """Whether the worksheet's rows show a member they belong to (not their own)."""
    return uses_member(sheet) and sheet.resource != MEMBERSHIP


async def kept_of_members_in(
    sheets: Sequence[SheetSettings], store: Store, works: Sequence[UrlWork]
) -> dict[str, list[Kept]]:
    """By title of a worksheet showing members, the kept resources (not in this flush) of the
    memberships among ``works``: looked up once, before the fetch, so that their worksheets
    are read ahead with the flush's own (a worksheet with none of them is not read at all)."""
    members: dict[str, set[str]] = defaultdict(set)
    for work in works:
        if work.ref.kind == MEMBERSHIP:
            members[work.space].add(work.ref.id)
    in_flush = {work.ref.url for work in works}
    found: dict[str, list[Kept]] = {}
    for sheet in filter(shows_members, sheets):
        copies = [
            copy
            for space, idents in members.items()
            if sheet.holds(space)
            for copy in (await store.kept_of_members(sheet.resource, space, idents)).values()
            if copy.url not in in_flush and copy.body is not None
        ]
        if copies:
            found[sheet.title] = copies
    return found


async def rows_of_changed_members(
    sheets: Sequence[SheetSettings],
    spaces: Spaces,
    kept: Mapping[str, Sequence[Kept]],
    ready: Iterable[UrlWork],
) -> dict[str, list[MemberRow]]:
    """By worksheet title, the ``kept`` resources of the memberships this flush kept (those in
    ``ready``), with their contexts joined from the local copy as it now holds them."""
    members = {(w.space, w.ref.id) for w in ready if w.ref.kind == MEMBERSHIP}
    found: dict[str, list[MemberRow]] = {}
    for sheet in (s for s in sheets if s.title in kept):
        copies = kept[sheet.title]
        subjects = {
            copy.url: (copy.space, Subject(copy.kind, copy.body))
            for copy in copies
            if (copy.space, copy.member_id) in members
        }
        contexts = await spaces.contexts([sheet], subjects)
        rows = [MemberRow(copy, contexts[copy.url]) for copy in copies if copy.url in subjects]
        if rows:
            found[sheet.title] = rows
    return found


async def decide_member_rows(
    batch: SheetBatch, rows: Sequence[MemberRow], store: Store, tz: ZoneInfo
) -> None:
    """Under the worksheet's lock: add to ``batch`` the rows whose cells the member changed
    (or that now stop or start matching ``where:``).

    Rows that stay the same are left out altogether, so they cost no request."""
    if not rows:
        return
    known = await store.row_states(batch.sheet.title, [row.copy.url for row in rows])
    written = 0
    for row in rows:
        copy = row.copy
        seen = Observation(copy.url, copy.body, copy.observed_at, copy.deleted_at, row.context)
        decided = batch.decide(seen, tz, known.get(copy.url))
        if decided is None or decided.outcome not in (Outcome.WRITE, Outcome.REMOVE):
            batch.forget(copy.url)
        else:
            written += 1
    if written:
        log.info(
            "%s: %d row(s) show a member that changed; written again from the local copy",
            batch.sheet.title,
            written,
        )
