"""The road to Google Sheets: one gspread thread, the request budgets, retries, clear failures.

All gspread calls run on one dedicated thread: gspread is synchronous and its requests session
is not thread-safe. Retries, backoff and the request budgets live on the asyncio side, so a
waiting retry never holds the thread. Every attempt draws from the read or write budget and
counts like any request, because Google's quota counts it.

Failures come out as the classes of ``syncd.sheets.errors``; only those whose action is
``RETRY`` are retried here, the others go straight to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import gspread
import requests
from google.auth import exceptions as auth_exceptions
from gspread.http_client import HTTPClient, ParamsType

from syncd.config.settings import GoogleSettings
from syncd.core.budget import RequestBudget
from syncd.core.errors import Action
from syncd.core.metrics import Metrics
from syncd.core.retry import Backoff, parse_retry_after
from syncd.sheets.errors import (
    SheetsApiError,
    SheetsAuthError,
    SheetsNotFoundError,
    SheetsPermissionError,
    SheetsRequestError,
    SheetsUnavailable,
)

log = logging.getLogger("syncd.sheets")

T = TypeVar("T")
#: Builds an attempt's request just before it is sent (see ``SheetsTransport._request``).
Prepare = Callable[[], Awaitable[Callable[[HTTPClient], T]]]

CONNECT_TIMEOUT_SECONDS = 10.0
#: Half jitter: retries of several flushes spread out without waiting needlessly long.
DEFAULT_BACKOFF = Backoff(base_seconds=1.0, max_seconds=32.0, jitter=0.5)
DEFAULT_ATTEMPTS = 6


class ClientFactory(Protocol):
    def __call__(
        self,
        key_info: dict[str, Any],
        api_endpoint: str | None,
        timeout: tuple[float, float] = ...,
    ) -> gspread.Client: ...


@dataclass(frozen=True)
class _Op:
    """One kind of API request: its metrics label and which quota bucket it draws from."""

    name: str
    write: bool


_GET = _Op("get", write=False)
_BATCH_GET = _Op("batchGet", write=False)
_BATCH_UPDATE = _Op("batchUpdate", write=True)
_VALUES_UPDATE = _Op("values.batchUpdate", write=True)


@dataclass
class RequestTally:
    """Requests sent on behalf of one worksheet's flush, every attempt counted."""

    #: The worksheet the requests are for, named in log lines.
    sheet: str
    reads: int = 0
    writes: int = 0
    #: At most this many attempts per request (None: the transport's own): a read that
    #: only saves time is not worth retrying.
    max_attempts: int | None = None

    def count(self, op: _Op) -> None:
        if op.write:
            self.writes += 1
        else:
            self.reads += 1


