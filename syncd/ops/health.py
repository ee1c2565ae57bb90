"""``/healthz`` and ``/metrics``: whether data is flowing, without exposing any of it.

Both endpoints report counts, ages and error summaries only: no row data, no URLs, no
secrets. /healthz answers 503 when work is held for a person (``paused``, with the reason) or
when events are waiting and nothing has been written for longer than
``health.stuck_after_seconds`` (``stuck``), so a supervisor or uptime check can alert on it.
Dead-lettered events, which need a person too but hold nothing else up, are counted on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from syncd.config.settings import HealthSettings
from syncd.core.metrics import Metrics
from syncd.store.database import Store
from syncd.store.meta import Pause

#: The last error is a hint for the operator, not a log: kept short in every answer.
LAST_ERROR_CHARS = 300


@dataclass
class FlowState:
    """What the worker last did, as the health check sees it."""

    last_write_at: Callable[[], float | None]
    last_error: Callable[[], str | None]
    #: What is held for a person, by what it holds up (Cobot or a worksheet title).
    pauses: Callable[[], Mapping[str, Pause]]
    started_at: float


def add_health_routes(
    app: web.Application, settings: HealthSettings, store: Store, metrics: Metrics, flow: FlowState
) -> None:
    async def healthz(request: web.Request) -> web.Response:
        stats = await store.stats()
        now = time.time()
        oldest_age = None if stats.oldest_pending_at is None else now - stats.oldest_pending_at
        last_write = flow.last_write_at()
        since_progress = now - (last_write if last_write is not None else flow.started_at)
        stuck = (
            oldest_age is not None
            and oldest_age > settings.stuck_after_seconds
            and since_progress > settings.stuck_after_seconds
        )
        pauses = flow.pauses()
        status = "paused" if pauses else "stuck" if stuck else "ok"
        body = {
            "status": status,
            "paused": {
                where: {
                    "since_seconds": round(now - p.since, 1),
                    "reason": p.reason[:LAST_ERROR_CHARS],
                }
                for where, p in pauses.items()
            },
            "inbox": {
                "pending": stats.pending,
                "due": stats.due,
                "dead": stats.dead,
                "oldest_pending_age_seconds": None if oldest_age is None else round(oldest_age, 1),
            },
            "last_write_age_seconds": None if last_write is None else round(now - last_write, 1),
            "last_error": (flow.last_error() or "")[:LAST_ERROR_CHARS] or None,
        }
        return web.json_response(body, status=200 if status == "ok" else 503)

    async def metrics_endpoint(request: web.Request) -> web.Response:
        stats = await store.stats()
        metrics.inbox_pending.set(stats.pending)
        metrics.inbox_dead.set(stats.dead)
        metrics.paused.set(len(flow.pauses()))
        oldest = stats.oldest_pending_at
        metrics.oldest_pending_age.set(0 if oldest is None else time.time() - oldest)
        return web.Response(
            text=metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
