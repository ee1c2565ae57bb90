"""Deterministic synthetic Cobot objects in the shapes the real API returns.

The simulator, the demo and the benchmarks serve these objects: v1 memberships, invoices,
bookings, check-ins and smaller resources, and for drop-in passes and the space subscription
API 2 JSON:API documents. Every value is invented; a seeded RNG makes a run reproducible.

Cobot publishes no shape for admins, check-in tokens or the API 2 space subscription; those
shapes are plausible inventions and say so where they are built.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from syncd.sandbox.cobot.picks import RandomPicks
from syncd.sandbox.cobot.samples import (
    BOOKING_TITLES,
    DAY_PASS_ID,
    DAY_PASS_PRICE,
    MEMBERSHIP_STATES,
    PAYMENT_METHODS,
    PLANS,
    RESOURCES,
    SPACE_ADDRESS,
    SPACE_URL,
    TAX_RATE,
    Plan,
)
from syncd.sandbox.cobot.shapes import (
    COBOT_DATE,
    JSON,
    cobot_date,
    cobot_datetime,
    invoice_item,
    invoice_recipient,
    invoice_totals,
    membership_ref,
    money,
    plan_object,
    price_with_tax,
)


@dataclass
class _Member:
    """What the bulk generator needs to know about a member to attach invoices to it."""

    data: JSON
    active_from: date
    active_to: date


@dataclass
class SpaceData:
    """Objects of one generated space, per simulator kind, in generation order."""

    objects: dict[str, list[JSON]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {kind: len(items) for kind, items in self.objects.items()}


class CobotDataGenerator:
    """Builds Cobot objects from a seeded RNG, relative to a fixed `today`.

    Each builder takes keyword overrides that replace generated top-level fields, so a test can
    pin exactly the values it asserts on and leave the rest realistic. `hostile` puts values
    from HOSTILE_VALUES into free-text fields; left as None it follows `hostile_rate`.
    """

    def __init__(
        self,
        seed: int = 1,
        *,
        today: date | None = None,
        hostile_rate: float = 0.0,
        space_url: str = SPACE_URL,
    ) -> None:
        self.pick = RandomPicks(seed, hostile_rate)
        self.rng = self.pick.rng
        self.today = today or datetime.now(UTC).date()
        self.space_url = space_url
        self._customer_numbers = iter(range(10001, 10**9))
        self._invoice_numbers = iter(range(1001, 10**9))
        self._check_in_numbers = iter(range(1, 10**9))
        self._guest_numbers = iter(range(12345, 10**9))

    def reseed(self, seed: int) -> None:
        """Restart the RNG while keeping number sequences, so invoice numbers never repeat."""
        self.rng.seed(seed)

    # -- memberships ----------------------------------------------------------------------

    def plan(self, plan: Plan | None = None, *, canceled_to: str | None = None) -> JSON:
        """A membership's `plan` object (default: a random plan's) with derived totals."""
        return plan_object(plan or self.rng.choice(PLANS), canceled_to)

    def membership(
        self,
        *,
        state: str = "confirmed",
        since: date | None = None,
        hostile: bool | None = None,
        **overrides: Any,
    ) -> JSON:
        """A v1 membership; `state` is confirmed, unconfirmed or canceled (date in the past).

        Confirmed memberships started between `since` (default: a year ago) and today. About
        one in ten has no Cobot login (`user: null`), as with members an admin typed in.
        """
        if state not in MEMBERSHIP_STATES:
            raise ValueError(f"state must be one of {MEMBERSHIP_STATES}, not {state!r}")
        hostile = self.pick.is_hostile(hostile)
        name, email = self.pick.person()
        name = self.pick.text(name, hostile)
        starts = self.pick.day_between(since or self.today - timedelta(days=365), self.today)
        canceled_to = None
        if state == "canceled":
            canceled_to = cobot_date(self.pick.day_between(starts, self.today - timedelta(days=1)))
        confirmed = state != "unconfirmed"
        has_user = self.rng.random() >= 0.1
        payment = self.rng.choice((None, *PAYMENT_METHODS))
        membership = {
            "id": self.pick.hex_id(),
            "name": name,
            "email": email,
            "phone": self.pick.phone(hostile),
            "user": {"id": self.pick.hex_id(), "email": email} if has_user else None,
            "picture": f"{self.space_url}/pictures/default.png",
            "address": self.pick.address(name, hostile),
            "billing_emails": [email] if self.rng.random() < 0.3 else [],
            "charge_taxes": self.rng.random() >= 0.05,
            "customer_number": str(next(self._customer_numbers)) if confirmed else None,
            "plan": self.plan(canceled_to=canceled_to),
            "upcoming_plan": None,
            "payment_method": {"name": payment[0], "automated": payment[1]} if payment else None,
            "confirmed_at": cobot_datetime(self.pick.moment(starts, 8, 18)) if confirmed else None,
            "starts_at": cobot_date(starts) if confirmed else None,
            "joined_at": cobot_date(starts) if confirmed else None,
            "canceled_to": canceled_to,
            "next_invoice_at": self._next_invoice_at() if state == "confirmed" else None,
            "team_id": None,
        }
        if not confirmed:
            requested = self.today + timedelta(days=self.rng.randint(1, 30))
            membership["requested_starts_at"] = cobot_date(requested)
        return {**membership, **overrides}

    def _next_invoice_at(self) -> str:
        year, month = self.today.year, self.today.month
        return cobot_date(date(year + month // 12, month % 12 + 1, 1))

    # -- invoices -------------------------------------------------------------------------

    def invoice(
        self,
        member: Mapping[str, Any] | None = None,
        *,
        created: date | None = None,
        hostile: bool | None = None,
        **overrides: Any,
    ) -> JSON:
        """A v1 invoice for `member` (a v1 membership; default: a made-up one).

        Lines bill the member's plan, sometimes room hours and extras; totals, taxes and paid
        state are derived from the lines so that they always add up like Cobot's do.
        """
        member = member if member is not None else self.membership()
        hostile = self.pick.is_hostile(hostile)
        created = created or self.today
        number = next(self._invoice_numbers)
        items = self._invoice_items(member, created, hostile)
        paid = created < self.today - timedelta(days=3) and self.rng.random() < 0.8
        paid_at = created + timedelta(days=self.rng.randint(0, 3))
        invoice_id = self.pick.hex_id()
        invoice = {
            "id": invoice_id,
            "url": f"{self.space_url}/api/invoices/{invoice_id}",
            "created_at": cobot_date(created),
            "paid_at": cobot_date(paid_at) if paid else None,
            "charge_at": None,
            "due_date": cobot_date(created + timedelta(days=14)),
            "eInvoicingReady": False,
            "currency": "EUR",
            "membership_id": member["id"],
            "contact_id": None,
            "address": invoice_recipient(member),
            "space_address": dict(SPACE_ADDRESS),
            "invoice_text": "Thank you for working with us.",
            "tax_name": "VAT",
            "tax_id_name": "VAT ID",
            "tax_id": "DE000000000",
            "invoice_number": number,
            "formatted_invoice_number": f"{created.year}-EX-{number}",
            "customer_number": int(member.get("customer_number") or 0) or None,
            "items": [{**item, "paid": paid} for item in items],
            **invoice_totals(items, paid),
            "paid": paid,
            "sent": paid or self.rng.random() < 0.7,
            "paid_status": "paid" if paid else "unpaid",
        }
        invoice["sent_status"] = "sent" if invoice["sent"] else "unsent"
        automated = bool((member.get("payment_method") or {}).get("automated"))
        invoice["can_charge"] = automated and not paid
        return {**invoice, **overrides}

    def _invoice_items(self, member: Mapping[str, Any], created: date, hostile: bool) -> list[JSON]:
        plan = member.get("plan") or self.plan()
        month = calendar.month_name[created.month]
        fee = Decimal(plan["price_per_cycle"])
        lines = [(f"{plan['name']} ({month})", fee, Decimal(1), plan.get("accounting_code"))]
        if self.rng.random() < 0.4:
            room = self.rng.choice(RESOURCES[:2])
            hours = Decimal(self.rng.randint(1, 4))
            description = self.pick.text(f"{room.name}, 1h", hostile)
            lines.append((description, room.price_per_hour, hours, room.accounting_code))
        lines += [
            (extra["name"], Decimal(extra["price"]), Decimal(1), None)
            for extra in plan.get("extras", [])
        ]
        return [
            invoice_item(f"{self.rng.getrandbits(56):014x}", member["id"], *line) for line in lines
        ]

    # -- bookings and check-ins -----------------------------------------------------------

    def booking(
        self,
        member: Mapping[str, Any] | None = None,
        *,
        start: datetime | None = None,
        hostile: bool | None = None,
        **overrides: Any,
    ) -> JSON:
        """A v1 booking of 1 to 4 hours (default: in the next two weeks); price is a number."""
        hostile = self.pick.is_hostile(hostile)
        resource = self.rng.choice(RESOURCES)
        if start is None:
            day = self.today + timedelta(days=self.rng.randint(0, 14))
            start = self.pick.moment(day, 8, 18).replace(minute=self.rng.choice((0, 30)))
        hours = self.rng.randint(1, 4)
        created = start - timedelta(days=self.rng.randint(1, 20), minutes=self.rng.randint(0, 600))
        member = member if member is not None else self.membership()
        booking_id = self.pick.hex_id()
        booking = {
            "id": booking_id,
            "url": f"{self.space_url}/api/bookings/{booking_id}",
            "from": cobot_datetime(start),
            "to": cobot_datetime(start + timedelta(hours=hours)),
            "title": self.pick.text(self.rng.choice(BOOKING_TITLES), hostile),
            "comments": self.rng.choice((None, None, "Projector please", "Coffee for six")),
            "resource": {"id": resource.id, "name": resource.name},
            "membership": membership_ref(member),
            "price": float(resource.price_per_hour * hours),
            "has_custom_price": False,
            "currency": "EUR",
            "tax_rate": str(TAX_RATE),
            "accounting_code": resource.accounting_code,
            "units": hours,
            "can_change": start.date() >= self.today,
            "created_at": cobot_datetime(created),
            "updated_at": cobot_datetime(created),
        }
        return {**booking, **overrides}

    def check_in(
        self,
        member: Mapping[str, Any] | None = None,
        *,
        day: date | None = None,
        **overrides: Any,
    ) -> JSON:
        """A v1 check-in (work session) on `day` (default today), valid until 04:00 next day."""
        member = member if member is not None else self.membership()
        start = self.pick.moment(day or self.today, 7, 11)
        check_in = {
            "id": f"{next(self._check_in_numbers):08d}",
            "valid_from": cobot_datetime(start),
            "valid_until": cobot_datetime(
                datetime.combine(start.date(), time(3, 59, 59)) + timedelta(days=1)
            ),
            "membership_id": member["id"],
            "membership": membership_ref(member),
        }
        if self.rng.random() < 0.3:
            check_in["time_pass"] = {"id": DAY_PASS_ID}
        return {**check_in, **overrides}

    # -- smaller resources ----------------------------------------------------------------

    def guest_account(self, **overrides: Any) -> JSON:
        """A wifi guest account, `{id, login, expires_after}` as Cobot documents it."""
        number = next(self._guest_numbers)
        expires = self.pick.moment(self.today + timedelta(days=self.rng.randint(1, 30)), 0, 23)
        account = {
            "id": str(number),
            "login": f"guest-{number}",
            "expires_after": cobot_datetime(expires),
        }
        return {**account, **overrides}

    def admin(self, **overrides: Any) -> JSON:
        """A space admin. Cobot documents no shape; this one mirrors a membership's user."""
        name, email = self.pick.person()
        admin = {
            "id": self.pick.hex_id(),
            "name": name,
            "email": email,
            "user": {"id": self.pick.hex_id(), "email": email},
        }
        return {**admin, **overrides}

    def check_in_token(self, member: Mapping[str, Any] | None = None, **overrides: Any) -> JSON:
        """An RFID/NFC check-in token. Shape inferred from the `{membership_id, token}` POST."""
        member = member if member is not None else self.membership()
        token = {
            "id": self.pick.hex_id(),
            "token": f"{self.rng.getrandbits(40):010X}",
            "membership_id": member["id"],
            "membership": membership_ref(member),
            "created_at": cobot_datetime(self.pick.moment(self.today, 8, 18)),
        }
        return {**token, **overrides}

    def drop_in_pass(
        self, *, id: str | None = None, hostile: bool | None = None, **attributes: Any
    ) -> JSON:
        """An API 2 drop-in pass document; keyword arguments override attributes."""
        hostile = self.pick.is_hostile(hostile)
        name, email = self.pick.person()
        name = self.pick.text(name, hostile)
        valid_on = self.today + timedelta(days=self.rng.randint(0, 10))
        gross = price_with_tax(DAY_PASS_PRICE)
        defaults = {
            "name": name,
            "validOn": valid_on.isoformat(),
            "email": email,
            "phone": self.pick.phone(hostile),
            "onboardingInstructions": "Ask for the wifi code at the front desk.",
            "taxId": None,
            "price": {
                "net": money(DAY_PASS_PRICE),
                "gross": money(gross),
                "currency": "EUR",
                "taxes": [
                    {"name": "VAT", "rate": str(TAX_RATE), "amount": money(gross - DAY_PASS_PRICE)}
                ],
            },
            "comments": None,
            "billingAddress": {"company": None, "name": name, "fullAddress": None},
            "timeAvailability": [
                {
                    "from": "08:00",
                    "to": "20:00",
                    "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                }
            ],
        }
        data = {"id": id or self.pick.uuid4(), "type": "drop_in_passes"}
        return {"data": {**data, "attributes": {**defaults, **attributes}}}

    def space_subscription(self, space_id: str, **attributes: Any) -> JSON:
        """What a space pays Cobot (API 2). Cobot documents no shape; this one is invented."""
        defaults = {
            "planName": "Cobot Pro",
            "billingCycle": "monthly",
            "price": {"net": "179.0", "gross": "213.01", "currency": "EUR"},
            "extras": ["Wifi guest accounts", "Drop-in passes"],
            "updatedAt": datetime.combine(self.today, time(9)).isoformat() + "Z",
        }
        data = {"id": space_id, "type": "space_subscriptions"}
        return {"data": {**data, "attributes": {**defaults, **attributes}}}

    # -- a whole space --------------------------------------------------------------------

    def space(
        self,
        *,
        members: int = 500,
        invoices: int = 3000,
        bookings: int = 2000,
        check_ins: int = 1000,
        years: float = 2,
    ) -> SpaceData:
        """A space with `years` of history: about 75% confirmed, 10% unconfirmed, 15% canceled.

        Invoices fall inside their member's active period and are numbered in date order;
        bookings also reach a month into the future.
        """
        since = self.today - timedelta(days=round(365 * years))
        people = [self._space_member(since) for _ in range(members)]
        billable = [member for member in people if member.data["starts_at"]] or people[:1]
        if not billable and invoices + bookings + check_ins:
            raise ValueError("invoices, bookings and check-ins need at least one member")
        return SpaceData(
            {
                "membership": [member.data for member in people],
                "invoice": self._space_invoices(billable, invoices),
                "booking": self._space_bookings(billable, since, bookings),
                "check_in": self._space_check_ins(billable, since, check_ins),
            }
        )

    def _space_member(self, since: date) -> _Member:
        roll = self.rng.random()
        state = "unconfirmed" if roll < 0.10 else "canceled" if roll < 0.25 else "confirmed"
        data = self.membership(state=state, since=since)
        starts = data["starts_at"]
        active_from = datetime.strptime(starts, COBOT_DATE).date() if starts else self.today
        ended = data["canceled_to"]
        active_to = datetime.strptime(ended, COBOT_DATE).date() if ended else self.today
        return _Member(data, active_from, active_to)

    def _space_invoices(self, members: list[_Member], count: int) -> list[JSON]:
        picks = []
        for _ in range(count):
            member = self.rng.choice(members)
            picks.append((self.pick.day_between(member.active_from, member.active_to), member))
        picks.sort(key=lambda pick: pick[0])
        return [self.invoice(member.data, created=day) for day, member in picks]

    def _space_bookings(self, members: list[_Member], since: date, count: int) -> list[JSON]:
        until = self.today + timedelta(days=30)
        result = []
        for _ in range(count):
            start = self.pick.moment(self.pick.day_between(since, until), 7, 19).replace(minute=0)
            member = self.rng.choice(members).data
            booking = self.booking(member, start=start)
            if self.rng.random() < 0.1:
                booking["membership"] = None
            result.append(booking)
        return result

    def _space_check_ins(self, members: list[_Member], since: date, count: int) -> list[JSON]:
        result = []
        for _ in range(count):
            member = self.rng.choice(members)
            day = self.pick.day_between(max(since, member.active_from), member.active_to)
            result.append(self.check_in(member.data, day=day))
        return result