class SheetsTransport:
    """Sends the Sheets API requests of one spreadsheet, with bounded, jittered retries."""

    def __init__(
        self,
        settings: GoogleSettings,
        metrics: Metrics,
        *,
        read_budget: RequestBudget,
        write_budget: RequestBudget,
        client_factory: ClientFactory,
        max_attempts: int,
        backoff: Backoff,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._settings = settings
        self._metrics = metrics
        self._read_budget = read_budget
        self._write_budget = write_budget
        self._client_factory = client_factory
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-sheets")
        self._http: HTTPClient | None = None
        self._closed = False

    @property
    def _id(self) -> str:
        return self._settings.spreadsheet_id

    # -- the requests the writer sends ---------------------------------------------------

    async def metadata(self, tally: RequestTally) -> Mapping[str, Any]:
        """``spreadsheets.get``: the spreadsheet's title and its worksheets' grids (1 read)."""
        return await self._request(
            _GET, _ready(lambda http: http.fetch_sheet_metadata(self._id)), tally
        )

    async def grid_data(
        self, ranges: list[str], fields: str, tally: RequestTally
    ) -> Mapping[str, Any]:
        """``spreadsheets.get`` of the cells in ``ranges`` (1 read), cut down to ``fields``:
        its ``sheets`` list only the worksheets the ranges name, each with one GridData per
        range, in order."""
        params: ParamsType = {"ranges": ranges, "fields": fields}
        return await self._request(
            _GET, _ready(lambda http: http.fetch_sheet_metadata(self._id, params=params)), tally
        )

    async def batch_get_columns(
        self, ranges: list[str], tally: RequestTally
    ) -> list[list[list[Any]]]:
        """One ``values:batchGet`` (1 read): each range's cells, column by column."""
        params = {"majorDimension": "COLUMNS"}
        response = await self._request(
            _BATCH_GET,
            _ready(lambda http: http.values_batch_get(self._id, ranges, params=dict(params))),
            tally,
        )
        return [value_range.get("values", []) for value_range in response.get("valueRanges", [])]

    async def batch_update(self, requests: list[dict[str, Any]], tally: RequestTally) -> None:
        """One ``spreadsheets:batchUpdate`` (1 write), applied by Google all or nothing."""

        async def same() -> list[dict[str, Any]]:
            return requests

        await self.batch_update_prepared(same, tally)

    async def batch_update_prepared(
        self, prepare: Callable[[], Awaitable[list[dict[str, Any]]]], tally: RequestTally
    ) -> None:
        """One ``spreadsheets:batchUpdate`` (1 write) of the requests ``prepare`` returns before
        every attempt, for requests that address rows by position (see ``write_values``)."""

        async def request() -> Callable[[HTTPClient], Any]:
            body = {"requests": await prepare()}
            return lambda http: http.batch_update(self._id, body)

        await self._request(_BATCH_UPDATE, request, tally)

    async def write_values(
        self, prepare: Callable[[], Awaitable[list[dict[str, Any]]]], tally: RequestTally
    ) -> None:
        """One ``values:batchUpdate`` (1 write) of the value ranges ``prepare`` returns, stored
        as given (RAW).

        ``prepare`` runs before every attempt, retries included: rows are addressed by their
        position, and a person may sort or insert rows while a retry waits, so each attempt
        is placed from what the sheet holds just before it is sent.
        """

        async def request() -> Callable[[HTTPClient], Any]:
            body = {"valueInputOption": "RAW", "data": await prepare()}
            return lambda http: http.values_batch_update(self._id, body)

        await self._request(_VALUES_UPDATE, request, tally)

    def close(self) -> None:
        """Stop the worker thread without waiting for it.

        Requests still queued fail at once; a request in flight ends at its timeout, after
        which the session is closed on the worker thread and the thread exits.
        """
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._close_session)
        self._executor.shutdown(wait=False)

    # -- retries -------------------------------------------------------------------------

    async def _request(self, op: _Op, prepare: Prepare[T], tally: RequestTally) -> T:
        """Run one API request, retrying the failures whose action is RETRY.

        ``prepare`` gives each attempt its call, before the attempt takes its budget slot.

        Every attempt first takes a slot of the read or write budget, so retries count
        against the quota like any request. After a 429 the whole budget pauses for the
        backoff, holding back the other flushes too.
        """
        budget = self._write_budget if op.write else self._read_budget
        attempts = tally.max_attempts or self._max_attempts
        attempt = 0
        while True:
            attempt += 1
            call = await prepare()
            await budget.acquire()
            tally.count(op)
            try:
                result = await self._in_thread(call)
            except SheetsApiError:
                raise
            except Exception as exc:
                status, error = self._classify(exc)
                self._metrics.sheets_requests.inc(kind=op.name, status=status)
                if error.action is not Action.RETRY:
                    raise error from exc
                if attempt == attempts:
                    raise SheetsUnavailable(
                        f"Google Sheets failed {attempts} times in a row ({op.name}): {error}"
                    ) from exc
                delay = self._backoff.delay(attempt, _retry_after(exc))
                if status == "429":
                    budget.pause_for(delay)
                log.info(
                    "%s: %s failed (%s); retry %d/%d in %.1f s",
                    tally.sheet,
                    op.name,
                    error,
                    attempt,
                    attempts - 1,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self._metrics.sheets_requests.inc(kind=op.name, status="200")
                return result

    def _classify(self, exc: Exception) -> tuple[str, SheetsApiError]:
        """Map a failure to its metrics status and the error it means for the caller.

        Transient failures come back as ``SheetsUnavailable``; anything not recognised is a
        bug and is re-raised unchanged.
        """
        email = self._settings.service_account_email or "the service account"
        if isinstance(exc, gspread.exceptions.APIError):
            return _classify_api_error(exc, self._id, email)
        if isinstance(exc, requests.Timeout):
            return "timeout", SheetsUnavailable("Google Sheets did not answer in time")
        if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return "connection", SheetsUnavailable(f"cannot reach Google Sheets: {exc}")
        if isinstance(exc, auth_exceptions.TransportError):
            return "auth", SheetsUnavailable("cannot reach Google's token endpoint")
        if isinstance(exc, auth_exceptions.RefreshError):
            return "auth", _refresh_error(exc, email)
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            return "auth", SheetsAuthError(f"the service-account key of {email} is unusable")
        raise exc

    # -- the worker thread ---------------------------------------------------------------

    async def _in_thread(self, call: Callable[[HTTPClient], T]) -> T:
        if self._closed:
            raise SheetsUnavailable("the Sheets writer is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, call)

    def _run(self, call: Callable[[HTTPClient], T]) -> T:
        """Runs on the worker thread, which alone creates and uses the gspread client."""
        if self._closed:
            raise SheetsUnavailable("the Sheets writer is closed")
        if self._http is None:
            timeout = (
                min(CONNECT_TIMEOUT_SECONDS, self._settings.timeout_seconds),
                self._settings.timeout_seconds,
            )
            client = self._client_factory(
                self._settings.service_account_info, self._settings.api_endpoint, timeout=timeout
            )
            self._http = client.http_client
        return call(self._http)

    def _close_session(self) -> None:
        if self._http is not None:
            self._http.session.close()


def _ready(call: Callable[[HTTPClient], T]) -> Prepare[T]:
    """A request that is the same at every attempt."""

    async def prepare() -> Callable[[HTTPClient], T]:
        return call

    return prepare


def _retry_after(exc: Exception) -> float | None:
    """The Retry-After the server sent with a failed response, in seconds."""
    response = getattr(exc, "response", None)
    return parse_retry_after(response.headers.get("Retry-After") if response is not None else None)


def _classify_api_error(
    exc: gspread.exceptions.APIError, spreadsheet_id: str, email: str
) -> tuple[str, SheetsApiError]:
    """Turn an HTTP error from the Sheets API into the error the user can act on."""
    code = exc.code if exc.code > 0 else exc.response.status_code
    message = str(exc.error.get("message", "")).strip()[:500]
    status = str(code)
    if code in (408, 429) or code >= 500:
        return status, SheetsUnavailable(f"Google Sheets answered {code}: {message}")
    if code == 403:
        return status, SheetsPermissionError(
            f"the service account {email} may not edit spreadsheet {spreadsheet_id}: share the "
            f"spreadsheet with {email} as Editor (Google said: {message})"
        )
    if code == 404:
        return status, SheetsNotFoundError(
            f"spreadsheet {spreadsheet_id} not found: check google.spreadsheet_id"
        )
    if code == 401:
        return status, SheetsAuthError(
            f"Google rejected the credentials of {email}: check google.service_account_file"
        )
    return status, SheetsRequestError(f"Google Sheets refused the request ({code}): {message}")


def _refresh_error(exc: auth_exceptions.RefreshError, email: str) -> SheetsApiError:
    """A failed token request; only Google's error code and description are quoted."""
    reason = str(exc.args[0]) if exc.args else "no reason given"
    if "invalid_grant" in reason:
        return SheetsAuthError(
            f"Google refused the service-account key of {email} (invalid_grant): the key was "
            "probably revoked or deleted (create a new one) or this machine's clock is wrong"
        )
    if exc.retryable:
        return SheetsUnavailable(f"Google's token endpoint failed: {reason[:200]}")
    return SheetsAuthError(f"cannot get a Google access token for {email}: {reason[:200]}")
