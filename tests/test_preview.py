"""``syncd preview``: the row a mapping makes, shown before any sheet is touched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.cli import main
from syncd.commands.preview import sample_names
from tests.fixtures_cli import run_syncd
from tests.fixtures_cobot import CobotSandbox
from tests.fixtures_daemon import EXAMPLE_CONFIG

SAMPLES = Path(__file__).resolve().parents[1] / "syncd" / "samples"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
BOOKINGS = {
    "Bookings": {
        "resource": "booking",
        "events": ["created_booking", "deleted_booking"],
        "columns": {
            "Title": "title",
            "Room": "resource.name",
            "From": {"path": "from", "type": "datetime"},
            "Price": {"path": "price", "type": "number"},
        },
    }
}


def write_config(tmp_path: Path, sheets: dict[str, Any], **extra: Any) -> Path:
    """A config that is only a mapping so far: no Cobot token, no Google key yet."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"sheets": sheets, **extra}, sort_keys=False))
    return path


def write_json(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def preview(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["preview", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def field(out: str, header: str, title: str, sheet: str | None = None) -> str:
    """One column (``title``: Source, Type, Format, Cell) of a header's line in the table of
    the first worksheet, or of ``sheet``."""
    lines = out.splitlines()
    if sheet is not None:
        first = next(i for i, line in enumerate(lines) if line.startswith(f'Worksheet "{sheet}"'))
        lines = lines[first:]
    titles = next(line for line in lines if line.startswith("Header "))
    starts = [match.start() for match in re.finditer(r"\S+", titles)]
    start = titles.index(title)
    following = [s for s in starts if s > start]
    line = next(line for line in lines if line.startswith(f"{header}  "))
    return line[start : following[0] if following else None].rstrip()


def cell(out: str, header: str, sheet: str | None = None) -> str:
    """The Cell column of one header's line in the preview table."""
    return field(out, header, "Cell", sheet)


def line_of(out: str, prefix: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(prefix))


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def test_bundled_samples_are_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"samples/*.json"' in pyproject
    assert {"membership", "invoice", "booking", "check_in", "deleted_invoice"} <= set(
        sample_names()
    )


def test_nested_paths_and_dates_with_the_example_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COBOT_ACCESS_TOKEN", raising=False)  # preview needs no credentials
    code, out, err = preview(capsys, "--config", EXAMPLE_CONFIG, "--sample", "invoice")
    assert code == 0, err
    invoice = sample("invoice")
    assert 'Worksheet "Invoices"' in out
    assert cell(out, "First item") == invoice["items"][0]["description"]
    assert cell(out, "Recipient") == invoice["address"]["name"]
    assert cell(out, "Date") == "2025-06-01  (serial 45809)"
    assert cell(out, "Total") == invoice["total_amount"].rstrip("0").rstrip(".")
    assert cell(out, "URL") == f"https://co-up.cobot.me/api/invoices/{invoice['id']}"
    assert cell(out, "Deleted") == ""
    assert err == ""

    code, out, err = preview(capsys, "-c", EXAMPLE_CONFIG, "--sample", "membership")
    assert code == 0, err
    assert cell(out, "Plan") == sample("membership")["plan"]["name"]


def test_a_path_that_matches_nothing_warns_and_suggests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheets = {
        "Members": {
            "resource": "membership",
            "events": ["created_membership"],
            "columns": {"Name": "name", "Company": "adress.company", "Plan": "plan.nme"},
        }
    }
    code, out, err = preview(
        capsys, "--config", write_config(tmp_path, sheets), "--sample", "membership"
    )
    assert code == 0
    assert cell(out, "Company") == "(empty: no such path)"
    warnings = err.splitlines()
    assert len(warnings) == 2
    assert 'column "Company" (path adress.company) matches nothing' in warnings[0]
    assert warnings[0].endswith("did you mean address.company?")
    assert warnings[1].endswith("did you mean plan.name?")


@pytest.mark.parametrize("form", ["nested", "top_level"])
def test_deletion_payloads_are_unwrapped_and_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    booking = sample("deleted_booking")
    body = booking if form == "nested" else {"url": booking["url"], **booking["booking"]}
    args = ["--event", "deleted_booking"] if form == "top_level" else []
    code, out, err = preview(
        capsys,
        "--config",
        write_config(tmp_path, BOOKINGS),
        "--sample",
        write_json(tmp_path, "hook.json", body),
        *args,
    )
    assert code == 0, err
    assert "(deleted_booking)" in out.splitlines()[0]
    assert re.fullmatch(STAMP, cell(out, "Deleted"))
    assert cell(out, "Title") == booking["booking"]["title"]
    assert cell(out, "Room") == booking["booking"]["resource"]["name"]
    assert cell(out, "From") == "2025-06-10 09:00:00  (serial 45818.375)"
    assert cell(out, "URL") == booking["url"]  # no cobot.subdomain yet: the body's URL


def test_deleted_invoice_sample_name_is_its_event(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = preview(capsys, "--config", EXAMPLE_CONFIG, "--sample", "deleted_invoice")
    assert code == 0, err
    assert re.fullmatch(STAMP, cell(out, "Deleted"))
    assert cell(out, "Number") == sample("deleted_invoice")["formatted_invoice_number"]


def test_formula_like_text_stays_literal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = {
        **sample("booking"),
        "title": '=HYPERLINK("http://x","click")',
        "resource": {"id": "r1", "name": "+1 555\nRoom"},
    }
    code, out, err = preview(
        capsys,
        "--config",
        write_config(tmp_path, BOOKINGS),
        "--sample",
        write_json(tmp_path, "booking.json", hostile),
    )
    assert code == 0, err
    assert cell(out, "Title") == '=HYPERLINK("http://x","click")'
    assert cell(out, "Room") == "+1 555\\nRoom"  # control characters shown, not obeyed


def test_url_is_fetched_read_only_from_cobot(tmp_path: Path, cobot_sim: CobotSandbox) -> None:
    member = cobot_sim.sim.create("membership", emit=False)
    gone = cobot_sim.sim.create("membership", emit=False)
    cobot_sim.sim.delete("membership", gone["id"], emit=False)
    cobot = {"subdomain": "co-up", "access_token": cobot_sim.token, "base_url": cobot_sim.url}
    config = write_config(
        tmp_path, yaml.safe_load(EXAMPLE_CONFIG.read_text())["sheets"], cobot=cobot
    )

    # A subprocess, as fetching sets up the command's logging (the root logger's handlers).
    url = cobot_sim.sim.url_for("membership", member["id"])
    found = run_syncd("preview", "--config", config, "--url", url)
    assert found.returncode == 0, found.stderr
    assert cell(found.stdout, "Name") == member["name"]
    assert cell(found.stdout, "URL") == url

    deleted = run_syncd(
        "preview", "--config", config, "--url", cobot_sim.sim.url_for("membership", gone["id"])
    )
    assert deleted.returncode == 1
    assert "it was deleted" in deleted.stderr

    foreign = run_syncd("preview", "--config", config, "--url", "https://evil.example/api/x/1")
    assert foreign.returncode == 2
    assert "--url: url path names no Cobot resource" in foreign.stderr

    assert {(r.method, r.has_auth) for r in cobot_sim.sim.requests()} == {("GET", True)}
    assert len(cobot_sim.sim.requests()) == 2
    assert cobot_sim.token not in found.stdout + found.stderr + deleted.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "nonesuch"], "no such file, nor a bundled sample"),
        (["--sample", "booking", "--sheet", "Members"], "it holds membership rows"),
        (["--sample", "drop_in_pass"], "no worksheet holds drop_in_pass rows"),
        (["--sample", "booking", "--event", "deleted_bookng"], "did you mean deleted_booking?"),
        (["--url", "https://evil.example/api/memberships/1"], "not on the configured Cobot host"),
    ],
)
def test_mistakes_get_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("COBOT_ACCESS_TOKEN", "preview-test-token")
    code, out, err = preview(capsys, "--config", EXAMPLE_CONFIG, *args)
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("syncd: error: ") and message in line


