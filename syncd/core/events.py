"""Every webhook event Cobot documents, and what each one means for a sheet row.

Cobot's POST body names no event (it is just ``{"url": ...}``), so the daemon registers one
callback URL per event and this registry tells, for that event, which resource kinds its URL
may name, whether it reports a deletion, and where a deletion embeds the deleted data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Resource kinds and the URL path that names one of them. API 2 kinds live on api.cobot.me.
RESOURCE_PATHS: dict[str, re.Pattern[str]] = {
    "membership": re.compile(r"/api/memberships/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "invoice": re.compile(r"/api/invoices/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "booking": re.compile(r"/api/bookings/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "check_in": re.compile(r"/api/check_ins/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "check_in_token": re.compile(r"/api/check_in_tokens/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "admin": re.compile(r"/api/admins/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "guest_account": re.compile(r"/api/guest_accounts/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "event": re.compile(r"/api/events/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "event_attendance": re.compile(r"/api/event_attendances/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "drop_in_pass": re.compile(r"/drop_in_passes/(?P<id>[A-Za-z0-9_-]{1,128})"),
    "space_subscription": re.compile(r"/spaces/(?P<id>[A-Za-z0-9_-]{1,128})/subscription"),
}

#: Kinds served by API 2 (JSON:API documents, asked for with this media type).
API2_KINDS = frozenset({"drop_in_pass", "space_subscription"})
JSON_API_MEDIA_TYPE = "application/vnd.api+json"

#: Where each kind's v1 list endpoint lives; used by backfill and re-sync.
RESOURCE_KINDS = tuple(RESOURCE_PATHS)


def resource_kind_of_path(path: str) -> tuple[str, str] | None:
    """(kind, id) for a resource URL path, or None when the path names no known resource."""
    for kind, pattern in RESOURCE_PATHS.items():
        match = pattern.fullmatch(path)
        if match:
            return kind, match.group("id")
    return None


@dataclass(frozen=True)
class EventSpec:
    """What one Cobot event delivers."""

    name: str
    resources: tuple[str, ...]
    deletion: bool = False
    #: Key under which a deletion webhook nests the deleted object. Cobot documents
    #: deleted_invoice with the fields at top level, the others nested: both are accepted.
    embedded_key: str | None = None
    #: Subscription filters Cobot accepts for this event.
    filters: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


def _spec(
    name: str,
    resources: str,
    description: str,
    *,
    deletion: bool = False,
    embedded_key: str | None = None,
    filters: tuple[str, ...] = (),
) -> EventSpec:
    return EventSpec(
        name=name,
        resources=tuple(resources.split()),
        deletion=deletion,
        embedded_key=embedded_key,
        filters=frozenset(filters),
        description=description,
    )


_BOOKING_FILTERS = ("resource_id",)

EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        # memberships
        _spec("connected_user", "membership", "A user connected to a membership."),
        _spec("updated_connected_user", "membership", "A connected user changed e-mail/password."),
        _spec("created_membership", "membership", "A membership was created."),
        _spec("confirmed_membership", "membership", "A membership was confirmed."),
        _spec("canceled_membership", "membership", "A cancellation date was set or changed."),
        _spec("uncanceled_membership", "membership", "A future cancellation was removed."),
        _spec("reactivated_membership", "membership", "A canceled membership was reactivated."),
        _spec(
            "deleted_membership",
            "membership",
            "An admin deleted a membership (the data comes embedded).",
            deletion=True,
            embedded_key="membership",
        ),
        _spec(
            "membership_cancellation_date_reached",
            "membership",
            "A canceled membership reached its end date.",
        ),
        _spec("updated_payment_method", "membership", "A member changed their payment method."),
        _spec("changed_membership_plan", "membership", "A plan change was entered."),
        _spec("membership_plan_change_date_reached", "membership", "A new plan became active."),
        _spec("updated_membership_details", "membership", "A member updated their details."),
        _spec("updated_membership_picture", "membership", "A member updated their picture."),
        _spec(
            "updated_custom_field",
            "membership",
            "A custom field of a membership changed.",
            filters=("fields",),
        ),
        _spec("membership_added_time_passes", "membership", "Time passes were added."),
        _spec("membership_removed_time_passes", "membership", "Time passes were removed."),
        # invoices
        _spec("created_invoice", "invoice", "An invoice was created."),
        _spec("updated_invoice", "invoice", "An invoice was edited or marked paid/unpaid."),
        _spec("sent_invoice", "invoice", "An invoice was sent."),
        _spec("wrote_off_invoice", "invoice", "An invoice was written off."),
        _spec("requested_e_invoice", "invoice", "Cobot expects an e-invoice upload."),
        _spec(
            "deleted_invoice",
            "invoice",
            "An invoice was deleted (the data comes embedded).",
            deletion=True,
            embedded_key="invoice",
        ),
        # bookings
        _spec("created_booking", "booking", "A booking was made.", filters=_BOOKING_FILTERS),
        _spec("updated_booking", "booking", "A booking was updated.", filters=_BOOKING_FILTERS),
        _spec(
            "deleted_booking",
            "booking",
            "A booking was canceled (the data comes embedded).",
            deletion=True,
            embedded_key="booking",
            filters=_BOOKING_FILTERS,
        ),
        _spec(
            "booking_will_begin",
            "booking",
            "A booking is about to begin.",
            filters=("lead_time",),
        ),
        _spec("booking_has_ended", "booking", "A booking has ended."),
        # check-ins
        _spec("created_checkin", "check_in", "A member checked in."),
        _spec("created_checkout", "check_in", "A member checked out."),
        _spec("created_checkin_token", "check_in_token", "A member added a check-in token."),
        _spec(
            "deleted_checkin_token",
            "check_in_token",
            "A member deleted a check-in token (flagged by URL).",
            deletion=True,
        ),
        # admins and guest accounts: Cobot documents the guest-account deletion under the
        # name deleted_admin too, so that event's URL decides which one it is.
        _spec("created_admin", "admin", "An admin was added to the space."),
        _spec(
            "deleted_admin",
            "admin guest_account",
            "An admin or a wifi guest account was removed (flagged by URL).",
            deletion=True,
        ),
        _spec("created_guest_account", "guest_account", "A wifi guest account was added."),
        # API 2 and the rest
        _spec("created_drop_in_pass", "drop_in_pass", "Someone bought a drop-in pass."),
        _spec(
            "changed_space_subscription",
            "space_subscription",
            "The space changed its Cobot subscription.",
        ),
        _spec("published_event", "event", "An admin published an event."),
        _spec("created_event_attendance", "event_attendance", "Someone registered for an event."),
    )
}


def embedded_resource(spec: EventSpec, body: dict[str, Any]) -> dict[str, Any] | None:
    """The deleted object a deletion webhook carries, in either documented form.

    Cobot's docs show ``deleted_booking``/``deleted_membership`` nesting the object under a
    key and ``deleted_invoice`` sending its fields at top level; real deliveries may use
    either, so both are accepted for all three.
    """
    if not spec.deletion or spec.embedded_key is None:
        return None
    nested = body.get(spec.embedded_key)
    if isinstance(nested, dict):
        return nested
    top_level = {key: value for key, value in body.items() if key != "url"}
    return top_level or None


def within_filters(filters: Mapping[str, Any], resource: Mapping[str, Any]) -> bool:
    """Whether a worksheet's subscription filters let this resource through.

    Cobot applies the filters to the webhooks it sends; the re-sync and the backfill list
    every resource, so they apply the same filters, or a one-room sheet would fill with every
    room's bookings. (``lead_time`` and ``fields`` choose when Cobot sends, not which.)
    """
    room = filters.get("resource_id")
    if room is None:
        return True
    booked = resource.get("resource")
    return isinstance(booked, Mapping) and str(booked.get("id")) == str(room)
