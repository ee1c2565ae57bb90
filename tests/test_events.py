"""Every event Cobot documents is known, with its quirks handled on purpose."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from syncd.core.events import EVENTS, embedded_resource, resource_kind_of_path
from tests.cobot_docs import documented_events, documented_webhooks


def test_every_documented_event_is_in_the_registry() -> None:
    names = documented_events()
    assert len(names) >= 38
    assert names - set(EVENTS) == set()


@pytest.mark.parametrize(
    "webhook", [w for w in documented_webhooks() if w["body"]], ids=lambda w: w["event"]
)
def test_every_documented_body_names_a_resource_the_event_is_about(webhook: dict) -> None:
    spec = EVENTS[webhook["event"]]
    found = resource_kind_of_path(urlsplit(webhook["body"]["url"]).path)
    assert found is not None
    assert found[0] in spec.resources
    # A deletion that ships its object has it recovered from the documented body.
    extra = set(webhook["body"]) - {"url"}
    assert (embedded_resource(spec, webhook["body"]) is not None) == bool(extra)


def test_guest_account_deletion_is_deleted_admin() -> None:
    assert set(EVENTS["deleted_admin"].resources) == {"admin", "guest_account"}
    assert EVENTS["deleted_admin"].deletion


@pytest.mark.parametrize("event", ["deleted_booking", "deleted_membership", "deleted_invoice"])
def test_deletion_payloads_nested_or_top_level(event: str) -> None:
    spec = EVENTS[event]
    url = f"https://co-up.cobot.me/api/{spec.embedded_key}s/1"
    nested = {"url": url, spec.embedded_key: {"id": "1", "title": "x"}}
    top_level = {"url": url, "id": "1", "title": "x"}
    assert embedded_resource(spec, nested) == {"id": "1", "title": "x"}
    assert embedded_resource(spec, top_level) == {"id": "1", "title": "x"}


def test_deletions_without_payload_embed_nothing() -> None:
    body = {"url": "https://co-up.cobot.me/api/check_in_tokens/1"}
    assert embedded_resource(EVENTS["deleted_checkin_token"], body) is None
    assert embedded_resource(EVENTS["created_booking"], body) is None


def test_documented_filters() -> None:
    assert EVENTS["created_booking"].filters == {"resource_id"}
    assert EVENTS["booking_will_begin"].filters == {"lead_time"}
    assert EVENTS["updated_custom_field"].filters == {"fields"}
