"""Read a config file into settings, checking every key against its declaration.

Every problem is collected and reported at once, each as one line naming the file, the key path
and what is expected. Values may name environment variables (``${VAR}``), and secrets may be
given as ``<name>_file``, a file whose content is the value.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from syncd.config.coerce import COERCERS, EMPTY
from syncd.config.draft import Draft, Report
from syncd.config.hooks import FINISHERS
from syncd.config.schema import Key, declared
from syncd.config.settings import Settings
from syncd.core.errors import ConfigError, ConfigProblem

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_Section = TypeVar("_Section")


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate a config file; raise ConfigError listing every problem."""
    settings, problems = inspect_settings(path, environ)
    if problems:
        raise ConfigError(str(path), problems)
    return settings


def inspect_settings(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[Settings, list[ConfigProblem]]:
    """Like load_settings, but returns best-effort settings beside the problems found.

    ``syncd check-config`` uses this to go on checking Cobot and Google access with the
    parts of the file that are fine, so one run reports every problem. A file that cannot be
    read or parsed at all still raises ConfigError.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(source), [ConfigProblem("", f"cannot read config file: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        problem = (
            f"line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8; save the file as UTF-8"
        )
        raise ConfigError(str(source), [ConfigProblem("", problem)]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(str(source), [ConfigProblem("", f"{where}{problem}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(source),
            [
                ConfigProblem(
                    "", "expected a YAML mapping at the top level (see config.example.yaml)"
                )
            ],
        )
    report = Report(source)
    settings = _Loader(report, os.environ if environ is None else environ).section(
        Settings, data, Draft("", "", report)
    )
    return settings, report.problems


class _Loader:
    """Walks the raw YAML once along the settings declarations, reporting instead of stopping."""

    def __init__(self, report: Report, environ: Mapping[str, str]) -> None:
        self.report = report
        self.env = environ

    def section(self, cls: type[_Section], raw: Any, draft: Draft) -> _Section:
        """One mapping loaded into its settings class; ``draft`` says where it sits."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.report.add(draft.path, "expected a mapping")
            raw = {}
        draft.raw = raw
        declarations = declared(cls)
        known = {name for name, _ in declarations} | {
            f"{name}_file"
            for name, entry in declarations
            if isinstance(entry, Key) and entry.secret
        }
        for name in raw:
            if name not in known:
                self.report.add(draft.key_path(name), _unknown_key_message(str(name), known))
        for name, entry in declarations:
            if isinstance(entry, Key):
                draft.values[name] = self.value(draft, name, entry)
            else:
                nested = Draft(draft.key_path(name), name, self.report, parent=draft)
                draft.values[name] = self.section(entry, raw.get(name), nested)
        finish = FINISHERS.get(cls)
        built: _Section = finish(draft) if finish is not None else cls(**draft.values)
        return built

    def value(self, draft: Draft, name: str, key: Key) -> Any:
        """One key's value, or a stand-in after reporting why the file's value is unusable."""
        path = draft.key_path(name)
        raw = draft.raw
        before = len(self.report.problems)
        if key.secret and f"{name}_file" in raw:
            given = self.secret_from_file(raw, name, path)
        elif raw.get(name) is None:
            if key.required:
                hint = f" (or {name}_file)" if key.secret else ""
                self.report.add(path, f"required key is missing{hint}: {key.doc}")
            given = key.default
        elif key.entries is not None:
            given = raw[name]  # each entry's keys interpolate themselves, under their own paths
        else:
            given = self.interpolate(raw[name], path)
        if given is not None and len(self.report.problems) == before:
            value = self.coerce(given, key, path)
            if len(self.report.problems) == before:
                self.check(given, value, key, path)
                if key.entries is not None:
                    return self.entries(key.entries, value, draft, path)
                return value
        draft.stand_ins.add(name)
        if key.default is not None:
            return COERCERS[key.type](key.default)
        return EMPTY.get(key.type) if key.required else None

    def entries(
        self, cls: type[_Section], value: dict[Any, Any] | list[Any], parent: Draft, path: str
    ) -> tuple[_Section, ...]:
        """A mapping of named sections (the worksheets) or a list of sections (the spaces),
        each loaded as a section of its own."""
        named = (
            [(f"{path}.{title}", title, body) for title, body in value.items()]
            if isinstance(value, dict)
            else [(f"{path}[{index}]", index, body) for index, body in enumerate(value)]
        )
        return tuple(
            self.section(cls, body, Draft(where, str(name), self.report, parent))
            for where, name, body in named
        )

    def coerce(self, value: Any, key: Key, path: str) -> Any:
        try:
            return COERCERS[key.type](value)
        except (TypeError, ValueError) as exc:
            self.report.add(path, str(exc))
            return None

    def check(self, given: Any, value: Any, key: Key, path: str) -> None:
        """A value that breaks its bounds or rule is reported, and kept as the file gives it."""
        violation = key.bounds.violation(value) if key.bounds is not None else None
        if violation is None and key.check is not None:
            violation = key.check(given)
        if violation is not None:
            self.report.add(path, violation)

    def interpolate(self, value: Any, key: str) -> Any:
        if isinstance(value, str):

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in self.env:
                    self.report.add(key, f"environment variable {name} is not set")
                    return ""
                return self.env[name]

            return ENV_PATTERN.sub(replace, value)
        if isinstance(value, list):
            return [self.interpolate(item, f"{key}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.interpolate(v, f"{key}.{k}") for k, v in value.items()}
        return value

    def secret_from_file(self, raw: Mapping[Any, Any], name: str, key: str) -> str | None:
        """A secret given as ``<name>_file``: the file's content, stripped, never interpolated."""
        file_key = f"{name}_file"
        if raw.get(name) is not None:
            self.report.add(key, f"give either {name} or {file_key}, not both")
            return None
        before = len(self.report.problems)
        path = self.interpolate(raw[file_key], f"{key}_file")
        if len(self.report.problems) > before:
            return None  # an unset variable, already reported: the path means nothing
        if not isinstance(path, str) or not path:
            self.report.add(f"{key}_file", "expected a file path")
            return None
        content = self.report.read_text(Path(path), f"{key}_file")
        if content is not None and not content.strip():
            self.report.add(f"{key}_file", f"{path} is empty")
        return None if content is None else content.strip()


def _unknown_key_message(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (expected one of: {', '.join(sorted(known))})"
