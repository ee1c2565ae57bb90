"""The local copy of Cobot's resources: it never goes back in time, and deletions keep the
last body known (what a deletion's row and a re-render show)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.store.database import Store
from syncd.store.resources import Kept

URL = "https://co-up.cobot.me/api/invoices/{}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.open(tmp_path / "state")
    yield opened
    await opened.close()


def invoice(n: int, observed_at: float, total: int | None, deleted_at: str | None = None) -> Kept:
    body = None if total is None else {"id": str(n), "total": total, "membership_id": "m1"}
    return Kept(
        URL.format(n),
        "invoice",
        str(n),
        body,
        observed_at,
        deleted_at,
        "m1" if body else None,
    )


async def test_an_older_observation_never_replaces_a_newer_one(store: Store) -> None:
    await store.keep([invoice(1, 20.0, 200)])
    await store.keep([invoice(1, 10.0, 100)])
    assert (await store.kept([URL.format(1)]))[URL.format(1)].body == {
        "id": "1",
        "total": 200,
        "membership_id": "m1",
    }
    await store.keep([invoice(1, 30.0, 300)])
    assert (await store.kept([URL.format(1)]))[URL.format(1)].observed_at == 30.0


async def test_a_deletion_without_data_keeps_the_last_body_and_its_first_stamp(
    store: Store,
) -> None:
    await store.keep([invoice(1, 10.0, 100)])
    await store.keep([invoice(1, 20.0, None, "2026-01-01T00:00:00Z")])
    await store.keep([invoice(1, 25.0, None, "2026-01-02T00:00:00Z")])
    kept = (await store.kept([URL.format(1)]))[URL.format(1)]
    assert kept.body is not None and kept.body["total"] == 100
    assert kept.deleted_at == "2026-01-01T00:00:00Z"
    assert kept.member_id == "m1"
    # Seen present again after the deletion: the flag is cleared.
    await store.keep([invoice(1, 40.0, 400)])
    kept = (await store.kept([URL.format(1)]))[URL.format(1)]
    assert kept.deleted_at is None and kept.body is not None and kept.body["total"] == 400


async def test_memberships_are_found_by_id_and_kind(store: Store) -> None:
    member = Kept(
        "https://co-up.cobot.me/api/memberships/m1", "membership", "m1", {"id": "m1"}, 1.0
    )
    await store.keep([member, invoice(1, 1.0, 100)])
    assert set(await store.memberships(["m1", "m2", "1"])) == {"m1"}
    assert await store.kept_urls("invoice") == {URL.format(1): ("", True)}
