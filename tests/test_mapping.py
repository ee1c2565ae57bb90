"""The pure mapping from Cobot JSON to cells."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.mapping.cells import (
    deletion_stamp,
    map_row,
    missing_paths,
    resolve,
    row_fingerprint,
    to_cell,
)
from tests.cobot_docs import reference_samples

UTC_ZONE = ZoneInfo("UTC")
SAMPLES = reference_samples()
MEMBER = {
    "id": "m1",
    "name": "Ada Example",
    "plan": {"name": "Full Time Desk", "price_per_cycle": "250.0"},
    "address": {"company": "Example Ltd", "country": None},
    "items": [{"description": "Desk"}, {"description": "Locker"}],
    "joined_at": "2024/09/02",
    "confirmed_at": "2024/09/02 08:15:00 +0000",
    "charge_taxes": True,
}


def sheet(*columns: Column) -> SheetSettings:
    return SheetSettings(
        title="T",
        resource="membership",
        events=("created_membership",),
        columns=columns,
        key_column="URL",
        deleted_column="Deleted",
        filters={},
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("name", "Ada Example"),
        ("plan.name", "Full Time Desk"),
        ("address.company", "Example Ltd"),
        ("address.country", None),
        ("items.0.description", "Desk"),
        ("items.1.description", "Locker"),
        ("items.-1.description", "Locker"),
        ("items.5.description", None),
        ("plan.nope", None),
        ("name.first", None),
        ("items.x", None),
    ],
)
def test_resolve_dotted_paths(path: str, expected: object) -> None:
    assert resolve(MEMBER, path) == expected


def test_missing_paths_are_reported_but_null_values_are_not() -> None:
    columns = [
        Column("Company", "address.company"),
        Column("Country", "address.country"),
        Column("Typo", "adress.company"),
    ]
    assert [c.header for c in missing_paths(MEMBER, columns)] == ["Typo"]


def test_map_row_fills_missing_paths_with_empty_cells() -> None:
    row = map_row(MEMBER, sheet(Column("Name", "name"), Column("Typo", "nope.nothing")), UTC_ZONE)
    assert row == {"Name": "Ada Example", "Typo": ""}


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x")',
        "=IMPORTXML(A1)",
        "+1 555",
        "-5",
        "@mention",
        "00123",
        "'quoted",
        "TRUE",
    ],
)
def test_text_stays_the_literal_string(text: str) -> None:
    # Written with valueInputOption=RAW as a JSON string, so Sheets never parses it.
    assert to_cell(text, "text", UTC_ZONE) == text


def test_dates_become_sheet_serial_numbers() -> None:
    assert to_cell("2024/09/02", "date", UTC_ZONE) == 45537
    assert to_cell("1899/12/31", "date", UTC_ZONE) == 1
    assert to_cell("2024-09-02", "date", UTC_ZONE) == 45537


def test_datetimes_convert_to_the_configured_time_zone() -> None:
    assert to_cell("2025/06/10 12:00:00 +0000", "datetime", UTC_ZONE) == 45818.5
    berlin = to_cell("2025/06/10 12:00:00 +0000", "datetime", ZoneInfo("Europe/Berlin"))
    assert berlin == pytest.approx(45818.5 + 2 / 24)
    # A date column of a datetime takes the local calendar day.
    late = to_cell("2025/06/10 23:30:00 +0000", "date", ZoneInfo("Europe/Berlin"))
    assert late == 45819


def test_numbers_and_booleans() -> None:
    assert to_cell("148.75", "number", UTC_ZONE) == 148.75
    assert to_cell("250.0", "number", UTC_ZONE) == 250
    assert to_cell(10000, "number", UTC_ZONE) == 10000
    assert to_cell("true", "bool", UTC_ZONE) is True
    assert to_cell(False, "bool", UTC_ZONE) is False


def test_unconvertible_values_stay_visible_as_text() -> None:
    assert to_cell("soon", "date", UTC_ZONE) == "soon"
    assert to_cell("n/a", "number", UTC_ZONE) == "n/a"
    assert to_cell("NaN", "number", UTC_ZONE) == "NaN"


def test_structures_become_compact_json_and_none_empty() -> None:
    assert to_cell({"a": 1}, "text", UTC_ZONE) == '{"a":1}'
    # A template may give a list holding dates: they are written as text, never a crash.
    assert to_cell([date(2025, 6, 10)], "text", UTC_ZONE) == '["2025-06-10"]'
    assert to_cell(None, "date", UTC_ZONE) == ""


def test_deletion_stamp_is_iso_utc() -> None:
    moment = datetime(2025, 6, 10, 14, 0, 1, 999, tzinfo=ZoneInfo("Europe/Berlin"))
    assert deletion_stamp(moment) == "2025-06-10T12:00:01Z"
    assert datetime.fromisoformat(deletion_stamp(datetime.now(UTC))).tzinfo is not None


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    assert row_fingerprint({"a": 1, "b": "x"}) == row_fingerprint({"b": "x", "a": 1})
    assert row_fingerprint({"a": 1}) != row_fingerprint({"a": "1"})


def test_reference_samples_map_without_errors() -> None:
    columns = (
        Column("Name", "name"),
        Column("Joined", "joined_at", "date"),
        Column("Total", "total_amount", "number"),
        Column("From", "from", "datetime"),
    )
    for kind in ("membership", "invoice", "booking", "check_in"):
        for resource in SAMPLES[kind]:
            row = map_row(resource, sheet(*columns), UTC_ZONE)
            assert set(row) == {"Name", "Joined", "Total", "From"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)


@given(value=json_values, kind=st.sampled_from(["text", "number", "date", "datetime", "bool"]))
def test_any_json_value_maps_to_a_cell_without_raising(value: object, kind: str) -> None:
    cell = to_cell(value, kind, UTC_ZONE)
    assert isinstance(cell, str | int | float | bool)


@given(resource=json_values, path=st.text(max_size=20))
def test_resolve_never_raises(resource: object, path: str) -> None:
    resolve(resource, path)
