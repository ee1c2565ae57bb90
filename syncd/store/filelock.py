"""A lock shared between processes writing one spreadsheet: the daemon and `syncd backfill`.

An upsert reads the key column and then appends the URLs it did not find. Two processes doing
that for the same worksheet at once would both append a new URL, so every upsert holds an
exclusive ``flock`` on one file in ``state_dir``. The lock belongs to the open file: closing
it, or the death of the process, releases it, so a killed backfill never leaves it stuck.

The file counts the turns: each holder adds one, so a process that saw turn N and gets
turn N + 1 next knows that no other process held the lock in between.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from syncd.core.errors import StateStoreError

SHEETS_LOCK_FILENAME = "sheets.lock"


def sheets_lock_path(state_dir: Path) -> Path:
    """The lock file every process writing this config's spreadsheet agrees on."""
    return Path(state_dir) / SHEETS_LOCK_FILENAME


@asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[int]:
    """Hold an exclusive lock on ``path`` and yield this turn's number; waiting happens on a
    thread, not on the loop."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateStoreError(
            f"cannot open the lock file {path} ({exc.strerror or exc}); make state_dir "
            f"writable for this user"
        ) from None
    await _acquire(fd)
    try:
        yield _next_turn(fd)
    finally:
        os.close(fd)


def _next_turn(fd: int) -> int:
    """Count this turn in the locked file (a number in ASCII); an unreadable count restarts."""
    try:
        turn = int(os.pread(fd, 32, 0) or b"0") + 1
    except ValueError:
        turn = 1
    text = str(turn).encode()
    os.pwrite(fd, text, 0)
    os.ftruncate(fd, len(text))
    return turn


async def _acquire(fd: int) -> None:
    """Lock ``fd``; when this fails or is cancelled, ``fd`` is closed (and so unlocked)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    waiting = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
    try:
        await asyncio.shield(waiting)
    except BaseException:
        # The thread may still get the lock after we stop waiting: close the file only
        # once the thread is done with it, which releases whatever it got.
        waiting.add_done_callback(lambda _: os.close(fd))
        raise
