"""Deterministic synthetic Cobot objects in the shapes the real API returns.

The daemon maps Cobot JSON onto sheet columns by path, so the simulator, the demo and the
benchmarks must serve objects whose field names, nesting and value types match Cobot's v1 API
(dates as ``YYYY/MM/DD``, datetimes as ``YYYY/MM/DD HH:MM:SS +0000``, money as decimal strings,
booking prices as JSON numbers) and, for drop-in passes and the space subscription, API 2
JSON:API documents. Every value is invented; a seeded RNG makes a run reproducible.

Cobot publishes no shape for admins, check-in tokens or the API 2 space subscription; those
shapes are plausible inventions and say so where they are built.
"""

from __future__ import annotations

import calendar
import random
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

JSON = dict[str, Any]

SPACE_URL = "https://example-space.cobot.me"
COBOT_DATE = "%Y/%m/%d"
COBOT_DATETIME = "%Y/%m/%d %H:%M:%S +0000"
CENT = Decimal("0.01")

# Values that spreadsheets treat as formulas, or that break naive CSV/cell handling. Real members
# do type such things into their profile, so the daemon must write them as plain text.
HOSTILE_VALUES: tuple[str, ...] = (
    '=HYPERLINK("http://x")',
    "+1 555",
    "-2+3",
    "@SUM(A1:A9)",
    "=cmd|' /C calc'!A0",
    "\tTabbed Name",
    "Zoë O'Brien-Ñúñez 🚀",
    "Line one\nLine two",
)

FIRST_NAMES = (
    "Ada", "Bo", "Cy", "Dana", "Eli", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
    "Mateo", "Nora", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Vik", "Wen", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Novak", "Schmidt", "Okafor", "Tanaka", "García", "Müller", "Haddad", "Kowalski", "Lindqvist",
    "O'Neill", "Rossi", "Nguyen", "Fischer", "Ahmed", "Dubois", "Jensen",
)  # fmt: skip
CITIES = (
    ("Berlin", "10115", "Germany"),
    ("Munich", "80331", "Germany"),
    ("Hamburg", "20095", "Germany"),
    ("Leipzig", "04109", "Germany"),
    ("Vienna", "1010", "Austria"),
)
STREETS = ("Sample Street", "Placeholder Road", "Example Avenue", "Demo Lane", "Mock Square")
COMPANIES = ("Example Analytics Ltd", "Placeholder Studio", "Demo Robotics GmbH", "Fictive Labs")
EMAIL_DOMAINS = ("example.org", "example.net", "example.com")
BOOKING_TITLES = ("Team sync", "Client workshop", "Interview", "Podcast recording", "Board meeting")
PAYMENT_METHODS = (("Bank transfer", False), ("Credit card", True), ("SEPA direct debit", True))

SPACE_ADDRESS: JSON = {
    "name": "Example Coworking",
    "full_address": "9 Demo Plaza\n10117 Berlin\nGermany",
    "company": "Example Coworking GmbH",
    "country": "Germany",
}


@dataclass(frozen=True)
class Resource:
    """A bookable room; the hourly price drives booking prices and invoice lines."""

    id: str
    name: str
    price_per_hour: Decimal
    accounting_code: str | None


RESOURCES = (
    Resource("r0000000000000000000000000000001", "Meeting Room A", Decimal("12.5"), "ROOMS"),
    Resource("r0000000000000000000000000000002", "Event Hall", Decimal("60"), "EVENTS"),
    Resource("r0000000000000000000000000000003", "Phone Booth", Decimal("0"), None),
    Resource("r0000000000000000000000000000004", "Podcast Studio", Decimal("25"), "ROOMS"),
)


@dataclass(frozen=True)
class Plan:
    """A membership plan; memberships embed it and invoices bill it."""

    id: str
    name: str
    description: str
    price: Decimal
    cancellation_period: int
    accounting_code: str | None
    extras: tuple[tuple[str, Decimal], ...] = ()
    credit_hours: Decimal | None = None
    day_passes: int | None = None


