"""Typed meta: the small records the daemon keeps between runs, for ``syncd status`` and for
the re-sync schedule.

Each record is declared once here, with its key and its shape, and is read and written only
through :class:`Meta`, so no caller builds a key. Values are JSON in the ``meta`` table, under
the keys and in the shapes earlier versions wrote, so a state database keeps its history. A
stored value without its record's shape (edited by hand, or left by a cleared record) reads
as absent.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from syncd.store.connection import Call, json_param, write_transaction

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: The last subscription check: by this prefix, a dot and the space's subdomain; alone, the
#: key under which versions that served one space kept it.
_SUBSCRIPTION_CHECK = "subscriptions.last_check"
#: Each worksheet's last successful write, by this prefix and the worksheet title.
_LAST_WRITE = "sheets.last_write."
#: The last error of a flush.
_LAST_ERROR = "worker.last_error"
#: What the pipeline waits for a person about, by this prefix and what is held up.
_PAUSE = "worker.paused."
#: The mapping each worksheet's rows were last rendered with (see mapping_fingerprint).
_MAPPING = "sheets.mapping."
#: Every re-sync record starts so; ``syncd status`` lists them all as they are.
_RESYNC = "resync."

R = TypeVar("R", bound="DataclassInstance")


@dataclass(frozen=True)
class LastWrite:
    """A worksheet's last successful write: when, and how many rows it wrote."""

    time: float
    rows: int


@dataclass(frozen=True)
class LastError:
    """The last error a flush of the inbox met."""

    time: float
    error: str


@dataclass(frozen=True)
class Pause:
    """Work held for a person since ``since`` (a revoked token, a spreadsheet not shared)."""

    since: float
    reason: str


@dataclass(frozen=True)
class SubscriptionCheck:
    """The last subscription check; ``summary`` is None when the check itself failed."""

    time: float
    summary: str | None
    errors: Sequence[str]


@dataclass(frozen=True)
class SafetyStop:
    """The last complete listing that lacked too many known rows to flag them deleted."""

    at: float
    absent: int
    rows: int
    message: str


@dataclass(frozen=True)
class ResyncRun:
    """A completed re-sync of one worksheet in one mode: when it ended, and what it did
    (counts and notes by name, shown as they are by ``syncd status``)."""

    at: float
    outcome: Mapping[str, object]

    def to_json(self) -> dict[str, object]:
        return {"at": self.at, **self.outcome}

    @classmethod
    def from_json(cls, value: Any) -> ResyncRun | None:
        if not isinstance(value, dict) or not isinstance(value.get("at"), int | float):
            return None
        return cls(value["at"], {k: v for k, v in value.items() if k != "at"})


@dataclass(frozen=True)
class ResyncCheckpoint:
    """Where an interrupted run over the days ``since`` to ``until`` continues: ``next``."""

    since: date
    until: date
    next: date

    def to_json(self) -> dict[str, object]:
        run = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        return {"run": run, "next": self.next.isoformat()}

    @classmethod
    def from_json(cls, value: Any) -> ResyncCheckpoint | None:
        try:
            run = value["run"]
            days = (run["since"], run["until"], value["next"])
            return cls(*(date.fromisoformat(day) for day in days))
        except (TypeError, KeyError, ValueError):
            return None


