"""Load and validate the YAML config into typed, immutable settings.

The file is checked against one declarative schema (``SCHEMA``), which is also what the
configuration reference in README.md and config.example.yaml are tested against, so the docs
cannot drift from the code. Every problem is collected and reported at once, each as one line
naming the file, the key path and what is expected.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from syncd.core.errors import ConfigError, ConfigProblem
from syncd.core.events import EVENTS, RESOURCE_KINDS

COLUMN_TYPES = ("text", "number", "date", "datetime", "bool")
ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Secret:
    """A string that never shows itself in reprs, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One config key: its type, default and the one-line doc the reference shows."""

    type: str
    doc: str
    default: Any = None
    required: bool = False
    #: A secret may be given inline or as ``<name>_file`` (a path whose content is the value).
    secret: bool = False


Section = dict[str, "Key | Section"]

SCHEMA: Section = {
    "cobot": {
        "subdomain": Key(
            "str", "The space's subdomain: the API is https://<subdomain>.cobot.me.", required=True
        ),
        "access_token": Key(
            "str",
            "Cobot OAuth access token (scopes: read_* for the synced "
            "resources, read_subscriptions, write_subscriptions).",
            required=True,
            secret=True,
        ),
        "base_url": Key(
            "url",
            "Override of https://<subdomain>.cobot.me (and of api.cobot.me "
            "for API 2 resources), e.g. for a local simulator.",
        ),
        "requests_per_minute": Key(
            "int",
            "The daemon's whole Cobot request budget; Cobot's "
            "documented limit is 60 per minute per user.",
            default=60,
        ),
        "timeout_seconds": Key("float", "Timeout of one Cobot request.", default=30.0),
    },
    "webhook": {
        "listen": Key(
            "hostport", "host:port the webhook receiver binds.", default="127.0.0.1:8080"
        ),
        "public_url": Key(
            "url",
            "Public base URL of the receiver (behind your TLS proxy); "
            "callback URLs registered at Cobot lie under it.",
            required=True,
        ),
        "secret": Key(
            "str",
            "Unguessable secret that is part of every callback URL (at least 16 characters).",
            required=True,
            secret=True,
        ),
        "previous_secrets": Key(
            "list[str]",
            "Secrets still accepted after a rotation, until "
            "every subscription has moved to the new one.",
            default=[],
        ),
    },
    "google": {
        "service_account_file": Key(
            "path", "The service account's JSON key; its token_uri is honoured.", required=True
        ),
        "spreadsheet_id": Key(
            "str",
            "The spreadsheet's id (from its URL). Share it with the "
            "service account's e-mail as Editor.",
            required=True,
        ),
        "api_endpoint": Key(
            "url", "Override of https://sheets.googleapis.com, e.g. for a local emulator."
        ),
        "write_requests_per_minute": Key(
            "int", "Sheets write budget (Google's per-user quota is 60).", default=60
        ),
        "read_requests_per_minute": Key(
            "int", "Sheets read budget (Google's per-user quota is 60).", default=60
        ),
        "timeout_seconds": Key("float", "Timeout of one Sheets request.", default=60.0),
    },
    "state_dir": Key(
        "path", "Directory of the daemon's durable state (SQLite inbox).", required=True
    ),
    "timezone": Key("timezone", "Time zone for date and datetime columns.", default="UTC"),
    "sync": {
        "batch_size": Key("int", "Flush as soon as this many events are waiting.", default=500),
        "flush_interval_seconds": Key(
            "float",
            "Flush at the latest this long after the oldest waiting event arrived.",
            default=1.0,
        ),
        "fetch_concurrency": Key("int", "Cobot fetches in flight at once.", default=4),
        "max_attempts": Key(
            "int",
            "Attempts per event before it is dead-lettered "
            "(see `syncd status` and `syncd replay`).",
            default=12,
        ),
        "retry_max_seconds": Key("float", "Longest wait between two attempts.", default=3600.0),
        "subscription_check_minutes": Key(
            "int", "How often webhook subscriptions are checked and repaired.", default=15
        ),
    },
    "health": {
        "listen": Key(
            "hostport",
            "Optional separate host:port for /healthz and /metrics; by default they are "
            "served beside the webhook receiver.",
        ),
        "stuck_after_seconds": Key(
            "float",
            "/healthz answers 503 once due events have waited this long without a "
            "successful sheet write.",
            default=600.0,
        ),
    },
    "logging": {
        "level": Key("loglevel", "debug, info, warning or error.", default="info"),
        "format": Key(
            "logformat", "text (readable) or json (one object per line).", default="text"
        ),
    },
    "resync": {
        "full_schedule": Key(
            "cron",
            "Cron schedule (minute hour day month weekday, in `timezone`; an optional sixth "
            "field in front gives seconds, e.g. `*/5 * * * * *`) of the full re-sync of every "
            "worksheet from Cobot's list endpoints; `off` disables it.",
            default="30 3 * * *",
        ),
        "recent_schedule": Key(
            "cron",
            "Cron schedule of the re-sync of the recent window (invoices, bookings, "
            "check-ins of the last `recent_days`); `off` disables it.",
            default="15 * * * *",
        ),
        "recent_days": Key("int", "Size of the recent window, in days.", default=14),
        "history_days": Key(
            "int",
            "How far back a full re-sync or `syncd backfill` reads invoices, bookings and "
            "check-ins (memberships are always listed completely).",
            default=730,
        ),
        "window_days": Key(
            "int",
            "Days per list request for windowed resources; a window Cobot refuses as too "
            "large is split in half.",
            default=31,
        ),
        "max_deleted_share": Key(
            "float",
            "Safety stop: a re-sync that would flag more than this share of a worksheet's "
            "rows as deleted flags none and reports it (`syncd status`).",
            default=0.2,
        ),
    },
    "event_log_sheet": Key(
        "str",
        "Optional worksheet title for an activity feed: one row per received webhook "
        "(received at, event, URL, outcome). Off when not set.",
    ),
    "sheets": Key("sheets", "Worksheet title -> what it holds (see below).", required=True),
}

SHEET_SCHEMA: Section = {
    "resource": Key(
        "resource", "What one row is: " + ", ".join(RESOURCE_KINDS) + ".", required=True
    ),
    "events": Key("events", "Cobot events that update this worksheet.", required=True),
    "columns": Key(
        "columns",
        "Header -> path into the resource JSON, in sheet order; or "
        "{path, type} with type one of " + ", ".join(COLUMN_TYPES) + ".",
        required=True,
    ),
    "key_column": Key("str", "Header of the resource URL column (the upsert key).", default="URL"),
    "deleted_column": Key("str", "Header of the deletion-time column.", default="Deleted"),
    "filters": Key(
        "mapping",
        "Subscription filters sent to Cobot for the events that take "
        "them: resource_id (booking events), lead_time (booking_will_begin), "
        "fields (updated_custom_field).",
        default={},
    ),
    "resync": Key(
        "cron",
        "Per-worksheet override of resync.full_schedule (`off` to never re-sync it).",
    ),
}


def schema_key_paths() -> list[str]:
    """Every documented key path, e.g. ``cobot.access_token``, ``sheets.<title>.columns``."""

    def walk(section: Section, prefix: str) -> Iterator[str]:
        for name, entry in section.items():
            path = f"{prefix}{name}"
            if isinstance(entry, Key):
                yield path
                if entry.secret:
                    yield f"{path}_file"
            else:
                yield from walk(entry, f"{path}.")

    return [*walk(SCHEMA, ""), *walk(SHEET_SCHEMA, "sheets.<title>.")]


# --------------------------------------------------------------------------------------------
# Settings objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CobotSettings:
    subdomain: str
    access_token: Secret
    base_url: str
    api2_url: str
    requests_per_minute: int
    timeout_seconds: float


@dataclass(frozen=True)
class WebhookSettings:
    listen_host: str
    listen_port: int
    public_url: str
    secret: Secret
    previous_secrets: tuple[Secret, ...]

    @property
    def path_prefix(self) -> str:
        """The receiver serves callbacks at the public URL's path (``/cobot/...``)."""
        return urlsplit(self.public_url).path.rstrip("/")


