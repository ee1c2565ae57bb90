"""Build the gspread client the daemon uses, optionally aimed at another endpoint.

gspread hard-codes ``https://sheets.googleapis.com`` (imported by value, so it cannot be
patched), and google-auth makes calls of its own to other ``*.googleapis.com`` hosts (the
Regional Access Boundary lookup on ``iamcredentials.googleapis.com`` runs in a background
thread after a token refresh). The only place that sees all of that traffic is the
``requests`` transport, so an adapter mounted there rewrites those hosts to
``api_endpoint`` (the sandbox emulator) on both the API session and the session google-auth
refreshes tokens with. The key's ``token_uri`` is honoured as-is. Without ``api_endpoint``
nothing is rewritten and the client talks to Google.

The adapter also supplies a timeout whenever a caller passes none: gspread sends
``timeout=None`` by default and google-auth's background lookup does too, and a request
without a timeout can hang a worker thread forever.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

import gspread
import requests
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

SCOPES = (
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive",
)
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: google-auth retries connection errors on its token session the same way.
TOKEN_CONNECT_RETRIES = 3

SessionT = TypeVar("SessionT", bound=requests.Session)


class GoogleEndpointAdapter(HTTPAdapter):
    """Sends ``https://*.googleapis.com`` requests to ``api_endpoint`` (when set) and gives
    every request a timeout. The key's ``token_uri`` is never rewritten."""

    # requests pickles adapters through ``__attrs__``; google-auth deep-copies the token
    # session for its background lookup, and the copy must keep rewriting.
    __attrs__ = [*HTTPAdapter.__attrs__, "api_endpoint", "token_uri", "default_timeout"]

    def __init__(
        self,
        api_endpoint: str | None,
        token_uri: str | None,
        default_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 0,
    ) -> None:
        self.api_endpoint = api_endpoint.rstrip("/") if api_endpoint else None
        self.token_uri = token_uri
        self.default_timeout = default_timeout
        super().__init__(max_retries=max_retries)

    def rewrite(self, url: str) -> str:
        """The URL a request for ``url`` is really sent to."""
        if self.api_endpoint is None or (self.token_uri and url.startswith(self.token_uri)):
            return url
        parts = urlsplit(url)
        if parts.scheme != "https" or not f".{parts.hostname}".endswith(".googleapis.com"):
            return url
        return self.api_endpoint + url[len(f"{parts.scheme}://{parts.netloc}") :]

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        target = self.rewrite(request.url or "")
        if target != request.url:
            request.url = target
            # Proxies were chosen for the Google host; the endpoint is reached directly.
            kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def _mount(session: SessionT, adapter: GoogleEndpointAdapter) -> SessionT:
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _Session(AuthorizedSession):
    """An AuthorizedSession that also closes the token session it was given (google-auth
    only closes token sessions it created itself)."""

    def __init__(
        self, credentials: service_account.Credentials, token_session: requests.Session
    ) -> None:
        # google-auth leaves these untyped.
        super().__init__(credentials, auth_request=Request(token_session))  # type: ignore[no-untyped-call]
        self._token_session = token_session

    def close(self) -> None:
        self._token_session.close()
        super().close()  # type: ignore[no-untyped-call]


def authorized_session(
    key_info: dict[str, Any],
    api_endpoint: str | None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> AuthorizedSession:
    """A google-auth session for the service account in ``key_info`` whose API traffic and
    token refreshes both go through :class:`GoogleEndpointAdapter`."""
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        key_info, scopes=SCOPES
    )
    token_uri = key_info.get("token_uri")
    token_session = _mount(
        requests.Session(),
        GoogleEndpointAdapter(api_endpoint, token_uri, timeout, TOKEN_CONNECT_RETRIES),
    )
    session = _Session(credentials, token_session)
    return _mount(session, GoogleEndpointAdapter(api_endpoint, token_uri, timeout))


def gspread_client(
    key_info: dict[str, Any],
    api_endpoint: str | None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> gspread.Client:
    """A plain (non-retrying) gspread client: the daemon does its own bounded retries,
    and gspread's BackOffHTTPClient never gives up."""
    session = authorized_session(key_info, api_endpoint, timeout)
    client = gspread.Client(auth=None, session=session)  # type: ignore[arg-type]
    # HTTPClient only records credentials when it builds the session itself;
    # without them Client.expiry raises AttributeError.
    client.http_client.auth = session.credentials
    client.set_timeout(timeout)
    return client
