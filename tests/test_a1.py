"""A1 notation: what the emulator accepts and how it echoes ranges back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.sheets.a1 import (
    MAX_COLUMNS,
    A1Error,
    A1Range,
    column_index,
    column_letters,
    parse_a1,
    parse_ref,
    quote_title,
    split_sheet,
)


@pytest.mark.parametrize(
    ("index", "letters"),
    [(1, "A"), (26, "Z"), (27, "AA"), (52, "AZ"), (53, "BA"), (702, "ZZ"), (703, "AAA")],
)
def test_column_letters_both_ways(index: int, letters: str) -> None:
    assert column_letters(index) == letters
    assert column_index(letters) == index


def test_last_column_is_zzz() -> None:
    assert MAX_COLUMNS == 18_278
    assert column_letters(MAX_COLUMNS) == "ZZZ"
    assert column_index("zzz") == MAX_COLUMNS
    with pytest.raises(A1Error):
        column_letters(MAX_COLUMNS + 1)
    with pytest.raises(A1Error):
        column_index("AAAA")
    with pytest.raises(A1Error):
        column_letters(0)


@given(st.integers(min_value=1, max_value=MAX_COLUMNS))
def test_column_round_trip(index: int) -> None:
    assert column_index(column_letters(index)) == index


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A1", A1Range(None, 0, 1, 0, 1)),
        ("B2:C5", A1Range(None, 1, 5, 1, 3)),
        ("A:A", A1Range(None, None, None, 0, 1)),
        ("A1:A", A1Range(None, 0, None, 0, 1)),
        ("2:2", A1Range(None, 1, 2, None, None)),
        ("A2:2", A1Range(None, 1, 2, 0, None)),
        ("C3:A1", A1Range(None, 0, 3, 0, 3)),
        ("aa10", A1Range(None, 9, 10, 26, 27)),
    ],
)
def test_parse_ref_shapes(text: str, expected: A1Range) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["", "A0", "1", "A", "A1:", "AAAA1", "A-1", "A1:B2:C3"])
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(A1Error):
        parse_ref(text)


def test_quoted_titles_with_apostrophes_and_bangs() -> None:
    assert split_sheet("'It''s'!A1") == ("It's", "A1", True)
    assert parse_a1("'It''s'!A1:B2") == A1Range("It's", 0, 2, 0, 2)
    assert parse_a1("'a!b'!C3") == A1Range("a!b", 2, 3, 2, 3)
    assert parse_a1("'My Sheet'") == A1Range("My Sheet")
    assert parse_a1("'''quoted'''!A1").sheet == "'quoted'"
    for bad in ["'unterminated!A1", "''!A1", "'x'A1", "!A1"]:
        with pytest.raises(A1Error):
            parse_a1(bad)


def test_unquoted_titles() -> None:
    assert parse_a1("Sheet1") == A1Range("Sheet1")
    assert parse_a1("Sheet1!A1:B2") == A1Range("Sheet1", 0, 2, 0, 2)
    assert parse_a1("My Sheet!2:2") == A1Range("My Sheet", 1, 2, None, None)


def test_bare_reference_versus_sheet_title() -> None:
    # Like Google: an existing sheet wins, then a valid reference, then a title.
    assert parse_a1("A1") == A1Range(None, 0, 1, 0, 1)
    assert parse_a1("D3", sheet_titles=["D3"]) == A1Range("D3")
    assert parse_a1("Members") == A1Range("Members")


def test_clamp_fills_open_ends_and_cuts_at_the_grid() -> None:
    assert parse_a1("A:A").clamp(10, 26) == A1Range(None, 0, 10, 0, 1)
    assert parse_a1("A2:2").clamp(1000, 26) == A1Range(None, 1, 2, 0, 26)
    assert parse_a1("T").clamp(4, 4) == A1Range("T", 0, 4, 0, 4)
    assert parse_a1("B2:ZZ5000").clamp(1000, 26) == A1Range(None, 1, 1000, 1, 26)


def test_echo_format_like_google() -> None:
    assert A1Range("Sheet1", 0, 4, 0, 4).to_a1() == "Sheet1!A1:D4"
    assert A1Range("D3", 0, 4, 0, 4).to_a1() == "'D3'!A1:D4"
    assert A1Range("🌵 x", 0, 2, 0, 3).to_a1() == "'🌵 x'!A1:C2"
    assert A1Range("It's", 0, 1, 0, 1).to_a1() == "'It''s'!A1"
    assert A1Range("Members", 9, 10, 0, 10).to_a1() == "Members!A10:J10"
    assert A1Range("T").to_a1() == "T"
    assert A1Range(None, None, None, 0, 1).to_a1() == "A:A"
    assert A1Range(None, 1, 2, None, None).to_a1() == "2:2"
    assert A1Range(None, 1, 2, 0, None).to_a1() == "A2:2"
    assert A1Range(None, 0, None, 0, 1).to_a1() == "A1:A"


@pytest.mark.parametrize(
    ("title", "quoted"),
    [("Sheet1", "Sheet1"), ("Members_2", "Members_2"), ("A1", "'A1'"), ("R1C1", "'R1C1'")],
)
def test_quote_title(title: str, quoted: str) -> None:
    assert quote_title(title) == quoted


def test_quote_title_always_quotes_when_asked() -> None:
    assert quote_title("Sheet1", always=True) == "'Sheet1'"
    assert quote_title("It's", always=True) == "'It''s'"


titles = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=12)
bounds = st.tuples(
    st.integers(0, 5000), st.integers(1, 300), st.integers(0, 700), st.integers(1, 50)
)


@given(titles, bounds)
def test_bounded_ranges_round_trip(title: str, box: tuple[int, int, int, int]) -> None:
    row, height, col, width = box
    rng = A1Range(title, row, row + height, col, col + width)
    assert parse_a1(rng.to_a1(), sheet_titles=[title]) == rng
