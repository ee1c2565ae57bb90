"""README tables generated from the code, so the documentation cannot drift from it.

Three tables are generated: the configuration reference (from the key declarations of
``syncd.config.settings``), the Cobot events (from ``syncd.core.events.EVENTS`` and the
worksheets of config.example.yaml) and the commands (from the CLI parser). In a Markdown file
each sits between two marker comments, and ``python -m syncd.commands.docsgen --update
README.md`` rewrites them in place; tests fail while a README table differs from what this
module generates.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from syncd.config.schema import Key, KeyType, walk
from syncd.config.settings import Settings
from syncd.core.events import EVENTS, EventSpec

OPTIONAL_MARKER = "# --- optional sheets"
_KIND_NAMES = {
    "check_in": "check-in",
    "check_in_token": "check-in token",
    "drop_in_pass": "drop-in pass",
}
_TYPES: dict[KeyType, str] = {
    "str": "text",
    "secret": "text",
    "secret list": "list of text",
    "int": "whole number",
    "float": "number",
    "url": "URL",
    "hostport": "host:port",
    "path": "file path",
    "timezone": "time zone",
    "resource": "resource kind",
    "events": "list of events",
    "columns": "mapping",
    "mapping": "mapping",
    "sheets": "mapping",
    "cron": "cron or `off`",
    "loglevel": "level",
    "logformat": "`text` or `json`",
    "bool": "`true` or `false`",
    "template expression": "Jinja2 expression",
    "spaces": "list of spaces",
    "names": "list of names",
}


@dataclass(frozen=True)
class ExampleSheet:
    title: str
    resource: str
    events: tuple[str, ...]
    optional: bool


# -- the tables ---------------------------------------------------------------------------------


def config_reference() -> str:
    """Every config key: type, default and what it does."""
    rows = [_key_row(path, key) for path, key in walk(Settings)]
    return _table(("Key", "Type", "Default", "What it does"), [r for row in rows for r in row])


def event_table(example_text: str | None = None) -> str:
    """Every Cobot event: when Cobot sends it, where config.example.yaml puts it, the effect."""
    sheets = example_sheets(example_text or _bundled_example())
    rows = []
    for spec in EVENTS.values():
        titles = [_sheet_label(sheet) for sheet in sheets if spec.name in sheet.events]
        rows.append((f"`{spec.name}`", spec.description, ", ".join(titles) or "—", _effect(spec)))
    headers = ("Event", "Cobot sends it when", "Worksheet in config.example.yaml", "Effect")
    return _table(headers, rows)


def commands_table() -> str:
    """Every ``syncd`` command with its one-line summary."""
    from syncd.commands.parser import build_parser

    rows = [(f"`syncd {name}`", summary) for name, summary in cli_commands(build_parser())]
    return _table(("Command", "What it does"), rows)


def cli_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, str]]:
    """(``run``, summary), (``subscriptions list``, summary)...: every runnable command."""
    commands = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            nested = cli_commands(sub, f"{prefix}{name} ")
            commands += nested or [(f"{prefix}{name}", summaries.get(name, ""))]
    return commands


GENERATED: dict[str, Callable[[], str]] = {
    "config-reference": config_reference,
    "events": event_table,
    "commands": commands_table,
}


# -- config.example.yaml ------------------------------------------------------------------------


def example_sheets(text: str) -> list[ExampleSheet]:
    """The example's worksheets, including the commented-out optional ones."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(OPTIONAL_MARKER))
    active = yaml.safe_load("\n".join(lines[:start]))["sheets"]
    uncommented = [line[1:] if line.startswith("#  ") else line for line in lines[start:]]
    everything = yaml.safe_load("\n".join(lines[:start] + uncommented))["sheets"]
    return [
        ExampleSheet(title, body["resource"], tuple(body["events"]), title not in active)
        for title, body in everything.items()
    ]


def _bundled_example() -> str:
    return resources.files("syncd").joinpath("example_config.yaml").read_text(encoding="utf-8")


# -- Markdown blocks ----------------------------------------------------------------------------


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN generated: {name} (python -m syncd.commands.docsgen --update FILE) -->"


def end_marker(name: str) -> str:
    return f"<!-- END generated: {name} -->"


def block(name: str) -> str:
    """A generated table between its markers, ready to paste."""
    return f"{begin_marker(name)}\n{GENERATED[name]()}\n{end_marker(name)}"


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks a Markdown text holds, by name, markers included."""
    found = {}
    for name in GENERATED:
        pattern = re.escape(begin_marker(name)) + r".*?" + re.escape(end_marker(name))
        match = re.search(pattern, text, flags=re.DOTALL)
        if match:
            found[name] = match.group(0)
    return found


def update(text: str) -> str:
    """The text with every generated block it holds rewritten from the code."""
    for name, old in blocks_in(text).items():
        text = text.replace(old, block(name))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.commands.docsgen",
        description="Print or refresh the generated README tables.",
    )
    parser.add_argument("table", nargs="?", choices=sorted(GENERATED), help="print one table")
    parser.add_argument("--update", nargs="+", type=Path, metavar="FILE", default=[])
    args = parser.parse_args(argv)
    for path in args.update:
        path.write_text(update(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"{path}: refreshed {', '.join(blocks_in(path.read_text())) or 'no blocks'}")
    if args.table:
        print(block(args.table))
    elif not args.update:
        print("\n\n".join(block(name) for name in GENERATED))
    return 0


# -- helpers ------------------------------------------------------------------------------------


def _key_row(path: str, key: Key) -> list[tuple[str, ...]]:
    default = "**required**" if key.required else _default(key.default)
    rows: list[tuple[str, ...]] = [(f"`{path}`", _TYPES[key.type], default, key.doc)]
    if key.secret:
        rows.append(
            (
                f"`{path}_file`",
                "file path",
                "—",
                f"Instead of `{path.rsplit('.', 1)[-1]}`: a file holding it "
                "(e.g. a systemd credential); give one of the two.",
            )
        )
    return rows


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"  # as YAML writes it
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if value != [] and value != {} else f"`{value!r}`"


def _effect(spec: EventSpec) -> str:
    if spec.deletion and spec.embedded_key:
        return (
            "Flags the row (`Deleted` = deletion time) and fills it from the data the "
            "webhook carries."
        )
    if spec.deletion:
        return "Flags the row (`Deleted` = deletion time); its other cells stay as they were."
    kinds = " or ".join(_KIND_NAMES.get(kind, kind.replace("_", " ")) for kind in spec.resources)
    return f"Fetches the {kinds} from Cobot and updates its row (adds it if new)."


def _sheet_label(sheet: ExampleSheet) -> str:
    return f"{sheet.title} (optional)" if sheet.optional else sheet.title


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [_row(headers), _row(["---"] * len(headers))]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


if __name__ == "__main__":
    sys.exit(main())
