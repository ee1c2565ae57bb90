"""Every event Cobot documents is known, with its quirks handled on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd.core.events import EVENTS, embedded_resource

DOC = Path(__file__).parents[2] / "shared" / "cobot-webhooks.txt"


def documented_events() -> set[str]:
    """Event names as the doc lists them: a line that is only a snake_case identifier."""
    text = DOC.read_text()
    section = text[text.index("Event Callbacks") :]
    return {
        line.strip()
        for line in section.splitlines()
        if re.fullmatch(r"[a-z]+(?:_[a-z]+)+", line.strip())
    }


@pytest.mark.skipif(not DOC.exists(), reason="Cobot's webhook doc is not beside the checkout")
def test_every_documented_event_is_in_the_registry() -> None:
    names = documented_events()
    assert len(names) >= 38
    assert names - set(EVENTS) == set()


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
