"""The sections that need code beyond their declared keys: values derived from other keys and
checks that span several keys. Each hook turns a loaded section into its settings object."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from syncd.config.draft import Draft, Report
from syncd.config.secret import Secret
from syncd.config.settings import (
    CobotSettings,
    GoogleSettings,
    Settings,
    SheetSettings,
    SpaceSettings,
)
from syncd.config.templating import BadTemplate, compile_template
from syncd.core.events import EVENTS

#: A spreadsheet's address as the browser shows it: the id is the part after ``/d/``.
SPREADSHEET_URL = re.compile(r"https?://docs\.google\.com/spreadsheets/(?:u/\d+/)?d/([\w-]+)")
#: The daemon's own column naming each row's space, kept when several spaces are configured.
SPACE_COLUMN = "Space"
#: What a Google service-account key must hold for the daemon to sign in with it.
SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


def finish_cobot(draft: Draft) -> CobotSettings:
    """One space (``subdomain`` + ``access_token``) or a list of them (``spaces``), never
    both; either way ``spaces`` holds every space's complete settings. ``base_url`` overrides
    both Cobot origins of its space; without it they follow the subdomain."""
    values, report = draft.values, draft.report
    listed: tuple[SpaceSettings, ...] = values.pop("spaces") or ()
    shared = {k: values[k] for k in ("requests_per_minute", "timeout_seconds")}
    single_keys = [
        name
        for name in ("subdomain", "access_token", "base_url")
        if draft.raw.get(name) is not None or f"{name}_file" in draft.raw
    ]
    if listed or draft.raw.get("spaces") is not None:
        if single_keys:
            report.add(
                draft.key_path(single_keys[0]),
                "give either cobot.spaces (several spaces) or cobot.subdomain and "
                "cobot.access_token (one space), not both",
            )
        names = [entry.subdomain for entry in listed]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            report.add(draft.key_path("spaces"), f"space(s) listed twice: {', '.join(twice)}")
        spaces = tuple(
            _space(entry.subdomain, entry.access_token, entry.base_url, shared) for entry in listed
        )
        return CobotSettings(
            subdomain="",
            access_token=Secret(""),
            base_url="",
            api2_url="",
            spaces=spaces,
            listed=True,
            **shared,
        )
    for name in ("subdomain", "access_token"):
        if name not in single_keys:
            hint = " (or access_token_file)" if name == "access_token" else ""
            report.add(
                draft.key_path(name),
                f"required key is missing{hint}: give cobot.subdomain and cobot.access_token "
                "for one space, or list several under cobot.spaces",
            )
    space = _space(
        values["subdomain"] or "", values["access_token"] or Secret(""), values["base_url"], shared
    )
    return dataclasses.replace(space, spaces=(space,))


def _space(
    subdomain: str, token: Secret, override: str | None, shared: dict[str, Any]
) -> CobotSettings:
    return CobotSettings(
        subdomain=subdomain,
        access_token=token,
        base_url=override or f"https://{subdomain}.cobot.me",
        api2_url=override or "https://api.cobot.me",
        **shared,
    )


def finish_google(draft: Draft) -> GoogleSettings:
    """The key file is read here, so that a missing or broken key is a config problem; a
    spreadsheet's whole address pasted as its id is taken for the id it holds."""
    spreadsheet = draft.values.get("spreadsheet_id")
    if isinstance(spreadsheet, str) and "/" in spreadsheet:
        address = SPREADSHEET_URL.match(spreadsheet.strip())
        if address:
            draft.values["spreadsheet_id"] = address.group(1)
        else:
            draft.report.add(
                draft.key_path("spreadsheet_id"),
                "is not a spreadsheet id nor a Google Sheets address: copy the part between "
                "/d/ and /edit from the spreadsheet's address",
            )
    key_file = "service_account_file"
    info: dict[str, Any] = {}
    if draft.usable(key_file):
        info = _service_account(draft.values[key_file], draft.key_path(key_file), draft.report)
    return GoogleSettings(service_account_info=info, **draft.values)


def _service_account(path: Path, key: str, report: Report) -> dict[str, Any]:
    text = report.read_text(path, key)
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        report.add(
            key,
            f"{path} is not JSON: download the key again from the Google "
            f"Cloud console (IAM > Service accounts > Keys)",
        )
        return {}
    info: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    missing = [k for k in SERVICE_ACCOUNT_FIELDS if not info.get(k)]
    if missing:
        report.add(key, f"{path} is not a service-account key (missing {', '.join(missing)})")
        return {}
    return info


