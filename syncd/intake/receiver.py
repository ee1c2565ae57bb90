"""The webhook endpoint: check a Cobot POST, store it durably, and only then acknowledge it.

Cobot calls ``{webhook.public_url}/{secret}/{event}`` for each subscribed event; the receiver
serves ``{path_prefix}/{secret}/{event}``. When the config lists ``cobot.spaces``, each space
has its own callbacks, ``{path_prefix}/{secret}/{subdomain}/{event}``, so every webhook is
attributed to the space whose subscription delivered it, and its ``url`` must name that
space's host (a URL of another space on this callback is refused, never stored or fetched).
Every request is untrusted until its secret matches, and its body stays untrusted after that:
it is parsed strictly, its ``url`` must name a resource on the space's Cobot host, and nothing
is ever fetched here. A 2xx answer means the event is committed to the inbox; when it cannot
be stored the answer is 503, so Cobot retries. Checks run in this order, and each outcome is
counted and logged once:

=====================================  ======  ===================
check                                  status  rejected{reason}
=====================================  ======  ===================
secret wrong or missing                404     bad_secret
subdomain not a configured space       404     unknown_space
event not configured for the space     410     gone_event
method other than POST                 405     method
body larger than 64 KiB                413     too_large
body not sent within the read timeout  408     timeout
body not a strict JSON object + url    400     bad_body
url not a resource of the space        422     bad_url
store cannot commit                    503     store_unavailable
stored                                 202     (received{event})
=====================================  ======  ===================

Logs never contain the secret, the callback path or more than 200 characters of a URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from syncd.config.settings import CobotSettings, SheetSettings, WebhookSettings
from syncd.core.events import EVENTS
from syncd.core.metrics import Metrics
from syncd.intake.resources import InvalidResourceURL, ResourceRef, parse_resource_url
from syncd.mapping.rows import sheets_for
from syncd.store.connection import StoreUnavailable
from syncd.store.database import Store

log = logging.getLogger("syncd.receiver")

MAX_BODY_BYTES = 64 * 1024
#: Cobot's bodies nest three levels at most; anything far deeper is not from Cobot.
MAX_JSON_DEPTH = 32
#: Digits of the largest integer accepted (keeps every number within 64 bits).
MAX_INT_DIGITS = 18
#: A sender gets this long to deliver its body once the headers arrived.
BODY_READ_TIMEOUT = 10.0
RETRY_AFTER_SECONDS = 60
#: Longest excerpt of a refused URL that is logged.
LOGGED_URL_CHARS = 200
ROUTE_NAME = "cobot-webhook"


class Rejected(Exception):
    """A request refused before anything was stored; carries the answer and the log line."""

    def __init__(self, status: int, reason: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.detail = detail or message


def build_receiver_app(
    webhook: WebhookSettings,
    cobot: CobotSettings,
    sheets: Sequence[SheetSettings],
    store: Store,
    metrics: Metrics,
    on_stored: Callable[[], None],
) -> web.Application:
    """A stand-alone application serving only the webhook route."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    add_webhook_routes(app, webhook, cobot, sheets, store, metrics, on_stored)
    return app


def add_webhook_routes(
    app: web.Application,
    webhook: WebhookSettings,
    cobot: CobotSettings,
    sheets: Sequence[SheetSettings],
    store: Store,
    metrics: Metrics,
    on_stored: Callable[[], None],
) -> None:
    """Mount the webhook route on ``app`` (which may also serve /healthz and /metrics).

    The route takes every method so that the secret is checked before anything else: a
    wrong secret, like an unknown space, answers exactly like an unknown path. Bodies are read
    with their own bound, so the app's ``client_max_size`` need not be lowered for the other
    routes. ``cobot`` is the whole section: its ``spaces``, and whether the file listed them.
    """
    spaces = {space.subdomain: space for space in cobot.spaces}
    receiver = _Receiver(
        spaces=spaces,
        unnamed_space="" if cobot.listed else cobot.spaces[0].subdomain,
        sheets=tuple(sheets),
        store=store,
        metrics=metrics,
        on_stored=on_stored,
        events={
            name: frozenset(e for sheet in sheets if sheet.holds(name) for e in sheet.events)
            for name in spaces
        },
        secret_digests=tuple(
            _digest(secret.reveal()) for secret in (webhook.secret, *webhook.previous_secrets)
        ),
    )
    space = "{space}/" if cobot.listed else ""
    path = f"{webhook.path_prefix}/{{secret}}/{space}{{event}}"
    app.router.add_route("*", path, receiver.handle, name=ROUTE_NAME)


