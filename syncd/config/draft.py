"""What loading one section works on: the problems found so far and the values read so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.core.errors import ConfigProblem


class Report:
    """The problems of one config file, collected so that all of them are reported at once."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    def read_text(self, path: Path, key: str) -> str | None:
        """A file the config names, or None after reporting why it cannot be read."""
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.add(
                key,
                f"cannot read {path}: {reason} (check the path and that the "
                f"daemon's user may read it)",
            )
        except UnicodeDecodeError:
            self.add(key, f"cannot read {path}: not UTF-8 text")
        return None


@dataclass
class Draft:
    """One section being loaded: where it sits, what the file says and the values so far."""

    #: Key path of the section (``cobot``, ``sheets.Members``); empty for the whole file.
    path: str
    #: The section's own name: a worksheet's title for an entry of ``sheets``.
    name: str
    report: Report
    parent: Draft | None = None
    #: The section's mapping as the file gives it.
    raw: Mapping[Any, Any] = field(default_factory=dict)
    #: Coerced values by field name.
    values: dict[str, Any] = field(default_factory=dict)
    #: Keys that hold a stand-in because the file gives no usable value for them.
    stand_ins: set[str] = field(default_factory=set)

    def key_path(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def usable(self, name: str) -> bool:
        """Whether the file gave this key a value that passed its checks."""
        return name not in self.stand_ins
