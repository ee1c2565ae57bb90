"""Crash points: let the crash-recovery tests kill the daemon at an exact step.

Inert in production: ``crash_point`` returns at once unless the environment variable
``SYNCD_TEST_CRASH_AT`` names that point. When it does, the process ends at once with exit
code 137 (what a shell shows for SIGKILL): no cleanup, no drain, no store close, exactly like
``kill -9`` at that line. A marker file in the state directory makes it happen only once, so
a restart with the variable still set runs through.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("syncd.testhooks")

CRASH_ENV = "SYNCD_TEST_CRASH_AT"
CRASH_EXIT_CODE = 137


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