PLANS = (
    Plan("p0000000000000000000000000000001", "Full Time Desk", "Fixed desk, 24/7 access",
         Decimal("250"), 30, "DESK-FT", extras=(("Locker", Decimal("15")),),
         credit_hours=Decimal("4")),
    Plan("p0000000000000000000000000000002", "Flex 10", "10 days per month", Decimal("120"), 14,
         None, day_passes=10),
    Plan("p0000000000000000000000000000003", "Hot Desk", "Any free desk, weekdays", Decimal("180"),
         30, "DESK-HOT"),
    Plan("p0000000000000000000000000000004", "Private Office", "Lockable office for four",
         Decimal("900"), 90, "OFFICE", extras=(("Parking", Decimal("60")),)),
    Plan("p0000000000000000000000000000005", "Virtual Office", "Business address and mail",
         Decimal("49"), 30, "VIRTUAL"),
)  # fmt: skip

MEMBERSHIP_STATES = ("confirmed", "unconfirmed", "canceled")
TAX_RATE = Decimal("19.0")
DAY_PASS_ID = "t0000000000000000000000000000001"
DAY_PASS_PRICE = Decimal("15")


def money(value: Decimal) -> str:
    """Cobot's decimal strings: cents precision, trailing zero dropped ("100.0", "2.38")."""
    text = f"{value.quantize(CENT, ROUND_HALF_UP):f}"
    return text[:-1] if text.endswith("0") else text


def cobot_date(value: date) -> str:
    return value.strftime(COBOT_DATE)


