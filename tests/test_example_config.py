"""config.example.yaml is a working config: it validates as shipped and with each optional
worksheet uncommented, together they cover every event Cobot documents, and its computed
columns and row filters give the values they promise on the bundled samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.commands.check_config import offline_problems
from syncd.config.loading import load_settings
from syncd.config.settings import Settings, SheetSettings
from syncd.core.events import EVENTS
from syncd.mapping.computed import RowContext
from syncd.mapping.rows import MappedRow, Observation, Outcome, mapped_row, sheets_for
from tests.cobot_docs import documented_events
from tests.fixtures_example import example_lines, optional_block_lines, uncommented_example

SAMPLES = Path(__file__).resolve().parents[1] / "syncd" / "samples"
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
        "Unpaid invoices",
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
    # invoice events feed two worksheets; where: decides which invoices the second keeps.
    assert {s.title for s in sheets_for(settings.sheets, "updated_invoice", "invoice")} == {
        "Invoices",
        "Unpaid invoices",
    }
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


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def example_row(
    sheet: SheetSettings, resource: dict[str, Any], member: str = "membership"
) -> MappedRow:
    """The row the daemon makes of ``resource``, joined with a bundled membership sample."""
    seen = Observation(
        resource.get("url", ""), resource, 0.0, context=RowContext(member=sample(member))
    )
    mapped = mapped_row(sheet, seen, ZoneInfo("UTC"), None)
    assert mapped is not None
    return mapped


def test_the_computed_columns_render_the_bundled_samples(tmp_path: Path) -> None:
    """Each template and where: of the example works on real shapes: no template fails, and
    the values are what a space manager reads."""
    settings = load_example(tmp_path, uncommented_example(OPTIONAL_TITLES))
    sheet = {s.title: s for s in settings.sheets}
    ada, bo = sample("membership"), sample("canceled_membership")

    for member in (ada, bo):
        row = example_row(sheet["Members"], member)
        assert row.problems == ()
        company = member["address"]["company"] or "-"
        assert row.cells["Name (company)"] == f"{member['name']} ({company})"
    new = {**bo, "canceled_to": None, "confirmed_at": None}
    statuses = [example_row(sheet["Members"], m).cells["Status"] for m in (ada, bo, new)]
    assert statuses == ["Active", "Canceled to 2025-06-30", "Not confirmed"]

    invoice = sample("invoice")
    row = example_row(sheet["Invoices"], invoice)
    assert row.problems == ()
    assert row.cells["Member email"] == ada["email"]
    assert row.cells["Open amount"] == 148.75
    # Rounded to the cent: 119.3 - 100.1 is 19.200000000000003 in floating point.
    partly = {**invoice, "total_amount": "119.3", "total_paid_amount": "100.1"}
    assert example_row(sheet["Invoices"], partly).cells["Open amount"] == 19.2
    assert {c.header: c.format for c in sheet["Invoices"].columns}["Open amount"] == "#,##0.00"

    unpaid = example_row(sheet["Unpaid invoices"], invoice, member="canceled_membership")
    assert (unpaid.outcome, unpaid.problems) == (Outcome.WRITE, ())
    assert unpaid.cells["Member"] == f"{bo['name']} (-)"
    paid = example_row(sheet["Unpaid invoices"], {**invoice, "paid_status": "paid"})
    assert paid.outcome == Outcome.FILTERED
    assert sheet["Unpaid invoices"].highlight_deleted

    row = example_row(sheet["Bookings"], sample("booking"))
    assert row.problems == ()
    assert (row.cells["Hours"], row.cells["Member email"]) == (2, ada["email"])

    row = example_row(sheet["Check-ins"], sample("check_in"))
    assert row.problems == ()
    assert row.cells["Hours"] == pytest.approx(18 + 54.983 / 60, abs=1e-3)  # 09:05 to 03:59:59
