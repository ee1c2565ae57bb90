"""The sections that need code beyond their declared keys: values derived from other keys and
checks that span several keys. Each hook turns a loaded section into its settings object."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from syncd.config.draft import Draft, Report
from syncd.config.settings import CobotSettings, GoogleSettings, Settings, SheetSettings
from syncd.config.templating import BadTemplate, compile_template
from syncd.core.events import EVENTS

#: A spreadsheet's address as the browser shows it: the id is the part after ``/d/``.
SPREADSHEET_URL = re.compile(r"https?://docs\.google\.com/spreadsheets/(?:u/\d+/)?d/([\w-]+)")
#: What a Google service-account key must hold for the daemon to sign in with it.
SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


def finish_cobot(draft: Draft) -> CobotSettings:
    """``base_url`` overrides both Cobot origins; without it they follow the subdomain."""
    values = draft.values
    override = values.pop("base_url")
    return CobotSettings(
        base_url=override or f"https://{values['subdomain']}.cobot.me",
        api2_url=override or "https://api.cobot.me",
        **values,
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
    """Subscription filters are checked across worksheets: Cobot keeps one per event."""
    settings = Settings(source=draft.report.source, **draft.values)
    _check_filters(settings, draft.report)
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
