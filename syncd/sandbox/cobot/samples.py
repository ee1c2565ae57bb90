"""The invented contents of a simulated space: people, places, plans, rooms and hostile text.

Every name, address and price is made up, so generated data can be shown and committed freely.
The hostile values are the kind of text real members do type into their profiles; the daemon
must write them as plain text, never as formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SPACE_URL = "https://example-space.cobot.me"

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
SPACE_ADDRESS: dict[str, Any] = {
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
