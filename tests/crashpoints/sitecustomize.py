"""Crash points for the crash-recovery tests, loaded into `syncd run` at start-up.

Python imports ``sitecustomize`` when it starts; the daemon fixture puts this directory on the
daemon's PYTHONPATH. Nothing happens unless ``SYNCD_TEST_CRASH_AT`` names a crash point. When
it does, the process ends at that point with exit code 137 (what a shell shows for SIGKILL):
no cleanup, no drain, no store close, exactly like ``kill -9`` there. A marker file in the
state directory makes it happen only once, so a restart with the variable still set runs
through.

Crash points:

- ``after_write``: a flush wrote its rows to the sheet and is about to mark their events done.
- ``after_enqueue``: a webhook is committed to the inbox and its 2xx is not yet sent, so the
  sender sees the connection drop and delivers it again (the event is stored twice).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("syncd.crashpoints")

CRASH_ENV = "SYNCD_TEST_CRASH_AT"
CRASH_EXIT_CODE = 137
AFTER_WRITE = "after_write"
AFTER_ENQUEUE = "after_enqueue"


def crash_point(name: str, state_dir: Path) -> None:
    """Die here, once, when ``SYNCD_TEST_CRASH_AT`` equals ``name``; otherwise do nothing."""
    if os.environ.get(CRASH_ENV) != name:
        return
    try:
        os.close(os.open(crash_marker(name, state_dir), os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return
    log.warning("crash point %s reached: exiting with %d", name, CRASH_EXIT_CODE)
    os._exit(CRASH_EXIT_CODE)


def crash_marker(name: str, state_dir: Path) -> Path:
    """The file that records that the crash point ``name`` has fired."""
    return Path(state_dir) / f"crashed-at-{name}"


def install_after_write() -> None:
    """Crash right before the store marks events done, after their rows were written."""
    from syncd.store.database import Store

    complete = Store.complete

    async def complete_after_crash_point(self: Store, ids: Any, *args: Any, **kwargs: Any) -> None:
        ids = list(ids)
        if ids:  # the rows' states are saved with their write; marking done comes last
            crash_point(AFTER_WRITE, Path(self.path).parent)
        await complete(self, ids, *args, **kwargs)

    Store.complete = complete_after_crash_point  # type: ignore[method-assign,assignment]


def install_after_enqueue() -> None:
    """Crash right after a webhook's row is committed, before the receiver answers."""
    from syncd.store.database import Store

    enqueue = Store.enqueue

    async def enqueue_then_crash(self: Store, *args: Any, **kwargs: Any) -> int:
        event_id = await enqueue(self, *args, **kwargs)
        crash_point(AFTER_ENQUEUE, Path(self.path).parent)
        return event_id

    Store.enqueue = enqueue_then_crash  # type: ignore[method-assign]


if os.environ.get(CRASH_ENV) == AFTER_WRITE:
    install_after_write()
if os.environ.get(CRASH_ENV) == AFTER_ENQUEUE:
    install_after_enqueue()
