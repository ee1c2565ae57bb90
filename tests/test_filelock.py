"""The cross-process lock around upserts: the daemon and `syncd backfill` never append the
same URL at once. flock locks of separate opens conflict even within one process, so a second
open of the lock file here stands in for the other process."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.store.filelock import file_lock
from tests.fixtures_sheets import SheetsSandbox
from tests.test_sheets_writer import MEMBERS, members, new_writer

pytestmark = pytest.mark.usefixtures("no_outbound_network")


@contextlib.contextmanager
def held_elsewhere(path: Path) -> Iterator[None]:
    """The lock as another process would hold it; released on leaving."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def test_an_upsert_waits_while_another_process_holds_the_lock(
    tmp_path: Path, sheets_emulator: SheetsSandbox
) -> None:
    lock = tmp_path / "sheets.lock"
    writer = new_writer(sheets_emulator, lock_path=lock)
    try:
        with held_elsewhere(lock):
            upsert = asyncio.create_task(writer.upsert(MEMBERS, members(1, 2)))
            await asyncio.sleep(0.5)
            assert not upsert.done()
            assert sheets_emulator.emulator.writes == 0
        report = await asyncio.wait_for(upsert, 10)
    finally:
        writer.close()
    assert report.appended == 2


async def test_a_cancelled_waiter_does_not_keep_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "sheets.lock"

    async def hold_forever() -> None:
        async with file_lock(lock):
            await asyncio.Event().wait()

    with held_elsewhere(lock):
        waiter = asyncio.create_task(hold_forever())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    # The cancelled waiter's thread gets the lock once it is free, and must give it back.
    async with asyncio.timeout(10), file_lock(lock):
        pass
