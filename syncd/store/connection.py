"""The one SQLite connection behind the store, and the one thread that uses it.

All database work runs on a dedicated thread: the asyncio loop never blocks on disk I/O and
the connection is never shared between threads. Whatever SQLite refuses reaches the caller
as StoreUnavailable, with nothing of the failed call written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from syncd.core.errors import StateStoreError

T = TypeVar("T")


class StoreUnavailable(StateStoreError):
    """The state database cannot take the operation right now (disk full, locked, read-only).

    Nothing the failed call tried to write was stored; the caller may retry later.
    """


class Call(Protocol):
    """Runs ``fn(*args)`` on the database thread, as :meth:`Connection._call` does."""

    async def __call__(self, fn: Callable[..., T], /, *args: Any) -> T: ...


class Connection:
    """The open state database: its connection, its thread, and closing both."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection, readonly: bool
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._executor = executor
        self._conn = conn
        self._closed = False

    async def close(self) -> None:
        """Close the connection and stop its thread; calls after this raise StoreUnavailable."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn`` on the database thread; SQLite failures become StoreUnavailable."""
        if self._closed:
            raise StoreUnavailable(f"the state database {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"the state database {self.path} is unavailable ({exc}); check free disk "
                f"space, its permissions and that no other program holds it locked"
            ) from exc


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front and rolls back on any error.

    IMMEDIATE avoids the deadlock of two connections each upgrading a read to a write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def json_param(value: Any) -> str:
    """Rows as one JSON statement parameter; a value JSON cannot hold is refused like a
    parameter SQLite cannot bind (so the caller gets StoreUnavailable, nothing is written)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise sqlite3.InterfaceError(f"cannot store {exc}") from None