def test_a_broken_mapping_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheets = {"Members": {"resource": "membership", "events": ["created_membershp"]}}
    code, _out, err = preview(
        capsys, "--config", write_config(tmp_path, sheets), "--sample", "membership"
    )
    assert code == 2
    assert "sheets.Members.events" in err and "sheets.Members.columns" in err
    assert "cobot" not in err  # the credentials may come later


# -- templates, member, where:, formats -----------------------------------------------------------

OPEN_AMOUNT = "{{ ((total_amount | float) - (total_paid_amount | float)) | amount }}"
INVOICES: dict[str, Any] = {
    "Invoices": {
        "resource": "invoice",
        "events": ["created_invoice", "deleted_invoice"],
        "columns": {
            "Number": "formatted_invoice_number",
            "Member email": {"template": "{{ member.email }}"},
            "Open amount": {"template": OPEN_AMOUNT, "type": "number", "format": "#,##0.00"},
        },
    },
    "Unpaid invoices": {
        "resource": "invoice",
        "events": ["created_invoice", "deleted_invoice"],
        "where": "paid_status == 'unpaid'",
        "columns": {"Number": "formatted_invoice_number"},
    },
}

MEMBERS_WITH_TEMPLATES: dict[str, Any] = {
    "Members": {
        "resource": "membership",
        "events": ["created_membership", "canceled_membership"],
        "columns": {
            "Email": {"template": "{{ member.email }}"},
            "Company": {"template": "{{ address.company or '-' }}"},
        },
    }
}


