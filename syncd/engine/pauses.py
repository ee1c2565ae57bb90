"""What the pipeline holds for a person, from the failure that began it to the success that
ends it.

A pause begins when a fetch or write fails in a way only a person can fix (a revoked token, a
spreadsheet no longer shared) and ends at the first fetch or write of the same thing that
succeeds again. It is kept here for /healthz and in the store for ``syncd status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from syncd.store.database import Store
from syncd.store.meta import Pause

log = logging.getLogger("syncd.worker")


class Pauses:
    """The pauses in force, by what each holds up (Cobot, or a worksheet's title)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.current: dict[str, Pause] = {}

    async def reset(self) -> None:
        """Forget the pauses a previous run left: the cause may have been fixed meanwhile, and
        the held events are due within PAUSE_SECONDS, so a pause still in force is met again
        at once (and a fixed one does not linger on /healthz)."""
        self.current = {}
        await self.store.meta.record_pauses(dict.fromkeys(await self.store.meta.pauses()))

    async def begin(self, where: str, reason: str) -> None:
        known = self.current.get(where)
        if known is not None and known.reason == reason:
            return
        self.current[where] = Pause(known.since if known else self.clock(), reason)
        await self.store.meta.record_pauses({where: self.current[where]})

    async def end(self, succeeded: Iterable[str]) -> None:
        """``succeeded`` worked again: whatever held them up was fixed."""
        over = {where: None for where in succeeded if self.current.pop(where, None) is not None}
        if over:
            log.info("resumed after a pause: %s", ", ".join(over))
            await self.store.meta.record_pauses(over)