@dataclass(frozen=True)
class GoogleSettings:
    service_account_file: Path
    service_account_info: dict[str, Any] = field(repr=False)
    spreadsheet_id: str
    api_endpoint: str | None
    write_requests_per_minute: int
    read_requests_per_minute: int
    timeout_seconds: float

    @property
    def service_account_email(self) -> str:
        return str(self.service_account_info.get("client_email", ""))


@dataclass(frozen=True)
class SyncSettings:
    batch_size: int
    flush_interval_seconds: float
    fetch_concurrency: int
    max_attempts: int
    retry_max_seconds: float
    subscription_check_minutes: int


@dataclass(frozen=True)
class HealthSettings:
    listen: tuple[str, int] | None
    stuck_after_seconds: float


@dataclass(frozen=True)
class LoggingSettings:
    level: str
    format: str


@dataclass(frozen=True)
class ResyncSettings:
    #: Cron expressions, or None when switched off.
    full_schedule: str | None
    recent_schedule: str | None
    recent_days: int
    history_days: int
    window_days: int
    max_deleted_share: float


@dataclass(frozen=True)
class Column:
    header: str
    path: str
    type: str = "text"


@dataclass(frozen=True)
class SheetSettings:
    title: str
    resource: str
    events: tuple[str, ...]
    columns: tuple[Column, ...]
    key_column: str
    deleted_column: str
    filters: Mapping[str, Any]
    #: Full re-sync schedule of this worksheet (cron), None when off.
    resync: str | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        """Every header the daemon owns in this worksheet, in the order it creates them."""
        return (*(c.header for c in self.columns), self.deleted_column, self.key_column)


