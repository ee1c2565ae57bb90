"""What every endpoint of the simulated Cobot shares: its route spec and its answers.

Handlers raise ApiError; the server's gate renders it in the shape the endpoint's API uses
(v1 answers `{"errors": "..."}`, API 2 a JSON:API error list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

API2_CONTENT_TYPE = "application/vnd.api+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The OAuth app behind an authenticated request, set by the server's gate.
CALLER_APP = web.RequestKey("caller_app", str)


@dataclass(frozen=True)
class Route:
    """One endpoint: the OAuth scope it needs and how Cobot's limits and faults apply to it.

    `faultable` endpoints (resource and list reads) suffer the random `error_rate`; `bucket`
    names an extra rate limit on top of the per-token one.
    """

    method: str
    path: str
    handler: Handler
    scope: str
    api2: bool = False
    faultable: bool = False
    bucket: str | None = None


class ApiError(Exception):
    """An error answer; handlers raise it and the endpoint wrapper renders it as JSON."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, *, api2: bool = False, headers: Mapping[str, str] | None = None
) -> web.Response:
    """v1 answers `{"errors": "..."}`; API 2 answers a JSON:API error list."""
    if api2:
        body = {"errors": [{"status": str(status), "detail": message}]}
        return web.json_response(
            body, status=status, headers=headers, content_type=API2_CONTENT_TYPE
        )
    return web.json_response({"errors": message}, status=status, headers=headers)


def json_response(payload: Any, *, status: int = 200, api2: bool = False) -> web.Response:
    content_type = API2_CONTENT_TYPE if api2 else "application/json"
    return web.json_response(payload, status=status, content_type=content_type)
