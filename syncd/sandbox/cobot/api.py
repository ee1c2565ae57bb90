"""Cobot's resource and list endpoints: one object by URL, or lists filtered by date windows.

List endpoints answer bare JSON arrays; those that take a window require `from` and `to`
(Cobot accepts several date forms, and a bare-date `to` includes that whole day). Objects of
deleted URLs answer 404, as Cobot's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from aiohttp import web

from syncd.sandbox.cobot.catalogue import KINDS, Kind
from syncd.sandbox.cobot.endpoints import ApiError, Handler, Route, json_response
from syncd.sandbox.cobot.limits import MEMBERSHIPS_LIST
from syncd.sandbox.cobot.shapes import JSON, cobot_date
from syncd.sandbox.cobot.store import ObjectStore


class ApiKnobs(Protocol):
    """The simulator's attributes that the list endpoints read."""

    today: date
    max_window_days: int | None
    all_param_honoured: bool


_KEY_FORMAT = "%Y/%m/%d %H:%M:%S"
_UNENCODED_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def parse_moment(text: str) -> tuple[datetime, bool]:
    """A UTC datetime from any form Cobot accepts, and whether it was a bare date.

    Handles `YYYY-MM-DD`, `YYYY/MM/DD`, ISO 8601 and `2012-04-12 12:00 +0000` (also with the
    `+` turned into a space by a client that did not encode it).
    """
    text = text.strip()
    normalized = _UNENCODED_PLUS.sub(r" +\1", text[:10].replace("/", "-") + text[10:])
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC), len(text) == 10


def moment_key(value: str) -> str:
    """A string that sorts like the moment: Cobot's own UTC formats are already such strings."""
    if len(value) == 25 and value[4] == "/" and value.endswith(" +0000"):
        return value[:19]
    if len(value) == 10 and value[4] == "/":
        return value + " 00:00:00"
    return parse_moment(value)[0].strftime(_KEY_FORMAT)


@dataclass(frozen=True)
class Window:
    """A half-open [start, end) query window as sortable keys."""

    start: str
    end: str

    def holds(self, value: str | None) -> bool:
        return value is not None and self.start <= moment_key(value) < self.end

    def overlaps(self, first: str, last: str) -> bool:
        return moment_key(first) < self.end and moment_key(last) > self.start


class ResourceApi:
    """The read endpoints of Cobot's v1 API and API 2 over the object store."""

    def __init__(self, knobs: ApiKnobs, store: ObjectStore) -> None:
        self._knobs = knobs
        self._store = store

    def routes(self) -> list[Route]:
        lists: list[tuple[str, Handler, str]] = [
            ("/api/memberships", self._list_memberships, "read_memberships"),
            ("/api/memberships/cancellations", self._list_cancellations, "read_memberships"),
            ("/api/invoices", self._list_invoices, "read_invoices"),
            ("/api/bookings", self._list_bookings, "read_bookings"),
            ("/api/work_sessions", self._list_work_sessions, "read_check_ins"),
            ("/api/check_ins", self._list_todays_check_ins, "read_check_ins"),
            ("/api/guest_accounts", self._list_guest_accounts, "read_guest_accounts"),
        ]
        routes = [
            Route(
                "GET",
                path,
                handler,
                scope,
                faultable=True,
                bucket=MEMBERSHIPS_LIST if path == "/api/memberships" else None,
            )
            for path, handler, scope in lists
        ]
        routes += [
            Route(
                "GET",
                kind.route,
                self._show_handler(kind),
                kind.scope,
                api2=kind.api2,
                faultable=True,
            )
            for kind in KINDS.values()
        ]
        return routes

    def _show_handler(self, kind: Kind) -> Handler:
        async def show(request: web.Request) -> web.Response:
            view = self._store.served(kind, request.match_info["id"])
            if view is None:
                raise ApiError(404, f"{kind.name} not found")
            return json_response(view, api2=kind.api2)

        return show

    def _listing(self, kind: str, keep: Callable[[JSON], bool] = lambda obj: True) -> web.Response:
        return json_response(self._store.select(kind, keep))

    def _window(self, request: web.Request) -> Window:
        """The required from/to window; a bare-date `to` includes that whole day."""
        try:
            start, _ = parse_moment(request.query["from"])
            end, date_only = parse_moment(request.query["to"])
        except KeyError:
            raise ApiError(422, "from and to are required") from None
        except ValueError as exc:
            raise ApiError(422, f"Invalid from/to: {exc}") from None
        end += timedelta(days=1) if date_only else timedelta()
        if end < start:
            raise ApiError(422, "to must not be before from")
        max_days = self._knobs.max_window_days
        if max_days is not None and end - start > timedelta(days=max_days):
            raise ApiError(422, f"The window may span at most {max_days} days")
        return Window(start.strftime(_KEY_FORMAT), end.strftime(_KEY_FORMAT))

    async def _list_memberships(self, request: web.Request) -> web.Response:
        """Current members; `all=true` adds unconfirmed and ended ones; `attributes` trims."""
        include_all = request.query.get("all") == "true" and self._knobs.all_param_honoured
        today = moment_key(cobot_date(self._knobs.today))
        members = self._store.select("membership", lambda m: include_all or _is_current(m, today))
        fields = [name for name in request.query.get("attributes", "").split(",") if name]
        if fields:
            members = [{key: m[key] for key in fields if key in m} for m in members]
        return json_response(members)

    async def _list_cancellations(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing("membership", lambda m: window.holds(m.get("canceled_to")))

    async def _list_invoices(self, request: web.Request) -> web.Response:
        """By `ids=a,b,c` (unknown ids skipped) or by creation date within from/to."""
        if "ids" in request.query:
            spec, wanted = KINDS["invoice"], request.query["ids"].split(",")
            found = [self._store.served(spec, invoice_id) for invoice_id in wanted]
            return json_response([view for view in found if view is not None])
        window = self._window(request)
        return self._listing("invoice", lambda invoice: window.holds(invoice["created_at"]))

    async def _list_bookings(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing(
            "booking", lambda booking: window.overlaps(booking["from"], booking["to"])
        )

    async def _list_work_sessions(self, request: web.Request) -> web.Response:
        window = self._window(request)
        return self._listing("check_in", lambda check_in: window.holds(check_in["valid_from"]))

    async def _list_todays_check_ins(self, request: web.Request) -> web.Response:
        today = cobot_date(self._knobs.today)
        return self._listing("check_in", lambda c: moment_key(c["valid_from"])[:10] == today)

    async def _list_guest_accounts(self, request: web.Request) -> web.Response:
        return self._listing("guest_account")


def _is_current(membership: JSON, today_key: str) -> bool:
    """Confirmed, started, and not past its cancellation date."""
    if membership.get("confirmed_at") is None:
        return False
    starts, ends = membership.get("starts_at"), membership.get("canceled_to")
    started = starts is None or moment_key(starts) <= today_key
    return started and (ends is None or moment_key(ends) >= today_key)