@dataclass(frozen=True)
class _Receiver:
    #: Each space by subdomain: the Cobot origins a resource URL on its callbacks must name.
    spaces: Mapping[str, CobotSettings]
    #: The space of callbacks that name none (the single form); "" when every one names one.
    unnamed_space: str
    sheets: tuple[SheetSettings, ...]
    store: Store
    metrics: Metrics
    on_stored: Callable[[], None]
    #: By subdomain, every event some worksheet holding that space takes: the subscribed ones.
    events: Mapping[str, frozenset[str]]
    #: SHA-256 of every accepted secret: comparing fixed-length digests leaks no length.
    secret_digests: tuple[bytes, ...]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        event = request.match_info["event"]
        named = self.spaces.get(request.match_info.get("space", self.unnamed_space))
        try:
            space, ref, body = await self._admit(request, event, named)
        except Rejected as rejection:
            return self._refuse(rejection, event, named)
        try:
            event_id = await self.store.enqueue(
                event, ref.url, ref.kind, body, space=space.subdomain
            )
        except StoreUnavailable as exc:
            return self._unavailable(event, ref, space, exc)
        self.metrics.webhooks_received.inc(event=event)
        mapped = bool(sheets_for(self.sheets, event, ref.kind, space.subdomain))
        log.info(
            "webhook %s %s %s%s stored as event %d%s",
            event,
            ref.kind,
            ref.id,
            self._at(space),
            event_id,
            "" if mapped else " (no configured sheet takes this kind for this event)",
        )
        self._wake_worker()
        # The same JSON as json_response would send, without a json.dumps per webhook.
        accepted = f'{{"status": "accepted", "id": {event_id:d}}}'
        return web.Response(text=accepted, status=202, content_type="application/json")

    async def _admit(
        self, request: web.Request, event: str, space: CobotSettings | None
    ) -> tuple[CobotSettings, ResourceRef, dict[str, Any]]:
        """Run every check in order; raise Rejected at the first that fails."""
        if not self._secret_matches(request.match_info["secret"]):
            raise Rejected(404, "bad_secret", "not found", "unknown secret")
        if space is None:
            raise Rejected(404, "unknown_space", "not found", "unknown space")
        if event not in self.events[space.subdomain]:
            raise Rejected(
                410, "gone_event", "this event is not subscribed", "event is not configured"
            )
        if request.method != "POST":
            raise Rejected(405, "method", "only POST is accepted")
        body = parse_body(await read_body(request))
        try:
            # Only this space's origins: a webhook is about the space that delivered it.
            ref = parse_resource_url(body["url"], space)
        except InvalidResourceURL as exc:
            excerpt = body["url"][:LOGGED_URL_CHARS]
            raise Rejected(422, "bad_url", str(exc), f"{exc}: {excerpt!r}") from None
        return space, ref, body

    def _secret_matches(self, given: str) -> bool:
        digest = _digest(given)
        matched = False
        for known in self.secret_digests:
            # No short-circuit: every known secret is compared on every request.
            matched |= hmac.compare_digest(digest, known)
        return matched

    def _refuse(
        self, rejection: Rejected, event: str, space: CobotSettings | None
    ) -> web.StreamResponse:
        self.metrics.webhooks_rejected.inc(reason=rejection.reason)
        # Only a name from Cobot's event list, and a configured space, are logged: the path
        # segments are sender text (one may even be the secret, pasted into the wrong place).
        secret_known = rejection.reason != "bad_secret"
        shown = event if event in EVENTS and secret_known else "-"
        log.warning(
            "webhook %s%s refused with %d (%s): %s",
            shown,
            self._at(space) if secret_known else "",
            rejection.status,
            rejection.reason,
            rejection.detail,
        )
        if rejection.status == 404:
            # Exactly what the router answers for any unknown path.
            raise web.HTTPNotFound()
        headers = {"Allow": "POST"} if rejection.status == 405 else None
        return web.json_response(
            {"error": rejection.message}, status=rejection.status, headers=headers
        )

    def _unavailable(
        self, event: str, ref: ResourceRef, space: CobotSettings, exc: StoreUnavailable
    ) -> web.StreamResponse:
        """503 with Retry-After: Cobot then delivers the event again later."""
        self.metrics.webhooks_rejected.inc(reason="store_unavailable")
        log.error(
            "webhook %s %s %s%s not stored, answered 503 so Cobot retries: %s",
            event,
            ref.kind,
            ref.id,
            self._at(space),
            exc,
        )
        return web.json_response(
            {"error": "temporarily unable to store the event"},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def _at(self, space: CobotSettings | None) -> str:
        """`` at <subdomain>`` for log lines when several spaces share the receiver."""
        return f" at {space.subdomain}" if space is not None and len(self.spaces) > 1 else ""

    def _wake_worker(self) -> None:
        """Nudge the worker; the event is committed already, so a failure here only logs."""
        try:
            self.on_stored()
        except Exception:
            log.exception("waking the worker failed; the stored event waits for its next poll")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


async def read_body(request: BaseRequest) -> bytes:
    """The request body, refusing more than MAX_BODY_BYTES however the sender frames it.

    Content-Length is checked up front; the read itself is bounded too, so a lying or chunked
    sender cannot make the daemon buffer more, and it is timed so a trickling one cannot hold
    the handler open.
    """
    too_large = Rejected(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        if request.content.is_eof():
            # The whole body came with the headers, as a webhook's usually does: nothing can
            # wait, so neither a timer nor an await (both cost every request noticeably).
            body = request.content.read_nowait(MAX_BODY_BYTES + 1)
        else:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                body = await _read_bounded(request.content)
    except TimeoutError:
        raise Rejected(408, "timeout", "body not received in time") from None
    except (ConnectionError, web.RequestPayloadError) as exc:
        # The sender hung up or broke its chunked framing; no one may be left to answer.
        raise _bad_body(f"body ended early ({exc})") from None
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    return body


async def _read_bounded(content: StreamReader) -> bytes:
    """At most MAX_BODY_BYTES + 1 bytes: enough to tell that a body is too large."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES and (chunk := await content.read(MAX_BODY_BYTES + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse a webhook body strictly: UTF-8 JSON object with a string ``url``, no duplicate
    keys, no NaN/Infinity, no huge numbers, no lone surrogates, bounded nesting."""
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError:
        raise _bad_body("body is not UTF-8") from None
    except RecursionError:
        raise _bad_body("body nests too deeply") from None
    except ValueError as exc:
        raise _bad_body(f"body is not strict JSON ({_first_line(exc)})") from None
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise _bad_body("body must be a JSON object with a string url")
    _check_tree(value)
    return value


def _bad_body(message: str) -> Rejected:
    return Rejected(400, "bad_body", message)


def _first_line(exc: ValueError) -> str:
    return str(exc).splitlines()[0][:100]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("number too large")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _check_tree(root: dict[str, Any]) -> None:
    """Refuse deep nesting and strings that are not valid Unicode (lone surrogates)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _bad_body("body nests too deeply")
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        for item in items:
            if isinstance(item, str):
                _check_text(item)
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_body("body contains a lone surrogate") from None


# -- server settings --------------------------------------------------------------------


class RedactedAccessLogger(AbstractAccessLogger):
    """An access log that shows the route template instead of the path.

    The callback path carries the webhook secret, so it must never reach a log; unmatched
    paths are not shown either (one might be a mistyped secret).
    """

    @property
    def enabled(self) -> bool:
        """aiohttp skips the access log (and its per-request work) when this is False."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.3fs',
            request.remote,
            request.method,
            _route_template(request),
            response.status,
            time,
        )


def _route_template(request: BaseRequest) -> str:
    """The matched route's template, e.g. ``/cobot/{secret}/{event}``.

    Read without the ``match_info`` property, which asserts on requests that aiohttp
    answered itself before routing (malformed HTTP).
    """
    match_info = getattr(request, "_match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "(no route)"


def web_server_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` serving the receiver.

    aiohttp serves every connection on the event loop, so a slow client costs a socket, not
    a worker; these bound how long each one may hold it: ``keepalive_timeout`` also closes
    a connection that has not finished its request headers in time (slow-loris), the body
    has BODY_READ_TIMEOUT, and an unwanted oversized upload is drained for
    ``lingering_time`` at most. Compressed bodies are not inflated (Cobot sends plain
    JSON). ``shutdown_timeout`` lets in-flight webhooks finish their commit on stop.
    """
    return {
        "access_log_class": RedactedAccessLogger,
        "keepalive_timeout": 15.0,
        "lingering_time": 2.0,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 64,
        "auto_decompress": False,
        "shutdown_timeout": 10.0,
    }


def web_site_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``web.TCPSite``: a deep accept queue absorbs webhook bursts."""
    return {"backlog": 1024}
