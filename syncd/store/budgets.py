"""Request budgets shared by every process on one ``state_dir``.

The daemon, ``syncd backfill`` and ``syncd check-config`` each talk to Cobot and Google with
the same token and service account, and those APIs count requests per user, not per process.
So each API's recent request times and its Retry-After pause live in a small file in
``state_dir``, read and rewritten under an exclusive ``flock`` once per request taken (a few
dozen bytes, microseconds). The times are wall-clock: the only clock processes share.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar

from syncd.config.settings import GoogleSettings
from syncd.core.budget import DEFAULT_WINDOW_SECONDS, RequestBudget
from syncd.core.errors import StateStoreError

T = TypeVar("T")


@dataclass
class _Window:
    sent: list[float] = field(default_factory=list)
    paused_until: float = 0.0

    def wait(self, now: float, per_window: int, window: float) -> float:
        self.sent = [at for at in self.sent if at > now - window]
        wait = max(0.0, self.paused_until - now)
        if len(self.sent) >= per_window:
            wait = max(wait, self.sent[-per_window] + window - now)
        return wait


class FileWindow:
    """A :class:`~syncd.core.budget.SharedWindow` kept in one file under ``flock``."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock

    def wait(self, per_window: int, window: float) -> float:
        return self._locked(lambda state: state.wait(self._clock(), per_window, window), False)

    def take(self, per_window: int, window: float) -> float:
        def take(state: _Window) -> float:
            now = self._clock()
            wait = state.wait(now, per_window, window)
            if wait <= 0:
                state.sent.append(now)
            return wait

        return self._locked(take, True)

    def pause(self, seconds: float) -> None:
        def pause(state: _Window) -> None:
            state.paused_until = max(state.paused_until, self._clock() + max(0.0, seconds))

        self._locked(pause, True)

    def _locked(self, change: Callable[[_Window], T], save: bool) -> T:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateStoreError(
                f"cannot open the request budget file {self.path} ({exc.strerror or exc}); "
                f"make state_dir writable for this user"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = _read(fd)
            result = change(state)
            if save:
                data = json.dumps({"sent": state.sent, "paused_until": state.paused_until})
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data.encode())
            return result
        finally:
            os.close(fd)  # also releases the lock


def _read(fd: int) -> _Window:
    """The file's window; an empty or damaged file counts as no recent requests."""
    raw = os.read(fd, 1 << 20)
    try:
        data = json.loads(raw) if raw else {}
        return _Window([float(at) for at in data["sent"]], float(data["paused_until"]))
    except (ValueError, KeyError, TypeError):
        return _Window()


def shared_budget(
    state_dir: Path, name: str, per_window: int, window: float = DEFAULT_WINDOW_SECONDS
) -> RequestBudget:
    """The budget of the API ``name`` that every process on ``state_dir`` draws from.

    Without the directory (``check-config`` before the first start) no other process can be
    using it, and the budget is this process's alone.
    """
    directory = Path(state_dir)
    shared = FileWindow(directory / f"budget-{name}.json") if directory.is_dir() else None
    return RequestBudget(per_window, window, shared=shared)


class SheetsBudgets(TypedDict):
    read_budget: RequestBudget
    write_budget: RequestBudget


def sheets_budgets(state_dir: Path, google: GoogleSettings) -> SheetsBudgets:
    """The Sheets read and write budgets shared on ``state_dir``, as SheetsWriter's arguments."""
    return {
        "read_budget": shared_budget(state_dir, "sheets-read", google.read_requests_per_minute),
        "write_budget": shared_budget(state_dir, "sheets-write", google.write_requests_per_minute),
    }