@dataclass(frozen=True)
class Settings:
    source: Path
    cobot: CobotSettings
    webhook: WebhookSettings
    google: GoogleSettings
    state_dir: Path
    timezone: str
    sync: SyncSettings
    health: HealthSettings
    logging: LoggingSettings
    resync: ResyncSettings
    event_log_sheet: str | None
    sheets: tuple[SheetSettings, ...]

    @property
    def events(self) -> tuple[str, ...]:
        """Every configured event, each once, in config order."""
        return tuple(dict.fromkeys(e for sheet in self.sheets for e in sheet.events))

    def sheets_for(self, event: str, resource: str) -> list[SheetSettings]:
        """The worksheets a webhook of this event about this kind of resource updates."""
        return [s for s in self.sheets if event in s.events and s.resource == resource]

    def secret_values(self) -> list[str]:
        """Every secret value, for the log filter to mask wherever it might appear."""
        key = self.google.service_account_info
        return [
            self.cobot.access_token.reveal(),
            self.webhook.secret.reveal(),
            *(secret.reveal() for secret in self.webhook.previous_secrets),
            *(str(key.get(name, "")) for name in ("private_key", "private_key_id")),
        ]

    def filters_for(self, event: str) -> dict[str, Any]:
        """Subscription filters for one event: those its sheets set that the event takes."""
        accepted = EVENTS[event].filters
        merged: dict[str, Any] = {}
        for sheet in self.sheets:
            if event in sheet.events:
                merged.update({k: v for k, v in sheet.filters.items() if k in accepted})
        return merged


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
    env = os.environ if environ is None else environ
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(source), [ConfigProblem("", f"cannot read config file: {exc.strerror or exc}")]
        ) from None
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
    builder = _Builder(source, env)
    settings = builder.build(data)
    return settings, builder.problems


