"""The daemon's durable state: one SQLite file in ``state_dir`` holding the webhook inbox,
per-sheet row states, the local copy of Cobot's resources and typed meta, behind one :class:`Store`.

An acknowledged webhook survives ``kill -9`` and power loss (see syncd.store.schema); all
database work runs on one dedicated thread (see syncd.store.connection).
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from syncd.store.inbox import Inbox
from syncd.store.meta import Meta
from syncd.store.resources import Resources
from syncd.store.rows import RowStates
from syncd.store.schema import DB_FILENAME, connect

#: Default wait for a lock held by another process (e.g. ``syncd replay``) before giving up.
DEFAULT_BUSY_TIMEOUT = 5.0


class Store(Inbox, RowStates, Resources):
    """Async facade over the SQLite state database; create it with :meth:`Store.open`."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection, readonly: bool
    ) -> None:
        super().__init__(path, executor, conn, readonly)
        #: The records kept between runs for `syncd status` and the re-sync schedule.
        self.meta = Meta(self._call, conn)

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        readonly: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Store:
        """Open (creating and migrating when writable) the database in ``state_dir``.

        ``readonly=True`` is for inspecting a database another process (the daemon) is
        using, e.g. ``syncd status``; it never creates or migrates anything.
        Raises StateStoreError with one sentence saying what to do.
        """
        path = Path(state_dir) / DB_FILENAME
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-store")
        try:
            conn = executor.submit(connect, path, readonly, busy_timeout).result()
        except BaseException:
            executor.shutdown()
            raise
        return cls(path, executor, conn, readonly)