def test_template_cells_their_format_and_the_default_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = preview(
        capsys, "--config", write_config(tmp_path, INVOICES), "--sample", "invoice"
    )
    assert (code, err) == (0, "")
    invoice, ada = sample("invoice"), sample("membership")
    assert cell(out, "Member email") == ada["email"]
    assert field(out, "Member email", "Source") == "{{ member.email }}"
    assert field(out, "Open amount", "Source") == OPEN_AMOUNT[:47] + "..."  # cut, not wrapped
    assert (field(out, "Open amount", "Type"), field(out, "Open amount", "Format")) == (
        "number",
        "#,##0.00",
    )
    assert cell(out, "Open amount") == "148.75"
    assert field(out, "Number", "Format") == ""
    # Said once, for the worksheet whose templates read member: the bundled sample stands in.
    (member,) = [line for line in out.splitlines() if line.startswith("member: ")]
    assert member == (
        f"member: sample membership ({ada['name']}) stands in for membership "
        f"{invoice['membership_id']} (--member FILE|NAME picks another)"
    )
    assert out.index(member) < out.index('Worksheet "Unpaid invoices"')
    # A worksheet without formats has no Format column.
    unpaid = out[out.index('Worksheet "Unpaid invoices"') :]
    assert "Format" not in line_of(unpaid, "Header ")


def test_member_option_takes_another_membership(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, INVOICES)
    code, out, err = preview(
        capsys, "--config", config, "--sample", "invoice", "--member", "canceled_membership"
    )
    assert (code, err) == (0, "")
    bo = sample("canceled_membership")
    assert cell(out, "Member email") == bo["email"]
    assert line_of(out, "member: ").startswith(
        f"member: sample canceled_membership ({bo['name']}), given with --member"
    )

    own = write_json(tmp_path, "member.json", {**bo, "email": "own@example.org"})
    code, out, err = preview(capsys, "--config", config, "--sample", "invoice", "--member", own)
    assert (code, err) == (0, "")
    assert cell(out, "Member email") == "own@example.org"

    # A webhook body of a deleted membership is unwrapped like any sample.
    code, out, err = preview(
        capsys, "--config", config, "--sample", "invoice", "--member", "deleted_membership"
    )
    assert (code, err) == (0, "")
    deleted = sample("deleted_membership")["membership"]
    assert cell(out, "Member email") == deleted["email"]


@pytest.mark.parametrize(
    ("sample_name", "member", "message"),
    [
        ("invoice", "booking", "--member booking: sample booking holds no membership"),
        ("invoice", "nonesuch", "--member nonesuch: no such file, nor a bundled sample"),
        ("membership", "canceled_membership", "a membership is its own member"),
    ],
)
def test_member_mistakes_are_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sample_name: str,
    member: str,
    message: str,
) -> None:
    config = write_config(tmp_path, {**INVOICES, **MEMBERS_WITH_TEMPLATES})
    code, out, err = preview(
        capsys, "--config", config, "--sample", sample_name, "--member", member
    )
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("syncd: error: ") and message in line


def test_a_membership_is_its_own_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, MEMBERS_WITH_TEMPLATES)
    code, out, err = preview(capsys, "--config", config, "--sample", "canceled_membership")
    assert (code, err) == (0, "")
    assert line_of(out, "member: ") == "member: this membership itself"
    assert cell(out, "Email") == sample("canceled_membership")["email"]
    assert cell(out, "Company") == "-"


