"""config.example.yaml is a working config: it validates as shipped and with each optional
worksheet uncommented, and together they cover every event Cobot documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.commands.check_config import offline_problems
from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.core.events import EVENTS
from syncd.mapping.rows import sheets_for
from tests.cobot_docs import documented_events
from tests.fixtures_example import example_lines, optional_block_lines, uncommented_example

KEY_PATH = "/etc/cobot-syncd/service-account.json"
ENVIRON = {
    "COBOT_ACCESS_TOKEN": "example-cobot-token",
    "SYNCD_WEBHOOK_SECRET": "example-webhook-secret-0123456789",
}
OPTIONAL_TITLES = list(optional_block_lines(example_lines()))


def load_example(tmp_path: Path, text: str) -> Settings:
    """Validate the example's text with the env vars set and the key file in tmp_path."""
    key = tmp_path / "service-account.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "syncd@example.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    assert KEY_PATH in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(KEY_PATH, str(key)))
    settings = load_settings(path, ENVIRON)
    assert offline_problems(settings) == []
    return settings


def test_example_validates_as_shipped(tmp_path: Path) -> None:
    settings = load_example(tmp_path, uncommented_example([]))
    assert [s.title for s in settings.sheets] == ["Members", "Invoices", "Bookings", "Check-ins"]
    assert settings.event_log_sheet is None
    assert settings.webhook.secret.reveal() == ENVIRON["SYNCD_WEBHOOK_SECRET"]


def test_optional_region_has_the_documented_blocks() -> None:
    assert OPTIONAL_TITLES == [
        "Admins",
        "Guest accounts",
        "Check-in tokens",
        "Drop-in passes",
        "Space subscription",
        "Events",
        "Event attendances",
    ]


@pytest.mark.parametrize("title", OPTIONAL_TITLES)
def test_each_optional_block_validates_when_uncommented(tmp_path: Path, title: str) -> None:
    settings = load_example(tmp_path, uncommented_example([title]))
    assert [s.title for s in settings.sheets][-1] == title
    assert len(settings.sheets) == 5


def test_all_optional_blocks_validate_together(tmp_path: Path) -> None:
    settings = load_example(tmp_path, uncommented_example(OPTIONAL_TITLES))
    assert len(settings.sheets) == 4 + len(OPTIONAL_TITLES)
    # deleted_admin feeds two worksheets, told apart by the URL's kind.
    assert {s.title for s in sheets_for(settings.sheets, "deleted_admin", "admin")} == {"Admins"}
    assert {s.title for s in sheets_for(settings.sheets, "deleted_admin", "guest_account")} == {
        "Guest accounts"
    }


def test_every_documented_event_is_in_the_example_or_an_optional_block(tmp_path: Path) -> None:
    shipped = set(load_example(tmp_path, uncommented_example([])).events)
    everything = set(load_example(tmp_path, uncommented_example(OPTIONAL_TITLES)).events)
    assert documented_events() - everything == set()
    # The shipped worksheets alone take every event about their four kinds.
    core_kinds = {"membership", "invoice", "booking", "check_in"}
    core = {e for e in documented_events() if set(EVENTS[e].resources) <= core_kinds}
    assert core - shipped == set()
