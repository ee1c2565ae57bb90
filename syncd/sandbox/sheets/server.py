"""Google Sheets API v4 emulator, with the OAuth2 token endpoint service accounts use.

The daemon talks to Google through gspread and google-auth, and the tests may never reach
the internet, so this serves the same HTTP API on loopback: real JWT-bearer grants signed
with real RSA keys, bearer tokens that expire, Google's error bodies, quotas, grid limits,
table detection on append and USER_ENTERED parsing. Faults (errors, latency, slow responses,
quota exhaustion) are knobs, so retry and timeout paths can be tested on purpose.

Everything the Sheets API counts and enforces is modelled closely enough that code which
works here should work against Google; where behaviour is simplified the modules say so.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.sandbox.cobot.limits import spread_latency
from syncd.sandbox.sheets import batch_update, values
from syncd.sandbox.sheets.auth import (
    DEFAULT_CLIENT_EMAIL,
    TokenAuthority,
    allowed_locations,
    generate_service_account_key,
)
from syncd.sandbox.sheets.cells import Cell, to_matrix
from syncd.sandbox.sheets.errors import ApiError, OAuthError
from syncd.sandbox.sheets.metadata import spreadsheets_get
from syncd.sandbox.sheets.model import (
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    Spreadsheet,
    Worksheet,
    in_transaction,
)
from syncd.sandbox.sheets.quota import SlidingWindow, injected_fault, quota_error, slow_delay
from syncd.sandbox.sheets.request import Call
from syncd.sheets.a1 import A1Range, quote_title

log = logging.getLogger(__name__)

Handler = Callable[[Call, Mapping[str, str]], dict[str, Any]]
SheetsHandler = Callable[[Spreadsheet, Call, Mapping[str, str]], dict[str, Any]]

_SPREADSHEET = r"/v4/spreadsheets/(?P<sid>[^/:]+)"
_RANGE = r"(?P<range>[^/]+)"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it; ``kind`` is "read", "write" or None (token and
    allowedLocations calls, which Google does not count against Sheets quotas)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    kind: str | None
    #: Seconds the answer was held back after the call was served (a slow response).
    held_seconds: float = 0.0


@dataclass(frozen=True)
class Route:
    """An endpoint; ``kind`` is the quota a call spends ("read"/"write"), None if none."""

    method: str
    pattern: re.Pattern[str]
    kind: str | None
    handler: Handler


class SheetsEmulator:
    """All emulator state plus the aiohttp app that serves it.

    Knobs (constructor arguments, also plain attributes to change at runtime):
    ``read_quota_per_minute`` / ``write_quota_per_minute`` (None = unlimited) over a sliding
    ``quota_window_seconds``; ``error_rate`` picks a status from ``error_statuses`` with a
    RNG seeded by ``seed``; ``latency_seconds`` delays every Sheets call (each by a factor drawn
    from 1 - ``latency_spread`` to 1 + ``latency_spread``); ``slow_rate`` of them
    answer ``slow_seconds`` late (after the change is applied, like a lost response), among
    the calls whose kind ("read", "write") is in ``slow_kinds``; ``token_lifetime_seconds``.
    Tests call the public methods from their own thread while the server runs in another, so
    all state sits behind one lock.
    """

    def __init__(
        self,
        *,
        read_quota_per_minute: int | None = None,
        write_quota_per_minute: int | None = None,
        quota_window_seconds: float = 60.0,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (429, 500, 503),
        latency_seconds: float = 0.0,
        latency_spread: float = 0.0,
        slow_rate: float = 0.0,
        slow_seconds: float = 0.0,
        slow_kinds: frozenset[str] = frozenset({"read", "write"}),
        token_lifetime_seconds: float = 3600,
        seed: int = 0,
    ) -> None:
        self.read_quota_per_minute = read_quota_per_minute
        self.write_quota_per_minute = write_quota_per_minute
        self.quota_window_seconds = quota_window_seconds
        self.error_rate = error_rate
        self.error_statuses = list(error_statuses)
        self.latency_seconds = latency_seconds
        self.latency_spread = latency_spread
        self.slow_rate = slow_rate
        self.slow_seconds = slow_seconds
        self.slow_kinds = slow_kinds
        self.token_lifetime_seconds = token_lifetime_seconds
        self.reads = 0
        self.writes = 0
        self._lock = threading.RLock()
        self._fault_rng = random.Random(seed)
        self._id_rng = random.Random(seed + 1)
        self._spreadsheets: dict[str, Spreadsheet] = {}
        self._tokens = TokenAuthority()
        self._failures: deque[int] = deque()
        self._hooks: list[tuple[str, Callable[[], None]]] = []
        self._outage: int | None = None
        self._refused_text: str | None = None
        self._windows = {"read": SlidingWindow(), "write": SlidingWindow()}
        self._log: list[RequestRecord] = []
        self._routes = self._build_routes()

    # -- setup and inspection (called by tests) ------------------------------------------

    def create_spreadsheet(
        self, spreadsheet_id: str, title: str = "Sandbox", shared_with: set[str] | None = None
    ) -> None:
        """A new spreadsheet with one empty 1000x26 "Sheet1" (sheetId 0), like Google's.
        With ``shared_with`` set, only those service accounts may use it (others get 403)."""
        with self._lock:
            self._spreadsheets[spreadsheet_id] = Spreadsheet(
                spreadsheet_id,
                title,
                None if shared_with is None else set(shared_with),
                sheets=[Worksheet(0, "Sheet1")],
            )

    def add_sheet(
        self, spreadsheet_id: str, title: str, rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLUMNS
    ) -> int:
        """Add a tab directly (no HTTP); returns its sheetId."""
        grid = {"rowCount": rows, "columnCount": cols}
        request = {"addSheet": {"properties": {"title": title, "gridProperties": grid}}}
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            replies = batch_update.apply_requests(ss, [request], self._new_sheet_id)
        return int(replies[0]["addSheet"]["properties"]["sheetId"])

    def set_values(
        self,
        spreadsheet_id: str,
        title: str,
        rows: Sequence[Sequence[Any]],
        start: str = "A1",
        value_input_option: str = "RAW",
    ) -> None:
        """Seed cells directly (no HTTP), with the same parsing and limits as values.update."""
        matrix = to_matrix([list(row) for row in rows], "ROWS", value_input_option)
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            ws, rng = ss.resolve(f"{quote_title(title)}!{start}")
            in_transaction(
                ss, lambda undo: ws.write(rng.start_row or 0, rng.start_col or 0, matrix, undo)
            )

    def values(self, spreadsheet_id: str, title: str) -> list[list[Cell]]:
        """A copy of a tab's stored cells (trimmed; None for empty cells inside the block).
        Formulas come back as ``Formula``, USER_ENTERED dates as ``DateSerial``."""
        with self._lock:
            ws = self._sheet(spreadsheet_id, title)
            return ws.grid.read_rows(0, ws.row_count, 0, ws.col_count)

    def dump(self, spreadsheet_id: str) -> dict[str, list[list[Any]]]:
        """Every tab as FORMATTED_VALUE rows, exactly as a get of the whole tab returns them."""
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            return {
                ws.title: ws.render(ws.bounds(A1Range(ws.title)), "ROWS", "FORMATTED_VALUE", "")
                for ws in ss.sheets
            }

    def cell_formats(self, spreadsheet_id: str, title: str, a1: str) -> list[list[dict[str, Any]]]:
        """The userEnteredFormat of every cell of a range of a tab, row by row ({}: none)."""
        with self._lock:
            ws, rng = self._spreadsheet(spreadsheet_id).resolve(f"{quote_title(title)}!{a1}")
            r0, r1, c0, c1 = ws.bounds(rng).box()
            formats = ws.formats
            return [
                [copy.deepcopy(dict(formats.cell(r, c) or {})) for c in range(c0, c1)]
                for r in range(r0, r1)
            ]

    def clear_formats(self, spreadsheet_id: str, title: str, a1: str | None = None) -> None:
        """Clear the formats of a range (default: the whole tab), as a person's "Clear
        formatting" does; values and conditional-format rules stay."""
        with self._lock:
            ss = self._spreadsheet(spreadsheet_id)
            ws, rng = ss.resolve(quote_title(title) + (f"!{a1}" if a1 else ""))
            top, bottom, left, right = ws.bounds(rng).box()
            span = {"startRowIndex": top, "endRowIndex": bottom}
            span |= {"startColumnIndex": left, "endColumnIndex": right}
            request = {"range": {"sheetId": ws.sheet_id, **span}, "fields": "userEnteredFormat"}
            batch_update.apply_requests(ss, [{"repeatCell": request}], self._new_sheet_id)

    def conditional_formats(self, spreadsheet_id: str, title: str) -> list[dict[str, Any]]:
        """A copy of a tab's conditional-format rules, in order."""
        with self._lock:
            return copy.deepcopy(self._sheet(spreadsheet_id, title).conditional_formats)

    def grid_size(self, spreadsheet_id: str, title: str) -> tuple[int, int]:
        with self._lock:
            ws = self._sheet(spreadsheet_id, title)
            return ws.row_count, ws.col_count

    def sheet_titles(self, spreadsheet_id: str) -> list[str]:
        with self._lock:
            return [ws.title for ws in self._spreadsheet(spreadsheet_id).sheets]

    def register_service_account(
        self,
        key: Mapping[str, str] | rsa.RSAPublicKey,
        client_email: str | None = None,
        key_id: str | None = None,
    ) -> str:
        """Trust a service account: a key-file dict, or a public key plus its e-mail.
        Returns the account's e-mail."""
        with self._lock:
            return self._tokens.register(key, client_email, key_id)

    def create_service_account(
        self, token_uri: str, client_email: str = DEFAULT_CLIENT_EMAIL
    ) -> dict[str, str]:
        """Generate a key file pointing at ``token_uri`` and register it."""
        key_info = generate_service_account_key(token_uri, client_email)
        self.register_service_account(key_info)
        return key_info

    def expire_tokens(self) -> None:
        """Make every issued access token stale (the next API call gets a 401)."""
        with self._lock:
            self._tokens.expire_all()

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` authenticated Sheets calls with ``status``."""
        with self._lock:
            self._failures.extend([status] * n)

    def set_outage(self, status: int | None) -> None:
        """Answer every authenticated Sheets call with ``status`` until called with None."""
        with self._lock:
            self._outage = status

    def refuse_writes_containing(self, text: str | None) -> None:
        """Refuse as invalid (400) every write whose request holds ``text``, as Google refuses
        a write for one value it will not take, until called with None."""
        with self._lock:
            self._refused_text = text

    def share(self, spreadsheet_id: str, emails: set[str] | None) -> None:
        """Share the spreadsheet with exactly ``emails`` (None: with everyone)."""
        with self._lock:
            self._spreadsheet(spreadsheet_id).shared_with = None if emails is None else set(emails)

    def shared_with(self, spreadsheet_id: str) -> set[str] | None:
        with self._lock:
            shared = self._spreadsheet(spreadsheet_id).shared_with
            return None if shared is None else set(shared)

    def on_next(self, endpoint: str, action: Callable[[], None]) -> None:
        """Run ``action`` when the next authenticated call whose path ends with ``endpoint``
        (e.g. ``values:batchUpdate``) arrives, before it is served: a person's edit landing
        between a client's read and its write. ``action`` may use the direct methods here
        (``set_values``, ``apply``, ``fail_next``: a fault it schedules hits this call)."""
        with self._lock:
            self._hooks.append((endpoint, action))

    def apply(self, spreadsheet_id: str, requests: Sequence[Mapping[str, Any]]) -> None:
        """Run ``spreadsheets.batchUpdate`` requests directly (no HTTP), all or nothing."""
        with self._lock:
            batch_update.apply_requests(
                self._spreadsheet(spreadsheet_id), list(requests), self._new_sheet_id
            )

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def reset_counters(self) -> None:
        """Zero ``reads``/``writes``, empty the request log and the quota windows."""
        with self._lock:
            self.reads = self.writes = 0
            self._log.clear()
            self._windows = {"read": SlidingWindow(), "write": SlidingWindow()}

    def _spreadsheet(self, spreadsheet_id: str) -> Spreadsheet:
        ss = self._spreadsheets.get(spreadsheet_id)
        if ss is None:
            raise KeyError(f"no spreadsheet {spreadsheet_id!r}")
        return ss

    def _sheet(self, spreadsheet_id: str, title: str) -> Worksheet:
        ws = self._spreadsheet(spreadsheet_id).find_title(title)
        if ws is None:
            raise KeyError(f"no sheet {title!r} in {spreadsheet_id!r}")
        return ws

    def _new_sheet_id(self) -> int:
        """Random like Google's, so code cannot get away with assuming 0, 1, 2..."""
        taken = {ws.sheet_id for ss in self._spreadsheets.values() for ws in ss.sheets}
        while (sheet_id := self._id_rng.randrange(1, 2**31)) in taken:
            pass
        return sheet_id

    # -- HTTP ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application; serve it with ``ServerThread`` or the command line."""
        application = web.Application(client_max_size=64 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self._handle)
        return application

    def _build_routes(self) -> list[Route]:
        spreadsheet: list[tuple[str, str, str, SheetsHandler]] = [
            ("GET", "", "read", spreadsheets_get),
            ("POST", ":batchUpdate", "write", self._batch_update),
            ("GET", "/values:batchGet", "read", values.batch_get),
            ("POST", "/values:batchUpdate", "write", values.batch_update),
            ("POST", "/values:batchClear", "write", values.batch_clear),
            ("POST", f"/values/{_RANGE}:append", "write", values.append),
            ("POST", f"/values/{_RANGE}:clear", "write", values.clear),
            ("GET", f"/values/{_RANGE}", "read", values.get),
            ("PUT", f"/values/{_RANGE}", "write", values.update),
        ]
        return [
            Route("POST", re.compile(r"/token"), None, self._token),
            Route(
                "GET",
                re.compile(r"/v1/projects/-/serviceAccounts/(?P<email>[^/]+)/allowedLocations"),
                None,
                lambda call, params: allowed_locations(),
            ),
            *(
                Route(
                    method,
                    re.compile(_SPREADSHEET + suffix),
                    kind,
                    functools.partial(self._sheets_call, kind, handler),
                )
                for method, suffix, kind, handler in spreadsheet
            ),
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        call = Call(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.query,
            request.headers,
            await request.read(),
        )
        route = self._route(call)
        if route is not None and route[0].kind is not None and self.latency_seconds > 0:
            with self._lock:
                delay = spread_latency(self._fault_rng, self.latency_seconds, self.latency_spread)
            await asyncio.sleep(delay)
        status, payload, delay = self._serve(call, route)
        if delay > 0:
            await asyncio.sleep(delay)
        return web.json_response(payload, status=status)

    def _route(self, call: Call) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            match = route.pattern.fullmatch(call.raw_path)
            if match and call.method == route.method:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def _serve(
        self, call: Call, route: tuple[Route, dict[str, str]] | None
    ) -> tuple[int, dict[str, Any], float]:
        """Answer one request: (status, JSON body, seconds to hold the response back)."""
        delay = 0.0
        with self._lock:
            try:
                if route is None:
                    raise ApiError(404)
                target, params = route
                if target.kind in self.slow_kinds:
                    delay = slow_delay(self._fault_rng, self.slow_rate, self.slow_seconds)
                status, payload = 200, target.handler(call, params)
            except ApiError as exc:
                status, payload = exc.code, exc.body()
            except OAuthError as exc:
                status, payload = exc.status, exc.body()
            except Exception:
                log.exception("sheets emulator failed on %s %s", call.method, call.raw_path)
                status, payload = 500, ApiError(500).body()
            self._log.append(
                RequestRecord(
                    call.method,
                    unquote(call.raw_path),
                    {key: call.query.getall(key) for key in set(call.query.keys())},
                    status,
                    route[0].kind if route else None,
                    delay,
                )
            )
        return status, payload, delay

    def _sheets_call(
        self, kind: str, handler: SheetsHandler, call: Call, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """Authentication, injected faults, quota and sharing, then the handler proper."""
        token = self._tokens.authenticate(call.headers.get("Authorization"), kind)
        path = unquote(call.raw_path)
        due = [hook for hook in self._hooks if path.endswith(hook[0])]
        for hook in due[:1]:
            self._hooks.remove(hook)
            hook[1]()
        if self._outage is not None:
            raise ApiError(self._outage)
        if kind == "write" and self._refused_text and self._refused_text.encode() in call.body:
            raise ApiError(400, "Invalid value at 'data.values'")
        fault = injected_fault(
            kind, self._failures, self._fault_rng, self.error_rate, self.error_statuses
        )
        if fault is not None:
            raise fault
        limit = self.read_quota_per_minute if kind == "read" else self.write_quota_per_minute
        if not self._windows[kind].admit(limit, self.quota_window_seconds, time.monotonic()):
            raise quota_error(kind)
        if kind == "read":
            self.reads += 1
        else:
            self.writes += 1
        ss = self._spreadsheets.get(params["sid"])
        if ss is None:
            raise ApiError(404)
        if ss.shared_with is not None and token.email not in ss.shared_with:
            raise ApiError(403)
        return handler(ss, call, params)

    def _token(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        return self._tokens.grant(call.body, self.token_lifetime_seconds)

    def _batch_update(
        self, ss: Spreadsheet, call: Call, params: Mapping[str, str]
    ) -> dict[str, Any]:
        return batch_update.batch_update(ss, call, self._new_sheet_id)
