"""Pytest fixtures that run the Google Sheets emulator on loopback.

Register with `pytest_plugins = ["tests.fixtures_sheets"]`. `sheets_emulator` is a running
emulator with one spreadsheet shared with a generated service account whose key file
(token_uri on the emulator) is written to tmp_path; `make_sheets_emulator(**knobs)` builds
more with any SheetsEmulator knobs. `no_outbound_network` fails a test that tries to reach
anything but loopback, including from google-auth's background threads.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gspread
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.sandbox.servers import ServerThread
from syncd.sandbox.sheets.auth import generate_service_account_key, write_key_file
from syncd.sandbox.sheets.server import SheetsEmulator
from syncd.sheets.auth import gspread_client

SPREADSHEET_ID = "1SandboxSpreadsheet0123456789abcdefghijklmn"
TEST_TIMEOUT = (5.0, 10.0)
#: Google's per-user Sheets quotas, for tests that must stay under the real limits.
GOOGLE_QUOTAS = {"read_quota_per_minute": 60, "write_quota_per_minute": 60}


@dataclass
class SheetsSandbox:
    """A running emulator. `key_info` is the service account's key (token_uri on `url`);
    `spreadsheet_id` is shared with it."""

    emulator: SheetsEmulator
    server: ServerThread
    key_info: dict[str, str]
    key_file: Path
    spreadsheet_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, timeout: tuple[float, float] = TEST_TIMEOUT) -> gspread.Client:
        """The daemon's own gspread client, pointed at the emulator."""
        return gspread_client(self.key_info, self.url, timeout)


MakeSheetsEmulator = Callable[..., SheetsSandbox]


@dataclass(frozen=True)
class _SessionKey:
    key_info: dict[str, str]
    public_key: rsa.RSAPublicKey


def new_sandbox_key() -> _SessionKey:
    """A service-account key pair for emulators (generating one costs ~40 ms)."""
    key_info = generate_service_account_key("http://placeholder.invalid/token")
    private_key = serialization.load_pem_private_key(key_info["private_key"].encode(), None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    return _SessionKey(key_info, private_key.public_key())


def start_sheets_sandbox(
    key: _SessionKey, key_file: Path, emulator: SheetsEmulator | None = None, **knobs: Any
) -> SheetsSandbox:
    """Serve ``emulator`` (default: one built with ``knobs``) with a spreadsheet shared with
    ``key``'s account, whose key file goes to ``key_file``; stop its `server` after use."""
    emulator = emulator or SheetsEmulator(**knobs)
    server = ServerThread(emulator.app()).start()
    key_info = {**key.key_info, "token_uri": server.url + "/token"}
    email = emulator.register_service_account(
        key.public_key, key_info["client_email"], key_info["private_key_id"]
    )
    emulator.create_spreadsheet(SPREADSHEET_ID, title="Cobot sync", shared_with={email})
    write_key_file(key_file, key_info)
    return SheetsSandbox(emulator, server, key_info, key_file, SPREADSHEET_ID)


@pytest.fixture(scope="session")
def _sandbox_key() -> _SessionKey:
    """One RSA key for the session."""
    return new_sandbox_key()


@pytest.fixture
def make_sheets_emulator(tmp_path: Path, _sandbox_key: _SessionKey) -> Iterator[MakeSheetsEmulator]:
    """Start emulators with any SheetsEmulator knobs; all are stopped after the test."""
    running: list[ServerThread] = []

    def make(**knobs: Any) -> SheetsSandbox:
        key_file = tmp_path / f"service-account-{len(running) + 1}.json"
        sandbox = start_sheets_sandbox(_sandbox_key, key_file, **knobs)
        running.append(sandbox.server)
        return sandbox

    yield make
    for server in running:
        server.stop()


@pytest.fixture
def sheets_emulator(make_sheets_emulator: MakeSheetsEmulator) -> SheetsSandbox:
    return make_sheets_emulator()


# -- network guard -----------------------------------------------------------------------


@dataclass
class NetworkLog:
    """Every address a guarded block resolved or connected to, and the non-loopback ones."""

    attempts: list[str] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port) is a wildcard lookup for bind()
    if isinstance(host, bytes):
        host = host.decode()
    if str(host).lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only(block: bool = True) -> Iterator[NetworkLog]:
    """Record every DNS lookup and TCP connect in any thread; refuse (with OSError) those
    that would leave loopback, so an escape fails fast instead of waiting on DNS."""
    network = NetworkLog()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def check(what: str, host: Any) -> None:
        network.attempts.append(f"{what} {host}")
        if not _is_loopback(host):
            network.outbound.append(f"{what} {host}")
            if block:
                raise OSError(f"test network guard: {what} to {host!r} is not loopback")

    def inet_host(sock: socket.socket, address: Any) -> Any:
        return address[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None

    def connect(self: socket.socket, address: Any) -> None:
        check("connect", inet_host(self, address))
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check("connect", inet_host(self, address))
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        check("create_connection", address[0])
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check("getaddrinfo", host)
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "create_connection", create_connection)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield network


def join_google_auth_threads(timeout: float = 5.0) -> None:
    """Wait for google-auth's background Regional Access Boundary lookups to finish."""
    for thread in threading.enumerate():
        if "RegionalAccessBoundary" in type(thread).__name__:
            thread.join(timeout)


@pytest.fixture
def no_outbound_network() -> Iterator[NetworkLog]:
    """Fail the test if anything (in any thread) tries to reach a non-loopback address."""
    with loopback_only() as network:
        yield network
        join_google_auth_threads()
    if network.outbound:
        pytest.fail(f"non-loopback network access: {network.outbound}")
