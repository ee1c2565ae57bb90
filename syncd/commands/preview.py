"""``syncd preview``: the row a mapping makes from one Cobot resource, before any sheet sees it.

A change to the ``columns:`` of a worksheet is otherwise only checked once the daemon writes
real rows. Preview maps a sample (a bundled one, a saved API answer or a webhook body) or a
resource fetched read-only from Cobot with the daemon's own code (``syncd.mapping.rows``,
as the worker builds its rows), shows every header with its source, type, format and the cell
it gets, which membership templates see as ``member``, and whether ``where:`` keeps the
resource. It warns about column paths that match nothing, which are most often typos, and
about templates that fail for this resource. No sheet is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from syncd.commands.command import Command, add_config_option
from syncd.commands.preview_table import cells_table, escaped
from syncd.config.loading import inspect_settings
from syncd.config.settings import CobotSettings, Settings, SheetSettings
from syncd.core.errors import ConfigError, SyncdError, UsageError
from syncd.core.events import EVENTS, RESOURCE_KINDS, embedded_resource, resource_kind_of_path
from syncd.intake.resources import InvalidResourceURL, parse_resource_url, resource_url
from syncd.mapping.cells import Row, deletion_stamp, missing_paths
from syncd.mapping.computed import MEMBERSHIP, RowContext, member_id, row_kept, uses_member
from syncd.mapping.rows import sheet_row

#: Config sections preview reads; problems elsewhere (Google, webhook) do not matter to it.
_MAPPING_KEYS = ("sheets", "timezone")


@dataclass(frozen=True)
class Payload:
    """One resource as the worker would map it, and where it came from."""

    source: str
    kind: str | None
    url: str | None
    #: None for a deletion that embeds no data: only Deleted and URL are written then.
    resource: dict[str, Any] | None
    event: str | None = None

    @property
    def deletion(self) -> bool:
        return self.event is not None and EVENTS[self.event].deletion


@dataclass(frozen=True)
class Member:
    """The membership templates see as ``member``, and where preview took it from."""

    resource: Mapping[str, Any] | None
    #: The ``member:`` line's text; empty when no worksheet reads ``member``.
    note: str = ""


NO_MEMBER = Member(None)


# -- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, "the YAML config whose worksheets (sheets:) are previewed")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--sample",
        metavar="FILE|NAME",
        help="a JSON file (a resource or a webhook body) or a bundled sample: "
        + ", ".join(sample_names()),
    )
    source.add_argument(
        "--url", metavar="URL", help="a Cobot resource URL, fetched read-only with cobot.*"
    )
    parser.add_argument(
        "--event",
        metavar="NAME",
        help="the webhook event the payload came with (e.g. deleted_invoice)",
    )
    parser.add_argument(
        "--sheet", metavar="TITLE", help="the worksheet, when several hold this kind of resource"
    )
    parser.add_argument(
        "--member",
        metavar="FILE|NAME",
        help="the membership templates see as member (a JSON file or a bundled sample); "
        "by default the bundled membership sample, or with --url the one Cobot holds",
    )


def run(args: argparse.Namespace) -> int:
    settings = preview_settings(args.config, with_cobot=args.url is not None)
    event = check_event(args.event)
    if args.url is not None:
        payload = asyncio.run(fetch_payload(settings, args.url, event))
    else:
        payload = sample_payload(settings, args.sample, event)
    tz = ZoneInfo(settings.timezone)
    sheets = matching_sheets(settings, payload, args.sheet)
    member = member_for(settings, payload, sheets, args.member, from_cobot=args.url is not None)
    for sheet in sheets:
        space = space_of(settings, payload.url).subdomain
        found = preview_sheet(sheet, payload, member, tz, space)
        print(render_preview(found, payload, member))
        for warning in [*path_warnings(sheet, payload), *template_warnings(found)]:
            print(f"syncd: warning: {warning}", file=sys.stderr)
    return 0


# -- settings and inputs ----------------------------------------------------------------------


def preview_settings(path: Path, *, with_cobot: bool) -> Settings:
    """The config's mapping; Google and webhook keys may still be placeholders at this stage."""
    settings, problems = inspect_settings(path)
    wanted = (*_MAPPING_KEYS, "cobot") if with_cobot else _MAPPING_KEYS
    relevant = [p for p in problems if not p.key or p.key.split(".")[0] in wanted]
    if relevant:
        raise ConfigError(str(path), relevant)
    return settings


