"""What the simulated Cobot knows about: resource kinds, their routes and scopes, and events.

Every event in Cobot's webhook docs is here, with the kind of object its URL points at, and
every kind the simulator stores, with the events its creation, change and deletion send by
default. Membership changes are finer: Cobot names the field that changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_MEMBERSHIP_EVENTS = (
    "connected_user", "updated_connected_user", "updated_custom_field", "confirmed_membership",
    "created_membership", "deleted_membership", "canceled_membership", "uncanceled_membership",
    "reactivated_membership", "membership_cancellation_date_reached", "updated_payment_method",
    "changed_membership_plan", "membership_plan_change_date_reached",
    "updated_membership_details", "updated_membership_picture", "membership_added_time_passes",
    "membership_removed_time_passes",
)  # fmt: skip
_BOOKING_EVENTS = (
    "created_booking", "updated_booking", "booking_will_begin", "booking_has_ended",
    "deleted_booking",
)  # fmt: skip
_INVOICE_EVENTS = (
    "created_invoice", "updated_invoice", "wrote_off_invoice", "requested_e_invoice",
    "sent_invoice", "deleted_invoice",
)  # fmt: skip

# Every event in Cobot's webhook docs -> the kind its URL points at. deleted_admin is also sent
# for removed guest accounts (Cobot's docs say so); events about objects this simulator does not
# store map to None and can only be emitted with an explicit URL.
EVENT_KINDS: dict[str, str | None] = {
    **dict.fromkeys(_MEMBERSHIP_EVENTS, "membership"),
    **dict.fromkeys(_BOOKING_EVENTS, "booking"),
    **dict.fromkeys(_INVOICE_EVENTS, "invoice"),
    **dict.fromkeys(("created_admin", "deleted_admin"), "admin"),
    **dict.fromkeys(("created_checkin", "created_checkout"), "check_in"),
    **dict.fromkeys(("created_checkin_token", "deleted_checkin_token"), "check_in_token"),
    "created_drop_in_pass": "drop_in_pass",
    "created_guest_account": "guest_account",
    "changed_space_subscription": "space_subscription",
    "published_event": None,
    "created_event_attendance": None,
}
EVENTS = frozenset(EVENT_KINDS)


@dataclass(frozen=True)
class Kind:
    """One resource type: where it lives, the scope that reads it, its default events."""

    name: str
    route: str
    scope: str
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    api2: bool = False
    carries_url: bool = False

    def path(self, object_id: str) -> str:
        return self.route.replace("{id}", object_id)

    def id_of(self, obj: Mapping[str, Any]) -> str:
        return str(obj["data"]["id"] if self.api2 else obj["id"])

    @property
    def path_pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.escape(self.route).replace(r"\{id\}", "(?P<id>[^/]+)") + "$")


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("membership", "/api/memberships/{id}", "read_memberships",
             ("created_membership",), ("updated_membership_details",), ("deleted_membership",)),
        Kind("invoice", "/api/invoices/{id}", "read_invoices",
             ("created_invoice",), ("updated_invoice",), ("deleted_invoice",), carries_url=True),
        Kind("booking", "/api/bookings/{id}", "read_bookings",
             ("created_booking",), ("updated_booking",), ("deleted_booking",), carries_url=True),
        Kind("check_in", "/api/check_ins/{id}", "read_check_ins",
             ("created_checkin",), ("created_checkout",)),
        Kind("guest_account", "/api/guest_accounts/{id}", "read_guest_accounts",
             ("created_guest_account",), deleted=("deleted_admin",)),
        Kind("admin", "/api/admins/{id}", "read_admins",
             ("created_admin",), deleted=("deleted_admin",)),
        Kind("check_in_token", "/api/check_in_tokens/{id}", "read_check_ins",
             ("created_checkin_token",), deleted=("deleted_checkin_token",)),
        Kind("drop_in_pass", "/drop_in_passes/{id}", "read_drop_in_passes",
             ("created_drop_in_pass",), api2=True),
        Kind("space_subscription", "/spaces/{id}/subscription", "read_spaces",
             updated=("changed_space_subscription",), api2=True),
    )
}  # fmt: skip
_KIND_PATTERNS = [(kind, kind.path_pattern) for kind in KINDS.values()]


def kind_at(path: str) -> tuple[Kind, str] | None:
    """The kind and object id a URL path names, or None for paths of no stored kind."""
    for kind, pattern in _KIND_PATTERNS:
        match = pattern.match(path)
        if match:
            return kind, match["id"]
    return None


# Membership field changes that Cobot reports with a specific event: (field, event, applies).
_MEMBERSHIP_TRANSITIONS: tuple[tuple[str, str, Callable[[Any, Any], bool]], ...] = (
    ("confirmed_at", "confirmed_membership", lambda old, new: old is None and new is not None),
    ("canceled_to", "canceled_membership", lambda old, new: new is not None),
    ("canceled_to", "uncanceled_membership", lambda old, new: old is not None and new is None),
    ("plan", "changed_membership_plan", lambda old, new: True),
    ("upcoming_plan", "changed_membership_plan", lambda old, new: new is not None),
    ("payment_method", "updated_payment_method", lambda old, new: True),
    ("picture", "updated_membership_picture", lambda old, new: True),
    ("user", "connected_user", lambda old, new: old is None and new is not None),
    ("user", "updated_connected_user", lambda old, new: old is not None and new is not None),
)
_TRANSITION_FIELDS = frozenset(field for field, _, _ in _MEMBERSHIP_TRANSITIONS)


def membership_update_events(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The events Cobot sends for a membership change; plain detail edits give the default."""
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    events = [
        event
        for key, event, applies in _MEMBERSHIP_TRANSITIONS
        if key in changed and applies(before.get(key), after.get(key))
    ]
    if changed - _TRANSITION_FIELDS or not events:
        events += KINDS["membership"].updated
    return list(dict.fromkeys(events))
