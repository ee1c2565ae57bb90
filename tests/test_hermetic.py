"""Nothing a gspread session does may leave loopback, including google-auth's own calls.

google-auth (2.5x+) can start a background thread after a token refresh that looks up the
service account's Regional Access Boundary on iamcredentials.googleapis.com. In 2.63 that
lookup is opt-in through an environment variable, so both settings are exercised.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gspread
import pytest
import requests

from syncd.sheets.auth import GoogleEndpointAdapter, authorized_session, gspread_client
from tests.fixtures_sheets import (
    MakeSheetsEmulator,
    NetworkLog,
    SheetsSandbox,
    join_google_auth_threads,
    loopback_only,
)

RAB_SWITCH = "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED"


def _lookups(sandbox: SheetsSandbox) -> list[str]:
    return [r.path for r in sandbox.emulator.request_log if r.path.endswith("/allowedLocations")]


def _wait_for_lookup(sandbox: SheetsSandbox, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not _lookups(sandbox) and time.monotonic() < deadline:
        time.sleep(0.02)
    join_google_auth_threads()


def _drive_a_session(sandbox: SheetsSandbox) -> gspread.Client:
    client = sandbox.client()
    spreadsheet = client.open_by_key(sandbox.spreadsheet_id)
    ws = spreadsheet.add_worksheet("Members", rows=5, cols=3)
    ws.update([["url", "name"], ["u1", "Ada"]])
    ws.append_rows([["u2", "Bob"]])
    ws.batch_get(["1:1", "A:A"])
    ws.resize(rows=10)
    assert ws.get_all_values() == [["url", "name"], ["u1", "Ada"], ["u2", "Bob"]]
    # A stale token forces a second refresh, which may start another background lookup.
    sandbox.emulator.expire_tokens()
    assert ws.col_values(2) == ["name", "Ada", "Bob"]
    return client


@pytest.mark.parametrize("lookup_enabled", [True, False], ids=["rab-lookup-on", "rab-lookup-off"])
def test_full_session_never_leaves_loopback(
    sheets_emulator: SheetsSandbox, monkeypatch: pytest.MonkeyPatch, lookup_enabled: bool
) -> None:
    if lookup_enabled:
        monkeypatch.setenv(RAB_SWITCH, "true")
    else:
        monkeypatch.delenv(RAB_SWITCH, raising=False)
    with loopback_only() as network:
        client = _drive_a_session(sheets_emulator)
        if lookup_enabled:
            _wait_for_lookup(sheets_emulator)
        join_google_auth_threads()
    assert network.outbound == []
    assert any(a.startswith("connect 127.0.0.1") for a in network.attempts)
    credentials = client.http_client.session.credentials
    if lookup_enabled:
        assert _lookups(sheets_emulator), "the background lookup should reach the emulator"
        assert credentials.regional_access_boundary == "0x0"
    else:
        assert _lookups(sheets_emulator) == []


def test_no_outbound_network_fixture_allows_loopback(
    sheets_emulator: SheetsSandbox,
    no_outbound_network: NetworkLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RAB_SWITCH, "true")
    _drive_a_session(sheets_emulator)
    _wait_for_lookup(sheets_emulator)
    assert no_outbound_network.attempts
    assert no_outbound_network.outbound == []


@pytest.mark.parametrize(
    "make_client",
    [
        pytest.param(lambda key: gspread.service_account_from_dict(key), id="plain-gspread"),
        pytest.param(lambda key: gspread_client(key, api_endpoint=None), id="no-api-endpoint"),
    ],
)
def test_guard_catches_a_client_that_is_not_redirected(
    sheets_emulator: SheetsSandbox, make_client: Callable[[dict[str, str]], gspread.Client]
) -> None:
    # Both honour token_uri but send API calls to sheets.googleapis.com.
    client = make_client(sheets_emulator.key_info)
    client.set_timeout((2.0, 2.0))
    with loopback_only() as network, pytest.raises(requests.exceptions.ConnectionError):
        client.open_by_key(sheets_emulator.spreadsheet_id)
    assert any("sheets.googleapis.com" in attempt for attempt in network.outbound)
    assert [r.path for r in sheets_emulator.emulator.request_log] == ["/token"]


def test_adapter_rewrites_google_hosts_only() -> None:
    adapter = GoogleEndpointAdapter("http://127.0.0.1:9/", "https://oauth2.googleapis.com/token")
    sheets = "https://sheets.googleapis.com/v4/spreadsheets/x/values/%27T%27?a=1"
    lookup = (
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@b/allowedLocations"
    )
    assert adapter.rewrite(sheets) == "http://127.0.0.1:9/v4/spreadsheets/x/values/%27T%27?a=1"
    assert adapter.rewrite(lookup).startswith("http://127.0.0.1:9/v1/projects/-/serviceAccounts/")
    for untouched in [
        "https://oauth2.googleapis.com/token",  # the key's token_uri is honoured as-is
        "https://example.com/v4/spreadsheets/x",
        "https://evilgoogleapis.com/x",
        "http://sheets.googleapis.com/v4",
    ]:
        assert adapter.rewrite(untouched) == untouched
    assert GoogleEndpointAdapter(None, None).rewrite(sheets) == sheets


def test_every_request_gets_a_timeout(make_sheets_emulator: MakeSheetsEmulator) -> None:
    sandbox = make_sheets_emulator(latency_seconds=0.5)
    session = authorized_session(sandbox.key_info, sandbox.url, timeout=(2.0, 0.2))
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(f"{sandbox.url}/v4/spreadsheets/{sandbox.spreadsheet_id}", timeout=None)
    session.close()


def test_guard_refuses_direct_sockets() -> None:
    with loopback_only() as network:
        with pytest.raises(OSError, match="not loopback"):
            socket.create_connection(("192.0.2.1", 443), timeout=1)
        with pytest.raises(OSError, match="not loopback"):
            socket.getaddrinfo("example.com", 443)
        with socket.socket() as sock, pytest.raises(OSError, match="not loopback"):
            sock.connect(("198.51.100.7", 80))
    assert network.outbound == [
        "create_connection 192.0.2.1",
        "getaddrinfo example.com",
        "connect 198.51.100.7",
    ]
