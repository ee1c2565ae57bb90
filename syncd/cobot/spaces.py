"""One Cobot client per configured space, with one request budget per access token.

Cobot counts requests per user: spaces read with the same token share its 60 a minute (and the
membership listing's own 6), in this process and in every other on the same ``state_dir``
(``syncd backfill`` beside the daemon). So the budgets are keyed by token, each named after the
first space that uses it; the first space's keeps the name a single-space daemon always used.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from syncd.cobot.client import MEMBERSHIP_LISTS_PER_MINUTE, CobotClient
from syncd.config.settings import CobotSettings
from syncd.core.budget import RequestBudget
from syncd.store.budgets import shared_budget


def budget_name(spaces: Sequence[CobotSettings], space: CobotSettings) -> str:
    """The name of the request budget ``space`` draws from: one per distinct token."""
    first = next(s for s in spaces if s.access_token == space.access_token)
    return "cobot" if first is spaces[0] else f"cobot-{first.subdomain}"


@contextlib.asynccontextmanager
async def cobot_clients(
    spaces: Sequence[CobotSettings], state_dir: Path | None = None, **options: Any
) -> AsyncIterator[dict[str, CobotClient]]:
    """Each space's client by subdomain, open for the block; ``options`` go to every client."""
    budgets: dict[str, tuple[RequestBudget, RequestBudget]] = {}
    for space in spaces:
        name = budget_name(spaces, space)
        if name not in budgets:
            budgets[name] = (
                _budget(state_dir, name, space.requests_per_minute),
                _budget(state_dir, f"{name}-memberships", MEMBERSHIP_LISTS_PER_MINUTE),
            )
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for space in spaces:
            general, listing = budgets[budget_name(spaces, space)]
            client = CobotClient(space, general, membership_budget=listing, **options)
            clients[space.subdomain] = await stack.enter_async_context(client)
        yield clients


def _budget(state_dir: Path | None, name: str, per_minute: int) -> RequestBudget:
    return shared_budget(state_dir, name, per_minute) if state_dir else RequestBudget(per_minute)
