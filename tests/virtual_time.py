"""An event loop on virtual time: when nothing is ready it jumps to the next timer at once.

Code that waits on the loop's clock (``asyncio.sleep``, ``wait_for`` timeouts) and reads time
from ``loop.time`` then runs instantly and deterministically: a test can assert that something
happened exactly when a 61 s window allowed it, without a real wait or a timing window.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; an idle wait moves the loop's virtual clock forward instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self._loop.advance(timeout)
        if not ready and timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is pending")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh virtual-time loop, starting at time 0."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