def test_where_says_whether_each_worksheet_keeps_the_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, INVOICES)
    code, out, err = preview(capsys, "--config", config, "--sample", "invoice")
    assert (code, err) == (0, "")
    assert line_of(out, "where: ") == (
        "where: paid_status == 'unpaid'  ->  kept: this invoice has a row here"
    )
    assert cell(out, "Number", "Unpaid invoices") == sample("invoice")["formatted_invoice_number"]

    paid = write_json(tmp_path, "paid.json", {**sample("invoice"), "paid_status": "paid"})
    code, out, err = preview(capsys, "--config", config, "--sample", paid)
    assert (code, err) == (0, "")
    assert line_of(out, "where: ") == (
        "where: paid_status == 'unpaid'  ->  not kept: this invoice gets no row here, "
        "and a row it had is removed"
    )
    assert len([line for line in out.splitlines() if line.startswith("where: ")]) == 1

    # A deletion that carries no data cannot be tested: the row it has is only flagged.
    bare = write_json(tmp_path, "bare.json", {"url": sample("invoice")["url"]})
    code, out, err = preview(
        capsys, "--config", config, "--sample", bare, "--event", "deleted_invoice"
    )
    assert (code, err) == (0, "")
    assert line_of(out, "where: ").endswith(
        "->  not tried: the deletion carries no data (a row it has is flagged, none added)"
    )
    assert "member: " not in out  # nothing to join without data


def test_a_failing_template_warns_naming_its_header_and_paths_skip_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheets = {
        "Invoices": {
            "resource": "invoice",
            "events": ["created_invoice"],
            "where": "(total_amount | float) / (total_paid_amount | float) > 0",
            "columns": {
                "Number": "formatted_invoice_number",
                "Paid share": {"template": "{{ total_paid_amount | float / 0 }}"},
                "Company": {"template": "{{ adress.company }}"},  # a typo renders empty
                "Recipient": "adress.name",
            },
        }
    }
    code, out, err = preview(
        capsys, "--config", write_config(tmp_path, sheets), "--sample", "invoice"
    )
    assert code == 0
    assert cell(out, "Paid share") == "(empty: the template failed)"
    assert cell(out, "Company") == ""
    assert cell(out, "Number") == sample("invoice")["formatted_invoice_number"]
    assert line_of(out, "where: ").endswith(
        "->  not kept: this invoice gets no row here, and a row it had is removed"
    )
    warnings = err.splitlines()
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith(
        'syncd: warning: Invoices: column "Recipient" (path adress.name) matches nothing'
    )
    assert warnings[1].startswith("syncd: warning: Invoices: where failed: ZeroDivisionError")
    assert warnings[2].startswith(
        'syncd: warning: Invoices: column "Paid share": template failed: ZeroDivisionError'
    )


def test_url_joins_the_member_read_only_from_cobot(tmp_path: Path, cobot_sim: CobotSandbox) -> None:
    sim = cobot_sim.sim
    ada = sim.create("membership", emit=False)
    bo = sim.create("membership", emit=False)
    ada_invoice = sim.create("invoice", member=ada["id"], emit=False)
    bo_invoice = sim.create("invoice", member=bo["id"], emit=False)
    sim.delete("membership", bo["id"], emit=False)
    cobot = {"subdomain": "co-up", "access_token": cobot_sim.token, "base_url": cobot_sim.url}
    config = write_config(tmp_path, INVOICES, cobot=cobot)

    found = run_syncd(
        "preview", "--config", config, "--url", sim.url_for("invoice", ada_invoice["id"])
    )
    assert found.returncode == 0, found.stderr
    assert line_of(found.stdout, "member: ") == (
        f"member: {sim.url_for('membership', ada['id'])} ({ada['name']}), read from Cobot"
    )
    assert cell(found.stdout, "Member email") == ada["email"]

    gone = run_syncd(
        "preview", "--config", config, "--url", sim.url_for("invoice", bo_invoice["id"])
    )
    assert gone.returncode == 0, gone.stderr
    assert line_of(gone.stdout, "member: ") == (
        f"member: none: Cobot answers 404 for {sim.url_for('membership', bo['id'])}, "
        "so member.* is empty"
    )
    assert cell(gone.stdout, "Member email") == ""

    # --member stands in without asking Cobot.
    given = run_syncd(
        "preview",
        "--config",
        config,
        "--url",
        sim.url_for("invoice", ada_invoice["id"]),
        "--member",
        "canceled_membership",
    )
    assert given.returncode == 0, given.stderr
    assert cell(given.stdout, "Member email") == sample("canceled_membership")["email"]

    # Two GETs per preview that joins a member from Cobot (its resource, its member), one
    # with --member; every one read-only.
    assert {(r.method, r.has_auth) for r in sim.requests()} == {("GET", True)}
    assert len(sim.requests()) == 5
    assert cobot_sim.token not in found.stdout + found.stderr + gone.stdout + gone.stderr