def cobot_datetime(value: datetime) -> str:
    """Format in UTC, the only offset Cobot's v1 examples ever show."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(COBOT_DATETIME)


def membership_ref(membership: Mapping[str, Any]) -> JSON:
    """The `{id, name}` stub that bookings and check-ins embed."""
    return {"id": membership["id"], "name": membership["name"]}


def deleted_booking_payload(booking: Mapping[str, Any]) -> JSON:
    """The `booking` object of a deleted_booking webhook: a subset, with price as a string."""
    keys = ("id", "from", "to", "title", "comments", "resource", "membership", "units")
    payload = {key: booking.get(key) for key in keys}
    payload["price"] = money(Decimal(str(booking.get("price") or 0)))
    payload["currency"] = booking.get("currency")
    payload["tax_rate"] = booking.get("tax_rate")
    return payload


def _ascii(text: str) -> str:
    """Email-safe form of a name ("Zoë O'Brien" -> "zoeobrien")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _price_with_tax(net: Decimal) -> Decimal:
    return net + (net * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)


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
        self.rng = random.Random(seed)
        self.today = today or datetime.now(UTC).date()
        self.hostile_rate = hostile_rate
        self.space_url = space_url
        self._customer_numbers = iter(range(10001, 10**9))
        self._invoice_numbers = iter(range(1001, 10**9))
        self._check_in_numbers = iter(range(1, 10**9))
        self._guest_numbers = iter(range(12345, 10**9))

    def reseed(self, seed: int) -> None:
        """Restart the RNG while keeping number sequences, so invoice numbers never repeat."""
        self.rng.seed(seed)

    # -- small random helpers -------------------------------------------------------------

    def _hex_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _day_between(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, max(0, (end - start).days)))

    def _at(self, day: date, first_hour: int, last_hour: int) -> datetime:
        """A moment on `day` between the two hours, on a five-minute mark."""
        moment = time(self.rng.randint(first_hour, last_hour), self.rng.randrange(0, 60, 5))
        return datetime.combine(day, moment)

    def _is_hostile(self, hostile: bool | None) -> bool:
        return self.rng.random() < self.hostile_rate if hostile is None else hostile

    def _text(self, normal: str, hostile: bool) -> str:
        return self.rng.choice(HOSTILE_VALUES) if hostile else normal

    def _person(self) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{_ascii(first)}.{_ascii(last)}{self.rng.randint(1, 999)}@"
        return f"{first} {last}", email + self.rng.choice(EMAIL_DOMAINS)

    # -- memberships ----------------------------------------------------------------------

    def plan(self, plan: Plan | None = None, *, canceled_to: str | None = None) -> JSON:
        """A membership's `plan` object with derived totals."""
        plan = plan or self.rng.choice(PLANS)
        extras_total = sum((price for _, price in plan.extras), Decimal(0))
        return {
            "name": plan.name,
            "description": plan.description,
            "parent_plan": {"id": plan.id},
            "price_per_cycle_in_cents": int(plan.price * 100),
            "price_per_cycle": money(plan.price),
            "tax_rate": str(TAX_RATE),
            "cycle_duration": 1,
            "currency": "EUR",
            "cancellation_period": plan.cancellation_period,
            "canceled_to": canceled_to,
            "total_price_per_cycle": money(_price_with_tax(plan.price + extras_total)),
            "accounting_code": plan.accounting_code,
            "booking_credits": self._booking_credits(plan),
            "extras": [self._extra(name, price) for name, price in plan.extras],
            "time_passes": [self._day_pass(plan.day_passes)] if plan.day_passes else [],
        }

    @staticmethod
    def _booking_credits(plan: Plan) -> list[JSON]:
        if plan.credit_hours is None:
            return []
        room = RESOURCES[0]
        return [
            {
                "resources": [{"id": room.id, "name": room.name}],
                "hours": str(plan.credit_hours.quantize(Decimal("0.1"))),
                "price_per_hour": money(room.price_per_hour),
            }
        ]

    @staticmethod
    def _extra(name: str, price: Decimal) -> JSON:
        return {
            "name": name,
            "price_in_cents": int(price * 100),
            "price": money(price),
            "tax_rate": str(TAX_RATE),
            "currency": "EUR",
        }

    @staticmethod
    def _day_pass(included: int) -> JSON:
        return {
            "id": DAY_PASS_ID,
            "name": "Day Pass",
            "price_in_cents": int(DAY_PASS_PRICE * 100),
            "price": money(DAY_PASS_PRICE),
            "tax_rate": str(TAX_RATE),
            "currency": "EUR",
            "timespans": "8-20",
            "parsed_timespans": [
                {"from_hour": 8, "from_minute": 0, "to_hour": 20, "to_minute": 0, "weekdays": []}
            ],
            "included_per_timespan": included,
            "included_timespan": "month",
            "discounts": [],
        }

    def _address(self, name: str, hostile: bool) -> JSON:
        city, post_code, country = self.rng.choice(CITIES)
        street = f"{self.rng.randint(1, 120)} {self.rng.choice(STREETS)}"
        company = self.rng.choice((None, None, *COMPANIES))
        return {
            "company": self._text(company, hostile) if company or hostile else None,
            "name": name,
            "full_address": f"{street}\n{post_code} {city}\n{country}",
            "address": street,
            "post_code": post_code,
            "city": city,
            "state": None,
            "country": country,
        }

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
        hostile = self._is_hostile(hostile)
        name, email = self._person()
        name = self._text(name, hostile)
        starts = self._day_between(since or self.today - timedelta(days=365), self.today)
        canceled_to = None
        if state == "canceled":
            canceled_to = cobot_date(self._day_between(starts, self.today - timedelta(days=1)))
        confirmed = state != "unconfirmed"
        has_user = self.rng.random() >= 0.1
        payment = self.rng.choice((None, *PAYMENT_METHODS))
        membership = {
            "id": self._hex_id(),
            "name": name,
            "email": email,
            "phone": self._phone(hostile),
            "user": {"id": self._hex_id(), "email": email} if has_user else None,
            "picture": f"{self.space_url}/pictures/default.png",
            "address": self._address(name, hostile),
            "billing_emails": [email] if self.rng.random() < 0.3 else [],
            "charge_taxes": self.rng.random() >= 0.05,
            "customer_number": str(next(self._customer_numbers)) if confirmed else None,
            "plan": self.plan(canceled_to=canceled_to),
            "upcoming_plan": None,
            "payment_method": {"name": payment[0], "automated": payment[1]} if payment else None,
            "confirmed_at": cobot_datetime(self._at(starts, 8, 18)) if confirmed else None,
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

    def _phone(self, hostile: bool) -> str | None:
        if hostile:
            return "+1 555"
        if self.rng.random() < 0.2:
            return None
        return f"+49 30 {self.rng.randint(1000000, 9999999)}"

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
        hostile = self._is_hostile(hostile)
        created = created or self.today
        number = next(self._invoice_numbers)
        items = self._invoice_items(member, created, hostile)
        paid = created < self.today - timedelta(days=3) and self.rng.random() < 0.8
        paid_at = created + timedelta(days=self.rng.randint(0, 3))
        invoice_id = self._hex_id()
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
            "address": self._recipient(member),
            "space_address": dict(SPACE_ADDRESS),
            "invoice_text": "Thank you for working with us.",
            "tax_name": "VAT",
            "tax_id_name": "VAT ID",
            "tax_id": "DE000000000",
            "invoice_number": number,
            "formatted_invoice_number": f"{created.year}-EX-{number}",
            "customer_number": int(member.get("customer_number") or 0) or None,
            "items": [{**item, "paid": paid} for item in items],
            **self._invoice_totals(items, paid),
            "paid": paid,
            "sent": paid or self.rng.random() < 0.7,
            "paid_status": "paid" if paid else "unpaid",
        }
        invoice["sent_status"] = "sent" if invoice["sent"] else "unsent"
        automated = bool((member.get("payment_method") or {}).get("automated"))
        invoice["can_charge"] = automated and not paid
        return {**invoice, **overrides}

    @staticmethod
    def _recipient(member: Mapping[str, Any]) -> JSON:
        address = member.get("address") or {}
        return {
            "name": address.get("name") or member.get("name"),
            "full_address": address.get("full_address"),
            "company": address.get("company"),
            "country": address.get("country"),
        }

    def _invoice_items(self, member: Mapping[str, Any], created: date, hostile: bool) -> list[JSON]:
        plan = member.get("plan") or self.plan()
        month = calendar.month_name[created.month]
        fee = Decimal(plan["price_per_cycle"])
        lines = [(f"{plan['name']} ({month})", fee, Decimal(1), plan.get("accounting_code"))]
        if self.rng.random() < 0.4:
            room = self.rng.choice(RESOURCES[:2])
            hours = Decimal(self.rng.randint(1, 4))
            description = self._text(f"{room.name}, 1h", hostile)
            lines.append((description, room.price_per_hour, hours, room.accounting_code))
        lines += [
            (extra["name"], Decimal(extra["price"]), Decimal(1), None)
            for extra in plan.get("extras", [])
        ]
        return [self._invoice_item(member["id"], *line) for line in lines]

    def _invoice_item(
        self,
        membership_id: str,
        description: str,
        amount: Decimal,
        quantity: Decimal,
        accounting_code: str | None,
    ) -> JSON:
        unit_tax = (amount * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)
        total = amount * quantity
        total_tax = (total * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)
        return {
            "id": f"{self.rng.getrandbits(56):014x}",
            "paid": False,
            "amount": money(amount),
            "description": description,
            "quantity": str(quantity.quantize(Decimal("0.1"))),
            "tax_rate": str(TAX_RATE),
            "tax_amount": money(unit_tax),
            "amount_with_tax": money(amount + unit_tax),
            "total_amount": money(total),
            "total_amount_with_tax": money(total + total_tax),
            "total_tax_amount": money(total_tax),
            "accounting_code": accounting_code,
            "cost_center": None,
            "membership_id": membership_id,
        }

    @staticmethod
    def _invoice_totals(items: list[JSON], paid: bool) -> JSON:
        net = sum((Decimal(item["total_amount"]) for item in items), Decimal(0))
        tax = sum((Decimal(item["total_tax_amount"]) for item in items), Decimal(0))
        gross = money(net + tax)
        return {
            "total_amount": gross,
            "total_amount_without_taxes": money(net),
            "payable_amount": gross,
            "total_paid_amount": gross if paid else "0.0",
            "taxes": [{"name": "VAT", "rate": str(TAX_RATE), "amount": money(tax)}],
        }

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
        hostile = self._is_hostile(hostile)
        resource = self.rng.choice(RESOURCES)
        if start is None:
            day = self.today + timedelta(days=self.rng.randint(0, 14))
            start = self._at(day, 8, 18).replace(minute=self.rng.choice((0, 30)))
        hours = self.rng.randint(1, 4)
        created = start - timedelta(days=self.rng.randint(1, 20), minutes=self.rng.randint(0, 600))
        member = member if member is not None else self.membership()
        booking_id = self._hex_id()
        booking = {
            "id": booking_id,
            "url": f"{self.space_url}/api/bookings/{booking_id}",
            "from": cobot_datetime(start),
            "to": cobot_datetime(start + timedelta(hours=hours)),
            "title": self._text(self.rng.choice(BOOKING_TITLES), hostile),
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
        start = self._at(day or self.today, 7, 11)
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
        expires = self._at(self.today + timedelta(days=self.rng.randint(1, 30)), 0, 23)
        account = {
            "id": str(number),
            "login": f"guest-{number}",
            "expires_after": cobot_datetime(expires),
        }
        return {**account, **overrides}

    def admin(self, **overrides: Any) -> JSON:
        """A space admin. Cobot documents no shape; this one mirrors a membership's user."""
        name, email = self._person()
        admin = {
            "id": self._hex_id(),
            "name": name,
            "email": email,
            "user": {"id": self._hex_id(), "email": email},
        }
        return {**admin, **overrides}

    def check_in_token(self, member: Mapping[str, Any] | None = None, **overrides: Any) -> JSON:
        """An RFID/NFC check-in token. Shape inferred from the `{membership_id, token}` POST."""
        member = member if member is not None else self.membership()
        token = {
            "id": self._hex_id(),
            "token": f"{self.rng.getrandbits(40):010X}",
            "membership_id": member["id"],
            "membership": membership_ref(member),
            "created_at": cobot_datetime(self._at(self.today, 8, 18)),
        }
        return {**token, **overrides}

    def drop_in_pass(
        self, *, id: str | None = None, hostile: bool | None = None, **attributes: Any
    ) -> JSON:
        """An API 2 drop-in pass document; keyword arguments override attributes."""
        hostile = self._is_hostile(hostile)
        name, email = self._person()
        name = self._text(name, hostile)
        valid_on = self.today + timedelta(days=self.rng.randint(0, 10))
        gross = _price_with_tax(DAY_PASS_PRICE)
        defaults = {
            "name": name,
            "validOn": valid_on.isoformat(),
            "email": email,
            "phone": self._phone(hostile),
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
        data = {"id": id or self._uuid(), "type": "drop_in_passes"}
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
            picks.append((self._day_between(member.active_from, member.active_to), member))
        picks.sort(key=lambda pick: pick[0])
        return [self.invoice(member.data, created=day) for day, member in picks]

    def _space_bookings(self, members: list[_Member], since: date, count: int) -> list[JSON]:
        until = self.today + timedelta(days=30)
        result = []
        for _ in range(count):
            start = self._at(self._day_between(since, until), 7, 19).replace(minute=0)
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
            day = self._day_between(max(since, member.active_from), member.active_to)
            result.append(self.check_in(member.data, day=day))
        return result