class _Builder:
    """Walks the raw YAML once, collecting problems instead of stopping at the first."""

    def __init__(self, source: Path, environ: Mapping[str, str]) -> None:
        self.source = source
        self.env = environ
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    # -- generic checks -----------------------------------------------------------------

    def interpolate(self, value: Any, key: str) -> Any:
        if isinstance(value, str):

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in self.env:
                    self.problem(key, f"environment variable {name} is not set")
                    return ""
                return self.env[name]

            return ENV_PATTERN.sub(replace, value)
        if isinstance(value, list):
            return [self.interpolate(item, f"{key}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.interpolate(v, f"{key}.{k}") for k, v in value.items()}
        return value

    def section(self, raw: Any, schema: Section, prefix: str) -> dict[str, Any]:
        """Validate one mapping against its schema; returns coerced values by key."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(prefix.rstrip("."), "expected a mapping")
            raw = {}
        out: dict[str, Any] = {}
        known = set(schema) | {
            f"{n}_file" for n, e in schema.items() if isinstance(e, Key) and e.secret
        }
        for name in raw:
            if name not in known:
                self.problem(f"{prefix}{name}", _unknown_key_message(str(name), known))
        for name, entry in schema.items():
            key = f"{prefix}{name}"
            if isinstance(entry, dict):
                out[name] = self.section(raw.get(name), entry, f"{key}.")
                continue
            if entry.secret and f"{name}_file" in raw:
                out[name] = self.secret_from_file(raw, name, key)
                continue
            value = raw.get(name)
            if value is None:
                if entry.required:
                    hint = f" (or {name}_file)" if entry.secret else ""
                    self.problem(key, f"required key is missing{hint}: {entry.doc}")
                default = entry.default
                out[name] = None if default is None else self.coerce(default, entry.type, key)
                continue
            before = len(self.problems)
            value = self.interpolate(value, key)
            out[name] = (
                self.coerce(value, entry.type, key) if len(self.problems) == before else None
            )
        return out

    def secret_from_file(self, raw: dict[str, Any], name: str, key: str) -> str | None:
        """A secret given as ``<name>_file``: the file's content, stripped, never interpolated."""
        file_key = f"{name}_file"
        if raw.get(name) is not None:
            self.problem(key, f"give either {name} or {file_key}, not both")
            return None
        path = self.interpolate(raw[file_key], f"{key}_file")
        if not isinstance(path, str) or not path:
            self.problem(f"{key}_file", "expected a file path")
            return None
        content = self.read_file(Path(path), f"{key}_file")
        if content is not None and not content.strip():
            self.problem(f"{key}_file", f"{path} is empty")
        return None if content is None else content.strip()

    def read_file(self, path: Path, key: str) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.problem(
                key,
                f"cannot read {path}: {reason} (check the path and that the "
                f"daemon's user may read it)",
            )
        except UnicodeDecodeError:
            self.problem(key, f"cannot read {path}: not UTF-8 text")
        return None

    def coerce(self, value: Any, kind: str, key: str) -> Any:
        checker = _COERCERS.get(kind)
        if checker is None:
            return value
        try:
            return checker(value)
        except (TypeError, ValueError) as exc:
            self.problem(key, str(exc))
            return None

    # -- the whole file -----------------------------------------------------------------

    def build(self, data: dict[str, Any]) -> Settings:
        raw = self.section(data, SCHEMA, "")
        cobot, webhook, google, sync = raw["cobot"], raw["webhook"], raw["google"], raw["sync"]
        sheets = self.sheets(raw["sheets"], raw["resync"]["full_schedule"])
        settings = Settings(
            source=self.source,
            cobot=self.cobot(cobot),
            webhook=self.webhook(webhook),
            google=self.google(google),
            state_dir=Path(raw["state_dir"] or "."),
            timezone=raw["timezone"] or "UTC",
            sync=SyncSettings(**sync),
            health=HealthSettings(**raw["health"]),
            logging=LoggingSettings(**raw["logging"]),
            resync=ResyncSettings(**raw["resync"]),
            event_log_sheet=raw["event_log_sheet"],
            sheets=sheets,
        )
        self.check_positive(
            sync,
            "sync",
            (
                "batch_size",
                "fetch_concurrency",
                "max_attempts",
                "flush_interval_seconds",
                "retry_max_seconds",
                "subscription_check_minutes",
            ),
        )
        self.check_positive(cobot, "cobot", ("requests_per_minute", "timeout_seconds"))
        self.check_positive(
            google,
            "google",
            ("write_requests_per_minute", "read_requests_per_minute", "timeout_seconds"),
        )
        resync = raw["resync"]
        self.check_positive(resync, "resync", ("recent_days", "history_days", "window_days"))
        share = resync["max_deleted_share"]
        if isinstance(share, float) and not 0 < share <= 1:
            self.problem("resync.max_deleted_share", f"must be between 0 and 1, got {share}")
        self.check_filters(settings)
        return settings

    def check_positive(self, values: dict[str, Any], prefix: str, names: tuple[str, ...]) -> None:
        for name in names:
            value = values.get(name)
            if isinstance(value, int | float) and value <= 0:
                self.problem(f"{prefix}.{name}", f"must be greater than 0, got {value}")

    def cobot(self, raw: dict[str, Any]) -> CobotSettings:
        subdomain = raw["subdomain"] or ""
        if subdomain and not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", subdomain):
            self.problem(
                "cobot.subdomain", f"expected a Cobot subdomain like 'co-up', got {subdomain!r}"
            )
        base = raw["base_url"]
        if base and urlsplit(base).path.strip("/"):
            self.problem(
                "cobot.base_url",
                f"expected an origin without a path, like http://127.0.0.1:9001, got {base!r}",
            )
        return CobotSettings(
            subdomain=subdomain,
            access_token=Secret(raw["access_token"] or ""),
            base_url=(base or f"https://{subdomain}.cobot.me").rstrip("/"),
            api2_url=(base or "https://api.cobot.me").rstrip("/"),
            requests_per_minute=raw["requests_per_minute"],
            timeout_seconds=raw["timeout_seconds"],
        )

    def webhook(self, raw: dict[str, Any]) -> WebhookSettings:
        host, port = raw["listen"] or ("127.0.0.1", 8080)
        secret = raw["secret"] or ""
        if secret and not re.fullmatch(r"[A-Za-z0-9._~-]{16,256}", secret):
            self.problem(
                "webhook.secret",
                "expected at least 16 characters of letters, digits "
                "and . _ ~ - (it becomes part of a URL path); "
                "e.g. generate one with: openssl rand -hex 32",
            )
        previous = tuple(Secret(s) for s in raw["previous_secrets"] or [])
        return WebhookSettings(
            listen_host=host,
            listen_port=port,
            public_url=(raw["public_url"] or "").rstrip("/"),
            secret=Secret(secret),
            previous_secrets=previous,
        )

    def google(self, raw: dict[str, Any]) -> GoogleSettings:
        path = Path(raw["service_account_file"] or "")
        info: dict[str, Any] = {}
        if raw["service_account_file"]:
            info = self.service_account(path)
        return GoogleSettings(
            service_account_file=path,
            service_account_info=info,
            spreadsheet_id=raw["spreadsheet_id"] or "",
            api_endpoint=raw["api_endpoint"].rstrip("/") if raw["api_endpoint"] else None,
            write_requests_per_minute=raw["write_requests_per_minute"],
            read_requests_per_minute=raw["read_requests_per_minute"],
            timeout_seconds=raw["timeout_seconds"],
        )

    def service_account(self, path: Path) -> dict[str, Any]:
        key = "google.service_account_file"
        text = self.read_file(path, key)
        if text is None:
            return {}
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            self.problem(
                key,
                f"{path} is not JSON: download the key again from the Google "
                f"Cloud console (IAM > Service accounts > Keys)",
            )
            return {}
        missing = [
            k
            for k in ("client_email", "private_key", "token_uri")
            if not isinstance(info, dict) or not info.get(k)
        ]
        if missing:
            self.problem(key, f"{path} is not a service-account key (missing {', '.join(missing)})")
            return {}
        return info

    def sheets(self, raw: Any, full_schedule: str | None) -> tuple[SheetSettings, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict) or not raw:
            self.problem("sheets", "expected a mapping of worksheet title -> settings")
            return ()
        return tuple(self.sheet(str(title), body, full_schedule) for title, body in raw.items())

    def sheet(self, title: str, raw: Any, full_schedule: str | None) -> SheetSettings:
        prefix = f"sheets.{title}"
        if not title.strip() or len(title) > 100:
            self.problem(prefix, "a worksheet title must be 1 to 100 characters")
        values = self.section(raw, SHEET_SCHEMA, f"{prefix}.")
        resource = values["resource"] or ""
        events = tuple(values["events"] or ())
        for event in events:
            if resource and resource not in EVENTS[event].resources:
                kinds = " or ".join(EVENTS[event].resources)
                self.problem(
                    f"{prefix}.events",
                    f"{event} is about a {kinds}, but this sheet holds {resource} rows",
                )
        columns = tuple(values["columns"] or ())
        key_column, deleted_column = values["key_column"], values["deleted_column"]
        headers = [c.header for c in columns] + [key_column, deleted_column]
        duplicates = sorted({h for h in headers if headers.count(h) > 1})
        if duplicates:
            self.problem(
                f"{prefix}.columns",
                f"header(s) used twice: {', '.join(duplicates)} "
                f"(key_column and deleted_column are headers too)",
            )
        return SheetSettings(
            title=title,
            resource=resource,
            events=events,
            columns=columns,
            key_column=key_column,
            deleted_column=deleted_column,
            filters=dict(values["filters"] or {}),
            resync=values["resync"] if "resync" in (raw or {}) else full_schedule,
        )

    def check_filters(self, settings: Settings) -> None:
        for sheet in settings.sheets:
            accepted = (
                set().union(*(EVENTS[e].filters for e in sheet.events)) if sheet.events else set()
            )
            for name in sheet.filters:
                if name not in accepted:
                    self.problem(
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
                        self.problem(
                            f"sheets.{sheet.title}.filters.{name}",
                            f"another sheet subscribes {event} with a different "
                            f"{name}; Cobot keeps one subscription per event",
                        )
                    seen[name] = value


def _unknown_key_message(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (expected one of: {', '.join(sorted(known))})"


# -- coercers: each returns the clean value or raises ValueError with what is expected ------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _str(value: Any) -> str:
    _expect(
        isinstance(value, str) and value != "",
        f"expected a non-empty string, got {_describe(value)}",
    )
    return value


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
    text = _str(value)
    parts = urlsplit(text)
    _expect(
        parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username,
        f"expected an http(s) URL like https://host/path, got {text!r}",
    )
    return text


def _hostport(value: Any) -> tuple[str, int]:
    text = _str(str(value) if isinstance(value, int) else value)
    host, sep, port = text.rpartition(":")
    _expect(
        bool(sep) and port.isdigit() and 0 < int(port) < 65536,
        f"expected host:port like 127.0.0.1:8080, got {text!r}",
    )
    return host.strip("[]") or "0.0.0.0", int(port)


def _list_of_str(value: Any) -> list[str]:
    _expect(
        isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        f"expected a list of strings, got {_describe(value)}",
    )
    return list(value)


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


def _events(value: Any) -> list[str]:
    names = _list_of_str(value)
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
    return list(dict.fromkeys(names))


def _columns(value: Any) -> list[Column]:
    _expect(
        isinstance(value, dict) and bool(value),
        f"expected a mapping of header -> path, got {_describe(value)}",
    )
    columns = []
    for header, spec in value.items():
        _expect(
            isinstance(header, str) and header.strip() != "",
            f"column headers must be non-empty text, got {_describe(header)}",
        )
        if isinstance(spec, str) and spec:
            columns.append(Column(header, spec))
            continue
        _expect(
            isinstance(spec, dict),
            f"column {header!r}: expected a path or "
            f"{{path: ..., type: ...}}, got {_describe(spec)}",
        )
        extra = sorted(set(spec) - {"path", "type"})
        if extra:
            raise ValueError(f"column {header!r}: unknown key {extra[0]!r} (expected path, type)")
        path, kind = spec.get("path"), spec.get("type", "text")
        _expect(isinstance(path, str) and path != "", f"column {header!r}: path is missing")
        _expect(
            kind in COLUMN_TYPES,
            f"column {header!r}: type must be one of {', '.join(COLUMN_TYPES)}, got {kind!r}",
        )
        columns.append(Column(header, path, kind))
    return columns


def _mapping(value: Any) -> dict[str, Any]:
    _expect(isinstance(value, dict), f"expected a mapping, got {_describe(value)}")
    return dict(value)


def _cron(value: Any) -> str | None:
    """A crontab expression (five fields, or six with seconds first), or None for ``off``."""
    from syncd.config.cron import cron_trigger

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


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    _expect(text in choices, f"expected one of {', '.join(choices)}, got {_describe(value)}")
    return str(text)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return f"{value!r}" if len(value) < 40 else "a long string"
    return f"a {type(value).__name__}"


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "str": _str,
    "int": _int,
    "float": _float,
    "url": _url,
    "hostport": _hostport,
    "path": _str,
    "list[str]": _list_of_str,
    "timezone": _timezone,
    "resource": _resource,
    "events": _events,
    "columns": _columns,
    "mapping": _mapping,
    "sheets": lambda value: value,
    "cron": lambda value: _cron(value),
    "loglevel": lambda value: _choice(value, ("debug", "info", "warning", "error")),
    "logformat": lambda value: _choice(value, ("text", "json")),
}
