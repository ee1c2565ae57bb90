"""How a settings field declares its config key, and how the declarations are walked.

A settings dataclass is its own schema: each field that the YAML file sets carries a ``Key``
in its metadata (``field(metadata=key(...))``), and a field typed as another settings
dataclass is a nested section. Loading, the README reference and the tests all walk these
declarations, so every key is written down exactly once.
"""

from __future__ import annotations

import builtins
import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The value types a key can have; ``syncd.config.coerce`` checks and converts each.
KeyType = Literal[
    "str",
    "secret",
    "secret list",
    "int",
    "float",
    "url",
    "hostport",
    "path",
    "timezone",
    "resource",
    "events",
    "columns",
    "mapping",
    "sheets",
    "cron",
    "spaces",
    "names",
    "loglevel",
    "logformat",
    "bool",
    "template expression",
]

#: Stands for an entry's name in key paths, e.g. ``sheets.<title>.columns``.
ENTRY_PLACEHOLDER = "<title>"

_METADATA = "syncd.config.key"


@dataclass(frozen=True)
class Bounds:
    """Limits of a number: ``above < value``, and ``value <= at_most`` when that is set."""

    above: float
    at_most: float | None = None

    def violation(self, value: float) -> str | None:
        """What is wrong with the value, or None when it lies within the bounds."""
        if self.at_most is None:
            return None if value > self.above else f"must be greater than {self.above}, got {value}"
        if self.above < value <= self.at_most:
            return None
        return f"must be between {self.above} and {self.at_most}, got {value}"


POSITIVE = Bounds(above=0)
SHARE = Bounds(above=0, at_most=1)


@dataclass(frozen=True)
class Key:
    """One config key: its type, default, bounds and the one-line doc the reference shows."""

    type: KeyType
    doc: str
    default: Any = None
    required: bool = False
    #: A secret may be given inline or as ``<name>_file`` (a path whose content is the value).
    secret: bool = False
    bounds: Bounds | None = None
    #: A rule on the value as the file writes it, once its type is right (``syncd.config.checks``).
    check: Callable[[str], str | None] | None = None
    #: For a mapping of named sections (``sheets``) or a list of sections (``spaces``): the
    #: settings class of each entry.
    entries: builtins.type | None = None


def key(
    type: KeyType,
    doc: str,
    *,
    default: Any = None,
    required: bool = False,
    secret: bool = False,
    bounds: Bounds | None = None,
    check: Callable[[str], str | None] | None = None,
    entries: builtins.type | None = None,
) -> Mapping[str, Key]:
    """Field metadata that makes a settings field a config key."""
    return {_METADATA: Key(type, doc, default, required, secret, bounds, check, entries)}


def declared(section: type) -> tuple[tuple[str, Key | type], ...]:
    """A section's keys in file order: each a Key, or the settings class of a nested section.

    Fields without a declaration (values derived from other keys) are left out.
    """
    hints = typing.get_type_hints(section)
    found: list[tuple[str, Key | type]] = []
    for field in dataclasses.fields(section):
        declaration = field.metadata.get(_METADATA)
        if isinstance(declaration, Key):
            found.append((field.name, declaration))
        elif dataclasses.is_dataclass(hints[field.name]):
            found.append((field.name, hints[field.name]))
    return tuple(found)


def walk(section: type, prefix: str = "") -> Iterator[tuple[str, Key]]:
    """Every key under a section with its path, e.g. ``("cobot.access_token", Key(...))``."""
    for name, entry in declared(section):
        path = f"{prefix}{name}"
        if isinstance(entry, Key):
            yield path, entry
            if entry.entries is not None:
                nested = f"{path}[]" if entry.type == "spaces" else f"{path}.{ENTRY_PLACEHOLDER}"
                yield from walk(entry.entries, f"{nested}.")
        else:
            yield from walk(entry, f"{path}.")


def key_paths(section: type) -> list[str]:
    """Every key path a file may set, secrets' ``_file`` variants included."""
    paths = []
    for path, entry in walk(section):
        paths.append(path)
        if entry.secret:
            paths.append(f"{path}_file")
    return paths
