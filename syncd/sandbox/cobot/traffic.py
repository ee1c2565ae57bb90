"""The simulator's record of the API traffic it served, for assertions about the daemon's.

Every request is recorded with the status it got, rejected ones included, so a test can
count what the daemon spent against Cobot's rate limits.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from aiohttp import web

from syncd.sandbox.cobot.endpoints import Handler, error_response


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the server saw it, for assertions about the daemon's traffic."""

    method: str
    path: str
    query: dict[str, str]
    has_auth: bool
    token: str | None
    status: int
    time: float


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class RequestLog:
    """Every request in arrival order, and how many each presented token made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._counts: defaultdict[str, int] = defaultdict(int)

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def counts(self) -> dict[str, int]:
        """Requests per presented bearer token (valid or not), rejected ones included."""
        with self._lock:
            return dict(self._counts)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record each request with its final status; aiohttp's own errors get Cobot's shape."""
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            return error_response(exc.status, exc.reason)
        finally:
            self._record(request, status)

    def _record(self, request: web.Request, status: int) -> None:
        token = bearer_token(request)
        record = RequestRecord(
            request.method,
            request.path,
            dict(request.query),
            "Authorization" in request.headers,
            token,
            status,
            time.time(),
        )
        with self._lock:
            self._requests.append(record)
            if token is not None:
                self._counts[token] += 1
