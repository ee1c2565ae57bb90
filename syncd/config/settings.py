"""The typed, immutable settings, each config key declared once on the field it sets.

A field's ``key(...)`` gives the key's type, default, bounds and doc; ``syncd.config.loading``
validates the YAML file against these declarations, and the configuration reference in
README.md and config.example.yaml are tested against them, so the docs cannot drift from the
code. Fields without a declaration are derived from other keys while loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.config import checks
from syncd.config.columns import COLUMN_TYPES, Column
from syncd.config.schema import POSITIVE, SHARE, key
from syncd.config.secret import Secret
from syncd.core.events import EVENTS, RESOURCE_KINDS


@dataclass(frozen=True)
class SpaceSettings:
    """One entry of ``cobot.spaces``: a space and the token that reads it."""

    subdomain: str = field(
        metadata=key(
            "str",
            "The space's subdomain: the API is https://<subdomain>.cobot.me.",
            required=True,
            check=checks.cobot_subdomain,
        )
    )
    access_token: Secret = field(
        metadata=key(
            "secret",
            "Cobot OAuth access token of an admin of this space; spaces may share one.",
            required=True,
            secret=True,
        )
    )
    base_url: str | None = field(
        metadata=key(
            "url",
            "Override of https://<subdomain>.cobot.me for this space, e.g. for a simulator.",
            check=checks.origin,
        )
    )


@dataclass(frozen=True)
class CobotSettings:
    """One Cobot space as a client needs it; the ``cobot`` section also lists every space.

    The file gives either ``subdomain`` + ``access_token`` (one space) or ``spaces`` (a list);
    either way ``spaces`` ends up holding each space's complete settings, and code that talks
    to Cobot goes through it.
    """

    subdomain: str = field(
        metadata=key(
            "str",
            "The space's subdomain: the API is https://<subdomain>.cobot.me. Required "
            "unless `cobot.spaces` lists the spaces.",
            check=checks.cobot_subdomain,
        )
    )
    access_token: Secret = field(
        metadata=key(
            "secret",
            "Cobot OAuth access token (scopes: read_* for the synced "
            "resources, read_subscriptions, write_subscriptions). Required unless "
            "`cobot.spaces` lists the spaces.",
            secret=True,
        )
    )
    #: The configured override, or https://<subdomain>.cobot.me.
    base_url: str = field(
        metadata=key(
            "url",
            "Override of https://<subdomain>.cobot.me (and of api.cobot.me "
            "for API 2 resources), e.g. for a local simulator.",
            check=checks.origin,
        )
    )
    #: Derived: the base_url override, or https://api.cobot.me.
    api2_url: str
    requests_per_minute: int = field(
        metadata=key(
            "int",
            "Cobot request budget per access token (Cobot's documented limit is 60 per "
            "minute per user): spaces that share a token share it.",
            default=60,
            bounds=POSITIVE,
        )
    )
    timeout_seconds: float = field(
        metadata=key("float", "Timeout of one Cobot request.", default=30.0, bounds=POSITIVE)
    )
    #: Every space, each with its complete settings (the one space of the single form).
    spaces: tuple[CobotSettings, ...] = field(
        default=(),
        repr=False,
        metadata=key(
            "spaces",
            "Several spaces served by one daemon: a list of {subdomain, access_token (or "
            "access_token_file), base_url}; instead of `subdomain` and `access_token`.",
            entries=SpaceSettings,
        ),
    )
    #: Derived: whether the file lists ``spaces`` (callback URLs then name the space).
    listed: bool = False


@dataclass(frozen=True)
class WebhookSettings:
    listen: tuple[str, int] = field(
        metadata=key("hostport", "host:port the webhook receiver binds.", default="127.0.0.1:8080")
    )
    public_url: str = field(
        metadata=key(
            "url",
            "Public base URL of the receiver (behind your TLS proxy); "
            "callback URLs registered at Cobot lie under it.",
            required=True,
        )
    )
    secret: Secret = field(
        metadata=key(
            "secret",
            "Unguessable secret that is part of every callback URL (at least 16 characters).",
            required=True,
            secret=True,
            check=checks.url_path_secret,
        )
    )
    previous_secrets: tuple[Secret, ...] = field(
        metadata=key(
            "secret list",
            "Secrets still accepted after a rotation, until "
            "every subscription has moved to the new one.",
            default=[],
        )
    )

    @property
    def listen_host(self) -> str:
        return self.listen[0]

    @property
    def listen_port(self) -> int:
        return self.listen[1]

    @property
    def path_prefix(self) -> str:
        """The receiver serves callbacks at the public URL's path (``/cobot/...``)."""
        return urlsplit(self.public_url).path.rstrip("/")