def finish_sheet(draft: Draft) -> SheetSettings:
    """A worksheet is titled by its name under ``sheets`` and re-synced on the full schedule
    unless it sets its own; its events must be about the resource it holds, and its column
    templates must compile (each problem under the column's own key)."""
    if "resync" not in draft.raw and draft.parent is not None:
        draft.values["resync"] = draft.parent.values["resync"].full_schedule
    sheet = SheetSettings(title=draft.name, **draft.values)
    report = draft.report
    if not sheet.title.strip() or len(sheet.title) > 100:
        report.add(draft.path, "a worksheet title must be 1 to 100 characters")
    for event in sheet.events:
        if sheet.resource and sheet.resource not in EVENTS[event].resources:
            kinds = " or ".join(EVENTS[event].resources)
            report.add(
                draft.key_path("events"),
                f"{event} is about a {kinds}, but this sheet holds {sheet.resource} rows",
            )
    headers = [c.header for c in sheet.columns] + [sheet.key_column, sheet.deleted_column]
    for header in headers:
        if header != header.strip():
            report.add(
                draft.key_path("columns"),
                f"header {header!r} has spaces around it: write it as {header.strip()!r} "
                "(headers are matched exactly, and the spaces are easy to miss in the sheet)",
            )
    for header, template in _templates(draft, sheet):
        try:
            compile_template(template)
        except BadTemplate as exc:
            report.add(f"{draft.key_path('columns')}.{header}", f"template {exc}")
    duplicates = sorted({h for h in headers if headers.count(h) > 1})
    if duplicates:
        report.add(
            draft.key_path("columns"),
            f"header(s) used twice: {', '.join(duplicates)} "
            f"(key_column and deleted_column are headers too)",
        )
    return sheet


def _templates(draft: Draft, sheet: SheetSettings) -> Iterator[tuple[str, str]]:
    """Each column's template by header; read from the file when another column is broken,
    so that one pass reports every problem."""
    if draft.usable("columns"):
        return ((c.header, c.template) for c in sheet.columns if c.template is not None)
    raw = draft.raw.get("columns")
    specs = raw.items() if isinstance(raw, dict) else ()
    return (
        (str(header), spec["template"])
        for header, spec in specs
        if isinstance(spec, dict) and isinstance(spec.get("template"), str)
    )


def finish_settings(draft: Draft) -> Settings:
    """Subscription filters are checked across worksheets: Cobot keeps one per event. With
    several spaces every worksheet gets the daemon's Space column, and the spaces a worksheet
    narrows itself to must be configured ones."""
    settings = Settings(source=draft.report.source, **draft.values)
    _check_filters(settings, draft.report)
    names = [space.subdomain for space in settings.spaces]
    for sheet in settings.sheets:
        unknown = [name for name in sheet.spaces if name not in names]
        if unknown:
            draft.report.add(
                f"sheets.{sheet.title}.spaces",
                f"no space {unknown[0]!r} is configured (cobot: {', '.join(names)})",
            )
    if len(names) > 1:
        sheets = tuple(dataclasses.replace(s, space_column=SPACE_COLUMN) for s in settings.sheets)
        settings = dataclasses.replace(settings, sheets=sheets)
        for sheet in sheets:
            if SPACE_COLUMN in (c.header for c in sheet.columns):
                draft.report.add(
                    f"sheets.{sheet.title}.columns",
                    f"{SPACE_COLUMN!r} is the daemon's own column when several spaces are "
                    "configured: give this column another header",
                )
    return settings


def _check_filters(settings: Settings, report: Report) -> None:
    for sheet in settings.sheets:
        accepted = (
            set().union(*(EVENTS[e].filters for e in sheet.events)) if sheet.events else set()
        )
        for name in sheet.filters:
            if name not in accepted:
                report.add(
                    f"sheets.{sheet.title}.filters.{name}",
                    "none of this sheet's events takes this filter (resource_id: "
                    "booking events; lead_time: booking_will_begin; fields: "
                    "updated_custom_field)",
                )
    # Cobot keeps one subscription per event, so its filters hold for every worksheet that
    # lists the event: a filter one of them lacks would starve that one.
    reported: set[str] = set()
    for event in settings.events:
        sharing = [sheet for sheet in settings.sheets if event in sheet.events]
        first = _event_filters(sharing[0], event)
        for sheet in sharing[1:]:
            if _event_filters(sheet, event) != first and sheet.title not in reported:
                reported.add(sheet.title)
                report.add(
                    f"sheets.{sheet.title}.filters",
                    f"{event} is also listed by sheet {sharing[0].title!r} with other filters; "
                    "Cobot keeps one subscription per event, so its filters would hold for "
                    "both: give every sheet that lists an event the same filters",
                )


def _event_filters(sheet: SheetSettings, event: str) -> dict[str, Any]:
    """The filters of ``sheet`` that the subscription to ``event`` takes."""
    return {k: v for k, v in sheet.filters.items() if k in EVENTS[event].filters}


#: The hook of each section that has one; every other section is built from its keys alone.
FINISHERS: dict[type, Callable[[Draft], Any]] = {
    CobotSettings: finish_cobot,
    GoogleSettings: finish_google,
    SheetSettings: finish_sheet,
    Settings: finish_settings,
}
