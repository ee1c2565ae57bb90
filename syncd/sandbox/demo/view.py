"""The demo's read-only web view of the emulated spreadsheet.

One tab per worksheet, rendered the way Google Sheets shows the daemon's cells (date serials
as dates), with rows and cells that changed in the last few seconds highlighted and deleted
rows flagged. The page polls ``/api/state`` every second; it is plain HTML, CSS and JS served
from package data (``syncd/sandbox/static``), so there is nothing to build and no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from syncd.config.settings import Settings
from syncd.mapping.display import display_cell
from syncd.sandbox.sheets.server import SheetsEmulator

#: How long a new row or a changed cell stays highlighted.
HIGHLIGHT_SECONDS = 5.0
#: How often the view looks at the spreadsheet even when no page asks.
WATCH_SECONDS = 0.5
STATIC = resources.files("syncd.sandbox").joinpath("static")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Tab:
    """One worksheet the view shows: its title, column types and the daemon's own columns."""

    title: str
    types: dict[str, str]
    key_column: str
    deleted_column: str


def tabs_of(settings: Settings) -> list[Tab]:
    """The configured worksheets in config order, then the event log sheet if there is one."""
    tabs = [
        Tab(s.title, {c.header: c.type for c in s.columns}, s.key_column, s.deleted_column)
        for s in settings.sheets
    ]
    if settings.event_log_sheet:
        tabs.append(Tab(settings.event_log_sheet, {}, "", ""))
    return tabs


class SheetWatcher:
    """Reads the emulated spreadsheet and remembers when each row and cell last changed.

    Changes are timed when the watcher first sees them (every ``WATCH_SECONDS`` and on every
    request), so every open page highlights the same cells, however late it was opened.
    """

    def __init__(
        self,
        emulator: SheetsEmulator,
        spreadsheet_id: str,
        tabs: list[Tab],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emulator = emulator
        self.spreadsheet_id = spreadsheet_id
        self.tabs = tabs
        self.clock = clock
        self._lock = threading.Lock()
        self._rows_seen: dict[tuple[str, str], float] = {}
        self._cells: dict[tuple[str, str, str], tuple[str, float]] = {}

    def state(self) -> list[JSON]:
        """Every tab with its rendered rows, each marked new, changed or deleted."""
        with self._lock:
            now = self.clock()
            existing = set(self.emulator.sheet_titles(self.spreadsheet_id))
            return [
                self._tab_state(tab, now) if tab.title in existing else _empty(tab)
                for tab in self.tabs
            ]

    def _tab_state(self, tab: Tab, now: float) -> JSON:
        grid = self.emulator.values(self.spreadsheet_id, tab.title)
        headers = [display_cell(cell) for cell in (grid[0] if grid else [])]
        rows = []
        for number, raw in enumerate(grid[1:], start=2):
            padded = [*raw, *[None] * (len(headers) - len(raw))][: len(headers)]
            cells = [
                display_cell(value, tab.types.get(header, "text"))
                for header, value in zip(headers, padded, strict=True)
            ]
            if any(cells):
                rows.append(self._row_state(tab, headers, cells, number, now))
        return {
            "title": tab.title,
            "headers": headers,
            "rows": rows,
            "deleted_column": _index(headers, tab.deleted_column),
        }

    def _row_state(
        self, tab: Tab, headers: list[str], cells: list[str], number: int, now: float
    ) -> JSON:
        values = dict(zip(headers, cells, strict=True))
        key = values.get(tab.key_column) or f"row {number}"
        first_seen = self._rows_seen.setdefault((tab.title, key), now)
        changed = [
            index
            for index, header in enumerate(headers)
            if now - self._changed_at((tab.title, key, header), cells[index], now)
            < HIGHLIGHT_SECONDS
            and cells[index]
        ]
        return {
            "cells": cells,
            "new": now - first_seen < HIGHLIGHT_SECONDS,
            "changed": changed,
            "deleted": bool(values.get(tab.deleted_column)),
        }

    def _changed_at(self, cell: tuple[str, str, str], text: str, now: float) -> float:
        known = self._cells.get(cell)
        if known is None or known[0] != text:
            self._cells[cell] = (text, now)
            return now
        return known[1]


def build_view_app(watcher: SheetWatcher, status: Callable[[], JSON]) -> web.Application:
    """Routes: the page, its static files and ``/api/state`` (``status()`` adds the story)."""

    async def state(request: web.Request) -> web.Response:
        sheets = await asyncio.to_thread(watcher.state)
        body = {**status(), "sheets": sheets, "highlight_seconds": HIGHLIGHT_SECONDS}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def page(request: web.Request) -> web.Response:
        return _static_response("index.html")

    async def static(request: web.Request) -> web.Response:
        return _static_response(request.match_info["name"])

    async def watch(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.to_thread(watcher.state)
                await asyncio.sleep(WATCH_SECONDS)

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/state", state)
    app.cleanup_ctx.append(watch)
    return app


def _static_response(name: str) -> web.Response:
    names = {entry.name for entry in STATIC.iterdir()}
    if name not in names:
        raise web.HTTPNotFound()
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(
        body=STATIC.joinpath(name).read_bytes(),
        content_type=content_type,
        headers={"Cache-Control": "no-store"},
    )


def _empty(tab: Tab) -> JSON:
    return {"title": tab.title, "headers": [], "rows": [], "deleted_column": None}


def _index(headers: list[str], header: str) -> int | None:
    return headers.index(header) if header in headers else None