@dataclass(frozen=True)
class GoogleSettings:
    service_account_file: Path = field(
        metadata=key(
            "path", "The service account's JSON key; its token_uri is honoured.", required=True
        )
    )
    #: Derived: the key file's content.
    service_account_info: dict[str, Any] = field(repr=False)
    spreadsheet_id: str = field(
        metadata=key(
            "str",
            "The spreadsheet's id, or its whole address (the id is taken from it). Share it "
            "with the service account's e-mail as Editor.",
            required=True,
        )
    )
    api_endpoint: str | None = field(
        metadata=key("url", "Override of https://sheets.googleapis.com, e.g. for a local emulator.")
    )
    write_requests_per_minute: int = field(
        metadata=key(
            "int",
            "Sheets write budget (Google's per-user quota is 60).",
            default=60,
            bounds=POSITIVE,
        )
    )
    read_requests_per_minute: int = field(
        metadata=key(
            "int",
            "Sheets read budget (Google's per-user quota is 60).",
            default=60,
            bounds=POSITIVE,
        )
    )
    timeout_seconds: float = field(
        metadata=key("float", "Timeout of one Sheets request.", default=60.0, bounds=POSITIVE)
    )

    @property
    def service_account_email(self) -> str:
        return str(self.service_account_info.get("client_email", ""))


@dataclass(frozen=True)
class SyncSettings:
    batch_size: int = field(
        metadata=key(
            "int", "Flush as soon as this many events are waiting.", default=500, bounds=POSITIVE
        )
    )
    flush_interval_seconds: float = field(
        metadata=key(
            "float",
            "How long a burst of webhooks gathers before it is flushed (a few events flush "
            "at once while the request budgets are plentiful); full batches flush at most "
            "this often.",
            default=1.0,
            bounds=POSITIVE,
        )
    )
    fetch_concurrency: int = field(
        metadata=key("int", "Cobot fetches in flight at once.", default=4, bounds=POSITIVE)
    )
    max_attempts: int = field(
        metadata=key(
            "int",
            "Attempts of an event whose own data is refused (or fails unexpectedly) before it "
            "is dead-lettered (see `syncd status` and `syncd replay`); outages are retried "
            "for as long as they last and never dead-letter.",
            default=12,
            bounds=POSITIVE,
        )
    )
    retry_max_seconds: float = field(
        metadata=key("float", "Longest wait between two attempts.", default=3600.0, bounds=POSITIVE)
    )
    subscription_check_minutes: int = field(
        metadata=key(
            "int",
            "How often webhook subscriptions are checked and repaired.",
            default=15,
            bounds=POSITIVE,
        )
    )


@dataclass(frozen=True)
class HealthSettings:
    listen: tuple[str, int] | None = field(
        metadata=key(
            "hostport",
            "Optional separate host:port for /healthz and /metrics; by default they are "
            "served beside the webhook receiver.",
        )
    )
    stuck_after_seconds: float = field(
        metadata=key(
            "float",
            "/healthz answers 503 once due events have waited this long without a "
            "successful sheet write.",
            default=600.0,
        )
    )


@dataclass(frozen=True)
class LoggingSettings:
    level: str = field(metadata=key("loglevel", "debug, info, warning or error.", default="info"))
    format: str = field(
        metadata=key("logformat", "text (readable) or json (one object per line).", default="text")
    )


@dataclass(frozen=True)
class ResyncSettings:
    #: Cron expressions, or None when switched off.
    full_schedule: str | None = field(
        metadata=key(
            "cron",
            "Cron schedule (minute hour day month weekday, in `timezone`; an optional sixth "
            "field in front gives seconds, e.g. `*/5 * * * * *`) of the full re-sync of every "
            "worksheet from Cobot's list endpoints; `off` disables it.",
            default="30 3 * * *",
        )
    )
    recent_schedule: str | None = field(
        metadata=key(
            "cron",
            "Cron schedule of the re-sync of the recent window (invoices, bookings, "
            "check-ins of the last `recent_days`); `off` disables it.",
            default="15 * * * *",
        )
    )
    recent_days: int = field(
        metadata=key("int", "Size of the recent window, in days.", default=14, bounds=POSITIVE)
    )
    history_days: int = field(
        metadata=key(
            "int",
            "How far back a full re-sync or `syncd backfill` reads invoices, bookings and "
            "check-ins (memberships are always listed completely).",
            default=730,
            bounds=POSITIVE,
        )
    )
    window_days: int = field(
        metadata=key(
            "int",
            "Days per list request for windowed resources; a window Cobot refuses as too "
            "large is split in half.",
            default=31,
            bounds=POSITIVE,
        )
    )
    max_deleted_share: float = field(
        metadata=key(
            "float",
            "Safety stop: a re-sync that would flag more than this share of a worksheet's "
            "rows as deleted flags none and reports it (`syncd status`).",
            default=0.2,
            bounds=SHARE,
        )
    )


