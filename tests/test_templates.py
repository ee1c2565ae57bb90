"""Computed columns and row filters: the template language and the pure mapping around it."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config.columns import Column
from syncd.config.settings import SheetSettings
from syncd.config.templating import (
    MAX_TEXT,
    BadTemplate,
    TemplateFailure,
    compile_expression,
    compile_template,
    parse_moment,
    template_variables,
)
from syncd.mapping import cells, computed
from syncd.mapping.cells import map_row, missing_paths
from syncd.mapping.computed import RowContext, member_id, row_kept, uses_member

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
SAMPLES = Path(__file__).resolve().parents[1] / "syncd" / "samples"


def sample(kind: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / f"{kind}.json").read_text(encoding="utf-8"))
    return body


MEMBER = sample("membership")
BOOKING = sample("booking")
INVOICE = sample("invoice")
CHECK_IN = sample("check_in")


def render(source: str, **variables: Any) -> Any:
    return compile_template(source).render(variables)


def sheet(*columns: Column, resource: str = "booking", where: str | None = None) -> SheetSettings:
    return SheetSettings(
        title="T",
        resource=resource,
        events=("created_booking",),
        columns=columns,
        key_column="URL",
        deleted_column="Deleted",
        filters={},
        where=where,
    )


# -- native results ----------------------------------------------------------------------------


def test_a_single_expression_keeps_its_python_value() -> None:
    assert render("{{ units * 2 }}", units=2) == 4
    assert render("{{ price }}", price=25.0) == 25.0
    assert render("{{ 42 }}") == 42  # a literal is not folded into text
    assert render("{{ paid }}", paid=False) is False
    assert render("{{ nothing }}", nothing=None) is None
    assert render("{{ items }}", items=[1, "a"]) == [1, "a"]


def test_text_is_never_parsed_into_a_value() -> None:
    assert render("{{ name }}", name="1234") == "1234"
    assert render("{{ name }}", name="[1, 2]") == "[1, 2]"
    assert render("{{ name }}", name="None") == "None"


def test_several_parts_are_joined_text_without_none() -> None:
    assert render("{{ units }} h", units=2) == "2 h"
    assert render("{{ a }}{{ b }}", a=1, b=2) == "12"
    assert render("{{ a }} ({{ b }})", a="Ada", b=None) == "Ada ()"
    assert render("{{ a ~ b }}", a="x", b=None) == "x"
    assert render("Booking") == "Booking"
    assert render("") is None


def test_missing_things_render_empty_and_chain() -> None:
    assert render("{{ member.address.company or '-' }}") == "-"
    assert render("{{ member.address.company }}") is None
    assert render("{{ address.company or '-' }}", address=None) == "-"
    assert render("{{ member.email | default('none') }}") == "none"
    assert render("Mail: {{ member.email }}") == "Mail: "


def test_json_fields_come_before_dict_methods() -> None:
    assert render("{{ this.items | length }}", this=INVOICE) == len(INVOICE["items"])
    assert render("{{ this.get }}", this={"get": "field"}) == "field"
    assert render("{{ this['items'] }}", this={}) is None  # no field: nothing, not a method


# -- the sandbox and its bounds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ name.__class__.__mro__ }}",
        "{{ this.__init__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ this.update({'a': 1}) }}",
    ],
)
def test_the_sandbox_refuses_python_internals_and_changes(source: str) -> None:
    with pytest.raises(TemplateFailure, match="SecurityError"):
        render(source, name="x", this={"a": 0})


#: Each just past a bound, so that the test also runs (and fails) with the bound taken away.
PAST_THE_BOUNDS = [
    "{{ big * 2 }}",
    "{{ [0] * 50001 }}",
    "{{ 2 ** 5000 }}",
    "{{ (2 ** 2000) * (2 ** 2000) * (2 ** 2000) }}",
    "{{ 'x' | center(50001) }}",
    "{{ 'x'.ljust(50001) }}",
    "{{ '%50001s' % 'x' }}",
    "{{ '%*s' % (50001, 'x') }}",
    "{{ '%50001s' | format('x') }}",
    "{{ '{:>50001}'.format('x') }}",
    "{{ '{:>{w}}'.format('x', w=50001) }}",
    "{{ big | replace('b', 'bb') }}",
    "{{ big.replace('b', 'bb') }}",
    "{{ big | indent(30000, true) }}",
    "{{ [big, big] | join }}",
    "{{ big.join([big, big]) }}",
    "{{ big ~ big }}",
    "{{ big + big }}",
    "{% for i in range(30000) %}xy{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(17) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}",
    "{{ range(100001) | list }}",
    "{{ 5 | round(-60000) }}",
    "{{ [1] | batch(60000, 0) | list }}",
    "{{ lipsum(3) }}",
]


@pytest.mark.parametrize("source", PAST_THE_BOUNDS)
def test_growth_past_the_bounds_fails(source: str) -> None:
    with pytest.raises(TemplateFailure):
        render(source, big="b" * (MAX_TEXT // 2 + 1))


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ [0] * 10**9 }}",
        "{{ 10 ** (10 ** 9) }}",
        "{{ 'x' | center(10**9) }}",
    ],
)
def test_absurd_sizes_fail_fast(source: str) -> None:
    with pytest.raises(TemplateFailure, match="SecurityError"):
        render(source)


def test_output_within_the_bounds_is_whole() -> None:
    assert render("{% for i in range(3) %}{{ i }},{% endfor %}") == "0,1,2,"
    assert render("{{ 'ab' * 3 }}") == "ababab"
    assert render("{{ 'x' | center(5) }}") == "  x  "
    assert render("{{ '%05.1f' % 2.25 }}") == "002.2"
    assert render("{{ ['a', 'b'] | join(', ') }}") == "a, b"
    assert render("{{ 2 ** 10 }}") == 1024
    assert render("{{ 'Invoice 1234567: %s' % 'x' }}") == "Invoice 1234567: x"
    assert len(render("{{ big }}", big="b" * (MAX_TEXT + 10))) == MAX_TEXT + 10  # a value as is


# -- filters -----------------------------------------------------------------------------------


def test_cobot_datetime_and_date_read_cobot_and_iso_in_the_zone() -> None:
    berlin = compile_template("{{ t | cobot_datetime }}")
    moment = berlin.render({"t": "2025/06/10 23:30:00 +0000"}, BERLIN)
    assert moment == datetime(2025, 6, 10, 23, 30, tzinfo=UTC)
    assert moment.utcoffset().total_seconds() == 7200
    day = compile_template("{{ t | cobot_date }}")
    assert day.render({"t": "2025/06/10 23:30:00 +0000"}, BERLIN) == date(2025, 6, 11)
    assert day.render({"t": "2025/06/10 23:30:00 +0000"}) == date(2025, 6, 10)
    assert render("{{ t | cobot_date }}", t="2025/06/10") == date(2025, 6, 10)
    assert render("{{ t | cobot_date }}", t="2025-06-10T08:00:00Z") == date(2025, 6, 10)
    assert render("{{ t | cobot_datetime }}", t="2025/06/10") == datetime(2025, 6, 10, tzinfo=UTC)
    for unreadable in ("soon", None, 12, "2025/02/30"):
        assert render("{{ t | cobot_datetime }}", t=unreadable) is None
        assert render("{{ t | cobot_date }}", t=unreadable) is None
    assert render("{{ missing | cobot_date }}") is None


def test_hours_between_two_cobot_times() -> None:
    assert render("{{ this['from'] | hours_between(this.to) }}", this=BOOKING) == 2.0
    assert (
        render(
            "{{ a | hours_between(b) }}",
            a="2025/06/10 09:00:00 +0000",
            b="2025/06/10 11:30:00 +0200",
        )
        == 0.5
    )
    assert render("{{ a | hours_between(b) }}", a="2025/06/10 09:00:00 +0000", b="later") is None
    check_in = "{{ valid_from | hours_between(valid_until) }}"
    assert render(check_in, **CHECK_IN) == pytest.approx(18 + 55 / 60 - 1 / 3600)


def test_amounts() -> None:
    assert render("{{ 12345 | cents_to_amount }}") == 123.45
    assert render("{{ '250' | cents_to_amount }}") == 2.5
    assert render("{{ x | cents_to_amount }}", x="n/a") is None
    assert render("{{ '148.745' | amount }}") == 148.75
    assert render("{{ 0.125 | amount }}") == 0.13  # half up, not to even
    assert render("{{ 132.5 | amount }}") == 132.5
    assert render("{{ x | amount }}", x=True) is None
    assert render("{{ x | amount }}", x="NaN") is None
    assert render("{{ x | amount }}", x="1e400") is None


def test_date_format() -> None:
    source = "{{ t | date_format('%d.%m.%Y %H:%M') }}"
    assert compile_template(source).render({"t": "2025/06/10 09:00:00 +0000"}, BERLIN) == (
        "10.06.2025 11:00"
    )
    assert render("{{ t | date_format }}", t="2025/06/10") == "2025-06-10"
    assert render("{{ t | cobot_date | date_format('%Y') }}", t="2025/06/10") == "2025"
    assert render("{{ t | date_format }}", t="") is None


def test_the_moment_parser_is_shared_with_typed_columns() -> None:
    assert vars(cells)["parse_moment"] is parse_moment  # one parser, not a copy
    assert parse_moment("2025/06/10 12:00:00 +0000", BERLIN) == datetime(
        2025, 6, 10, 14, 0, tzinfo=BERLIN
    )


# -- compiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ title }", "does not parse: unexpected '}' (line 1)"),
        ("{{ a }}\n{{ b", "does not parse: unexpected end of template, expected 'end of print"),
        ("{% endif %}", "does not parse: Encountered unknown tag 'endif' (line 1)"),
        ("{{ title | uper }}", "uses the unknown filter 'uper' (did you mean 'upper'?)"),
        ("{% if x %}{{ x | nope }}{% endif %}", "uses the unknown filter 'nope'"),
        ("{{ x is nmber }}", "uses the unknown test 'nmber' (did you mean 'number'?)"),
    ],
)
def test_a_template_that_does_not_compile_says_why_in_one_line(source: str, message: str) -> None:
    with pytest.raises(BadTemplate) as caught:
        compile_template(source)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("status == ", "does not parse: unexpected 'end of template' (line 1)"),
        ("paid }}", "does not parse: chunk after expression (line 1)"),
        ("status | nope", "uses the unknown filter 'nope'"),
    ],
)
def test_an_expression_that_does_not_compile(source: str, message: str) -> None:
    with pytest.raises(BadTemplate, match=re.escape(message)):
        compile_expression(source)


def test_templates_compile_once_and_know_their_variables() -> None:
    assert compile_template("{{ units }}") is compile_template("{{ units }}")
    source = "{{ member.email }} {{ this['from'] }}{% set x = 1 %}{{ x }}{{ units | amount }}"
    assert template_variables(source) == {"member", "this", "units"}
    assert compile_expression("member.email and not paid_at").variables == {"member", "paid_at"}


# -- the mapping -------------------------------------------------------------------------------


def test_template_columns_convert_like_paths() -> None:
    columns = (
        Column("Room", "resource.name"),
        Column("Hours", type="number", template="{{ units }}"),
        Column("Text number", template="{{ '12.5' }}", type="number"),
        Column("Native", template="{{ units * 1.5 }}"),
        Column("Title", template="{{ title | upper }} ({{ member.address.company or '-' }})"),
        Column("Day", template="{{ this['from'] | cobot_date }}", type="date"),
        Column("When", template="{{ this['from'] | cobot_datetime }}"),
    )
    row = map_row(BOOKING, sheet(*columns), UTC_ZONE, RowContext(member=MEMBER, space="co-up"))
    assert row == {
        "Room": "Meeting Room A",
        "Hours": 2,
        "Text number": 12.5,
        "Native": 3.0,
        "Title": "CLIENT WORKSHOP (Example Analytics Ltd)",
        "Day": 45818,
        "When": "2025-06-10T09:00:00+00:00",
    }


def test_a_failing_template_empties_only_its_cell_and_says_so() -> None:
    columns = (
        Column("Title", "title"),
        Column("Broken", template="{{ units / (units - 2) }}"),
        Column("Fine", template="{{ units }}"),
    )
    problems: list[str] = []
    row = map_row(BOOKING, sheet(*columns), UTC_ZONE, None, problems)
    assert row == {"Title": "Client workshop", "Broken": "", "Fine": 2}
    assert problems == ['column "Broken": template failed: ZeroDivisionError: division by zero']
    # Without a list to report to, the cell is still empty and nothing is raised.
    assert map_row(BOOKING, sheet(*columns), UTC_ZONE)["Broken"] == ""


def test_variables_named_by_the_contract_win_over_fields() -> None:
    resource = {"this": "field", "space": "field", "member": "field", "name": "Ada"}
    columns = (
        Column("Space", template="{{ space }}"),
        Column("This", template="{{ this.name }}"),
        Column("Member", template="{{ member.email }}"),
        Column("Field", template="{{ this.member }}"),
    )
    row = map_row(resource, sheet(*columns), UTC_ZONE, RowContext(member=MEMBER, space="co-up"))
    assert row == {"Space": "co-up", "This": "Ada", "Member": MEMBER["email"], "Field": "field"}


def test_member_is_the_membership_itself_on_members_and_empty_when_unknown() -> None:
    column = Column("Email", template="{{ member.email }}")
    members = sheet(column, resource="membership")
    assert map_row(MEMBER, members, UTC_ZONE) == {"Email": MEMBER["email"]}
    assert map_row(BOOKING, sheet(column), UTC_ZONE) == {"Email": ""}
    assert map_row(BOOKING, sheet(column), UTC_ZONE, RowContext()) == {"Email": ""}


@pytest.mark.parametrize(
    ("kind", "resource", "expected"),
    [
        ("membership", MEMBER, MEMBER["id"]),
        ("invoice", INVOICE, INVOICE["membership_id"]),
        ("booking", BOOKING, BOOKING["membership"]["id"]),
        ("check_in", CHECK_IN, CHECK_IN["membership"]["id"]),
        ("check_in", {"membership_id": 17}, "17"),
        ("booking", {"membership": None}, None),
        ("invoice", {"membership_id": None}, None),
        ("admin", {"id": "a1", "membership_id": "m1"}, None),
        ("booking", None, None),
    ],
)
def test_member_id_of_each_kind(kind: str, resource: Any, expected: str | None) -> None:
    assert member_id(kind, resource) == expected


def test_uses_member_looks_at_templates_and_where() -> None:
    plain = Column("Name", "name")
    assert not uses_member(sheet(plain, Column("Mail", template="{{ email }}")))
    assert uses_member(sheet(plain, Column("Mail", template="{{ member.email }}")))
    assert uses_member(sheet(plain, where="member.email is defined"))
    assert not uses_member(sheet(plain, where="units > 1"))


def test_where_keeps_drops_and_counts_a_failure_as_false() -> None:
    context = RowContext(member=MEMBER, space="co-up")
    problems: list[str] = []
    assert row_kept(sheet(), BOOKING, context, problems)  # no where: every resource
    assert row_kept(sheet(where="resource.name != 'Podcast studio'"), BOOKING, context, problems)
    podcast = {**BOOKING, "resource": {"name": "Podcast studio"}}
    assert not row_kept(sheet(where="resource.name != 'Podcast studio'"), podcast, context, [])
    assert row_kept(sheet(where="paid_status == 'unpaid'"), INVOICE, context, problems)
    assert not row_kept(sheet(where="paid_at"), INVOICE, context, problems)
    assert row_kept(sheet(where="not paid_at"), INVOICE, context, problems)
    assert row_kept(sheet(where="member.address.company"), BOOKING, context, problems)
    assert not row_kept(sheet(where="member.address.company"), BOOKING, RowContext(), problems)
    assert problems == []
    assert not row_kept(sheet(where="units / 0"), BOOKING, context, problems)
    assert problems == ["where failed: ZeroDivisionError: division by zero"]


def test_missing_paths_ignore_template_columns() -> None:
    columns = [Column("Typo", "nmae"), Column("Computed", template="{{ nothing_here }}")]
    assert [c.header for c in missing_paths(BOOKING, columns)] == ["Typo"]


def test_path_only_sheets_never_touch_the_template_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("template machinery used for a path-only sheet")

    monkeypatch.setattr(cells, "variables", refuse)
    monkeypatch.setattr(computed, "compile_template", refuse)
    row = map_row(BOOKING, sheet(Column("Title", "title"), Column("Units", "units")), UTC_ZONE)
    assert row == {"Title": "Client workshop", "Units": 2}


@given(st.text(max_size=200))
def test_any_text_field_comes_back_equal_through_a_template(text: str) -> None:
    column = Column("Name", template="{{ name }}")
    assert map_row({"name": text}, sheet(column), UTC_ZONE) == {"Name": text}
    assert render("{{ name }}!", name=text) == text + "!"
