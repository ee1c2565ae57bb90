"""Cobot's value formats and the parts of its objects that follow from fixed inputs.

The daemon maps Cobot JSON onto sheet columns by path, so generated objects must match Cobot's
v1 API in field names, nesting and value types: dates as ``YYYY/MM/DD``, datetimes as
``YYYY/MM/DD HH:MM:SS +0000``, money as decimal strings with cents. Nothing here is random;
the generator decides what to build, these functions decide how it looks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from syncd.sandbox.cobot.samples import DAY_PASS_ID, DAY_PASS_PRICE, RESOURCES, TAX_RATE, Plan

JSON = dict[str, Any]

COBOT_DATE = "%Y/%m/%d"
COBOT_DATETIME = "%Y/%m/%d %H:%M:%S +0000"
CENT = Decimal("0.01")


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


def price_with_tax(net: Decimal) -> Decimal:
    return net + (net * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)


def email_safe(text: str) -> str:
    """Email-safe form of a name ("Zoë O'Brien" -> "zoeobrien")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def membership_ref(membership: Mapping[str, Any]) -> JSON:
    """The `{id, name}` stub that bookings and check-ins embed."""
    return {"id": membership["id"], "name": membership["name"]}


# -- a membership's plan ---------------------------------------------------------------------


def plan_object(plan: Plan, canceled_to: str | None) -> JSON:
    """A membership's `plan` object with derived totals."""
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
        "total_price_per_cycle": money(price_with_tax(plan.price + extras_total)),
        "accounting_code": plan.accounting_code,
        "booking_credits": _booking_credits(plan),
        "extras": [_extra(name, price) for name, price in plan.extras],
        "time_passes": [_day_pass(plan.day_passes)] if plan.day_passes else [],
    }


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


def _extra(name: str, price: Decimal) -> JSON:
    return {
        "name": name,
        "price_in_cents": int(price * 100),
        "price": money(price),
        "tax_rate": str(TAX_RATE),
        "currency": "EUR",
    }


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


# -- invoices ----------------------------------------------------------------------------------


def invoice_recipient(member: Mapping[str, Any]) -> JSON:
    """The invoice's `address`: the member's billing address, else their name."""
    address = member.get("address") or {}
    return {
        "name": address.get("name") or member.get("name"),
        "full_address": address.get("full_address"),
        "company": address.get("company"),
        "country": address.get("country"),
    }


def invoice_item(
    item_id: str,
    membership_id: str,
    description: str,
    amount: Decimal,
    quantity: Decimal,
    accounting_code: str | None,
) -> JSON:
    """One invoice line with its taxes and totals, rounded per line as Cobot does."""
    unit_tax = (amount * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)
    total = amount * quantity
    total_tax = (total * TAX_RATE / 100).quantize(CENT, ROUND_HALF_UP)
    return {
        "id": item_id,
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


def invoice_totals(items: list[JSON], paid: bool) -> JSON:
    """An invoice's totals and tax summary, summed from its lines so they always add up."""
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
