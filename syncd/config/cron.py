"""Cron expressions of the config: crontab's five fields, or six with seconds in front.

``30 3 * * *`` is minute, hour, day of month, month, weekday, as in crontab; a sixth field in
front gives seconds (``*/5 * * * * *``: every five seconds), which is mostly useful in tests.

Weekday numbers mean what they mean in crontab (0 and 7 are Sunday). APScheduler 3 counts
from Monday = 0 instead, so numbers are spelled out as day names, which both read alike;
without that, ``30 3 * * 1`` would run on Tuesdays.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_FIVE = ("minute", "hour", "day", "month", "day_of_week")
_SIX = ("second", *_FIVE)
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, timezone: str | tzinfo) -> CronTrigger:
    """The trigger of a five- or six-field expression; ValueError says what is wrong."""
    return CronTrigger(**cron_fields(expression), timezone=timezone)


def cron_fields(expression: str) -> dict[str, str]:
    """APScheduler's CronTrigger fields for a five- or six-field crontab expression."""
    parts = expression.split()
    if len(parts) not in (5, 6):
        raise ValueError(
            f"expected 5 fields (minute hour day month weekday) or 6 (second first), "
            f"got {len(parts)}"
        )
    fields = dict(zip(_FIVE if len(parts) == 5 else _SIX, parts, strict=True))
    fields["day_of_week"] = _crontab_weekdays(fields["day_of_week"])
    return fields


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field as day names (``1-5`` -> ``mon,tue,wed,thu,fri``)."""
    if field in ("*", "?") or not any(ch.isdigit() for ch in field):
        return field
    days: set[int] = set()
    for item in field.split(","):
        spec, slash, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 0
        if slash and step < 1:
            raise ValueError(f"invalid weekday step in {item!r}")
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            low, high = spec.split("-", 1)
            first, last = _weekday(low), _weekday(high)
        else:
            first = _weekday(spec)
            last = 6 if slash else first
        if last < first:
            raise ValueError(f"weekday range {spec!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday(text: str) -> int:
    """0..7 (0 and 7: Sunday) or a day name, as crontab counts them."""
    name = text.strip().lower()
    if name.isdigit() and int(name) <= 7:
        return int(name)
    if name[:3] in _DAY_NAMES and len(name) == 3:
        return _DAY_NAMES.index(name)
    raise ValueError(f"invalid weekday {text!r} (0-7 or sun..sat)")
