"""The documentation keeps up with the code: every config key, Cobot event and command.

README.md is checked for a "Configuration reference", a "Cobot events" and a "Commands"
section whose generated tables equal what ``syncd.commands.docsgen`` makes now (refresh them with
``python -m syncd.commands.docsgen --update README.md``), like a CLI whose undocumented command
fails the build.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.commands import docsgen
from syncd.commands.parser import build_parser
from syncd.config.schema import key_paths
from syncd.config.settings import Settings
from syncd.core.events import EVENTS
from tests.cobot_docs import documented_events
from tests.fixtures_daemon import EXAMPLE_CONFIG, REPO

README = REPO / "README.md"
SECTIONS = ("Configuration reference", "Cobot events", "Commands")


def section(text: str, title: str) -> str | None:
    """The body of the ``## title`` section, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else None


def readme_text() -> str:
    return README.read_text(encoding="utf-8") if README.exists() else ""


def all_events() -> set[str]:
    """Cobot's documented events (from the snapshot in tests/data) and the registry's."""
    return set(EVENTS) | documented_events()


def cli_commands() -> list[str]:
    return [name for name, _ in docsgen.cli_commands(build_parser())]


def example_mentions(path: str) -> bool:
    """Whether config.example.yaml shows a key, set or commented out, in its own section."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    *parents, leaf = path.replace("<title>.", "").split(".")
    if parents:
        start = re.search(rf"^{re.escape(parents[0])}:", text, re.M)
        if start is None:
            return False
        following = re.search(r"^[a-z_]+:", text[start.end() :], re.M)
        text = text[start.end() : start.end() + following.start() if following else None]
    return re.search(rf"(?<![\w.-]){re.escape(leaf)}:", text) is not None


# -- the generator and config.example.yaml ------------------------------------------------------


def test_generated_tables_name_every_key_event_and_command() -> None:
    reference = docsgen.config_reference()
    assert [p for p in key_paths(Settings) if f"`{p}`" not in reference] == []
    events = docsgen.event_table()
    assert [e for e in sorted(all_events()) if f"`{e}`" not in events] == []
    commands = docsgen.commands_table()
    assert [c for c in cli_commands() if f"`syncd {c}`" not in commands] == []
    assert {"demo", "preview", "subscriptions list", "sandbox cobot"} <= set(cli_commands())


def test_every_event_has_a_worksheet_in_the_example() -> None:
    events = docsgen.event_table(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    unplaced = [line for line in events.splitlines() if "| — |" in line]
    assert unplaced == []


def test_every_config_key_is_in_config_example_yaml() -> None:
    assert [p for p in key_paths(Settings) if not example_mentions(p)] == []


def test_update_rewrites_only_the_generated_blocks() -> None:
    stale = f"intro\n{docsgen.begin_marker('commands')}\nold\n{docsgen.end_marker('commands')}\nend"
    assert docsgen.update(stale) == f"intro\n{docsgen.block('commands')}\nend"


def test_readme_has_every_section_and_generated_block() -> None:
    readme = readme_text()
    for title in (
        *SECTIONS,
        "Two commands",
        "Try it in five minutes",
        "Install as a service",
        "Mapping cookbook",
        "Computed columns and row filters",
        "Troubleshooting",
        "Upgrading",
    ):
        assert section(readme, title), title
    assert set(docsgen.blocks_in(readme)) == set(docsgen.GENERATED)
    assert len(re.findall(r"^\d+\. \*\*", section(readme, "Troubleshooting") or "", re.M)) == 10


# -- README.md ----------------------------------------------------------------------------------


def test_readme_configuration_reference_names_every_key() -> None:
    reference = section(readme_text(), "Configuration reference") or ""
    assert [p for p in key_paths(Settings) if f"`{p}`" not in reference] == []


def test_readme_event_table_names_every_cobot_event() -> None:
    table = section(readme_text(), "Cobot events") or ""
    assert [e for e in sorted(all_events()) if f"`{e}`" not in table] == []


def test_readme_documents_every_command() -> None:
    text = readme_text()
    assert [c for c in cli_commands() if f"syncd {c}" not in text] == []


def test_readme_tables_are_the_generated_ones() -> None:
    found = docsgen.blocks_in(readme_text())
    stale = [name for name in docsgen.GENERATED if found.get(name) != docsgen.block(name)]
    assert stale == [], "run: python -m syncd.commands.docsgen --update README.md"


def test_readme_sections_fall_under_their_headings() -> None:
    """The section finder the README tests rely on, on a small document."""
    text = "# T\n## Commands\nrun\n## Cobot events\n| `x` |\n"
    assert section(text, "Commands") == "run\n"
    assert section(text, "Cobot events") == "| `x` |\n"
    assert section(text, "Configuration reference") is None


def test_readme_computed_columns_example_previews_as_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The section's YAML is a working mapping, and the preview output shown under it is what
    ``syncd preview`` prints for it today."""
    text = section(readme_text(), "Computed columns and row filters") or ""
    assert "(docs/templates.md)" in text and (REPO / "docs" / "templates.md").is_file()
    yaml_block = re.search(r"```yaml\n(.*?)```", text, re.S)
    shown = re.search(r"```\n\$ (syncd preview [^\n]*)\n(.*?)```", text, re.S)
    assert yaml_block and shown
    config = tmp_path / "config.yaml"
    config.write_text(yaml_block.group(1))
    command = shlex.split(shown.group(1).replace("config.yaml", str(config)))
    assert main(command[1:]) == 0
    captured = capsys.readouterr()
    assert (captured.out.rstrip("\n") + "\n", captured.err) == (shown.group(2), "")
