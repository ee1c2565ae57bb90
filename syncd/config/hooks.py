"""The sections that need code beyond their declared keys: values derived from other keys and
checks that span several keys. Each hook turns a loaded section into its settings object."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncd.config.draft import Draft, Report
from syncd.config.settings import CobotSettings, GoogleSettings, Settings, SheetSettings
from syncd.core.events import EVENTS

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
    """The key file is read here, so that a missing or broken key is a config problem."""
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
    unless it sets its own; its events must be about the resource it holds."""
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
    duplicates = sorted({h for h in headers if headers.count(h) > 1})
    if duplicates:
        report.add(
            draft.key_path("columns"),
            f"header(s) used twice: {', '.join(duplicates)} "
            f"(key_column and deleted_column are headers too)",
        )
    return sheet


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
    for event in settings.events:
        seen: dict[str, Any] = {}
        for sheet in settings.sheets:
            if event not in sheet.events:
                continue
            for name, value in sheet.filters.items():
                if name in seen and seen[name] != value:
                    report.add(
                        f"sheets.{sheet.title}.filters.{name}",
                        f"another sheet subscribes {event} with a different "
                        f"{name}; Cobot keeps one subscription per event",
                    )
                seen[name] = value


#: The hook of each section that has one; every other section is built from its keys alone.
FINISHERS: dict[type, Callable[[Draft], Any]] = {
    CobotSettings: finish_cobot,
    GoogleSettings: finish_google,
    SheetSettings: finish_sheet,
    Settings: finish_settings,
}
