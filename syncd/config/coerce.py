"""The value types of config keys: each coercer returns the value a settings field holds, or
raises ValueError saying what is expected."""

from __future__ import annotations

import contextlib
import difflib
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.config.columns import COLUMN_TYPES, Column
from syncd.config.cron import cron_trigger
from syncd.config.schema import KeyType
from syncd.config.secret import Secret
from syncd.config.templating import BadTemplate, compile_expression
from syncd.core.events import EVENTS, RESOURCE_KINDS


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _describe(value: Any) -> str:
    """A value as an error message shows it: short, and never a long string in full."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return f"{value!r}" if len(value) < 40 else "a long string"
    return f"a {type(value).__name__}"


def _str(value: Any) -> str:
    _expect(
        isinstance(value, str) and value != "",
        f"expected a non-empty string, got {_describe(value)}",
    )
    return str(value)


def _int(value: Any) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    _expect(
        isinstance(value, int) and not isinstance(value, bool),
        f"expected a whole number, got {_describe(value)}",
    )
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    _expect(
        isinstance(value, int | float) and not isinstance(value, bool),
        f"expected a number, got {_describe(value)}",
    )
    return float(value)


def _url(value: Any) -> str:
    """An http(s) URL, without a trailing slash."""
    text = _str(value)
    parts = urlsplit(text)
    _expect(
        parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username,
        f"expected an http(s) URL like https://host/path, got {text!r}",
    )
    return text.rstrip("/")


def _hostport(value: Any) -> tuple[str, int]:
    text = _str(str(value) if isinstance(value, int) else value)
    host, sep, port = text.rpartition(":")
    _expect(
        bool(sep) and port.isdigit() and 0 < int(port) < 65536,
        f"expected host:port like 127.0.0.1:8080, got {text!r}",
    )
    return host.strip("[]") or "0.0.0.0", int(port)


def _text_list(value: Any) -> list[str]:
    _expect(
        isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        f"expected a list of strings, got {_describe(value)}",
    )
    return list(value)


def _secret_list(value: Any) -> tuple[Secret, ...]:
    return tuple(Secret(v) for v in _text_list(value))


def _timezone(value: Any) -> str:
    text = _str(value)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {text!r} (expected e.g. UTC or Europe/Berlin)"
        ) from None
    return text


def _resource(value: Any) -> str:
    text = _str(value)
    _expect(
        text in RESOURCE_KINDS,
        f"unknown resource {text!r} (expected one of: {', '.join(RESOURCE_KINDS)})",
    )
    return text


def _events(value: Any) -> tuple[str, ...]:
    names = _text_list(value)
    _expect(bool(names), "expected at least one event")
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, EVENTS, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"unknown Cobot event {', '.join(hints)}; see the event table in README.md"
        )
    return tuple(dict.fromkeys(names))


#: The keys of a column's long form.
COLUMN_KEYS = ("path", "template", "type", "format")


def _columns(value: Any) -> tuple[Column, ...]:
    """Every column, or one error that lists every broken column."""
    _expect(
        isinstance(value, dict) and bool(value),
        f"expected a mapping of header -> path, got {_describe(value)}",
    )
    columns, problems = [], []
    for header, spec in value.items():
        try:
            columns.append(_column(header, spec))
        except ValueError as exc:
            problems.append(str(exc))
    _expect(not problems, "; ".join(problems))
    return tuple(columns)


def _column(header: Any, spec: Any) -> Column:
    """One column: ``Header: path``, or ``Header: {path or template, type, format}``.

    Whether a template parses is checked with the worksheet (``hooks.finish_sheet``), so that
    its problem names the column's own key.
    """
    _expect(
        isinstance(header, str) and header.strip() != "",
        f"column headers must be non-empty text, got {_describe(header)}",
    )
    if isinstance(spec, str) and spec:
        return Column(header, spec)
    _expect(
        isinstance(spec, dict),
        f"column {header!r}: expected a path or {{path: ..., type: ...}}, got {_describe(spec)}",
    )
    extra = sorted(str(name) for name in spec if name not in COLUMN_KEYS)
    if extra:
        raise ValueError(
            f"column {header!r}: unknown key {extra[0]!r} (expected {', '.join(COLUMN_KEYS)})"
        )
    path, template = spec.get("path"), spec.get("template")
    _expect(
        (path is None) != (template is None),
        f"column {header!r}: "
        + ("give path or template, not both" if path is not None else "give a path or a template"),
    )
    for name, text in (("path", path), ("template", template), ("format", spec.get("format"))):
        _expect(
            text is None or (isinstance(text, str) and text.strip() != ""),
            f"column {header!r}: {name} must be non-empty text, got {_describe(text)}",
        )
    kind = spec.get("type", "text")
    _expect(
        kind in COLUMN_TYPES,
        f"column {header!r}: type must be one of {', '.join(COLUMN_TYPES)}, got {kind!r}",
    )
    return Column(header, path or "", kind, template, spec.get("format"))


def _expression(value: Any) -> str:
    """A Jinja2 expression that compiles (a ``where:``)."""
    text = _str(value)
    try:
        compile_expression(text)
    except BadTemplate as exc:
        raise ValueError(f"expression {exc}") from None
    return text


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _bool(value: Any) -> bool:
    """true or false; also as the words a ``${VAR}`` gives (yes/no, on/off)."""
    word = _BOOL_WORDS.get(value.strip().lower()) if isinstance(value, str) else value
    _expect(isinstance(word, bool), f"expected true or false, got {_describe(value)}")
    return bool(word)


def _mapping(value: Any) -> dict[str, Any]:
    _expect(isinstance(value, dict), f"expected a mapping, got {_describe(value)}")
    return dict(value)


def _sheets(value: Any) -> dict[Any, Any]:
    """The worksheets by title; each entry is then loaded as a section of its own."""
    _expect(
        isinstance(value, dict) and bool(value),
        "expected a mapping of worksheet title -> settings",
    )
    return dict(value)


def _spaces(value: Any) -> list[Any]:
    """The spaces, each then loaded as a section of its own."""
    _expect(
        isinstance(value, list) and bool(value),
        "expected a list of spaces, each {subdomain, access_token, base_url}",
    )
    return list(value)


def _names(value: Any) -> tuple[str, ...]:
    """A list of names (or one name)."""
    names = [value] if isinstance(value, str) else value
    _expect(
        isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names),
        f"expected a list of names, got {_describe(value)}",
    )
    return tuple(dict.fromkeys(n.strip() for n in names))


def _cron(value: Any) -> str | None:
    """A crontab expression (five fields, or six with seconds first), or None for ``off``."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "")):
        return None
    text = _str(value).strip()
    _expect(
        len(text.split()) in (5, 6),
        f"expected a cron expression like '30 3 * * *' (minute hour day month weekday; "
        f"a sixth field in front gives seconds) or off, got {text!r}",
    )
    try:
        cron_trigger(text, "UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {text!r}: {exc}") from None
    return text


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def coerce(value: Any) -> str:
        text = str(value).lower() if isinstance(value, str) else value
        _expect(text in choices, f"expected one of {', '.join(choices)}, got {_describe(value)}")
        return str(text)

    return coerce


COERCERS: dict[KeyType, Callable[[Any], Any]] = {
    "str": _str,
    "secret": lambda value: Secret(_str(value)),
    "secret list": _secret_list,
    "int": _int,
    "float": _float,
    "url": _url,
    "hostport": _hostport,
    "path": lambda value: Path(_str(value)),
    "timezone": _timezone,
    "resource": _resource,
    "events": _events,
    "columns": _columns,
    "mapping": _mapping,
    "sheets": _sheets,
    "cron": _cron,
    "loglevel": _choice(("debug", "info", "warning", "error")),
    "logformat": _choice(("text", "json")),
    "bool": _bool,
    "template expression": _expression,
    "spaces": _spaces,
    "names": _names,
}

#: What a required key holds when the file gives no usable value, so that best-effort settings
#: (``syncd check-config`` goes on checking the rest) keep their types.
EMPTY: dict[KeyType, Any] = {
    "str": "",
    "secret": Secret(""),
    "url": "",
    "path": Path(""),
    "resource": "",
    "events": (),
    "columns": (),
    "sheets": (),
}
