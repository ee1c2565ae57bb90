"""An HTTP request as the handlers see it, and the checks Google applies to its fields.

Malformed input must fail with the same 400 messages Google gives, so the checks live in one
place and every handler uses them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from syncd.sandbox.sheets.errors import ApiError


@dataclass
class Call:
    """An HTTP request reduced to what the handlers need (the path stays URL-encoded,
    because an encoded ``%3A`` inside a range must not be confused with ``:append``)."""

    method: str
    raw_path: str
    query: MultiMapping[str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.")
        return data

    def option(self, name: str, allowed: Sequence[str], default: str | None = None) -> str:
        value = self.query.get(name) or default
        if value is None or value not in allowed:
            raise ApiError(400, f"Invalid value at '{name}', \"{value}\"")
        return value

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or "").lower() in ("true", "1")


def required_field(body: Mapping[str, Any], name: str) -> Any:
    """``body[name]``, which must be set."""
    value = body.get(name)
    if value is None:
        raise ApiError(400, f"{name} is required")
    return value


def int_field(body: Mapping[str, Any], name: str, default: int) -> int:
    """``body[name]`` as an int; JSON numbers and numeric strings are accepted, as by Google."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(400, f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"Invalid value for {name}: {value!r}") from None


def mask_paths(mask: str) -> set[str]:
    """Expand a field mask (``a/b``, ``a.b``, ``a(b,c)``) into dotted paths."""
    paths: set[str] = set()
    stack: list[str] = []
    token = ""
    for char in mask.replace("/", ".") + ",":
        if char == "(":
            stack.append(token.strip())
            token = ""
        elif char in "),":
            if token.strip():
                paths.add(".".join([*stack, token.strip()]))
            token = ""
            if char == ")":
                if not stack:
                    raise ApiError(400, f"Invalid field mask: {mask}")
                stack.pop()
        else:
            token += char
    return paths


def mask_covers(paths: set[str], target: str) -> bool:
    """True if the mask selects ``target`` or a part of it."""
    return any(
        p == "*" or p == target or target.startswith(p + ".") or p.startswith(target + ".")
        for p in paths
    )


def select_fields(value: Any, paths: set[str]) -> Any:
    """``value`` cut down to the fields a response mask selects (``paths`` from
    :func:`mask_paths`); lists are transparent, as in Google's ``fields`` parameter."""
    if "*" in paths or "" in paths:
        return value
    if isinstance(value, list):
        return [select_fields(item, paths) for item in value]
    if not isinstance(value, Mapping):
        return value
    selected: dict[str, Any] = {}
    for key, item in value.items():
        inner = {p[len(key) + 1 :] for p in paths if p == key or p.startswith(key + ".")}
        if inner:
            selected[key] = select_fields(item, inner)
    return selected
