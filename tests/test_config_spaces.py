"""The `cobot.spaces` list form: every space complete, one form only, problems under their keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.commands.preview import space_of
from syncd.config.loading import load_settings
from tests.test_config import TOKEN, key_file, problems_of, write_config

__all__ = ["key_file"]  # the fixture, used by name

SINGLE = f"  subdomain: co-up\n  access_token: {TOKEN}\n"
SPACES = (
    "  spaces:\n"
    "    - subdomain: co-up\n"
    "      access_token: ${TOKEN_UP}\n"
    "    - subdomain: co-down\n"
    "      access_token: ${TOKEN_DOWN}\n"
    "      base_url: http://127.0.0.1:9001\n"
)
ENV = {"TOKEN_UP": "token-up-0123456789", "TOKEN_DOWN": "token-down-0123456789"}


def spaces_config(tmp_path: Path, key_file: Path, cobot: str = SPACES, sheet: str = "") -> Path:
    """The test config with ``cobot`` as its cobot section; ``sheet`` adds keys to Members."""
    path = write_config(tmp_path, key_file, sheet)
    path.write_text(path.read_text().replace(SINGLE, cobot))
    return path


def test_the_single_form_is_its_own_only_space(tmp_path: Path, key_file: Path) -> None:
    settings = load_settings(write_config(tmp_path, key_file), {})
    (space,) = settings.spaces
    assert (space.subdomain, space.base_url) == ("co-up", "https://co-up.cobot.me")
    assert space.access_token.reveal() == TOKEN
    assert not settings.cobot.listed
    assert settings.sheets[0].space_column is None
    assert "Space" not in settings.sheets[0].headers


def test_the_list_form_gives_every_space_complete_and_a_space_column(
    tmp_path: Path, key_file: Path
) -> None:
    settings = load_settings(spaces_config(tmp_path, key_file), ENV)
    up, down = settings.spaces
    assert (up.subdomain, up.base_url, up.api2_url) == (
        "co-up",
        "https://co-up.cobot.me",
        "https://api.cobot.me",
    )
    assert (down.base_url, down.api2_url) == ("http://127.0.0.1:9001", "http://127.0.0.1:9001")
    assert down.access_token.reveal() == ENV["TOKEN_DOWN"]
    assert (up.requests_per_minute, down.timeout_seconds) == (60, 30.0)
    assert settings.cobot.listed
    (sheet,) = settings.sheets
    assert sheet.space_column == "Space"
    assert sheet.headers[-3:] == ("Space", "Deleted", "URL")
    assert set(ENV.values()) <= set(settings.secret_values())


@pytest.mark.parametrize(
    ("cobot", "sheet", "expected"),
    [
        (
            SINGLE + SPACES,
            "",
            ["cobot.subdomain: give either cobot.spaces (several spaces) or cobot.subdomain"],
        ),
        (
            SPACES + "    - subdomain: co-up\n      access_token: again-0123456789\n",
            "",
            ["cobot.spaces: space(s) listed twice: co-up"],
        ),
        (
            SPACES.replace("${TOKEN_UP}", "${UNSET_UP}"),
            "",
            ["cobot.spaces[0].access_token: environment variable UNSET_UP is not set"],
        ),
        (
            SPACES,
            "    spaces: [co-up, co-nowhere]\n",
            ["sheets.Members.spaces: no space 'co-nowhere' is configured (cobot: co-up, co-down)"],
        ),
        (
            "  requests_per_minute: 60\n",
            "",
            [
                "cobot.subdomain: required key is missing: give cobot.subdomain",
                "cobot.access_token: required key is missing (or access_token_file)",
            ],
        ),
    ],
)
def test_each_problem_is_named_once_under_its_key(
    tmp_path: Path, key_file: Path, cobot: str, sheet: str, expected: list[str]
) -> None:
    path = spaces_config(tmp_path, key_file, cobot, sheet)
    lines = [line.split(": ", 1)[1] for line in problems_of(path, ENV)]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), line


def test_preview_reads_the_space_a_url_names(tmp_path: Path, key_file: Path) -> None:
    settings = load_settings(spaces_config(tmp_path, key_file), ENV)
    down = "http://127.0.0.1:9001/api/memberships/abc"
    assert space_of(settings, down).subdomain == "co-down"
    assert space_of(settings, "https://co-up.cobot.me/api/memberships/abc").subdomain == "co-up"
    assert space_of(settings, None).subdomain == "co-up"
