"""``syncd status`` and ``syncd replay``: look into the daemon's state while it runs.

Both read only ``state_dir`` and the worksheet titles from the config, so an operator can run
them without the credentials, which only the service can read. Status opens the database
read-only and never waits on or changes the running daemon; replay makes dead-lettered
events pending again, and the daemon's worker, which polls the inbox every few seconds,
picks them up without a restart.

The daemon leaves what status shows in the store's typed meta (syncd.store.meta); the
re-sync engine's records are shown as they are. What is kept per Cobot space (the subscription
check) is shown per space; a single-space config shows it as it always did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config.loading import inspect_settings
from syncd.config.settings import Settings
from syncd.core.errors import ConfigError
from syncd.core.redaction import Redactor
from syncd.store.database import Store
from syncd.store.inbox import StoreStats
from syncd.store.meta import LastError, LastWrite, SubscriptionCheck
from syncd.store.schema import DB_FILENAME, StateNotCreated

#: Numbers above this in re-sync records are Unix times (2001-09-09), not counts.
EPOCH_2001 = 1_000_000_000
#: Dead letters listed in full; the rest are counted.
DEAD_LETTERS_SHOWN = 50

Redact = Callable[[str], str]


def state_settings(path: Path) -> Settings:
    """The config as far as status and replay use it: ``state_dir`` and the worksheets.

    Problems elsewhere in the file (a credential file only the service may read, an unset
    ``${CREDENTIALS_DIRECTORY}``) do not stop an operator from looking at the inbox.
    """
    settings, problems = inspect_settings(path)
    fatal = [p for p in problems if p.key == "state_dir" or p.key.startswith("sheets")]
    if fatal:
        raise ConfigError(str(path), fatal)
    return settings


# -- status --------------------------------------------------------------------------------


async def read_status(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Everything ``syncd status`` shows, as plain JSON-ready data (times in epoch seconds)."""
    now = time.time() if now is None else now
    redact = _redactor(settings)
    spaces = [space.subdomain for space in settings.spaces]
    try:
        store = Store.open(settings.state_dir, readonly=True)
    except StateNotCreated:  # the daemon has not run yet: an empty state is a state
        store = None
        stats, dead, last_writes, pauses = StoreStats(0, 0, 0, 0, None), [], {}, {}
        checks: dict[str, SubscriptionCheck | None] = dict.fromkeys(spaces)
        resync, last_error = {}, None
    if store is not None:
        async with store:
            stats = await store.stats(now)
            dead = await store.dead_letters(DEAD_LETTERS_SHOWN)
            last_writes = await store.meta.last_writes()
            checks = await store.meta.subscription_checks(spaces)
            resync = await store.meta.resync_records()
            last_error = await store.meta.last_error()
            pauses = await store.meta.pauses()
    oldest = stats.oldest_pending_at
    by_space = {
        space: {"subscriptions": _redacted(_as_json(check), redact)}
        for space, check in checks.items()
    }
    # The single form keeps its one check where scripts have always read it.
    single = (
        {} if settings.cobot.listed else {"subscriptions": by_space[spaces[0]]["subscriptions"]}
    )
    return {
        "state_db": str(settings.state_dir / DB_FILENAME),
        "created": store is not None,
        "inbox": {
            "pending": stats.pending,
            "due": stats.due,
            "dead": stats.dead,
            "done": stats.done,
            "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 1),
        },
        "paused": {where: _redacted(asdict(p), redact) for where, p in pauses.items()},
        "dead_letters": [
            {
                "id": letter.id,
                "event": letter.event,
                "url": letter.url,
                "attempts": letter.attempts,
                "received_at": letter.received_at,
                "last_error": redact(letter.last_error or ""),
            }
            for letter in dead
        ],
        "sheets": {
            sheet.title: _as_json(last_writes.get(sheet.title)) for sheet in settings.sheets
        },
        **single,
        "spaces": by_space,
        "resync": {k: _redacted(v, redact) for k, v in resync.items()},
        "last_error": _redacted(_as_json(last_error), redact),
    }