def check_event(name: str | None) -> str | None:
    if name is None or name in EVENTS:
        return name
    close = difflib.get_close_matches(name, EVENTS, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(f"--event {name}: not a Cobot webhook event{hint}")


def sample_names() -> list[str]:
    """The samples shipped in syncd/samples, by name (a resource kind or a deletion event)."""
    folder = resources.files("syncd").joinpath("samples")
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def read_sample(name: str, option: str = "--sample") -> tuple[str, Any]:
    """(label, parsed JSON) of a sample file or a bundled sample name given with ``option``."""
    path = Path(name)
    if path.is_file():
        label, text = str(path), path.read_text(encoding="utf-8")
    elif name in sample_names():
        label = f"sample {name}"
        text = resources.files("syncd").joinpath("samples", f"{name}.json").read_text("utf-8")
    else:
        raise UsageError(
            f"{option} {name}: no such file, nor a bundled sample "
            f"(one of: {', '.join(sample_names())})"
        )
    try:
        return label, json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{label} is not JSON: {exc.msg} at line {exc.lineno}") from None


def sample_payload(
    settings: Settings, name: str, event: str | None, option: str = "--sample"
) -> Payload:
    """Interpret a sample: a resource, an API 2 document or a webhook body (deletions too)."""
    label, body = read_sample(name, option)
    if not isinstance(body, dict):
        raise UsageError(f"{label}: expected a JSON object (a Cobot resource or webhook body)")
    if event is None and name in EVENTS:
        event = name
    event = event or _deletion_event_of(body)
    url = body.get("url") if isinstance(body.get("url"), str) else None
    kind = _kind(event, url, name if name in RESOURCE_KINDS else None)
    if event is not None and EVENTS[event].deletion:
        resource = embedded_resource(EVENTS[event], body)
    else:
        resource = _flattened(body)
    return Payload(label, kind, _row_url(settings, kind, url, resource), resource, event)


def space_of(settings: Settings, url: str | None) -> CobotSettings:
    """The space a preview reads: the one whose host ``url`` names, else the first."""
    spaces = settings.spaces or (settings.cobot,)
    for space in spaces if url else ():
        try:
            parse_resource_url(url, space)
        except InvalidResourceURL:
            continue
        return space
    return spaces[0]


async def fetch_payload(settings: Settings, url: str, event: str | None) -> Payload:
    """Fetch one resource from Cobot (a single GET, as the worker does); nothing is written."""
    from syncd.cobot.client import CobotClient
    from syncd.ops.logs import configure_logging

    space = space_of(settings, url)
    try:
        ref = parse_resource_url(url, space)
    except InvalidResourceURL as exc:
        raise UsageError(f"--url: {exc} (see cobot.subdomain / cobot.base_url)") from None
    configure_logging("warning", "text", secrets=settings.secret_values())
    async with CobotClient(space) as cobot:
        fetched = await cobot.fetch(ref)
    if fetched.status == "gone" or fetched.data is None:
        raise SyncdError(
            f"Cobot answers 404 for {ref.url}: it was deleted (the daemon would only flag its row)"
        )
    return Payload(ref.url, ref.kind, ref.url, fetched.data, event)


def _deletion_event_of(body: dict[str, Any]) -> str | None:
    """The nested deletion form, ``{"url": ..., "booking": {...}}``, tells its own event."""
    keys = set(body) - {"url"}
    if "url" not in body or len(keys) != 1:
        return None
    (key,) = keys
    kind = _kind_of_url(body["url"])
    for spec in EVENTS.values():
        if spec.deletion and spec.embedded_key == key and kind in spec.resources:
            return spec.name
    return None


def _kind(event: str | None, url: str | None, hint: str | None) -> str | None:
    from_url = _kind_of_url(url)
    if event is not None:
        kinds = EVENTS[event].resources
        return from_url if from_url in kinds else kinds[0]
    return from_url or hint


def _kind_of_url(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    found = resource_kind_of_path(urlsplit(url).path)
    return found[0] if found else None


def _flattened(body: dict[str, Any]) -> dict[str, Any]:
    """API 2 documents are mapped flat, as the Cobot client hands them to the worker."""
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
        return {**data["attributes"], "id": data.get("id"), "type": data.get("type")}
    return body


def _row_url(
    settings: Settings, kind: str | None, url: str | None, resource: dict[str, Any] | None
) -> str | None:
    """The row key the daemon would use: the resource's URL on the configured Cobot host.

    A config without ``cobot.subdomain`` yet (a mapping being drafted) keeps the sample's URL.
    """
    space = space_of(settings, url)
    if not space.subdomain:
        return url
    found = resource_kind_of_path(urlsplit(url).path) if url else None
    if found is not None:
        return resource_url(found[0], found[1], space)
    resource_id = (resource or {}).get("id")
    if kind is not None and isinstance(resource_id, str | int) and str(resource_id):
        return resource_url(kind, str(resource_id), space)
    return None


# -- the member -------------------------------------------------------------------------------


def member_for(
    settings: Settings,
    payload: Payload,
    sheets: Sequence[SheetSettings],
    name: str | None,
    *,
    from_cobot: bool,
) -> Member:
    """The membership a worksheet's templates join, as the daemon would: a membership is its
    own member; others get ``--member``'s sample, with ``--url`` the one Cobot holds, or else
    the bundled membership sample standing in for theirs."""
    if payload.kind == MEMBERSHIP and name is not None:
        raise UsageError(f"--member {name}: a membership is its own member; leave it out")
    if payload.resource is None or not any(uses_member(sheet) for sheet in sheets):
        return NO_MEMBER
    if payload.kind == MEMBERSHIP:
        return Member(None, "this membership itself")
    ident = member_id(payload.kind or "", payload.resource)
    if ident is None:
        what = payload.kind or "resource"
        return Member(None, f"none: this {what} names no membership, so member.* is empty")
    if name is None and from_cobot:
        return asyncio.run(fetch_member(space_of(settings, payload.url), ident))
    given = sample_payload(settings, name or MEMBERSHIP, None, "--member")
    if given.kind not in (MEMBERSHIP, None) or given.resource is None:
        raise UsageError(f"--member {name}: {given.source} holds no membership")
    how = (
        f", given with --member, for membership {ident}"
        if name is not None
        else f" stands in for membership {ident} (--member FILE|NAME picks another)"
    )
    return Member(given.resource, f"{given.source} ({_name_of(given.resource)}){how}")


async def fetch_member(space: CobotSettings, ident: str) -> Member:
    """The membership as Cobot holds it (one read-only GET), as the daemon joins a member its
    local copy lacks."""
    from syncd.cobot.client import CobotClient

    async with CobotClient(space) as cobot:
        ref = cobot.ref_of(MEMBERSHIP, ident)
        try:
            fetched = await cobot.fetch(ref)
        except ValueError:  # an id no Cobot URL can hold: the daemon joins nothing either
            return Member(None, f"none: {ident!r} is not a membership id, so member.* is empty")
    if fetched.data is None:
        return Member(None, f"none: Cobot answers 404 for {ref.url}, so member.* is empty")
    return Member(fetched.data, f"{ref.url} ({_name_of(fetched.data)}), read from Cobot")


def _name_of(membership: Mapping[str, Any]) -> str:
    name = membership.get("name")
    return escaped(name) if isinstance(name, str) and name else "no name"


# -- choosing worksheets and rendering --------------------------------------------------------


@dataclass(frozen=True)
class SheetPreview:
    """What one worksheet makes of the payload: its row, its ``where:``, its problems."""

    sheet: SheetSettings
    row: Row
    #: Whether ``where:`` keeps the resource; None without ``where:`` or without data.
    kept: bool | None
    #: Templates and ``where:`` that failed for this resource, one line each.
    problems: tuple[str, ...]


def matching_sheets(settings: Settings, payload: Payload, title: str | None) -> list[SheetSettings]:
    """The worksheets this payload would update: by kind and event, narrowed by ``--sheet``."""
    titles = ", ".join(s.title for s in settings.sheets)
    if title is not None:
        sheet = next((s for s in settings.sheets if s.title == title), None)
        if sheet is None:
            raise UsageError(f"--sheet {title}: no such worksheet in the config ({titles})")
        if payload.kind is not None and sheet.resource != payload.kind:
            raise UsageError(
                f"--sheet {title}: it holds {sheet.resource} rows, this is a {payload.kind}"
            )
        return [sheet]
    if payload.kind is None:
        raise UsageError(
            f"cannot tell what kind of Cobot resource {payload.source} is: "
            f"name the worksheet with --sheet or the webhook event with --event"
        )
    sheets = [
        s
        for s in settings.sheets
        if s.resource == payload.kind and (payload.event is None or payload.event in s.events)
    ]
    if not sheets:
        wanted = f"subscribes {payload.event} for" if payload.event else "holds"
        raise UsageError(
            f"no worksheet {wanted} {payload.kind} rows ({titles}); add one under sheets:"
        )
    return sheets


def preview_sheet(
    sheet: SheetSettings, payload: Payload, member: Member, tz: ZoneInfo, space: str
) -> SheetPreview:
    """The row and the ``where:`` decision, made by the code the worker uses."""
    context = RowContext(member=member.resource, space=space)
    problems: list[str] = []
    kept = None
    if sheet.where is not None and payload.resource is not None:
        kept = row_kept(sheet, payload.resource, context, problems, tz)
    deleted_at = deletion_stamp(datetime.now(UTC)) if payload.deletion else None
    row = sheet_row(sheet, payload.url or "", payload.resource, deleted_at, tz, context, problems)
    return SheetPreview(sheet, row, kept, tuple(problems))


def render_preview(found: SheetPreview, payload: Payload, member: Member) -> str:
    """The worksheet's headers, in sheet order, each with its source and the cell the daemon
    would write; above them the member templates see and what ``where:`` decides."""
    sheet = found.sheet
    what = payload.kind or "resource"
    event = f" ({payload.event})" if payload.event else ""
    lines = [f'Worksheet "{sheet.title}": the row for this {what}{event}, from {payload.source}']
    if member.note and uses_member(sheet):
        lines.append(f"member: {member.note}")
    if sheet.where is not None:
        lines.append(f"where: {escaped(sheet.where)}  ->  {_verdict(found.kept, what)}")
    missing = {c.header for c in missing_paths(payload.resource or {}, sheet.columns)}
    failed = {c.header for c in sheet.columns if _failed(c.header, found.problems)}
    return "\n".join([*lines, "", *cells_table(sheet, found.row, missing, failed), ""])


def template_warnings(found: SheetPreview) -> list[str]:
    """One line per template or ``where:`` that failed for this resource, naming it."""
    return [f"{found.sheet.title}: {problem}" for problem in found.problems]


def path_warnings(sheet: SheetSettings, payload: Payload) -> list[str]:
    """One line per column whose path matches nothing: most likely a typo in the config."""
    if payload.resource is None:
        return []
    known = list(_leaf_paths(payload.resource))
    warnings = []
    for column in missing_paths(payload.resource, sheet.columns):
        close = difflib.get_close_matches(column.path, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        note = " (deletion webhooks carry fewer fields)" if payload.deletion else ""
        warnings.append(
            f'{sheet.title}: column "{column.header}" (path {column.path}) matches nothing in '
            f"this {payload.kind or 'resource'}{note}; its cell stays empty{hint}"
        )
    return warnings


def _verdict(kept: bool | None, what: str) -> str:
    if kept is None:
        return "not tried: the deletion carries no data (a row it has is flagged, none added)"
    if kept:
        return f"kept: this {what} has a row here"
    return f"not kept: this {what} gets no row here, and a row it had is removed"


def _failed(header: str, problems: Sequence[str]) -> bool:
    """Whether the column's template failed (``syncd.mapping.computed`` names it first)."""
    return any(problem.startswith(f'column "{header}":') for problem in problems)


def _leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every path into a resource (first list element only), to suggest a fix for a typo."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, f"{prefix}{key}.")
    elif isinstance(value, list) and value:
        yield from _leaf_paths(value[0], f"{prefix}0.")
    if prefix:
        yield prefix[:-1]


COMMAND = Command(
    "preview",
    "Show the row the mapping makes from a sample or a Cobot URL; no sheet is touched.",
    add_arguments,
    run,
)
