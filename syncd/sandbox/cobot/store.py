"""The objects of the simulated space, by kind, and the deleted ones deletion webhooks embed.

Tests change the store from their own thread while the server's loop reads it, so every
access takes one lock. Stored objects are never changed in place (updates replace them),
which lets handlers serialize the views they got outside the lock; the test thread gets deep
copies, so nothing it does to them reaches the store.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from syncd.sandbox.cobot.catalogue import KINDS, Kind, kind_at
from syncd.sandbox.cobot.generator import CobotDataGenerator
from syncd.sandbox.cobot.shapes import JSON


class StoreKnobs(Protocol):
    """The simulator's attribute that object URLs are built from."""

    base_url: str


class ObjectStore:
    """Stored objects per kind; `view` is an object as the API serves it."""

    def __init__(self, knobs: StoreKnobs, data: CobotDataGenerator) -> None:
        self._knobs = knobs
        self._data = data
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, JSON]] = {name: {} for name in KINDS}
        self._graveyard: dict[tuple[str, str], JSON] = {}

    def url_for(self, kind: str | Kind, object_id: str) -> str:
        kind = KINDS[kind] if isinstance(kind, str) else kind
        return self._knobs.base_url + kind.path(object_id)

    def view(self, kind: Kind, obj: JSON) -> JSON:
        """The object as served: v1 objects that carry a `url` get this server's URL."""
        if kind.carries_url:
            return {**obj, "url": self.url_for(kind, kind.id_of(obj))}
        return obj

    # -- reads for the API (shared views, never to be changed) -------------------------------

    def served(self, kind: Kind, object_id: str) -> JSON | None:
        with self._lock:
            obj = self._objects[kind.name].get(object_id)
        return None if obj is None else self.view(kind, obj)

    def select(self, kind: str, keep: Callable[[JSON], bool] = lambda obj: True) -> list[JSON]:
        """Views of the kind's objects that `keep` accepts, in insertion order."""
        spec = KINDS[kind]
        with self._lock:
            stored = list(self._objects[kind].values())
        return [self.view(spec, obj) for obj in stored if keep(obj)]

    # -- the test thread's API (deep copies) --------------------------------------------------

    def get(self, kind: str, object_id: str) -> JSON | None:
        spec = KINDS[kind]
        with self._lock:
            obj = self._objects[kind].get(object_id)
            return None if obj is None else copy.deepcopy(self.view(spec, obj))

    def objects(self, kind: str) -> list[JSON]:
        spec = KINDS[kind]
        with self._lock:
            return [copy.deepcopy(self.view(spec, obj)) for obj in self._objects[kind].values()]

    def add(self, kind: str, fields: dict[str, Any]) -> JSON:
        """Generate an object of `kind` from the builder's keyword arguments and keep it."""
        spec = KINDS[kind]
        with self._lock:
            if "member" in fields:
                fields["member"] = self._resolve_member(fields["member"])
            obj = copy.deepcopy(getattr(self._data, kind)(**fields))
            object_id = spec.id_of(obj)
            if object_id in self._objects[kind]:
                raise ValueError(f"{kind} {object_id} already exists")
            self._objects[kind][object_id] = obj
            return copy.deepcopy(self.view(spec, obj))

    def change(self, kind: str, object_id: str, changes: Mapping[str, Any]) -> tuple[JSON, JSON]:
        """Replace the object by one with `changes` applied; (before, after) as served."""
        spec = KINDS[kind]
        with self._lock:
            before = self._existing(kind, object_id)
            after = _changed(spec, before, copy.deepcopy(dict(changes)))
            self._objects[kind][object_id] = after
            return self.view(spec, before), copy.deepcopy(self.view(spec, after))

    def remove(self, kind: str, object_id: str) -> JSON:
        """Delete the object (its URL answers 404 from now on), keeping it for webhooks."""
        spec = KINDS[kind]
        with self._lock:
            obj = self._existing(kind, object_id)
            del self._objects[kind][object_id]
            self._graveyard[(kind, object_id)] = obj
            return copy.deepcopy(self.view(spec, obj))

    def lookup(self, url: str) -> JSON | None:
        """The stored or deleted object at one of this server's URLs."""
        base_url = self._knobs.base_url
        if not base_url or not url.startswith(base_url):
            return None
        located = kind_at(url[len(base_url) :])
        if located is None:
            return None
        kind, object_id = located
        with self._lock:
            obj = self._objects[kind.name].get(object_id)
            obj = obj if obj is not None else self._graveyard.get((kind.name, object_id))
            return None if obj is None else copy.deepcopy(self.view(kind, obj))

    def seed(
        self, *, members: int, invoices: int, bookings: int, check_ins: int, years: float, seed: int
    ) -> dict[str, int]:
        """Fill the store with a generated space's history; returns how many of each kind."""
        with self._lock:
            self._data.reseed(seed)
            space = self._data.space(
                members=members,
                invoices=invoices,
                bookings=bookings,
                check_ins=check_ins,
                years=years,
            )
            for kind, objects in space.objects.items():
                self._objects[kind].update((obj["id"], obj) for obj in objects)
        return space.counts()

    def _existing(self, kind: str, object_id: str) -> JSON:
        try:
            return self._objects[kind][object_id]
        except KeyError:
            raise KeyError(f"no {kind} {object_id!r}") from None

    def _resolve_member(self, member: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return self._existing("membership", member) if isinstance(member, str) else member


def _changed(kind: Kind, obj: JSON, changes: JSON) -> JSON:
    """A new object with `changes` applied (to the attributes of API 2 documents)."""
    if kind.api2:
        data = obj["data"]
        return {**obj, "data": {**data, "attributes": {**data["attributes"], **changes}}}
    return {**obj, **changes}