class Meta:
    """The records in the state database's meta table, each read and written as its type."""

    def __init__(self, call: Call, conn: sqlite3.Connection) -> None:
        self._call = call
        self._conn = conn

    # -- the worker and the daemon, for `syncd status` -------------------------------------

    async def last_writes(self) -> dict[str, LastWrite]:
        """Each worksheet's last successful write, by worksheet title."""
        values = await self._select_prefixed(_LAST_WRITE)
        writes = {key[len(_LAST_WRITE) :]: _flat(LastWrite, v) for key, v in values.items()}
        return {title: write for title, write in writes.items() if write is not None}

    async def last_error(self) -> LastError | None:
        return _flat(LastError, await self._get(_LAST_ERROR))

    async def record_flush(
        self, writes: Mapping[str, LastWrite], error: LastError | None = None
    ) -> None:
        """Save a flush's last write per worksheet title, and its error if it met one, in one
        transaction (one fsync, not one per record)."""
        values: dict[str, object] = {
            f"{_LAST_WRITE}{title}": asdict(write) for title, write in writes.items()
        }
        if error is not None:
            values[_LAST_ERROR] = asdict(error)
        await self._save(values)

    async def pauses(self) -> dict[str, Pause]:
        """What is held for a person, by what it holds up (Cobot, or a worksheet title)."""
        values = await self._select_prefixed(_PAUSE)
        pauses = {key[len(_PAUSE) :]: _flat(Pause, v) for key, v in values.items()}
        return {scope: pause for scope, pause in pauses.items() if pause is not None}

    async def record_pauses(self, pauses: Mapping[str, Pause | None]) -> None:
        """Save pauses that began or changed; None: that pause is over."""
        await self._save(
            {f"{_PAUSE}{scope}": None if p is None else asdict(p) for scope, p in pauses.items()}
        )

    async def subscription_checks(
        self, spaces: Sequence[str]
    ) -> dict[str, SubscriptionCheck | None]:
        """The last subscription check of each space (by subdomain, in the order given).

        A database last written by a version that served one space holds one check without
        a space: it stands for the first space until that space has one of its own.
        """
        values = await self._select_prefixed(_SUBSCRIPTION_CHECK)
        checks = {
            space: _flat(SubscriptionCheck, values.get(_check_key(space))) for space in spaces
        }
        if spaces and checks[spaces[0]] is None:
            checks[spaces[0]] = _flat(SubscriptionCheck, values.get(_SUBSCRIPTION_CHECK))
        return checks

    async def record_subscription_check(self, space: str, check: SubscriptionCheck) -> None:
        """Save the outcome of the check of ``space`` (a subdomain)."""
        await self._save({_check_key(space): asdict(check)})

    async def mapping_fingerprint(self, sheet: str) -> str | None:
        """The fingerprint of the mapping the worksheet's rows were last rendered with."""
        value = await self._get(f"{_MAPPING}{sheet}")
        return value if isinstance(value, str) else None

    async def save_mapping_fingerprint(self, sheet: str, fingerprint: str) -> None:
        await self._save({f"{_MAPPING}{sheet}": fingerprint})

    # -- the re-sync engine ----------------------------------------------------------------

    async def resync_run(self, mode: str, sheet: str) -> ResyncRun | None:
        """The last completed re-sync of ``sheet`` in ``mode``."""
        return ResyncRun.from_json(await self._get(_resync_key("last_run", mode, sheet)))

    async def record_resync_run(self, mode: str, sheet: str, run: ResyncRun) -> None:
        await self._save({_resync_key("last_run", mode, sheet): run.to_json()})

    async def resync_schedule_start(self, mode: str, sheet: str) -> float | None:
        """When the schedule of ``mode`` re-syncs of ``sheet`` started counting (no run yet)."""
        start = await self._get(_resync_key("schedule_since", mode, sheet))
        return start if isinstance(start, int | float) else None

    async def start_resync_schedule(self, mode: str, sheet: str, at: float) -> None:
        await self._save({_resync_key("schedule_since", mode, sheet): at})

    async def resync_checkpoint(self, mode: str, sheet: str) -> ResyncCheckpoint | None:
        """Where an interrupted ``mode`` run of ``sheet`` continues, if one was interrupted."""
        key = _resync_key("checkpoint", mode, sheet)
        return ResyncCheckpoint.from_json(await self._get(key))

    async def save_resync_checkpoint(
        self, mode: str, sheet: str, checkpoint: ResyncCheckpoint | None
    ) -> None:
        """Save where the run continues; None: the run finished, and nothing is left to do."""
        key = _resync_key("checkpoint", mode, sheet)
        await self._save({key: None if checkpoint is None else checkpoint.to_json()})

    async def safety_stop(self, sheet: str) -> SafetyStop | None:
        return _flat(SafetyStop, await self._get(_resync_key("safety_stop", sheet)))

    async def save_safety_stop(self, sheet: str, stop: SafetyStop | None) -> None:
        """Save the stop; None: the last listing was complete enough, so no stop stands."""
        key = _resync_key("safety_stop", sheet)
        await self._save({key: None if stop is None else asdict(stop)})

    async def resync_records(self) -> dict[str, Any]:
        """Every re-sync record as stored, by key, for ``syncd status`` to show as it is."""
        values = await self._select_prefixed(_RESYNC)
        return {key: value for key, value in values.items() if value is not None}

    # -- storage ---------------------------------------------------------------------------

    async def _get(self, key: str) -> Any:
        """The JSON value stored under ``key``, or None."""
        values = await self._call(self._select, "key = ?", (key,))
        return values.get(key)

    async def _select_prefixed(self, prefix: str) -> dict[str, Any]:
        return await self._call(self._select, "substr(key, 1, ?) = ?", (len(prefix), prefix))

    def _select(self, condition: str, params: tuple[Any, ...]) -> dict[str, Any]:
        rows = self._conn.execute(
            f"SELECT key, value FROM meta WHERE {condition} ORDER BY key", params
        )
        return {key: json.loads(text) for key, text in rows}

    async def _save(self, values: Mapping[str, object]) -> None:
        """Save JSON values by key in one transaction; a None value removes its record."""
        await self._call(self._write, dict(values))

    def _write(self, values: dict[str, object]) -> None:
        now = time.time()
        texts = [
            (key, json_param(value), now) for key, value in values.items() if value is not None
        ]
        with write_transaction(self._conn) as conn:
            conn.executemany(
                "DELETE FROM meta WHERE key = ?", [(k,) for k, v in values.items() if v is None]
            )
            conn.executemany(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                texts,
            )


def _check_key(space: str) -> str:
    return f"{_SUBSCRIPTION_CHECK}.{space}"


def _resync_key(record: str, *names: str) -> str:
    return _RESYNC + ".".join((record, *names))


def _flat(record: type[R], value: Any) -> R | None:
    """A stored JSON object as a flat ``record``, or None when it lacks one of its fields."""
    if not isinstance(value, dict):
        return None
    try:
        return record(**{field.name: value[field.name] for field in fields(record)})
    except KeyError:
        return None
