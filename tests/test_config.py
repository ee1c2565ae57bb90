"""Config loading: every class of mistake is one clear line naming file and key, exit 2."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import get_args

import pytest

from syncd.cli import main
from syncd.config.coerce import COERCERS
from syncd.config.loading import load_settings
from syncd.config.schema import KeyType, key_paths
from syncd.config.settings import Settings
from syncd.core.errors import ConfigError

TOKEN = "cobot-token-for-config-tests"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "syncd@example.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END "
                "PRIVATE KEY-----\n",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    return path


def write_config(tmp_path: Path, key_file: Path, body: str = "", **replace: str) -> Path:
    text = textwrap.dedent(f"""\
        cobot:
          subdomain: co-up
          access_token: {TOKEN}
        webhook:
          listen: 127.0.0.1:8080
          public_url: https://sync.example.org/cobot
          secret: s3cret-s3cret-s3cret
        google:
          service_account_file: {key_file}
          spreadsheet_id: sheet-123
        state_dir: {tmp_path / "state"}
        sheets:
          Members:
            resource: membership
            events: [created_membership, deleted_membership]
            columns:
              Name: name
              Plan: plan.name
              Joined: {{path: joined_at, type: date}}
        """)
    for old, new in replace.items():
        text = text.replace(old.replace("__", " "), new)
    path = tmp_path / "config.yaml"
    path.write_text(text + body)
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return caught.value.lines()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_config_gives_typed_settings_with_defaults(tmp_path: Path, key_file: Path) -> None:
    settings = load_settings(write_config(tmp_path, key_file), {})
    assert settings.cobot.base_url == "https://co-up.cobot.me"
    assert settings.cobot.api2_url == "https://api.cobot.me"
    assert settings.cobot.requests_per_minute == 60
    assert settings.webhook.listen_port == 8080
    assert settings.webhook.path_prefix == "/cobot"
    assert settings.google.service_account_email == "syncd@example.iam.gserviceaccount.com"
    members = settings.sheets[0]
    assert members.headers == ("Name", "Plan", "Joined", "Deleted", "URL")
    assert [c.type for c in members.columns] == ["text", "text", "date"]
    assert settings.events == ("created_membership", "deleted_membership")


def test_secrets_do_not_show_in_reprs(tmp_path: Path, key_file: Path) -> None:
    settings = load_settings(write_config(tmp_path, key_file), {})
    text = repr(settings)
    assert TOKEN not in text
    assert "s3cret-s3cret-s3cret" not in text
    assert "not-a-real-key" not in text
    assert settings.cobot.access_token.reveal() == TOKEN


def test_env_interpolation_and_secret_files(tmp_path: Path, key_file: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("from-a-file-0123456789\n")
    path = write_config(
        tmp_path,
        key_file,
        **{
            f"access_token: {TOKEN}": "access_token: ${TOKEN_VAR}",
            "secret: s3cret-s3cret-s3cret": f"secret_file: {secret_file}",
        },
    )
    settings = load_settings(path, {"TOKEN_VAR": "tok-from-env"})
    assert settings.cobot.access_token.reveal() == "tok-from-env"
    assert settings.webhook.secret.reveal() == "from-a-file-0123456789"


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path, key_file: Path) -> None:
    path = write_config(tmp_path, key_file, **{"subdomain: co-up": "subdomian: co-up"})
    lines = problems_of(path)
    assert f"{path}: cobot.subdomian: unknown key; did you mean 'subdomain'?" in lines[0]


def test_missing_env_var_is_named(tmp_path: Path, key_file: Path) -> None:
    path = write_config(
        tmp_path, key_file, **{f"access_token: {TOKEN}": "access_token: ${NOT_SET_ANYWHERE}"}
    )
    assert problems_of(path) == [
        f"{path}: cobot.access_token: environment variable NOT_SET_ANYWHERE is not set"
    ]


def test_wrong_type_is_named(tmp_path: Path, key_file: Path) -> None:
    path = write_config(
        tmp_path,
        key_file,
        "  requests_per_minute: lots\n",
        **{f"access_token: {TOKEN}\n": f"access_token: {TOKEN}\n  requests_per_minute: lots\n"},
    )
    lines = problems_of(path)
    assert any("cobot.requests_per_minute: expected a whole number, got 'lots'" in x for x in lines)


def test_missing_required_key_is_named(tmp_path: Path, key_file: Path) -> None:
    path = write_config(tmp_path, key_file, **{"  spreadsheet_id: sheet-123\n": ""})
    lines = problems_of(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: google.spreadsheet_id: required key is missing")


def test_unreadable_secret_file_is_named(tmp_path: Path, key_file: Path) -> None:
    path = write_config(
        tmp_path,
        key_file,
        **{"secret: s3cret-s3cret-s3cret": f"secret_file: {tmp_path / 'nope.txt'}"},
    )
    lines = problems_of(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: webhook.secret_file: cannot read {tmp_path / 'nope.txt'}")


def test_unreadable_key_file_is_named(tmp_path: Path, key_file: Path) -> None:
    missing = tmp_path / "missing-key.json"
    path = write_config(tmp_path, key_file, **{str(key_file): str(missing)})
    lines = problems_of(path)
    assert lines[0].startswith(f"{path}: google.service_account_file: cannot read {missing}")


def test_all_problems_are_reported_at_once(tmp_path: Path, key_file: Path) -> None:
    path = write_config(
        tmp_path,
        key_file,
        **{
            "subdomain: co-up": "subdomian: co-up",
            f"access_token: {TOKEN}": "access_token: ${NOT_SET}",
            "created_membership,": "created_membershp,",
            "type: date": "type: money",
        },
    )
    keys = [line.split(": ")[1] for line in problems_of(path)]
    assert keys == [
        "cobot.subdomian",
        "cobot.access_token",
        "cobot.subdomain",
        "sheets.Members.events",
        "sheets.Members.columns",
    ]


def test_event_must_fit_the_sheet_resource(tmp_path: Path, key_file: Path) -> None:
    path = write_config(tmp_path, key_file, **{"deleted_membership]": "created_booking]"})
    assert problems_of(path) == [
        f"{path}: sheets.Members.events: created_booking is about a booking, but this sheet "
        "holds membership rows"
    ]


def test_filters_must_fit_the_events(tmp_path: Path, key_file: Path) -> None:
    path = write_config(tmp_path, key_file, "    filters: {lead_time: 30}\n")
    assert problems_of(path)[0].startswith(f"{path}: sheets.Members.filters.lead_time: none of")


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("cobot: [unclosed\n")
    lines = problems_of(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line ")


def test_cli_exit_code_2_and_no_traceback(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, key_file, **{"subdomain: co-up": "subdomian: co-up"})
    code, _, err = run_cli(capsys, "check-config", "--offline", "--config", str(path))
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith(f"syncd: error: {path}: cobot.subdomian: unknown key")


def test_check_config_offline_accepts_a_valid_file(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, key_file)
    code, out, err = run_cli(capsys, "check-config", "--offline", "--config", str(path))
    assert (code, err) == (0, "")
    assert "configuration is valid" in out
    assert "created_membership" in out
    assert "s3cret-s3cret-s3cret" not in out


def test_check_config_offline_refuses_plain_http_public_url(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path, key_file, **{"https://sync.example.org": "http://sync.example.org"}
    )
    code, _, err = run_cli(capsys, "check-config", "--offline", "--config", str(path))
    assert code == 2
    assert "webhook.public_url: must be https" in err


def test_missing_config_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "cannot read config file" in err


def test_bounds_are_checked_where_declared(tmp_path: Path, key_file: Path) -> None:
    body = "sync:\n  batch_size: 0\nresync:\n  max_deleted_share: 1.5\n"
    path = write_config(tmp_path, key_file, body)
    assert problems_of(path) == [
        f"{path}: sync.batch_size: must be greater than 0, got 0",
        f"{path}: resync.max_deleted_share: must be between 0 and 1, got 1.5",
    ]


def test_every_key_type_has_a_coercer() -> None:
    assert set(COERCERS) == set(get_args(KeyType))


def test_schema_lists_every_key() -> None:
    paths = key_paths(Settings)
    assert "cobot.access_token_file" in paths
    assert "sheets.<title>.columns" in paths
    assert len(paths) == len(set(paths))


@pytest.mark.parametrize(
    ("replace", "key", "expected"),
    [
        (
            {"subdomain: co-up": "subdomain: co-up\n  time_out: 5"},
            "cobot.time_out",
            "unknown key; did you mean 'timeout_seconds'?",
        ),
        (
            {f"access_token: {TOKEN}": "access_token: ${NOT_SET_ANYWHERE}"},
            "cobot.access_token",
            "environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            {"spreadsheet_id: sheet-123": "spreadsheet_id: [a, b]"},
            "google.spreadsheet_id",
            "expected a non-empty string",
        ),
        ({"  spreadsheet_id: sheet-123\n": ""}, "google.spreadsheet_id", "required key is missing"),
        (
            {"secret: s3cret-s3cret-s3cret": "secret_file: /nonexistent/secret"},
            "webhook.secret_file",
            "cannot read /nonexistent/secret",
        ),
    ],
    ids=["unknown-key", "missing-env-var", "wrong-type", "missing-required", "unreadable-secret"],
)
def test_each_error_class_is_one_line_and_exit_2(
    tmp_path: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    replace: dict[str, str],
    key: str,
    expected: str,
) -> None:
    path = write_config(tmp_path, key_file, **replace)
    code, out, err = run_cli(capsys, "check-config", "--offline", "--config", str(path))
    lines = err.splitlines()
    assert code == 2
    assert out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"syncd: error: {path}: {key}: {expected}")


# -- computed columns, where:, format:, highlight_deleted ---------------------------------------


def test_templates_formats_where_and_highlight_are_loaded(tmp_path: Path, key_file: Path) -> None:
    path = write_config(
        tmp_path,
        key_file,
        '    where: "not canceled_to and member.email"\n    highlight_deleted: ${HIGHLIGHT}\n',
        **{
            "Plan: plan.name": 'Plan: {template: "{{ plan.name | upper }}", format: "@"}\n'
            '      Price: {path: plan.price_per_cycle, type: number, format: "#,##0.00"}',
        },
    )
    members = load_settings(path, {"HIGHLIGHT": "yes"}).sheets[0]
    assert members.where == "not canceled_to and member.email"
    assert members.highlight_deleted is True
    plan, price = members.columns[1:3]
    assert (plan.path, plan.template, plan.type, plan.format) == (
        "",
        "{{ plan.name | upper }}",
        "text",
        "@",
    )
    assert (price.path, price.template, price.type, price.format) == (
        "plan.price_per_cycle",
        None,
        "number",
        "#,##0.00",
    )
    plain = load_settings(write_config(tmp_path, key_file), {}).sheets[0]
    assert (plain.where, plain.highlight_deleted) == (None, False)


def test_every_template_and_column_problem_is_named_at_once(tmp_path: Path, key_file: Path) -> None:
    columns = "\n".join(
        [
            "Name: name",
            '      Title: {template: "{{ name }"}',
            '      Shout: {template: "{{ name | uper }}"}',
            '      Both: {path: name, template: "{{ name }}"}',
            "      Neither: {type: number}",
            "      Colour: {path: name, colour: red}",
            "      Empty: {template: ''}",
        ]
    )
    path = write_config(
        tmp_path,
        key_file,
        '    where: "status =="\n    highlight_deleted: maybe\n',
        **{"Name: name": columns},
    )
    assert problems_of(path) == [
        f"{path}: sheets.Members.columns: column 'Both': give path or template, not both; "
        "column 'Neither': give a path or a template; column 'Colour': unknown key 'colour' "
        "(expected path, template, type, format); column 'Empty': template must be non-empty "
        "text, got ''",
        f"{path}: sheets.Members.where: expression does not parse: unexpected 'end of "
        "template' (line 1)",
        f"{path}: sheets.Members.highlight_deleted: expected true or false, got 'maybe'",
        f"{path}: sheets.Members.columns.Title: template does not parse: unexpected '}}' (line 1)",
        f"{path}: sheets.Members.columns.Shout: template uses the unknown filter 'uper' (did "
        "you mean 'upper'?); see docs/templates.md",
    ]


def test_check_config_rejects_a_template_that_does_not_parse(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, key_file, **{"Name: name": 'Name: {template: "{{ name }"}'})
    code, out, err = run_cli(capsys, "check-config", "--offline", "--config", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"syncd: error: {path}: sheets.Members.columns.Name: template does not parse: "
        "unexpected '}' (line 1)"
    ]
