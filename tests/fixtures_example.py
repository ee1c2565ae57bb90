"""config.example.yaml as the tests use it, including its commented-out optional worksheets.

The optional blocks are what users uncomment, so tests read them from the file itself rather
than from a copy: an example that stopped validating or mapping would fail a test.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from syncd.commands.docsgen import OPTIONAL_MARKER
from tests.fixtures_daemon import EXAMPLE_CONFIG


def example_lines() -> list[str]:
    return EXAMPLE_CONFIG.read_text().splitlines()


def optional_block_lines(lines: list[str]) -> dict[str, list[int]]:
    """Worksheet title -> indexes of its commented lines, for each optional block.

    The region starts at the ``# --- optional sheets`` line; a block starts at a commented
    worksheet title indented like the sheets above it (``#  Title:``).
    """
    start = next(i for i, line in enumerate(lines) if line.startswith(OPTIONAL_MARKER))
    blocks: dict[str, list[int]] = {}
    title: str | None = None
    for index in range(start + 1, len(lines)):
        body = lines[index][1:]
        if not lines[index].startswith("#") or not body.strip():
            continue
        if body.startswith("  ") and not body.startswith("   ") and body.rstrip().endswith(":"):
            title = body.strip()[:-1]
            blocks[title] = []
        if title is not None:
            blocks[title].append(index)
    return blocks


def uncommented_example(titles: list[str]) -> str:
    """config.example.yaml's text with the given optional blocks uncommented in place."""
    lines = example_lines()
    blocks = optional_block_lines(lines)
    for title in titles:
        for index in blocks[title]:
            lines[index] = lines[index][1:]
    return "\n".join(lines) + "\n"


def optional_sheets() -> dict[str, Any]:
    """Every optional worksheet of the example, parsed: title -> sheet settings."""
    lines = example_lines()
    sheets: dict[str, Any] = {}
    for indexes in optional_block_lines(lines).values():
        block = textwrap.dedent("\n".join(lines[i][1:] for i in indexes))
        sheets.update(yaml.safe_load(block))
    return sheets