def render_status(status: dict[str, Any], tz: str, now: float | None = None) -> list[str]:
    """The status as lines for a person: counts first, then what needs attention."""
    clock = _Clock(ZoneInfo(tz), time.time() if now is None else now)
    inbox = status["inbox"]
    created = "" if status["created"] else " (not created yet: the daemon has not run)"
    lines = [f"State database: {status['state_db']}{created}", _inbox_line(inbox)]
    for where, pause in status["paused"].items():
        lines.append(f"PAUSED {where} since {clock.when(pause['since'])}: {pause['reason']}")
    if status["dead_letters"]:
        lines.append("Dead letters (retry them with `syncd replay --config FILE --all` or --id N):")
        for letter in status["dead_letters"]:
            lines.append(
                f"  #{letter['id']} {letter['event']} {letter['url']}: {letter['attempts']} "
                f"attempt(s), received {clock.when(letter['received_at'])}"
            )
            lines.append(f"      last error: {letter['last_error'] or '(none recorded)'}")
        hidden = inbox["dead"] - len(status["dead_letters"])
        if hidden > 0:
            lines.append(f"  ... and {hidden} more (`syncd replay --event NAME` takes them too)")
    lines.append("Worksheets (last successful write):")
    width = max((len(title) for title in status["sheets"]), default=0)
    for title, write in status["sheets"].items():
        shown = "never" if not write else f"{clock.when(write['time'])}, {write['rows']} row(s)"
        lines.append(f"  {title:<{width}}  {shown}")
    if "subscriptions" in status:
        lines += _subscriptions_lines("Subscriptions", status["subscriptions"], clock)
    else:
        lines.append("Subscriptions, per space:")
        for space, shown in status["spaces"].items():
            lines += [
                f"  {line}" for line in _subscriptions_lines(space, shown["subscriptions"], clock)
            ]
    lines += _resync_lines(status["resync"], clock)
    error = status["last_error"]
    lines.append(
        "Last error: none recorded"
        if not error
        else f"Last error at {clock.when(error['time'])}: {error['error']}"
    )
    return lines


# -- replay --------------------------------------------------------------------------------


async def replay(settings: Settings, ids: Sequence[int] | None, event: str | None) -> int:
    """Replay in the state database; never creates one (a wrong state_dir is reported)."""
    async with Store.open(settings.state_dir, readonly=True):
        pass
    async with Store.open(settings.state_dir) as store:
        return await store.replay(ids, event)


# -- helpers -------------------------------------------------------------------------------


class _Clock:
    """Times as the operator reads them: local to the config's time zone, with an age."""

    def __init__(self, tz: ZoneInfo, now: float) -> None:
        self.tz = tz
        self.now = now

    def when(self, epoch: float) -> str:
        stamp = datetime.fromtimestamp(epoch, self.tz).strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"{stamp} ({_age(self.now - epoch)} ago)"


def _age(seconds: float) -> str:
    """``42s``, ``5m 3s``, ``2h 10m``, ``3d 4h``: precise enough to tell stale from fresh."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _inbox_line(inbox: dict[str, Any]) -> str:
    oldest = inbox["oldest_pending_age_seconds"]
    waiting = "" if oldest is None else f", oldest waiting {_age(oldest)}"
    return (
        f"Inbox: {inbox['pending']} pending ({inbox['due']} due now{waiting}), "
        f"{inbox['dead']} dead-lettered, {inbox['done']} done (kept 7 days)"
    )


def _subscriptions_lines(label: str, check: dict[str, Any] | None, clock: _Clock) -> list[str]:
    if not check:
        return [f"{label}: not checked yet (the daemon checks them at start)"]
    outcome = check.get("summary") or "the check failed"
    lines = [f"{label}: checked {clock.when(check['time'])}: {outcome}"]
    lines += [f"  error: {error}" for error in check.get("errors") or []]
    return lines


def _resync_lines(entries: dict[str, Any], clock: _Clock) -> list[str]:
    if not entries:
        return ["Re-sync: nothing recorded yet"]
    lines = ["Re-sync:"]
    for key, value in entries.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {_value(v, clock)}" for k, v in value.items())
        else:
            shown = _value(value, clock)
        lines.append(f"  {key.partition('.')[2]}: {shown}")  # the key without "resync."
    return lines


def _value(value: Any, clock: _Clock) -> str:
    """A recorded value as text; Unix times (the engine's ``at``, ``since``) as dates."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > EPOCH_2001:
        return clock.when(value)
    return str(value)


def _redactor(settings: Settings) -> Redact:
    """Masks whichever secrets the config let us read, in texts that came from outside."""
    return Redactor(s for s in settings.secret_values() if s).redact


def _as_json(record: LastWrite | LastError | SubscriptionCheck | None) -> dict[str, Any] | None:
    """A meta record as the plain data ``--json`` prints."""
    return None if record is None else asdict(record)


def _redacted(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value
