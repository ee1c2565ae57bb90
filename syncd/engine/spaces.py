"""The Cobot side of a flush, for every space the daemon serves.

Each space has its own client (its host, its token; clients of spaces that share a token share
one request budget) and its own member join. A webhook is attributed to the space whose
subscription delivered it, and its resource is fetched only from that space, so a token is
never sent to another space's host.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from syncd.cobot.client import CobotClient
from syncd.cobot.fetching import FetchResult, fetch_many, plan_fetches
from syncd.config.settings import SheetSettings
from syncd.core.budget import RequestBudget
from syncd.engine.localcopy import MemberJoin, Subject
from syncd.engine.work import COBOT, UrlWork
from syncd.mapping.computed import RowContext
from syncd.store.database import Store


class Spaces:
    """Each space's Cobot client and member join, by subdomain, in config order."""

    def __init__(
        self, clients: Mapping[str, CobotClient], store: Store, *, concurrency: int
    ) -> None:
        if not clients:
            raise ValueError("at least one space is needed")
        self.clients = dict(clients)
        self.concurrency = concurrency
        self.joins = {
            name: MemberJoin(store, client, space=name, concurrency=concurrency)
            for name, client in self.clients.items()
        }

    def space_of(self, delivered_for: str) -> str:
        """The space an event belongs to; events stored before spaces were recorded belong to
        the first (then only) space."""
        return delivered_for if delivered_for in self.clients else next(iter(self.clients))

    def scope(self, space: str) -> str:
        """What a failed fetch holds up, as a pause names it: Cobot, or one space's Cobot
        (a token revoked in one space holds up that space only)."""
        return COBOT if len(self.clients) == 1 else f"{COBOT} ({space})"

    def budgets(self) -> list[RequestBudget]:
        """Every distinct Cobot request budget (spaces sharing a token share one)."""
        unique: dict[int, RequestBudget] = {}
        for client in self.clients.values():
            budget = client.request_budget()
            unique.setdefault(id(budget), budget)
        return list(unique.values())

    def singles(self, works: Iterable[UrlWork]) -> set[str]:
        """URLs of ``works`` that would be fetched one request each (not from a listing)."""
        found: set[str] = set()
        for space, group in _by_space(works).items():
            plan = plan_fetches(self.clients[space], [work.ref for work in group])
            found.update(ref.url for ref in plan.singles)
        return found

    async def fetch(self, works: Sequence[UrlWork]) -> dict[str, FetchResult]:
        """Each work's resource by URL, fetched from its own space, all spaces at once."""
        groups = _by_space(works)
        answers = await asyncio.gather(
            *(
                fetch_many(
                    self.clients[space], [w.ref for w in group], concurrency=self.concurrency
                )
                for space, group in groups.items()
            )
        )
        return {url: result for answer in answers for url, result in answer.items()}

    async def contexts(
        self, sheets: Sequence[SheetSettings], subjects: Mapping[str, tuple[str, Subject]]
    ) -> dict[str, RowContext]:
        """Each URL's context (its space, and its member where a worksheet joins it)."""
        by_space: dict[str, dict[str, Subject]] = defaultdict(dict)
        for url, (space, subject) in subjects.items():
            by_space[space][url] = subject
        contexts: dict[str, RowContext] = {}
        for space, group in by_space.items():
            contexts.update(await self.joins[space].contexts(sheets, group))
        return contexts


def _by_space(works: Iterable[UrlWork]) -> dict[str, list[UrlWork]]:
    groups: dict[str, list[UrlWork]] = defaultdict(list)
    for work in works:
        groups[work.space].append(work)
    return groups
