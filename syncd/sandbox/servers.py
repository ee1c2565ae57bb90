"""Run an aiohttp application on loopback in a background thread, and stop it on a signal.

Tests and the demo need the emulators running while synchronous code (gspread, subprocess
control) runs in the foreground, so each server gets its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from syncd.core.errors import UsageError
from syncd.intake.resources import is_loopback_host

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (good enough for tests on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """An aiohttp app served from its own thread; `url` is where it listens."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run a plain function on the server's loop (to touch loop-owned state safely)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper(), timeout)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
            self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def listen_address_of(url: str | None, key: str) -> tuple[str, int]:
    """Where a sandbox must listen for a daemon config's ``key`` (a URL) to reach it.

    Only plain http on this machine qualifies: a sandbox is never served where a real
    Cobot or Google is expected.
    """
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.scheme != "http" or parts.port is None or not is_loopback_host(host):
        raise UsageError(
            f"{key} must point at this machine, like http://127.0.0.1:9001, for the sandbox "
            f"to serve it (got {url or 'nothing'})"
        )
    return host, parts.port


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` instead of raising, so a server shuts down cleanly."""
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