@dataclass(frozen=True)
class SheetSettings:
    #: Derived: the worksheet's title, its name under ``sheets``.
    title: str
    resource: str = field(
        metadata=key(
            "resource", "What one row is: " + ", ".join(RESOURCE_KINDS) + ".", required=True
        )
    )
    events: tuple[str, ...] = field(
        metadata=key("events", "Cobot events that update this worksheet.", required=True)
    )
    columns: tuple[Column, ...] = field(
        metadata=key(
            "columns",
            "Header -> path into the resource JSON, in sheet order; or {path, type, format} "
            "or {template, type, format}: a Jinja2 template computes the value from the "
            "resource and its member (docs/templates.md), type is one of "
            + ", ".join(COLUMN_TYPES)
            + ", format a Sheets number-format pattern such as `#,##0.00`.",
            required=True,
        )
    )
    key_column: str = field(
        metadata=key("str", "Header of the resource URL column (the upsert key).", default="URL")
    )
    deleted_column: str = field(
        metadata=key("str", "Header of the deletion-time column.", default="Deleted")
    )
    filters: Mapping[str, Any] = field(
        metadata=key(
            "mapping",
            "Subscription filters sent to Cobot for the events that take "
            "them: resource_id (booking events), lead_time (booking_will_begin), "
            "fields (updated_custom_field).",
            default={},
        )
    )
    where: str | None = field(
        default=None,
        metadata=key(
            "template expression",
            "Row filter: a Jinja2 expression over the resource, with the variables of a "
            "column template (e.g. `paid_status == 'unpaid'`); a resource for which it is false "
            "gets no row here, and a row whose resource stops matching is removed.",
        ),
    )
    highlight_deleted: bool = field(
        default=False,
        metadata=key(
            "bool",
            "Grey out rows whose Deleted cell is set, with a conditional-format rule that the "
            "daemon keeps in place.",
            default=False,
        ),
    )
    #: Full re-sync schedule of this worksheet (cron), None when off; when the file does not
    #: set it, resync.full_schedule.
    resync: str | None = field(
        default=None,
        metadata=key(
            "cron",
            "Per-worksheet override of resync.full_schedule (`off` to never re-sync it).",
        ),
    )
    spaces: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "names",
            "With several spaces: the subdomains whose rows this worksheet holds "
            "(default: every space's).",
            default=[],
        ),
    )
    #: Derived: the daemon's own Space column (the subdomain), kept when more than one space
    #: is configured; None otherwise.
    space_column: str | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        """Every header the daemon owns in this worksheet, in the order it creates them."""
        space = (self.space_column,) if self.space_column else ()
        return (*(c.header for c in self.columns), *space, self.deleted_column, self.key_column)

    def holds(self, space: str) -> bool:
        """Whether this worksheet takes the rows of ``space`` (a subdomain)."""
        return not self.spaces or space in self.spaces


@dataclass(frozen=True)
class Settings:
    #: Derived: the config file the settings were read from.
    source: Path
    cobot: CobotSettings
    webhook: WebhookSettings
    google: GoogleSettings
    state_dir: Path = field(
        metadata=key(
            "path", "Directory of the daemon's durable state (SQLite inbox).", required=True
        )
    )
    timezone: str = field(
        metadata=key("timezone", "Time zone for date and datetime columns.", default="UTC")
    )
    sync: SyncSettings
    health: HealthSettings
    logging: LoggingSettings
    resync: ResyncSettings
    event_log_sheet: str | None = field(
        metadata=key(
            "str",
            "Optional worksheet title for an activity feed: one row per received webhook "
            "(received at, event, URL, outcome). Off when not set.",
        )
    )
    sheets: tuple[SheetSettings, ...] = field(
        metadata=key(
            "sheets",
            "Worksheet title -> what it holds (see below).",
            required=True,
            entries=SheetSettings,
        )
    )

    @property
    def spaces(self) -> tuple[CobotSettings, ...]:
        """Every Cobot space the daemon serves, in config order."""
        return self.cobot.spaces

    @property
    def events(self) -> tuple[str, ...]:
        """Every configured event, each once, in config order."""
        return tuple(dict.fromkeys(e for sheet in self.sheets for e in sheet.events))

    def secret_values(self) -> list[str]:
        """Every secret value, for the log filter to mask wherever it might appear."""
        account = self.google.service_account_info
        return [
            *(space.access_token.reveal() for space in self.spaces),
            self.webhook.secret.reveal(),
            *(secret.reveal() for secret in self.webhook.previous_secrets),
            *(str(account.get(name, "")) for name in ("private_key", "private_key_id")),
        ]

    def filters_for(self, event: str) -> dict[str, Any]:
        """Subscription filters for one event: those its sheets set that the event takes."""
        accepted = EVENTS[event].filters
        merged: dict[str, Any] = {}
        for sheet in self.sheets:
            if event in sheet.events:
                merged.update({k: v for k, v in sheet.filters.items() if k in accepted})
        return merged
